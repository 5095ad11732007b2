"""How early can a causal detector see a simulated ripple? (docs/ripple.md, "Why latency stays near 28 ms")

From the suite's truth (the simulator's taper: support, peak, SNR) it reports how long each ripple takes
from its visible onset (amplitude = the background's band RMS) to 2, 3 and 4x that RMS, how long before
its peak it gets there (a decision before the peak needs the ripple visible by at least the filter's
delay before it), and the group delay of the band-passes the detector could use. Usage, after `bash docs/ripple-suite.sh`:
    python3 docs/ripple_floor.py target/ripple-suite [more suite dirs]
"""
import csv, glob, sys
import numpy as np
from scipy import signal

EDGE_SD = 2.5  # src/sim/waves.rs BurstEnvelope::EDGE_SD
EDGE = np.exp(-0.5 * EDGE_SD**2)


def width_fraction_above(fraction):  # BurstEnvelope::width_fraction_above
    level = np.clip(fraction, 0, 1) * (1 - EDGE) + EDGE
    return np.sqrt(np.maximum(-2 * np.log(level), 0)) / EDGE_SD


rise = {2: [], 3: [], 4: []}
lead = {2: [], 3: [], 4: []}  # ms from reaching a x RMS to the peak (-inf: never reaches it)
for path in (p for d in sys.argv[1:] for p in glob.glob(f"{d}/r1250-*/sim/truth.tsv")):
    for row in csv.DictReader(open(path), delimiter="\t"):
        if row["trial_type"] != "ripple":
            continue
        p = dict(kv.split("=") for kv in row["parameters"].split(";"))
        snr, support_onset, peak = float(p["snr"]), float(p["support_onset_s"]), float(row["peak"])
        at = lambda a: peak - width_fraction_above(a / snr) * (peak - support_onset)
        for a in rise:
            rise[a].append((at(a) - at(1)) * 1000 if snr > a else np.inf)
            lead[a].append((peak - at(a)) * 1000 if snr > a else -np.inf)
print(f"{len(rise[2])} ripples")
for a, v in rise.items():
    v = np.array(v)
    print(f"onset -> {a}x band RMS: median {np.median(v):.1f} ms, p25 {np.percentile(v, 25):.1f} ms, "
          f"never reach it {np.mean(np.isinf(v)):.0%}")
for a, v in lead.items():
    v = np.array(v)
    shares = ", ".join(f">= {g} ms: {np.mean(v >= g):.0%}" for g in (5, 10, 13.5, 15, 20))
    print(f"{a}x band RMS reached before the peak by {shares}")
fs = 1250
for order, lo, hi in ((1, 150, 250), (2, 150, 250), (3, 150, 250), (2, 150, 183.3), (2, 183.3, 216.7), (2, 216.7, 250)):
    b, a = signal.butter(order, [lo, hi], btype="band", fs=fs)
    centre = np.sqrt(lo * hi)
    _, gd = signal.group_delay((b, a), w=[centre], fs=fs)
    print(f"Butterworth order {order} {lo:.0f}-{hi:.0f} Hz: group delay at {centre:.0f} Hz {gd[0] / fs * 1000:.1f} ms")
