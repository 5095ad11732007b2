#!/usr/bin/env python3
"""Golden vectors for neuroloop's Butterworth design and SOS filtering (tests/dsp_golden.rs).

Pinned environment: python 3.11, scipy 1.14.1, numpy 2.1.3.
Run from the repository root:

    python3 tests/data/golden/gen_filters.py

It rewrites tests/data/golden/input.json and tests/data/golden/filters_<rate>hz.json:
for each rate and band, `scipy.signal.butter(N, Wn, btype, output='sos', fs=rate)` for
N = 1..8, and for one order per band the `sosfilt` output of the fixed input.
"""
import json
import pathlib

import numpy as np
import scipy
from scipy import signal

OUT_DIR = pathlib.Path(__file__).resolve().parent
RATES_HZ = [50, 100, 250, 1000, 1250, 30000]
N_SAMPLES = 2000


def fixed_input():
    """Deterministic test input: Gaussian noise, an impulse at 0 and a step at the middle."""
    x = np.random.default_rng(20240601).standard_normal(N_SAMPLES)
    x[0] += 5.0
    x[N_SAMPLES // 2:] += 1.0
    return x


def bands_for(rate_hz):
    nyquist_hz = rate_hz / 2
    bands = [
        {"kind": "bandpass", "low_hz": 0.5, "high_hz": 2.0},
        {"kind": "lowpass", "cutoff_hz": 4.0},
        {"kind": "highpass", "cutoff_hz": 0.3},
        {"kind": "lowpass", "cutoff_hz": 0.45 * rate_hz},  # close to Nyquist: strong prewarping
    ]
    if 16.0 < nyquist_hz:
        bands.append({"kind": "bandpass", "low_hz": 11.0, "high_hz": 16.0})
    if rate_hz >= 1000:
        bands.append({"kind": "bandpass", "low_hz": 150.0, "high_hz": 250.0})
        bands.append({"kind": "highpass", "cutoff_hz": 300.0})
    return bands


def butter_sos(order, band, rate_hz):
    if band["kind"] == "bandpass":
        wn, btype = [band["low_hz"], band["high_hz"]], "bandpass"
    else:
        wn, btype = band["cutoff_hz"], band["kind"]
    return signal.butter(order, wn, btype, output="sos", fs=rate_hz)


def filtered_order(rate_index, band_index, band):
    """One order per band gets a stored output; spread over 1..8, and 4 for the benchmark band."""
    if band["kind"] == "bandpass" and band["low_hz"] == 150.0:
        return 4
    return (rate_index * 3 + band_index) % 8 + 1


def main():
    x = fixed_input()
    (OUT_DIR / "input.json").write_text(json.dumps({"input": x.tolist()}) + "\n")
    for rate_index, rate_hz in enumerate(RATES_HZ):
        designs = []
        for band_index, band in enumerate(bands_for(rate_hz)):
            with_output = filtered_order(rate_index, band_index, band)
            for order in range(1, 9):
                sos = butter_sos(order, band, rate_hz)
                design = {"order": order, "band": band, "sos": sos.tolist()}
                if order == with_output:
                    # 10 significant digits (rounding 5e-11 relative): far finer than the 1e-6 comparison needs.
                    y = signal.sosfilt(sos, x)
                    design["output"] = [float(f"{v:.10g}") for v in y]
                designs.append(design)
        doc = {
            "generator": "tests/data/golden/gen_filters.py",
            "scipy": scipy.__version__,
            "numpy": np.__version__,
            "rate_hz": rate_hz,
            "designs": designs,
        }
        (OUT_DIR / f"filters_{rate_hz}hz.json").write_text(json.dumps(doc) + "\n")


if __name__ == "__main__":
    main()
