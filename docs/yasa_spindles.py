"""YASA `spindles_detect` (defaults) on DREAMS excerpts 1-6, written as
events.tsv and scored by `neuroloop eval` exactly like our detector
(first 1000 s, union of both experts, IoU >= 0.2, pooled).

Tested with python 3.11, yasa 0.6.5, mne 1.13.2, numpy 2.1.3, scipy 1.14.1.
Excerpt 3 is sampled at 50 Hz: YASA's default broad band (1-30 Hz) is above
its Nyquist, so freq_broad=(1, 24) is passed there (EVALUATION.md notes it).
Usage: python3 docs/yasa_spindles.py [WORKDIR]   (from the repository root,
after `cargo build --release`)
"""
import json, os, subprocess, sys
import numpy as np
import yasa

work = sys.argv[1] if len(sys.argv) > 1 else "target/yasa-spindles"
data = "../shared/data/dreams"
neuroloop = "target/release/neuroloop"
totals = {"truth": 0, "detected": 0, "hits": 0}
print("excerpt truth detected hits P R F1")
for i in range(1, 7):
    lines = open(f"{data}/excerpt{i}.txt").read().split("\n")[1:]
    x = np.array([float(v) for v in lines if v.strip()])
    fs = {1: 100, 3: 50}.get(i, 200)
    kwargs = {"freq_broad": (1, 24)} if fs == 50 else {}
    sp = yasa.spindles_detect(x, sf=fs, verbose="error", **kwargs)
    out = f"{work}/excerpt{i}"
    os.makedirs(out, exist_ok=True)
    with open(f"{out}/events.tsv", "w") as f:
        f.write("onset\tduration\ttrial_type\tsample\tchannel\n")
        if sp is not None:
            for _, r in sp.summary().iterrows():
                f.write(f"{r.Start}\t{r.Duration}\tspindle\t{int(r.Start * fs)}\tC\n")
    result = subprocess.run(
        [neuroloop, "eval", "--events", f"{out}/events.tsv", "--until-s", "1000",
         "--truth", f"{data}/Visual_scoring1_excerpt{i}.txt",
         "--truth", f"{data}/Visual_scoring2_excerpt{i}.txt"],
        capture_output=True, text=True, check=True)
    d = json.loads(result.stdout)["score"]["detection"]
    for k in totals:
        totals[k] += d[k]
    print(f"{i} {d['truth']} {d['detected']} {d['hits']} {d['precision']:.3f} {d['recall']:.3f} {d['f1']:.3f}")
p = totals["hits"] / max(totals["detected"], 1)
r = totals["hits"] / max(totals["truth"], 1)
print(f"pooled 1-6: P {p:.3f} R {r:.3f} F1 {2 * p * r / (p + r):.3f}")
