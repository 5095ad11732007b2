"""Pool the scores of a ripple suite directory (docs/ripple-suite.sh, docs/ripple-variants.sh).

Reads DIR/r<rate>-s<seed>-snr<scale>/score.json (`neuroloop eval --json`) and DIR/theta/summary.json.
    python3 docs/ripple_score.py DIR            # one row per run, pooled rows, theta FP/min
    python3 docs/ripple_score.py DIR --pooled LABEL   # one pooled line
"""
import glob, json, os, statistics, sys


def runs(w):
    key = lambda p: (int(p.split("/")[-2].split("-")[0][1:]), p)
    for path in sorted(glob.glob(f"{w}/r*/score.json"), key=key):
        yield os.path.basename(os.path.dirname(path)).split("-"), json.load(open(path))["score"]


def pooled(scores):
    t, n, h = (sum(s["detection"][k] for s in scores) for k in ("truth", "detected", "hits"))
    p, r = h / max(n, 1), h / t
    st, sw = sum(s["stims"] for s in scores), sum(s["stims_within_50ms"] for s in scores)
    return dict(truth=t, P=p, R=r, F1=2 * p * r / max(p + r, 1e-12), within=sw / max(st, 1),
                latency=statistics.median(s["latency_ms"]["median"] for s in scores if s["latency_ms"]),
                fp=sum(s["false_positives"] for s in scores) / sum(s["minutes"] for s in scores))


def main(w, label=None):
    rows = list(runs(w))
    theta = json.load(open(f"{w}/theta/summary.json"))
    if label is not None:
        q = pooled([s for _, s in rows])
        print(f"{label}: P {q['P']:.3f} R {q['R']:.3f} F1 {q['F1']:.3f} latency {q['latency']:.1f} ms "
              f"within ±50 ms {q['within']:.3f} FP/min {q['fp']:.2f} theta detections {theta['counts'].get('ripple', 0)}")
        return
    print("| rate Hz | seed | SNR scale | truth | P | R | F1 | latency median / p90 ms | stims within ±50 ms | FP/min |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (rate, seed, snr), s in rows:
        d, l = s["detection"], s["latency_ms"] or {"median": float("nan"), "p90": float("nan")}
        print(f"| {rate[1:]} | {seed[1:]} | {snr[3:]} | {d['truth']} | {d['precision']:.3f} | {d['recall']:.3f} "
              f"| {d['f1']:.3f} | {l['median']:.1f} / {l['p90']:.1f} | {s['share_stims_within_50ms']:.3f} "
              f"| {s['false_positives_per_min']:.2f} |")
    for name, keep in (("1250 Hz", "r1250"), ("30000 Hz", "r30000"), ("all", None)):
        q = pooled([s for (rate, *_), s in rows if keep in (None, rate)])
        print(f"| pooled {name} | | | {q['truth']} | {q['P']:.3f} | {q['R']:.3f} | {q['F1']:.3f} "
              f"| {q['latency']:.1f} (median of run medians) | {q['within']:.3f} | {q['fp']:.2f} |")
    print(f"\ntheta recording (hc2, 150 s): {theta['counts'].get('ripple', 0)} detections, "
          f"{theta['per_minute'].get('ripple', 0.0):.2f} FP/min")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--pooled" else None)
