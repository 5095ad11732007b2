"""Brain-state gate candidates for the ripple detector, modelled on the suite's 1250 Hz files.

Usage, after docs/ripple-suite.sh (tuning seeds) and SEEDS="4 5 6" docs/ripple-suite.sh (held out):
    python3 docs/ripple_gate_model.py target/ripple-suite target/ripple-held   (~20 s)

Each candidate turns the channel mean (boxcar-decimated to ~250 Hz, as src/detect/ripple.rs does) into a
state measure; its closing threshold is fixed by one rule on the tuning seeds: the lowest value that
keeps the gate closed for >= 97 % of theta-epoch time (the first and last 2 s of each epoch left out:
the 1-s ramps and the time a smoothed measure needs to follow them); it reopens below 0.8 x that. Reported: share of truth ripples whose visible onset
falls in a closed gate (all, and those within 0.2 s of the previous ripple's peak), share of theta time
closed, and on the real theta recording (hc2) the share of time closed after 5 s. Then the ratio gates at
the preset's own thresholds. A model of the gate alone: the detector's figures are in docs/ripple.md.
"""
import csv, glob, sys
import numpy as np, pyedflib
from scipy import signal

HC2 = "../shared/data/rodent/hc2_theta_1000hz.npy"  # run from the repository root


def load(d):
    f = pyedflib.EdfReader(f"{d}/sim/recording.edf")
    x = np.stack([f.readSignal(i) for i in range(f.signals_in_file)], axis=1)
    fs = f.getSampleFrequency(0)
    f.close()
    truth = [(float(r["onset"]), float(r["duration"]), float(r["peak"]), r["trial_type"])
             for r in csv.DictReader(open(f"{d}/sim/truth.tsv"), delimiter="\t")]
    return x.mean(axis=1), fs, truth


def decimate(x, fs):
    k = max(1, int(round(fs / 250)))
    n = len(x) // k * k
    return x[:n].reshape(-1, k).sum(axis=1), fs / k


def band(s, fs, lo, hi, order=2):
    return signal.sosfilt(signal.butter(order, [lo, hi], btype="band", fs=fs, output="sos"), s)


def ewma(y, fs, tau):
    a = -np.expm1(-1 / (tau * fs))
    return signal.lfilter([a], [1, -(1 - a)], y, zi=[(1 - a) * y[0]])[0]


def running_median(v, fs, window_s, per_s=10):
    step = max(1, int(round(fs / per_s)))
    idx = np.arange(step - 1, len(v), step)
    n = int(window_s * per_s)
    p = np.concatenate([np.full(n - 1, v[idx][0]), v[idx]])
    m = np.median(np.lib.stride_tricks.sliding_window_view(p, n), axis=1)
    out = np.repeat(m, step)
    return np.concatenate([np.full(step - 1, out[0]), out])[: len(v)]


def ratio_ewma(delta=(1, 4), tau=0.5):
    return lambda s, fs: ewma(band(s, fs, 5, 10) ** 2, fs, tau) / ewma(band(s, fs, *delta) ** 2, fs, tau)


def ratio_median(window_s=2.0, tau=0.5, with_now=False):
    """Ratio of the medians of the EWMA powers over window_s; with_now: the lower of that and the ratio now
    (src/detect/ripple.rs, median_window_s)."""
    def m(s, fs):
        th, de = ewma(band(s, fs, 5, 10) ** 2, fs, tau), ewma(band(s, fs, 1, 4) ** 2, fs, tau)
        median = running_median(th, fs, window_s) / running_median(de, fs, window_s)
        return np.minimum(median, th / de) if with_now else median
    return m


def regularity(tau=0.5):
    """Largest normalised autocorrelation of the 4-12 Hz signal at a lag of one 6-10 Hz period."""
    def m(s, fs):
        y = band(s, fs, 4, 12)
        e0 = ewma(y * y, fs, tau)
        best = np.full(len(y), -1.0)
        for lag in range(int(fs / 10), int(fs / 6) + 1):
            prod = np.concatenate([np.zeros(lag), y[lag:] * y[:-lag]])
            best = np.maximum(best, ewma(prod, fs, tau) / np.maximum(e0, 1e-300))
        return best
    return m


def excluding_events(tau=0.5, z=3.0, hold_s=0.3):
    """theta/delta EWMA whose updates pause while the ripple band is above z robust SDs and hold_s after."""
    def m(s, fs, raw=None, raw_fs=None):
        rb = np.abs(band(raw, raw_fs, 150, 250)) if raw is not None else None
        k = int(round(raw_fs / fs))
        env = np.sqrt(np.convolve(rb[: len(s) * k] ** 2, np.ones(int(raw_fs / 100)) / int(raw_fs / 100))[: len(s) * k])[k - 1::k]
        med = running_median(env, fs, 30.0)
        mad = running_median(np.abs(env - med), fs, 30.0) * 1.4826
        hot = env > med + z * np.maximum(mad, 1e-12)
        frozen = np.zeros(len(s), bool)
        last = -1e9
        for i, h in enumerate(hot):
            if h:
                last = i
            frozen[i] = i - last <= hold_s * fs
        a = -np.expm1(-1 / (tau * fs))
        th, de = band(s, fs, 5, 10) ** 2, band(s, fs, 1, 4) ** 2
        out = np.empty(len(s)); pt, pd_ = th[0], de[0]
        for i in range(len(s)):
            if not frozen[i]:
                pt += a * (th[i] - pt); pd_ += a * (de[i] - pd_)
            out[i] = pt / max(pd_, 1e-300)
        return out
    m.needs_raw = True
    return m


CANDIDATES = {
    "theta/delta EWMA 0.5 s (preset)": ratio_ewma(),
    "theta / delta 0.5-2 Hz, EWMA 0.5 s": ratio_ewma(delta=(0.5, 2)),
    "theta/delta, updates paused around ripple-band events": excluding_events(),
    "theta regularity (autocorrelation at the theta period)": regularity(),
    "theta/delta, medians of the powers over 1 s": ratio_median(1.0),
    "theta/delta, medians of the powers over 2 s": ratio_median(2.0),
    "theta/delta, lower of the ratio now and of the 2-s medians (preset)": ratio_median(2.0, with_now=True),
}
AT_PRESET_THRESHOLDS = ("theta/delta EWMA 0.5 s (preset)", "theta/delta, medians of the powers over 2 s",
                        "theta/delta, lower of the ratio now and of the 2-s medians (preset)")


def hysteresis(r, close, reopen):
    out = np.zeros(len(r), bool)
    c = False
    for i, v in enumerate(r):
        c = True if v > close else False if v < reopen else c
        out[i] = c
    return out


def series(fn, d):
    x, fs, truth = load(d)
    s, sfs = decimate(x, fs)
    m = fn(s, sfs, x, fs) if getattr(fn, "needs_raw", False) else fn(s, sfs)
    return m, sfs, truth


def theta_mask(truth, n, fs):
    mask = np.zeros(n, bool)
    for on, dur, _, kind in truth:
        if kind == "theta_epoch":
            mask[int((on + 2) * fs): int((on + dur - 2) * fs)] = True
    return mask


def score(runs, close):
    rip, close_rip, theta = [], [], []
    for m, fs, truth in runs:
        g = hysteresis(m, close, 0.8 * close)
        theta.append(g[theta_mask(truth, len(g), fs)])
        prev = -1e9
        for on, dur, peak, kind in sorted(t for t in truth if t[3] == "ripple"):
            closed = g[min(int(on * fs), len(g) - 1)]
            rip.append(closed)
            if peak - prev < 0.2:
                close_rip.append(closed)
            prev = peak
    return np.mean(rip), np.mean(close_rip), np.mean(np.concatenate(theta))


def hc2_closed(fn, close):
    x = np.load(HC2).astype(float)
    s, fs = decimate(x, 1000.0)
    m = fn(s, fs, x, 1000.0) if getattr(fn, "needs_raw", False) else fn(s, fs)
    return hysteresis(m, close, 0.8 * close)[int(5 * fs):].mean()


def main(tuning, held):
    runs = {}
    print("Each candidate at a closing threshold fixed by the rule:\n")
    print("| candidate | closing threshold | ripples in a closed gate, tuning / held out | ... within 0.2 s of the previous | theta time closed | hc2 time closed |")
    print("|---|---|---|---|---|---|")
    for name, fn in CANDIDATES.items():
        tune = [series(fn, d) for d in sorted(glob.glob(f"{tuning}/r1250*"))]
        held_out = [series(fn, d) for d in sorted(glob.glob(f"{held}/r1250*"))]
        runs[name] = (tune, held_out)
        theta_values = np.concatenate([m[theta_mask(t, len(m), fs)] for m, fs, t in tune])
        close = np.quantile(theta_values, 0.03)  # >= 97 % of theta time above it
        row(name, close, tune, held_out, fn)
    print("\nThe ratios at the preset's thresholds (close above 1.0, reopen below 0.8):\n")
    print("| gate | | ripples in a closed gate, tuning / held out | ... within 0.2 s of the previous | theta time closed | hc2 time closed |")
    print("|---|---|---|---|---|---|")
    for name in AT_PRESET_THRESHOLDS:
        row(name, 1.0, *runs[name], CANDIDATES[name])


def row(name, close, tune, held_out, fn):
    a, b = score(tune, close), score(held_out, close)
    print(f"| {name} | {close:.3g} | {a[0]:.3f} / {b[0]:.3f} | {a[1]:.3f} / {b[1]:.3f} | {a[2]:.3f} / {b[2]:.3f} | {hc2_closed(fn, close):.3f} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
