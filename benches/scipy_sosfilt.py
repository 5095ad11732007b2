#!/usr/bin/env python3
"""scipy reference for benches/filters.rs: sosfilt throughput on the same filter and shapes.

Pinned environment: python 3.11, scipy 1.14.1, numpy 2.1.3.
Run from the repository root:  python3 benches/scipy_sosfilt.py
Prints channel-samples per second (best of several repeats) for 1 x N and 64 x N (axis=-1).
"""
import timeit

import numpy as np
from scipy import signal

RATE_HZ = 30_000
FRAMES = 30_000  # 1 s per call, as in benches/filters.rs
SOS = signal.butter(4, [150, 250], "bandpass", output="sos", fs=RATE_HZ)

for n_channels in (1, 64):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (n_channels, FRAMES))
    calls = max(1, 200 // n_channels)
    best_s = min(timeit.repeat(lambda: signal.sosfilt(SOS, x, axis=-1), number=calls, repeat=7)) / calls
    print(f"scipy sosfilt {n_channels:>2} ch: {n_channels * FRAMES / best_s / 1e6:8.1f} M ch-samples/s "
          f"({best_s * 1e3:.3f} ms per {FRAMES} frames)")
