"""Frank-lab `ripple_detection` Kay detector (offline, non-causal) on the files
of docs/ripple-suite.sh, scored by `neuroloop eval`.

ripple_detection 1.7.1 calls remez(..., Hz=fs), removed in SciPy >= 1.14, so the
band-pass is designed here as EVALUATION.md prescribes and the filtered LFP is
passed in. Speed is unknown (zeros). An offline detector has no causal commit
time: `detected_at` is set to the event midpoint.
Usage: python3 docs/ripple_kay.py [WORKDIR]   (after docs/ripple-suite.sh)
"""
import glob, json, os, subprocess, sys
import numpy as np, pyedflib, scipy.signal as ss
from ripple_detection import Kay_ripple_detector

w = sys.argv[1] if len(sys.argv) > 1 else "target/ripple-suite"
neuroloop = "target/release/neuroloop"

def kay(edf, out):
    f = pyedflib.EdfReader(edf)
    fs = f.getSampleFrequency(0)
    x = np.array([f.readSignal(i) for i in range(f.signals_in_file)]).T
    taps = ss.remez(101, [0, 125, 150, 250, 275, fs / 2], [0, 1, 0], fs=fs)
    filtered = ss.filtfilt(taps, 1.0, x, axis=0)
    t = np.arange(len(x)) / fs
    events = Kay_ripple_detector(t, filtered, np.zeros(len(x)), fs)
    os.makedirs(out, exist_ok=True)
    with open(f"{out}/events.tsv", "w") as e:
        e.write("onset\tduration\ttrial_type\tsample\tchannel\tdetected_at\n")
        for _, r in events.iterrows():
            e.write(f"{r.start_time}\t{r.end_time - r.start_time}\tripple\t{int(r.start_time * fs)}\tall\t"
                    f"{(r.start_time + r.end_time) / 2}\n")
    return len(x) / fs / 60

print("| file | truth | P | R | F1 | FP/min |")
print("|---|---|---|---|---|---|")
for sim in sorted(glob.glob(f"{w}/r1250-*/sim")):
    out = sim.replace("/sim", "/kay")
    minutes = kay(f"{sim}/recording.edf", out)
    s = json.loads(subprocess.check_output([neuroloop, "eval", "--truth", f"{sim}/truth.tsv",
                                            "--events", f"{out}/events.tsv", "--minutes", str(minutes)]))["score"]
    d = s["detection"]
    print(f"| {os.path.basename(os.path.dirname(sim))} | {d['truth']} | {d['precision']:.3f} | {d['recall']:.3f} "
          f"| {d['f1']:.3f} | {s['false_positives_per_min']:.2f} |")
minutes = kay("../shared/data/rodent/hc2_theta_1000hz.edf", f"{w}/kay-theta")
n = sum(1 for _ in open(f"{w}/kay-theta/events.tsv")) - 1
print(f"\ntheta recording: {n} Kay detections, {n / minutes:.2f} FP/min")
