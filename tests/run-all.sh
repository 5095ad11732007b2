#!/usr/bin/env bash
# The test command of the README and of CI: installs what the build needs on a
# fresh Debian machine with Rust, then runs format, lint and the whole test suite.
# Real data for the accuracy and format tests is read from ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/data ]; then
    echo "error: ../shared/data (the real recordings the tests read) is missing beside this checkout" >&2
    exit 1
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Release mode: the simulator and real-data tests do minutes of signal processing.
cargo test --release --locked --all-targets
