"""Python models of ripple discriminators on the suite's 1250 Hz files (docs/ripple.md, "What was tried").

Causal models score like `neuroloop eval` (hit = detected_at inside the truth interval, one-to-one,
earliest first; latency from truth onset); the offline (zero-phase, centred) version of the preset's
discriminator gives an upper bound. Veto, state gate and median/MAD baselines mirror src/detect/ripple.rs
(the baselines learn while gated, as in the preset). Usage, after `bash docs/ripple-suite.sh`:
    python3 docs/ripple_explore.py [target/ripple-suite]
"""
import csv, glob, itertools, sys
import numpy as np, pandas as pd, pyedflib
from scipy import signal


def load(d):
    f = pyedflib.EdfReader(f"{d}/sim/recording.edf")
    x = np.stack([f.readSignal(i) for i in range(f.signals_in_file)], axis=1)
    fs = f.getSampleFrequency(0)
    f.close()
    rows = list(csv.DictReader(open(f"{d}/sim/truth.tsv"), delimiter="\t"))
    ev = lambda r: (float(r["onset"]), float(r["duration"]), float(r["peak"]), r["trial_type"])
    return x, fs, [ev(r) for r in rows if r["trial_type"] == "ripple"], [ev(r) for r in rows if r["trial_type"] != "ripple"]


def bp(order, lo, hi, fs):
    return signal.butter(order, [lo, hi], btype="band", fs=fs, output="sos")


def rms_env(y2, fs, ms):  # causal moving RMS of a squared signal
    w = max(1, int(round(fs * ms / 1000)))
    c = np.cumsum(np.concatenate([[0.0], y2]))
    m = np.concatenate([c[1:w] / np.arange(1, w), (c[w:] - c[:-w]) / w])
    return np.sqrt(np.maximum(m, 0))


def causal_z(env, fs, hold, window_s=30.0, per_s=10.0):
    """z against the median/MAD of the last window_s of points taken at per_s Hz while not held."""
    idx = np.arange(int(fs / per_s) - 1, len(env), int(fs / per_s))
    keep = idx[~hold[idx]]
    pts = pd.Series(env[keep])
    med = pts.rolling(int(window_s * per_s), min_periods=1).median()
    mad = (pts - med).abs().rolling(int(window_s * per_s), min_periods=1).median() * 1.4826
    full_med, full_mad = np.full(len(env), np.nan), np.full(len(env), np.nan)
    full_med[keep], full_mad[keep] = med, mad
    full_med, full_mad = pd.Series(full_med).ffill().to_numpy(), pd.Series(full_mad).ffill().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num((env - full_med) / full_mad, nan=0.0, posinf=0.0, neginf=0.0)


def hold_for(mask, n):
    d = np.zeros(len(mask) + n + 2, int)
    idx = np.flatnonzero(mask)
    np.add.at(d, idx, 1)
    np.add.at(d, idx + n + 1, -1)
    return np.cumsum(d)[: len(mask)] > 0


def veto_and_gate(x, fs, power_window_s=0.5, ratio_close=1.0, ratio_open=0.8):
    ref = x.mean(1)
    v = signal.sosfilt(bp(2, 300, 450, fs), ref)
    veto = hold_for(causal_z(rms_env(v * v, fs, 10), fs, np.zeros(len(v), bool)) > 4, int(0.05 * fs))
    k = max(1, int(round(fs / 250)))
    m = len(ref) // k
    s, fs2 = ref[: m * k].reshape(m, k).sum(1), fs / k
    a = 1 - np.exp(-1 / (power_window_s * fs2))
    power = lambda lo, hi: signal.lfilter([a], [1, a - 1], signal.sosfilt(bp(2, lo, hi, fs2), s) ** 2)
    ratio = power(5, 10) / np.maximum(power(1, 4), 1e-300)
    closed, c = np.zeros(m, bool), False
    for i, r in enumerate(ratio):
        c = True if r > ratio_close else (False if r < ratio_open else c)
        closed[i] = c
    gate = np.repeat(closed, k)
    return veto, np.concatenate([gate, np.full(len(ref) - len(gate), gate[-1])])


def detect(z, fs, blocked, thr, min_ms, end_thr=1.0, warmup_s=5.0):
    """Commit after min_ms above thr (unblocked); the event ends under end_thr."""
    above = (z > thr) & ~blocked
    c = np.cumsum(above)
    run = c - np.maximum.accumulate(np.where(~above, c, 0))
    cand = np.flatnonzero(run >= max(1, int(round(fs * min_ms / 1000))))
    cand = cand[cand >= warmup_s * fs]
    low = np.flatnonzero(z <= end_thr)
    out, p = [], 0
    while p < len(cand):
        out.append(cand[p])
        j = np.searchsorted(low, cand[p] + 1)
        if j >= len(low):
            break
        p = np.searchsorted(cand, low[j] + 1)
    return np.array(out, np.int64)


def score(commits, fs, truth, minutes, refractory_s=0.2):
    taken, lat = [False] * len(truth), []
    for d in commits / fs:
        for i, (on, du, *_ ) in enumerate(truth):
            if not taken[i] and on <= d < on + du:
                taken[i] = True
                lat.append((d - on) * 1000)
                break
    stims, last = [], -1e9
    for d in commits / fs:
        if d - last >= refractory_s:
            stims.append(d)
            last = d
    peaks = np.array([t[2] for t in truth])
    within = sum(np.min(np.abs(peaks - s)) <= 0.05 for s in stims)
    return dict(truth=len(truth), det=len(commits), hits=len(lat), lat=lat, stims=len(stims), within=within, minutes=minutes)


def pool(scores):
    t, d, h = (sum(s[k] for s in scores) for k in ("truth", "det", "hits"))
    p, r = h / max(d, 1), h / t
    return dict(P=round(p, 3), R=round(r, 3), F1=round(2 * p * r / max(p + r, 1e-9), 3),
                latency_ms=round(float(np.median([np.median(s["lat"]) for s in scores if s["lat"]])), 1),
                within=round(sum(s["within"] for s in scores) / max(sum(s["stims"] for s in scores), 1), 3),
                fp_per_min=round((d - h) / sum(s["minutes"] for s in scores), 2))


def full_band(x, fs, hold, coherent=False, order=3, env_ms=10):
    y = signal.sosfilt(bp(order, 150, 250, fs), x.mean(1) if coherent else x, axis=0)
    return causal_z(rms_env(y * y if coherent else (y * y).mean(1), fs, env_ms), fs, hold)


def sub_bands(x, fs, hold, edges=(150, 200, 250), order=2, env_ms=10, coherent=True, causal=True):
    zs = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        src = x.mean(1) if coherent else x
        y = signal.sosfilt(bp(order, lo, hi, fs), src, axis=0) if causal else signal.sosfiltfilt(bp(order, lo, hi, fs), src, axis=0)
        y2 = y * y if coherent else (y * y).mean(1)
        if causal:
            zs.append(causal_z(rms_env(y2, fs, env_ms), fs, hold))
        else:  # centred envelope, one median/MAD over the unblocked recording
            w = int(round(fs * env_ms / 1000))
            env = np.sqrt(np.convolve(y2, np.ones(w) / w, mode="same"))
            med = np.median(env[~hold])
            zs.append((env - med) / (1.4826 * np.median(np.abs(env[~hold] - med))))
    return np.max(zs, axis=0)


def offline_detect(z, fs, blocked, thr, min_ms, end_thr=1.0):
    """Events above end_thr holding min_ms above thr; detected_at = the event's z maximum."""
    above, out = (z > thr) & ~blocked, []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], (z > end_thr).astype(int), [0]])))
    for s, e in zip(edges[::2], edges[1::2]):
        d = np.flatnonzero(np.diff(np.concatenate([[0], above[s:e].astype(int), [0]])))
        if len(d) and (d[1::2] - d[::2]).max() >= max(1, int(round(fs * min_ms / 1000))):
            out.append(s + np.argmax(z[s:e]))
    return np.array(out, np.int64)


def main(suite):
    runs = []
    for d in sorted(glob.glob(f"{suite}/r1250-*")):
        x, fs, truth, other = load(d)
        veto, gate = veto_and_gate(x, fs)
        runs.append((x, fs, truth, other, veto, gate))

    def sweep(name, stat, thrs, mins):
        zs = [stat(x, fs, veto) for x, fs, _, _, veto, _ in runs]
        results = []
        for t, m in itertools.product(thrs, mins):
            sc = [score(detect(z, fs, veto | gate, t, m), fs, truth, len(x) / fs / 60)
                  for z, (x, fs, truth, _, veto, gate) in zip(zs, runs)]
            results.append((pool(sc), (t, m)))
        best = max(results, key=lambda r: r[0]["F1"])
        print(f"{name}: best at {best[1][0]} SD / {best[1][1]} ms: {best[0]}")

    sweep("full band, root-sum-square (order 3)", full_band, [3.5, 4, 4.5], [4, 6, 8])
    sweep("full band, coherent mean (order 3)", lambda *a: full_band(*a, coherent=True), [3.5, 4, 4.5], [4, 6, 8])
    for edges in ((150, 200, 250), (150, 183, 217, 250), (150, 175, 200, 225, 250)):
        for coherent in (True, False):
            label = f"{len(edges) - 1} sub-bands (order 2), {'coherent' if coherent else 'root-sum-square'}"
            sweep(label, lambda *a: sub_bands(*a, edges=edges, coherent=coherent), [4, 4.5, 5, 5.5], [2, 4, 6, 8])
    sweep("2 sub-bands (order 3), coherent", lambda *a: sub_bands(*a, order=3), [4.5, 5, 5.5], [2, 4, 6])
    for label, oracle in (("causal veto and gate", False), ("oracle: truth's theta epochs and artifacts", True)):
        results = []
        blocks = []
        for x, fs, truth, other, veto, gate in runs:
            if oracle:
                b = np.zeros(len(x), bool)
                for on, du, _, kind in other:
                    if kind in ("theta_epoch", "emg_burst", "gamma_burst", "clipping"):
                        b[int(on * fs): int((on + du) * fs) + 1] = True
            else:
                b = veto | gate
            blocks.append(b)
        zs = [sub_bands(x, fs, b, causal=False) for (x, fs, *_), b in zip(runs, blocks)]
        for t, m in itertools.product((3, 3.5, 4, 4.5, 5, 5.5, 6, 7), (0, 2, 4, 8, 12)):
            sc = [score(offline_detect(z, fs, b, t, m), fs, truth, len(x) / fs / 60)
                  for z, b, (x, fs, truth, *_) in zip(zs, blocks, runs)]
            results.append((pool(sc), (t, m)))
        best = max(results, key=lambda r: r[0]["F1"])
        print(f"offline upper bound, 2 coherent sub-bands, {label}: best at {best[1][0]} SD / {best[1][1]} ms: "
              f"P {best[0]['P']} R {best[0]['R']} F1 {best[0]['F1']} FP/min {best[0]['fp_per_min']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/ripple-suite")
