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
    $B replay "$d/sim/recording.edf" --config "$work/config.toml" --out "$work/$n/session" > /dev/null
    $B eval --truth "$d/sim/truth.tsv" --events "$work/$n/session/events.tsv" --json "$work/$n/score.json" > /dev/null
  done
  $B replay ../shared/data/rodent/hc2_theta_1000hz.edf --config "$work/config.toml" --out "$work/theta" > /dev/null
  python3 docs/ripple_score.py "$work" --pooled "${variant:-preset}"
  rm -rf "${work:?}"/r* "$work/theta"
done
