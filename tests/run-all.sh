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

# cpal links ALSA: the build needs libasound2-dev and pkg-config. The audio
# xrun test plays into a PulseAudio null sink through ALSA's pulse plugin.
# The trigger-box firmware is built with avr-gcc and run in simavr (tests/trigger_box.rs).
# The live monitor's page is checked in headless Chromium (tests/monitor.rs).
PACKAGES="pkg-config libasound2-dev pulseaudio libasound2-plugins make gcc gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev chromium"
# shellcheck disable=SC2086
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update && apt-get install -y --no-install-recommends $PACKAGES
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update && sudo apt-get install -y --no-install-recommends $PACKAGES
    else
        echo "error: the tests need these packages; run as root: apt-get update && apt-get install -y --no-install-recommends $PACKAGES" >&2
        exit 1
    fi
fi

# The LSL tests (tests/lsl.rs) stream through pylsl, whose wheel ships
# liblsl.so (neuroloop finds it through python3). Pinned: tests/lsl/peer.py
# is written against this version.
PYLSL_VERSION=1.18.6
if ! python3 -c "import pylsl, sys; sys.exit(pylsl.__version__ != '$PYLSL_VERSION')" >/dev/null 2>&1; then
    python3 -m pip install --quiet "pylsl==$PYLSL_VERSION" numpy ||
        python3 -m pip install --quiet --break-system-packages "pylsl==$PYLSL_VERSION" numpy
fi
# Here the LSL tests must run, never skip.
export NEUROLOOP_REQUIRE_LSL=1

rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Release mode: the simulator and real-data tests do minutes of signal processing.
cargo test --release --locked --all-targets
