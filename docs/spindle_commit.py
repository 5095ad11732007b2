"""Closed-loop spindle commits (issue 10): the commit rule of `sleep-spindle`, chosen on DREAMS 1-3.

Runs on the causal model of docs/spindle_model.py. A commit hits when its detected_at falls
inside an expert spindle (union, first 1000 s) not hit before, one-to-one, earliest first, as
`neuroloop eval --type spindle` (score.closed_loop). The rule family: a fast sigma envelope
(its own band-pass order and window, z against a 60-s median/MAD baseline) above z, the A7
300-ms correlation above c and relative-power z above r, all held for hold ms; after a commit
the next needs the rule false for rearm ms.

Selection rule (fixed before any held-out figure of this grid was looked at): on 1-3 only, the
highest commit F1 among rules whose median commit latency is <= 500 ms (half of a median DREAMS
spindle: the stimulus lands inside the spindle), ties to the lower latency. Also printed: the
best tuning F1 under other latency limits (the frontier) and each pick's held-out figures.

  python3 docs/spindle_commit.py            # the grid (~1 min)
  python3 docs/spindle_commit.py logistic   # a learned discriminant over 13 causal features
"""
import itertools
import sys

import numpy as np
from numba import njit

from dreams_table import truth
from spindle_model import Params, bp, features, load, moving_mean, robust_z, rs

A7 = Params()
TUNING, HELD_OUT, ALL = (1, 2, 3), (4, 5, 6), (1, 2, 3, 4, 5, 6)


def commit_score(tr, commits):
    """(hits, latencies ms) of commit times (s) against truth intervals."""
    taken = [False] * len(tr)
    lat = []
    for t in sorted(commits):
        for k, (a, b) in enumerate(tr):
            if not taken[k] and a <= t < b:
                taken[k] = True
                lat.append((t - a) * 1000)
                break
    return len(lat), lat


def pooled(per, ex):
    """per[i] = (truth, commits, hits, latencies)."""
    t = sum(per[i][0] for i in ex); c = sum(per[i][1] for i in ex); h = sum(per[i][2] for i in ex)
    lat = sum((per[i][3] for i in ex), [])
    p = h / c if c else 0; r = h / t
    f1 = 2 * p * r / (p + r) if p + r else 0
    return p, r, f1, (np.median(lat) if lat else np.nan), c


_fcache = {}


def table(i):
    """Causal features per sample of excerpt i."""
    if i in _fcache:
        return _fcache[i]
    fs, absz, relz, corr, fastz = features(i, Params(fast_window_ms=120.0, fast_order=2))
    x, _ = load(i)
    s = bp(2, 11, 16, fs, x)
    b = bp(2, 4.5, min(30, 0.9 * fs / 2), fs, x)
    n = rs(0.1 * fs)
    c100 = moving_mean(s * b, n) / np.sqrt(np.maximum(moving_mean(s * s, n), 1e-12) *
                                          np.maximum(moving_mean(b * b, n), 1e-12))
    _fcache[i] = (fs, dict(fast=fastz, rel=relz, abs=absz, corr=corr, c100=c100))
    return _fcache[i]


@njit(cache=True)
def commits_of(rule, hold, rearm, warmup):
    """Commit when `rule` has held `hold` samples; re-arm after it was false `rearm` samples."""
    out = []
    run = 0
    off = rearm
    armed = True
    for n in range(len(rule)):
        if rule[n]:
            run += 1
            off = 0
        else:
            run = 0
            off += 1
            if off >= rearm:
                armed = True
        if armed and run >= max(hold, 1) and n >= warmup:
            out.append(n)
            armed = False
    return out


def evaluate(rule_fn, hold_ms, rearm_ms, sets=(TUNING, HELD_OUT, ALL)):
    per = {}
    for i in ALL:
        fs, f = table(i)
        rule = np.nan_to_num(rule_fn(f), nan=0).astype(np.bool_)
        cs = [n / fs for n in commits_of(rule, rs(hold_ms / 1000 * fs), rs(rearm_ms / 1000 * fs), rs(30 * fs))]
        cs = [t for t in cs if t < 1000]
        tr = truth(i)
        h, lat = commit_score(tr, cs)
        per[i] = (len(tr), len(cs), h, lat)
    return [pooled(per, ex) for ex in sets], per


def cells(res):
    return " | ".join(f"P {p:.2f} R {r:.2f} F1 {f:.3f} {l:.0f} ms n {c}" for p, r, f, l, c in res)


def envelope(i, order, window_ms):
    """z of the log power of an 11-16 Hz band-pass of `order` over `window_ms`."""
    fs, f = table(i)
    key = f"env{order}_{window_ms}"
    if key not in f:
        x, _ = load(i)
        s = bp(order, 11, 16, fs, x)
        f[key] = robust_z(np.log10(np.maximum(moving_mean(s * s, rs(window_ms / 1000 * fs)), 1e-12)), fs)
    return f[key]


ENVELOPES = ((2, 120.0), (2, 200.0), (1, 100.0), (1, 80.0))
GRID = list(itertools.product(ENVELOPES, (1.0, 1.5, 2.0), (0.5, 0.6, 0.7), (0.0, 0.6),
                              (0.0, 40.0, 80.0, 120.0, 160.0), (300.0, 1000.0)))


def rule(env, z, corr, rel):
    return lambda f: (f[f"env{env[0]}_{env[1]}"] > z) & (f["corr"] > corr) & (f["rel"] > rel)


def main():
    for i in ALL:
        for order, window_ms in ENVELOPES:
            envelope(i, order, window_ms)
    tuned = []
    for env, z, corr, rel, hold, rearm in GRID:
        r = evaluate(rule(env, z, corr, rel), hold, rearm, sets=(TUNING,))[0][0]
        tuned.append((r, (env, z, corr, rel, hold, rearm)))
    print("columns: tuning 1-3 | held out 4-6 | pooled 1-6 (P R F1 median latency commits)")
    for limit in (350, 400, 450, 500, 600):
        ok = [t for t in tuned if t[0][3] <= limit]
        best = max(ok, key=lambda t: (t[0][2], -t[0][3]))
        (env, z, corr, rel, hold, rearm) = best[1]
        res, per = evaluate(rule(env, z, corr, rel), hold, rearm)
        mark = "  <- selected" if limit == 500 else ""
        print(f"best tuning F1 at <= {limit} ms: order {env[0]} window {env[1]:g} z {z} corr {corr} rel {rel} "
              f"hold {hold:g} rearm {rearm:g}{mark}\n    {cells(res)}")
        if limit == 500:
            for i in ALL:
                t, c, h, lat = per[i]
                print(f"    excerpt {i}: commits {c} hits {h} P {h / max(c, 1):.2f} R {h / t:.2f} "
                      f"latency {np.median(lat) if lat else float('nan'):.0f} ms")


LOGISTIC_KEYS = ["fast", "fast1", "rel", "abs", "corr", "c100", "rel120", "fast_l50", "fast_l100",
                 "c100_l50", "c100_l100", "rel120_l50", "rel120_l100"]


def extended(i):
    """table(i) plus an order-1 100-ms envelope, 120-ms relative power and 50/100-ms lags."""
    fs, f = table(i)
    if "rel120" not in f:
        x, _ = load(i)
        s = bp(2, 11, 16, fs, x)
        b = bp(2, 4.5, min(30, 0.9 * fs / 2), fs, x)
        n = rs(0.12 * fs)
        f["rel120"] = robust_z(np.log10(np.maximum(moving_mean(s * s, n), 1e-12) /
                                        np.maximum(moving_mean(b * b, n), 1e-12)), fs)
        f["fast1"] = envelope(i, 1, 100.0)
        for k in ("fast", "c100", "rel120"):
            for lag in (50, 100):
                lag_n = rs(lag / 1000 * fs)
                f[f"{k}_l{lag}"] = np.concatenate((np.full(lag_n, np.nan), f[k][:-lag_n]))
    return fs, f


def logistic():
    """Class-balanced logistic regression (Newton steps, L2 1e-3) on 1-3: the first 100-400 ms of
    expert spindles against samples outside them (50 per second); then commit when the score has held
    above a threshold (grid of threshold, hold, re-arm), tuning figures only."""
    X, Y = [], []
    for i in TUNING:
        fs, f = extended(i)
        F = np.column_stack([f[k] for k in LOGISTIC_KEYS])
        y = np.zeros(len(F), int)
        for a, b in truth(i):
            y[int(a * fs):int(b * fs) + 1] = -1
            y[int(a * fs) + int(0.1 * fs):int(a * fs) + int(0.4 * fs)] = 1
        ok = (y >= 0) & np.all(np.isfinite(F), axis=1)
        ok[:int(30 * fs)] = False
        ok[int(1000 * fs):] = False
        idx = np.flatnonzero(ok)[::max(1, int(fs / 50))]
        X.append(F[idx]); Y.append(y[idx])
    X, y = np.vstack(X), np.concatenate(Y)
    mu, sd = X.mean(0), X.std(0)
    Z = np.column_stack([(X - mu) / sd, np.ones(len(X))])
    weight = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    w = np.zeros(Z.shape[1])
    for _ in range(30):
        p = 1 / (1 + np.exp(-Z @ w))
        H = (Z * (weight * p * (1 - p))[:, None]).T @ Z + 1e-3 * np.eye(len(w))
        w -= np.linalg.solve(H, Z.T @ (weight * (p - y)) + 1e-3 * w)
    print("weights (standardised):", dict(zip(LOGISTIC_KEYS + ["intercept"], np.round(w, 2))))

    def score(f):
        F = np.column_stack([f[k] for k in LOGISTIC_KEYS])
        return np.nan_to_num(((F - mu) / sd) @ w[:-1] + w[-1], nan=-99)

    for i in ALL:
        extended(i)
    rows = []
    for thr, hold, rearm in itertools.product((0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0), (0.0, 30.0, 60.0, 100.0),
                                              (300.0, 1000.0)):
        r = evaluate(lambda f: score(f) > thr, hold, rearm, sets=(TUNING,))[0][0]
        rows.append((r, (thr, hold, rearm)))
    for limit in (350, 400, 450, 500, 600):
        ok = [t for t in rows if t[0][3] <= limit]
        if ok:
            (p, r, f1, lat, c), params = max(ok, key=lambda t: (t[0][2], -t[0][3]))
            print(f"best tuning F1 at <= {limit} ms: threshold/hold/rearm {params}: "
                  f"P {p:.2f} R {r:.2f} F1 {f1:.3f} {lat:.0f} ms n {c}")


if __name__ == "__main__":
    logistic() if sys.argv[1:] == ["logistic"] else main()
