"""Pool the per-excerpt JSON of scripts/dreams-suite.sh into the docs/sleep.md tables."""
import json, math, sys
out = sys.argv[1]
sets = {"tune (1-3)": [1, 2, 3], "held out (4-6)": [4, 5, 6], "all (1-6)": [1, 2, 3, 4, 5, 6]}
print("spindles: excerpt truth detected hits P R F1 latency_median_ms")
sp = {i: json.load(open(f"{out}/spindle{i}.json"))["score"] for i in range(1, 7)}
for i, s in sp.items():
    d = s["detection"]; lat = s["latency_ms"]["median"] if s["latency_ms"] else float("nan")
    print(f"  {i} {d['truth']} {d['detected']} {d['hits']} {d['precision']:.3f} {d['recall']:.3f} {d['f1']:.3f} {lat:.0f}")
for name, ex in sets.items():
    t = sum(sp[i]["detection"]["truth"] for i in ex); n = sum(sp[i]["detection"]["detected"] for i in ex)
    h = sum(sp[i]["detection"]["hits"] for i in ex)
    p, r = h / n, h / t
    print(f"  pooled {name}: P {p:.3f} R {r:.3f} F1 {2*p*r/(p+r):.3f}")
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
