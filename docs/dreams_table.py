"""Pool the per-excerpt JSON of docs/dreams-suite.sh into the docs/sleep.md tables."""
import json, math, statistics, sys

DREAMS = __file__.rsplit("/", 2)[0] + "/../shared/data/dreams"


def truth(i):
    """Union of both experts' spindles with onset in the first 1000 s, as (onset, end)."""
    iv = []
    for e in (1, 2):
        for line in open(f"{DREAMS}/Visual_scoring{e}_excerpt{i}.txt").read().split("\n")[1:]:
            if line.strip():
                o, d = map(float, line.split())
                if o < 1000:
                    iv.append((o, o + d))
    iv.sort()
    merged = []
    for a, b in iv:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def score(tr, dets):
    """eval::score_intervals: greedy one-to-one by IoU >= 0.2. dets: (onset, end, detected_at).
    Returns (truth, detected, hits, latencies in ms)."""
    pairs = []
    for ti, (ta, tb) in enumerate(tr):
        for di, (da, db, _) in enumerate(dets):
            inter = min(tb, db) - max(ta, da)
            if inter > 0 and inter / (max(tb, db) - min(ta, da)) >= 0.2:
                pairs.append((-inter / (max(tb, db) - min(ta, da)), ti, di))
    pairs.sort()
    tt, dt, lat = set(), set(), []
    for _, ti, di in pairs:
        if ti not in tt and di not in dt:
            tt.add(ti); dt.add(di)
            lat.append((dets[di][2] - tr[ti][0]) * 1000)
    return len(tr), len(dets), len(lat), lat


def commit_score(tr, commits):
    """eval::score_commits: a commit time hits when inside a truth interval not hit before,
    earliest first. Returns (hits, latencies in ms)."""
    taken, lat = set(), []
    for t in sorted(commits):
        for k, (a, b) in enumerate(tr):
            if k not in taken and a <= t < b:
                taken.add(k)
                lat.append((t - a) * 1000)
                break
    return len(lat), lat


def spindle_rows(path):
    """events.tsv rows with onset < 1000 s: kept spindles (onset, end, detected_at or None) and
    commit times (every spindle-kind row with a detected_at: each could fire a stim)."""
    lines = open(path).read().strip().split("\n")
    cols = lines[0].split("\t")
    kept, commits = [], []
    for line in lines[1:]:
        r = dict(zip(cols, line.split("\t")))
        onset = float(r["onset"])
        kind = r["trial_type"]
        if onset >= 1000 or not (kind == "spindle" or kind.startswith("spindle_")):
            continue
        at = None if r["detected_at"] == "n/a" else float(r["detected_at"])
        if at is not None:
            commits.append(at)
        if kind == "spindle":
            kept.append((onset, onset + float(r["duration"]), at))
    return kept, commits


def main(out):
    sets = {"tune (1-3)": [1, 2, 3], "held out (4-6)": [4, 5, 6], "all (1-6)": [1, 2, 3, 4, 5, 6]}
    print("spindles: excerpt truth detected hits P R F1 | commits hits P R F1 commit_latency_median_ms")
    sp = {i: json.load(open(f"{out}/spindle{i}.json"))["score"] for i in range(1, 7)}
    rescored = {}
    for i in range(1, 7):
        kept, commits = spindle_rows(f"{out}/spindle{i}/events.tsv")
        tr = truth(i)
        rescored[i] = (score(tr, [(a, b, c if c is not None else a) for a, b, c in kept]), commits,
                       commit_score(tr, commits))
        assert rescored[i][0][2] == sp[i]["detection"]["hits"], "rescoring disagrees with neuroloop eval"
        assert rescored[i][2][0] == sp[i]["closed_loop"]["commits"]["hits"], "commit rescoring disagrees"
        d, c = sp[i]["detection"], sp[i]["closed_loop"]["commits"]
        lat = statistics.median(rescored[i][2][1]) if rescored[i][2][1] else float("nan")
        print(f"  {i} {d['truth']} {d['detected']} {d['hits']} {d['precision']:.3f} {d['recall']:.3f} {d['f1']:.3f}"
              f" | {c['detected']} {c['hits']} {c['precision']:.3f} {c['recall']:.3f} {c['f1']:.3f} {lat:.0f}")
    for name, ex in sets.items():
        t = sum(sp[i]["detection"]["truth"] for i in ex); n = sum(sp[i]["detection"]["detected"] for i in ex)
        h = sum(sp[i]["detection"]["hits"] for i in ex)
        p, r = h / n, h / t
        commits = sum(len(rescored[i][1]) for i in ex); ch = sum(rescored[i][2][0] for i in ex)
        cp, cr = ch / commits, ch / t
        lat = statistics.median(sum((rescored[i][2][1] for i in ex), []))
        print(f"  pooled {name}: event P {p:.3f} R {r:.3f} F1 {2*p*r/(p+r):.3f} | commits {commits} "
              f"P {cp:.3f} R {cr:.3f} F1 {2*cp*cr/(cp+cr):.3f} commit latency median {lat:.0f} ms")
    print("slow oscillations: excerpt stims mean_err_deg R up_share stims/min_N3 wake rem")
    so = {i: json.load(open(f"{out}/clas{i}.json")) for i in range(1, 7)}
    for i, s in so.items():
        c, g = s["score"], s["stages"]
        if c is None:
            print(f"  {i} 0 stims"); continue
        print(f"  {i} {c['stims']} {c['mean_error_deg']:.1f} {c['r']:.2f} {c['share_in_half_cycle']:.2f} "
              f"{g['stims_per_min_n3']:.1f} {g['stims_in_wake']} {g['stims_in_rem']}")
    for name, ex in sets.items():
        sx = sy = n = inside = 0.0
        for i in ex:
            c = so[i]["score"]
            if c is None: continue
            k = c["stims"]; a = math.radians(c["mean_error_deg"])
            sx += k * c["r"] * math.cos(a); sy += k * c["r"] * math.sin(a); n += k
            inside += k * c["share_in_half_cycle"]
        n3 = sum(so[i]["stages"]["n3_minutes"] for i in ex); s3 = sum(so[i]["stages"]["stims_in_n3"] for i in ex)
        print(f"  pooled {name}: stims {n:.0f} mean_err {math.degrees(math.atan2(sy, sx)):.1f} R {math.hypot(sx, sy)/n:.2f} "
              f"up {inside/n:.2f} stims/min_N3 {s3/n3:.1f}")


if __name__ == "__main__":
    main(sys.argv[1])
