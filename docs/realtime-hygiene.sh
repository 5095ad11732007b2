#!/usr/bin/env bash
# Block processing time of a live session (the built-in simulator, rodent-ripple
# preset, 64 channels at 30 kHz in 30-frame blocks) with each `[realtime]`
# setting alone and all together; prints p50/p99/max per block from
# summary.json and what the system granted. Usage: bash docs/realtime-hygiene.sh [SECONDS] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
out=${2:-target/realtime-hygiene}
cargo build --release --locked --quiet
mkdir -p "$out"
base=$(sed -e 's/^block_size = 64/block_size = 30/' -e 's/^rate_hz = 1250.0/rate_hz = 30000.0/' \
    -e 's/^event_snr = 1.0/event_snr = 1.0\nchannels = 64/' src/presets/rodent-ripple.toml)
run() {
    local name=$1 realtime=$2
    printf '%s\n\n[realtime]\n%s\n' "$base" "$realtime" > "$out/$name.toml"
    rm -rf "$out/$name"
    ./target/release/neuroloop -q run --config "$out/$name.toml" --duration-s "$seconds" --out "$out/$name" >/dev/null
    python3 - "$out/$name/summary.json" "$name" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
b = s["latency"]["block_processing"]
r = s["realtime"]
print(f"{sys.argv[2]:<16} blocks {b['count']:>6}  p50 {b['p50_us']:7.1f}  p99 {b['p99_us']:7.1f}  max {b['max_us']:8.1f} us"
      f"  | priority {r['priority']} cpu {r['cpu']} locked {r['memory_locked']} ftz {r['denormals_flushed']}"
      + (f"  refused: {r['refused']}" if r['refused'] else ""))
PY
}
off='priority = 0
flush_denormals = false'
run none "$off"
run flush_denormals 'priority = 0
flush_denormals = true'
run priority_10 'priority = 10
flush_denormals = false'
run cpu_1 'priority = 0
cpu = 1
flush_denormals = false'
run lock_memory 'priority = 0
lock_memory = true
flush_denormals = false'
run all 'priority = 10
cpu = 1
lock_memory = true
flush_denormals = true'
