#!/usr/bin/env bash
# Score variants of the rodent-ripple preset on an existing suite (made by
# docs/ripple-suite.sh): each argument is a sed script applied to the preset's
# TOML; prints the pooled row per variant and the theta-recording detections.
# Usage: bash docs/ripple-variants.sh SUITE_DIR 'SED' ['SED' ...]
#   e.g. bash docs/ripple-variants.sh target/ripple-suite '' 's/^cusum_drift = .*/cusum_drift = 12.0/'
set -euo pipefail
suite=$1; shift
cargo build --release --quiet
B=target/release/neuroloop
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for variant in "$@"; do
  sed -e "$variant" src/presets/rodent-ripple.toml > "$work/config.toml"
  for d in "$suite"/r*/; do
    n=$(basename "$d")
    $B replay "$d/sim/recording.edf" --config "$work/config.toml" --out "$work/$n" > /dev/null
    $B eval --truth "$d/sim/truth.tsv" --events "$work/$n/events.tsv" --json "$work/$n.json" > /dev/null
  done
  $B replay ../shared/data/rodent/hc2_theta_1000hz.edf --config "$work/config.toml" --out "$work/theta" > /dev/null
  python3 - "$work" "${variant:-preset}" <<'PY'
import glob, json, statistics, sys
w, label = sys.argv[1], sys.argv[2]
s = [json.load(open(p))["score"] for p in sorted(glob.glob(f"{w}/r*.json"))]
t, n, h = (sum(x["detection"][k] for x in s) for k in ("truth", "detected", "hits"))
p, r = h / n, h / t
st, sw = sum(x["stims"] for x in s), sum(x["stims_within_50ms"] for x in s)
fp = sum(x["false_positives"] for x in s) / sum(x["minutes"] for x in s)
lat = statistics.median(x["latency_ms"]["median"] for x in s if x["latency_ms"])
theta = json.load(open(f"{w}/theta/summary.json"))["counts"].get("ripple", 0)
print(f"{label}: P {p:.3f} R {r:.3f} F1 {2*p*r/(p+r):.3f} latency {lat:.1f} ms within ±50 ms {sw/st:.3f} "
      f"FP/min {fp:.2f} theta detections {theta}")
PY
  rm -rf "${work:?}"/r* "$work/theta"
done
