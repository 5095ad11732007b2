"""Round 4 of the spindle commit latency (docs/sleep.md): the sweeps behind the preset.

Uses the causal model in spindle_model.py (it reproduces `bash docs/dreams-suite.sh`).
Columns per set (tuning 1-3 | held out 4-6 | pooled 1-6): median latency (ms), commits,
matched spindles per commit. Selection rule, on 1-3 only: at most as many commits as
round 3 on 1-3 (755), then the lowest median latency, then the fewest commits.

  python3 docs/spindle_round4.py grid          # fast-envelope early commit (~3 min)
  python3 docs/spindle_round4.py logistic      # linear discriminant for the early commit
  python3 docs/spindle_round4.py excerpts      # why excerpts 4 and 5 are late
"""
import itertools
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

from dreams_table import score, truth
from spindle_model import Params, bp, early_eval, features, load, moving_mean, rs, run_early

A7 = Params()
ROUND3 = dict(win=100.0, order=1, z=1.5, rel=0.0, corr=0.5, confirm_ms=300.0)
ROUND3_TUNING_COMMITS = 755


def fast_rule(win, order, z, rel, corr):
    fast = Params(fast_window_ms=win, fast_order=order)
    return lambda i, fs, absz, relz, c: (features(i, fast)[4] > z) & (relz > rel) & (c > corr)


def cells(r):
    return " | ".join(f"{l:.0f} {c} {s:.3f}" for _, l, c, _, _, s in r)


def grid():
    rows = []
    for (win, order), z, corr, confirm_ms in itertools.product(
            ((100.0, 1), (150.0, 1), (100.0, 2), (120.0, 2), (150.0, 2), (200.0, 2)),
            (1.4, 1.5, 1.75, 2.0), (0.4, 0.45, 0.5, 0.6), (300.0, 500.0, 700.0)):
        r = early_eval(A7, fast_rule(win, order, z, 0.0, corr), confirm_ms)
        rows.append(((win, order, z, corr, confirm_ms), r))
    r3 = early_eval(A7, fast_rule(ROUND3["win"], ROUND3["order"], ROUND3["z"], 0.0, ROUND3["corr"]), 300.0)
    print("round 3 (100 ms, order 1, z 1.5, corr 0.5, 300 ms):", cells(r3))
    ok = [row for row in rows if row[1][0][2] <= ROUND3_TUNING_COMMITS]
    ok.sort(key=lambda row: (row[1][0][1], row[1][0][2]))
    print("window order z corr confirm | tuning | held out | pooled  (best 15 by the rule)")
    for p, r in ok[:15]:
        print(" ".join(f"{v:g}" for v in p), "|", cells(r))


def feature_table(i):
    """Causal features per sample: fast z (round-3 envelope), rel z, abs z, 300-ms and 100-ms correlation."""
    fs, absz, relz, corr, _ = features(i, A7)
    fz = features(i, Params(fast_window_ms=100.0, fast_order=1))[4]
    x, _ = load(i)
    s = bp(2, 11, 16, fs, x)
    b = bp(2, 4.5, min(30, 0.9 * fs / 2), fs, x)
    n = rs(0.1 * fs)
    c100 = moving_mean(s * b, n) / np.sqrt(np.maximum(moving_mean(s * s, n), 1e-12) *
                                          np.maximum(moving_mean(b * b, n), 1e-12))
    return fs, np.column_stack([fz, relz, absz, corr, c100])


def logistic():
    """Positive: the first 350 ms of an expert spindle; negative: outside spindles; 1-3 only."""
    X, Y = [], []
    for i in (1, 2, 3):
        fs, F = feature_table(i)
        y = np.zeros(len(F), int)
        for a, b in truth(i):
            y[int(a * fs):int(b * fs) + 1] = -1
            y[int(a * fs):int(a * fs) + int(0.35 * fs)] = 1
        ok = (y >= 0) & np.all(np.isfinite(F), axis=1)
        ok[:int(30 * fs)] = False
        ok[int(1000 * fs):] = False
        idx = np.flatnonzero(ok)[::max(1, int(fs / 50))]
        X.append(F[idx]); Y.append(y[idx])
    m = LogisticRegression(class_weight="balanced", max_iter=1000).fit(np.vstack(X), np.concatenate(Y))
    w, b0 = m.coef_[0], m.intercept_[0]
    print("weights (fast z, rel z, abs z, corr 300 ms, corr 100 ms):", np.round(w, 3), "intercept", round(b0, 3))
    for thr in (1.25, 1.5, 1.75, 2.0, 2.5):
        rule = lambda i, fs, a, r, c: np.nan_to_num(feature_table(i)[1] @ w + b0, nan=-1e9) > thr
        for confirm_ms in (300.0, 700.0):
            print(f"score > {thr} confirm {confirm_ms:g}:", cells(early_eval(A7, rule, confirm_ms)))


def excerpts():
    """Per excerpt, round-3 rule: median latency of matched spindles without/with the early commit,
    share committed early, median peak fast z in the first 500 ms of expert spindles, commits per minute."""
    fast = Params(fast_window_ms=100.0, fast_order=1)
    for i in range(1, 7):
        fs, absz, relz, corr, _ = features(i, A7)
        fz = features(i, fast)[4]
        tr = truth(i)
        early = (fz > 1.5) & (relz > 0) & (corr > 0.5)
        args = (A7.abs_sd, A7.rel_sd, A7.corr, A7.end_rel_sd, rs(0.3 * fs), rs(0.15 * fs),
                rs(0.5 * fs), rs(2 * fs), rs(30 * fs))
        lat = [np.array(score(tr, [(o / fs, e / fs, d / fs) for o, e, d, k in run_early(absz, relz, corr, em, *args)
                                   if k == 1 and o / fs < 1000])[3]) for em in (np.zeros_like(early), early)]
        peak = np.median([np.nanmax(np.append(fz[int(a * fs):int((a + 0.5) * fs)], -9)) for a, _ in tr])
        crossings = np.sum((early[1:] & ~early[:-1])[int(30 * fs):int(1000 * fs)]) / (970 / 60)
        print(f"{i}: matched {len(lat[1])} latency A7 start {np.median(lat[0]):.0f} early {np.median(lat[1]):.0f} "
              f"ms, committed early {np.mean(lat[1] < lat[0]):.2f}, peak fast z {peak:.2f}, "
              f"early crossings {crossings:.1f}/min, expert spindles {len(tr) / (970 / 60):.1f}/min")


if __name__ == "__main__":
    {"grid": grid, "logistic": logistic, "excerpts": excerpts}[sys.argv[1]]()
