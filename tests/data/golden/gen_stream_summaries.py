#!/usr/bin/env python3
"""Golden summaries of the real XDF and OpenBCI GUI text files for tests/new_formats.rs.

Reference readers (pinned): Python 3.11, numpy 2.1.3, pyxdf 1.17.0.
XDF: `pyxdf.load_xdf` (synchronize_clocks=True, dejitter_timestamps=False) gives every stream's
values; a string stream's markers are summarised with their onsets on the clock of
the first numeric stream with a positive nominal rate (seconds from its first sample).
OpenBCI GUI text: `numpy.loadtxt` of the comma-separated lines (the `%` header and
the line of column names skipped) gives the "EXG Channel" and "Accel Channel" columns.

Run from the repository root in a virtual environment holding those versions:
    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install pyxdf==1.17.0 numpy==2.1.3
    /tmp/refenv/bin/python tests/data/golden/gen_stream_summaries.py
Writes tests/data/golden/format_summaries/<file name>.json (one small JSON per file).
"""
import json
import pathlib

import numpy as np
import pyxdf

REPO = pathlib.Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data"
OUT = pathlib.Path(__file__).resolve().parent / "format_summaries"
EDGE_VALUES = 8
MAX_LISTED_MARKERS = 20


def summarise_values(label, unit, rate_hz, x):
    x = np.asarray(x, dtype=np.float64)
    empty = x.size == 0
    return {
        "label": label,
        "unit": unit,
        "rate_hz": float(rate_hz),
        "sample_count": int(x.size),
        "first": x[:EDGE_VALUES].tolist(),
        "last": x[-EDGE_VALUES:].tolist(),
        "min": None if empty else float(x.min()),
        "max": None if empty else float(x.max()),
        "mean": None if empty else float(x.mean()),
        "std": None if empty else float(x.std()),
    }


def channel_field(info, index, field):
    try:
        value = info["desc"][0]["channels"][0]["channel"][index][field][0]
    except (KeyError, IndexError, TypeError):
        return None
    return (value or "").strip() or None


def summarise_xdf(path):
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=True, dejitter_timestamps=False)
    summaries = []
    reference_origin = None
    for stream in streams:
        info = stream["info"]
        rate = float(info["nominal_srate"][0])
        fmt = info["channel_format"][0]
        if fmt != "string" and rate > 0 and len(stream["time_stamps"]) and reference_origin is None:
            reference_origin = float(stream["time_stamps"][0])
    markers = []
    for stream in streams:
        info = stream["info"]
        name = info["name"][0]
        channels = int(info["channel_count"][0])
        rate = float(info["nominal_srate"][0])
        fmt = info["channel_format"][0]
        summary = {"name": name, "channel_format": fmt, "nominal_srate": rate,
                   "sample_count": int(len(stream["time_stamps"]))}
        if fmt == "string":
            for t, values in zip(stream["time_stamps"], stream["time_series"]):
                markers.append((float(t), values[0]))
        else:
            data = np.asarray(stream["time_series"], dtype=np.float64).reshape(-1, channels)
            summary["signals"] = [
                summarise_values(channel_field(info, c, "label") or f"ch{c}",
                                 channel_field(info, c, "unit") or "", rate, data[:, c])
                for c in range(channels)
            ]
        summaries.append(summary)
    markers.sort(key=lambda m: m[0])
    result = {"file": str(path.relative_to(DATA)), "streams": summaries,
              "marker_count": len(markers)}
    if reference_origin is not None:
        result["markers"] = [{"onset_s": t - reference_origin, "text": text}
                             for t, text in markers[:MAX_LISTED_MARKERS]]
    return result


def summarise_openbci(path):
    lines = path.read_text().splitlines()
    header = [line for line in lines if line.startswith("%")]
    names = [n.strip() for n in lines[len(header)].split(",")]
    rate = float(next(l for l in header if "Sample Rate" in l).split("=")[1].split()[0])
    wanted = [i for i, n in enumerate(names) if n.startswith(("EXG Channel", "Accel Channel"))]
    data = np.loadtxt(path, delimiter=",", comments="%", skiprows=len(header) + 1,
                      usecols=wanted, dtype=np.float64, ndmin=2)
    signals = [
        summarise_values(names[column], "uV" if names[column].startswith("EXG") else "g",
                         rate, data[:, k])
        for k, column in enumerate(wanted)
    ]
    return {"file": str(path.relative_to(DATA)), "signals": signals}


def main():
    OUT.mkdir(exist_ok=True)
    formats = DATA / "formats"
    for path in sorted(formats.glob("*.xdf")):
        summary = summarise_xdf(path)
        (OUT / f"{path.name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    for path in sorted(formats.glob("openbci_gui_*.txt")):
        summary = summarise_openbci(path)
        (OUT / f"{path.name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"versions: pyxdf {pyxdf.__version__}, numpy {np.__version__}")


if __name__ == "__main__":
    main()
