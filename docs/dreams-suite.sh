#!/usr/bin/env bash
# Sleep evaluation suite on DREAMS excerpts 1-6 (see docs/sleep.md).
# Spindles: sleep-spindle preset, by-event F1 at IoU >= 0.2 against the union of
# both experts over the first 1000 s, pooled and per excerpt, with latency.
# Slow oscillations: sleep-clas preset gated by the DREAMS hypnogram, offline
# phase of every stim, stims per minute of N3 and stims in wake/REM.
# Usage: docs/dreams-suite.sh [OUT_DIR]   (needs python3 for the pooled table)
# SPINDLE_CONFIG=FILE / CLAS_CONFIG=FILE replay an edited config instead of the preset.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
data="$here/../shared/data/dreams"
out=${1:-$here/out/dreams-suite}
bin="$here/target/release/neuroloop"
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
mkdir -p "$out"
spindle=(--preset sleep-spindle); [ -n "${SPINDLE_CONFIG:-}" ] && spindle=(--config "$SPINDLE_CONFIG")
clas=(--preset sleep-clas); [ -n "${CLAS_CONFIG:-}" ] && clas=(--config "$CLAS_CONFIG")
for i in 1 2 3 4 5 6; do rm -rf "$out/spindle$i" "$out/clas$i"; done   # replay refuses to overwrite a session
for i in 1 2 3 4 5 6; do
  "$bin" replay "$data/excerpt$i.edf" "${spindle[@]}" --out "$out/spindle$i" >/dev/null
  "$bin" eval --events "$out/spindle$i/events.tsv" --until-s 1000 \
    --truth "$data/Visual_scoring1_excerpt$i.txt" --truth "$data/Visual_scoring2_excerpt$i.txt" \
    --json "$out/spindle$i.json" >/dev/null
  "$bin" replay "$data/excerpt$i.edf" "${clas[@]}" --hypnogram "$data/Hypnogram_excerpt$i.txt" \
    --out "$out/clas$i" >/dev/null
  "$bin" eval --type so-phase --events "$out/clas$i/events.tsv" --recording "$data/excerpt$i.edf" \
    --hypnogram "$data/Hypnogram_excerpt$i.txt" --json "$out/clas$i.json" >/dev/null
done
python3 "$here/docs/dreams_table.py" "$out"
