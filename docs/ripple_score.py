"""Pool the scores of a ripple suite directory (docs/ripple-suite.sh, docs/ripple-variants.sh).

Reads DIR/r<rate>-s<seed>-snr<scale>/score.json (`neuroloop eval --json`) and DIR/theta/summary.json.
Hit timing against the ripple peak (before peak, within ±15/±50 ms) is pooled over hits.
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
    peak = lambda k: sum(s["decision_vs_peak"][k] for s in scores) / max(h, 1)
    run_medians = lambda key: statistics.median(s[key]["median"] for s in scores if s[key])
    return dict(truth=t, P=p, R=r, F1=2 * p * r / max(p + r, 1e-12), within=sw / max(st, 1),
                latency=run_medians("latency_ms"),
                peak_offset=statistics.median(s["decision_vs_peak"]["offset_ms"]["median"]
                                              for s in scores if s["decision_vs_peak"]["offset_ms"]),
                before=peak("decided_before_peak"), within15=peak("within_15ms"), within50=peak("within_50ms"),
                fp=sum(s["false_positives"] for s in scores) / sum(s["minutes"] for s in scores))


def main(w, label=None):
    rows = list(runs(w))
    theta = json.load(open(f"{w}/theta/summary.json"))
    if label is not None:
        q = pooled([s for _, s in rows])
        print(f"{label}: P {q['P']:.3f} R {q['R']:.3f} F1 {q['F1']:.3f} latency {q['latency']:.1f} ms "
              f"before peak {q['before']:.3f} peak offset {q['peak_offset']:.1f} ms "
              f"stims within ±50 ms {q['within']:.3f} FP/min {q['fp']:.2f} theta detections {theta['counts'].get('ripple', 0)}")
        return
    print("| rate Hz | seed | SNR scale | truth | P | R | F1 | latency median / p90 ms | hits before peak "
          "| decided − peak, median ms | hits within ±15 / ±50 ms of peak | stims within ±50 ms | FP/min |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    nan = {"median": float("nan"), "p90": float("nan")}
    for (rate, seed, snr), s in rows:
        d, l, p = s["detection"], s["latency_ms"] or nan, s["decision_vs_peak"]
        print(f"| {rate[1:]} | {seed[1:]} | {snr[3:]} | {d['truth']} | {d['precision']:.3f} | {d['recall']:.3f} "
              f"| {d['f1']:.3f} | {l['median']:.1f} / {l['p90']:.1f} | {p['share_decided_before_peak']:.3f} "
              f"| {(p['offset_ms'] or nan)['median']:.1f} | {p['share_within_15ms']:.3f} / {p['share_within_50ms']:.3f} "
              f"| {s['share_stims_within_50ms']:.3f} | {s['false_positives_per_min']:.2f} |")
    for name, keep in (("1250 Hz", "r1250"), ("30000 Hz", "r30000"), ("all", None)):
        q = pooled([s for (rate, *_), s in rows if keep in (None, rate)])
        print(f"| pooled {name} | | | {q['truth']} | {q['P']:.3f} | {q['R']:.3f} | {q['F1']:.3f} "
              f"| {q['latency']:.1f} (median of run medians) | {q['before']:.3f} | {q['peak_offset']:.1f} (median of run medians) "
              f"| {q['within15']:.3f} / {q['within50']:.3f} | {q['within']:.3f} | {q['fp']:.2f} |")
    print(f"\ntheta recording (hc2, 150 s): {theta['counts'].get('ripple', 0)} detections, "
          f"{theta['per_minute'].get('ripple', 0.0):.2f} FP/min")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--pooled" else None)
