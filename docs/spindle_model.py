"""Causal Python model of detect/spindle.rs on DREAMS 1-6, for sweeping commit rules.

Mirrors the Rust detector sample by sample (same scipy Butterworth SOS, moving
means, 60-s median/MAD baselines decimated to 10/s, state machine) and the
scorer (union of experts, first 1000 s, one-to-one at IoU >= 0.2, latency =
detected_at - expert onset). Validate first: `python3 docs/spindle_model.py`
prints the preset, which must match `bash docs/dreams-suite.sh`.

Beyond the preset it models an early commit (`fast_*`): a second sigma
envelope (shorter window, optionally another band/order) whose z against its
own baseline crossing `fast_z` while the correlation passes `fast_corr` commits
the event before the A7 features start it. Every commit counts as a stim: a
committed event that never becomes a 0.5-s spindle is scored as a false
positive in the "stim" columns. That path of `run`, `abs_window_ms`,
`corr_window_ms` and `show_early` are the round-3 experiments of docs/sleep.md
(set interactively); `run_early` is round 4's confirmed early commit.
"""
from dataclasses import dataclass

import numpy as np
import pyedflib
from numba import njit
from scipy import signal

from dreams_table import DREAMS, score, truth


@dataclass(frozen=True)
class Params:
    sigma: tuple = (11.0, 16.0)
    broad: tuple = (4.5, 30.0)
    order: int = 2
    window_ms: float = 300.0
    abs_sd: float = 0.8
    rel_sd: float = 0.6
    corr: float = 0.6
    end_rel_sd: float = 0.6
    commit_after_ms: float = 0.0
    min_ms: float = 500.0
    max_ms: float = 2000.0
    # Early commit: None disables it.
    fast_window_ms: float | None = None
    fast_sigma: tuple | None = None  # None: the A7 sigma band
    fast_order: int | None = None
    fast_z: float = 2.0
    fast_corr: float = 0.0  # correlation floor at the fast commit (A7 300-ms corr)
    fast_rel_sd: float = -9.0  # relative-power z floor at the fast commit
    # Optional shorter window for the abs (and rel) power features only.
    abs_window_ms: float | None = None
    # Optional window of its own for the correlation feature.
    corr_window_ms: float | None = None


def load(i):
    f = pyedflib.EdfReader(f"{DREAMS}/excerpt{i}.edf")
    x = f.readSignal(0)
    fs = f.getSampleFrequency(0)
    f.close()
    return x, fs


def rs(x):
    return int(np.floor(x + 0.5)) if x >= 0 else 0  # Rust f64::round for positives


def moving_mean(x, n):
    c = np.concatenate(([0.0], np.cumsum(x)))
    out = c[1:].copy()
    out[n:] -= c[1:-n]
    return out / n


def robust_z(v, fs):
    """z of v against the RobustBaseline (60 s, 10 points/s); NaN until warm."""
    ue = max(1, rs(fs / 10.0))
    points = -(-rs(60.0 * fs) // ue)
    idx = np.arange(ue - 1, len(v), ue)
    pts = v[idx]
    win = np.lib.stride_tricks.sliding_window_view(pts, points)
    med = np.median(win, axis=1)
    mad = np.median(np.abs(win - med[:, None]), axis=1)
    # Stats valid from the sample at which the window's last point entered.
    med_s = np.full(len(v), np.nan)
    sd_s = np.full(len(v), np.nan)
    starts = idx[points - 1 :]
    reps = np.diff(np.append(starts, len(v)))
    med_s[starts[0] :] = np.repeat(med, reps)
    sd_s[starts[0] :] = np.repeat(1.4826 * mad, reps)
    z = np.where(sd_s > 0, (v - med_s) / np.where(sd_s > 0, sd_s, 1), 0.0)
    z[: starts[0]] = np.nan
    return z


def bp(order, lo, hi, fs, x):
    return signal.sosfilt(signal.butter(order, [lo, hi], "bandpass", fs=fs, output="sos"), x)


_cache = {}


def features(i, p):
    x, fs = load(i) if ("x", i) not in _cache else _cache[("x", i)]
    _cache[("x", i)] = (x, fs)
    key = (i, p.sigma, p.broad, p.order, p.window_ms, p.abs_window_ms, p.corr_window_ms)
    if key not in _cache:
        bh = min(p.broad[1], 0.9 * fs / 2)
        s = bp(p.order, *p.sigma, fs, x)
        b = bp(p.order, p.broad[0], bh, fs, x)
        n = rs(p.window_ms / 1000 * fs)
        sp = np.maximum(moving_mean(s * s, n), 1e-12)
        bpow = np.maximum(moving_mean(b * b, n), 1e-12)
        corr = moving_mean(s * b, n) / np.sqrt(sp * bpow)
        if p.corr_window_ms:
            nc = rs(p.corr_window_ms / 1000 * fs)
            corr = moving_mean(s * b, nc) / np.sqrt(
                np.maximum(moving_mean(s * s, nc), 1e-12) * np.maximum(moving_mean(b * b, nc), 1e-12))
        if p.abs_window_ms:
            na = rs(p.abs_window_ms / 1000 * fs)
            sp = np.maximum(moving_mean(s * s, na), 1e-12)
            bpow = np.maximum(moving_mean(b * b, na), 1e-12)
        absz = robust_z(np.log10(sp), fs)
        relz = robust_z(np.log10(sp / bpow), fs)
        _cache[key] = (absz, relz, corr)
    absz, relz, corr = _cache[key]
    fastz = None
    if p.fast_window_ms:
        fkey = (i, p.fast_sigma or p.sigma, p.fast_order or p.order, p.fast_window_ms)
        if fkey not in _cache:
            s = bp(p.fast_order or p.order, *(p.fast_sigma or p.sigma), fs, x)
            n = rs(p.fast_window_ms / 1000 * fs)
            _cache[fkey] = robust_z(np.log10(np.maximum(moving_mean(s * s, n), 1e-12)), fs)
        fastz = _cache[fkey]
    return fs, absz, relz, corr, fastz


@njit(cache=True)
def run(absz, relz, corr, fastz, use_fast, a, r, c, end_r, fz, fc, fr,
        commit_after, half, min_d, max_d, warmup):
    # returns rows (onset, end, detected_at, kept)
    out = []
    state = 0  # 0 quiet, 1 rising, 2 in event
    start = 0
    onset = 0
    det = 0
    n_total = len(absz)
    for n in range(n_total):
        if n < warmup or np.isnan(relz[n]) or (use_fast and np.isnan(fastz[n])):
            continue
        st = absz[n] > a and relz[n] > r and corr[n] > c
        early = use_fast and fastz[n] > fz and corr[n] > fc and relz[n] > fr
        if state == 0:
            if early:
                state = 2
                onset = max(n - half, 0)
                det = n
            elif st:
                state = 1
                start = n
        elif state == 1:
            if early and not st:
                state = 2
                onset = max(start - half, 0)
                det = n
            elif not st:
                state = 0
            elif n - start >= commit_after or early:
                state = 2
                onset = max(start - half, 0)
                det = n
        else:
            if relz[n] <= end_r or n + 1 - onset >= max_d:
                end = max(n + 1 - half, 0)
                out.append((onset, end, det, 1 if end - onset >= min_d else 0))
                state = 0
    if state == 2:
        out.append((onset, n_total, det, 1 if n_total - onset >= min_d else 0))
    return out


def detect(i, p):
    fs, absz, relz, corr, fastz = features(i, p)
    use_fast = fastz is not None
    rows = run(absz, relz, corr, fastz if use_fast else absz, use_fast, p.abs_sd, p.rel_sd,
               p.corr, p.end_rel_sd, p.fast_z, p.fast_corr, p.fast_rel_sd,
               rs(p.commit_after_ms / 1000 * fs), rs(p.window_ms / 2000 * fs),
               max(1, rs(p.min_ms / 1000 * fs)), max(1, rs(p.max_ms / 1000 * fs)), rs(30 * fs))
    return [(o / fs, e / fs, d / fs, k) for o, e, d, k in rows]


def evaluate(p, sets=((1, 2, 3), (4, 5, 6), (1, 2, 3, 4, 5, 6)), verbose=False):
    per = {}
    for i in range(1, 7):
        ev = detect(i, p)
        tr = truth(i)
        kept = [(o, e, d) for o, e, d, k in ev if k and o < 1000]
        commits = [(o, e, d) for o, e, d, k in ev if o < 1000]
        per[i] = (score(tr, kept), score(tr, commits))
        if verbose:
            (t, n, h, lat), (_, nc, hc, _) = per[i]
            print(f"  {i}: truth {t} det {n} hits {h} F1 {2*h/(t+n):.3f} lat {np.median(lat):.0f}"
                  f" | commits {nc} stim-hits {hc}")
    res = []
    for ex in sets:
        t = sum(per[i][0][0] for i in ex); n = sum(per[i][0][1] for i in ex)
        h = sum(per[i][0][2] for i in ex); lat = sum((per[i][0][3] for i in ex), [])
        nc = sum(per[i][1][1] for i in ex); hc = sum(per[i][1][2] for i in ex)
        res.append((2 * h / (t + n), np.median(lat), 2 * hc / (t + nc), nc - n))
    return res


def show(name, p):
    r = evaluate(p)
    cells = "  ".join(f"F1 {f:.3f} lat {l:.0f} stimF1 {sf:.3f} short {s}" for f, l, sf, s in r)
    print(f"{name:40s} {cells}", flush=True)
    return r


if __name__ == "__main__":
    print("columns: tune 1-3 | held out 4-6 | pooled 1-6")
    evaluate(Params(), verbose=True)
    show("preset", Params())


@njit(cache=True)
def run_early(absz, relz, corr, early, a, r, c, end_r, grace, half, min_d, max_d, warmup):
    """A7 state machine (commit_after 0) plus an early commit: `early[n]` while
    quiet commits at n; an A7 start within `grace` samples makes it that event's
    detected_at, otherwise it is an unconfirmed commit (a stim on no spindle).
    Rows: (onset, end, detected_at, kind) with kind 1 kept, 0 dropped short, -1 unconfirmed."""
    out = []
    state = 0
    start = 0
    onset = 0
    det = 0
    pending = -1
    n_total = len(absz)
    for n in range(n_total):
        if n < warmup or np.isnan(relz[n]):
            continue
        st = absz[n] > a and relz[n] > r and corr[n] > c
        if state == 0 and pending < 0 and early[n] and not st:
            pending = n
        if state == 0:
            if st:
                state = 1
                start = n
        elif state == 1:
            if not st:
                state = 0
            else:
                state = 2
                onset = max(start - half, 0)
                det = pending if pending >= 0 else n
                pending = -1
        else:
            if relz[n] <= end_r or n + 1 - onset >= max_d:
                end = max(n + 1 - half, 0)
                out.append((onset, end, det, 1 if end - onset >= min_d else 0))
                state = 0
        if pending >= 0 and state == 0 and n - pending >= grace:
            out.append((max(pending - half, 0), pending + 1, pending, -1))
            pending = -1
    if state == 2:
        out.append((onset, n_total, det, 1 if n_total - onset >= min_d else 0))
    return out


def early_eval(p, early_fn, grace_ms, sets=((1, 2, 3), (4, 5, 6), (1, 2, 3, 4, 5, 6))):
    """early_fn(i, fs, absz, relz, corr) -> bool array. Returns per set
    (F1, median latency, commits, unconfirmed, dropped short, share of commits on a matched spindle)."""
    per = {}
    for i in range(1, 7):
        fs, absz, relz, corr, _ = features(i, p)
        early = early_fn(i, fs, absz, relz, corr)
        rows = run_early(absz, relz, corr, early, p.abs_sd, p.rel_sd, p.corr, p.end_rel_sd,
                         rs(grace_ms / 1000 * fs), rs(p.window_ms / 2000 * fs),
                         max(1, rs(p.min_ms / 1000 * fs)), max(1, rs(p.max_ms / 1000 * fs)), rs(30 * fs))
        rows = [(o / fs, e / fs, d / fs, k) for o, e, d, k in rows if o / fs < 1000]
        tr = truth(i)
        kept = [(o, e, d) for o, e, d, k in rows if k == 1]
        per[i] = (score(tr, kept), len(rows), sum(k == -1 for *_, k in rows), sum(k == 0 for *_, k in rows))
    res = []
    for ex in sets:
        t = sum(per[i][0][0] for i in ex); n = sum(per[i][0][1] for i in ex)
        h = sum(per[i][0][2] for i in ex); lat = sum((per[i][0][3] for i in ex), [])
        c = sum(per[i][1] for i in ex); u = sum(per[i][2] for i in ex); d = sum(per[i][3] for i in ex)
        res.append((2 * h / (t + n), np.median(lat), c, u, d, h / c))
    return res


def show_early(name, p, early_fn, grace_ms):
    r = early_eval(p, early_fn, grace_ms)
    cells = " | ".join(f"F1 {f:.3f} lat {l:.0f} commits {c} unconf {u} short {d} onspindle {s:.2f}"
                       for f, l, c, u, d, s in r)
    print(f"{name:34s} {cells}", flush=True)
