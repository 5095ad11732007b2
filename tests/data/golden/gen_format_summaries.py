#!/usr/bin/env python3
"""Golden summaries of the real EDF/BDF files for tests/file_formats.rs.

Reference readers (pinned): Python 3.11, numpy 2.1.3, pyedflib 0.1.42, edfio 0.4.18.
pyedflib gives the values written here; edfio reads every file too and the script
stops if the two reference readers disagree (physical values to 1e-9 relative to
the signal's range, annotation onsets/durations/texts exactly), so a golden value
never rests on one library's quirk.

Run from the repository root:  python3 tests/data/golden/gen_format_summaries.py
Writes tests/data/golden/format_summaries/<file name>.json (one small JSON per file).
"""
import json
import pathlib

import edfio
import numpy as np
import pyedflib

REPO = pathlib.Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data"
OUT = pathlib.Path(__file__).resolve().parent / "format_summaries"
FILES = (
    sorted((DATA / "formats").glob("*.edf"))
    + sorted((DATA / "formats").glob("*.bdf"))
    + sorted((DATA / "dreams").glob("excerpt*.edf"))
    + [DATA / "rodent" / "hc2_theta_1000hz.edf"]
)
EDGE_VALUES = 8
MAX_LISTED_ANNOTATIONS = 20


def summarise_signal(reader, index):
    x = reader.readSignal(index, digital=False).astype(np.float64)
    return {
        "label": reader.getLabel(index).strip(),
        "unit": reader.getPhysicalDimension(index).strip(),
        "rate_hz": float(reader.getSampleFrequency(index)),
        "sample_count": int(x.size),
        "first": x[:EDGE_VALUES].tolist(),
        "last": x[-EDGE_VALUES:].tolist(),
        "min": float(x.min()),
        "max": float(x.max()),
        "mean": float(x.mean()),
        "std": float(x.std()),
    }, x


def check_against_edfio(path, signals, annotations):
    edf = edfio.read_bdf(path) if path.suffix.lower() == ".bdf" else edfio.read_edf(path)
    assert len(edf.signals) == len(signals), path
    for summary, values, other in zip(signals, [s[1] for s in signals], edf.signals):
        summary = summary[0]
        assert other.label.strip() == summary["label"], (path, other.label)
        scale = max(abs(summary["min"]), abs(summary["max"]), 1e-300)
        assert np.allclose(other.data, values, rtol=0, atol=1e-9 * scale), (path, summary["label"])
    theirs = [(a.onset, a.duration, a.text) for a in edf.annotations if a.text]
    assert len(theirs) == len(annotations), (path, len(theirs), len(annotations))
    for (onset, duration, text), mine in zip(theirs, annotations):
        assert abs(onset - mine["onset_s"]) < 1e-9 and text == mine["text"], (path, mine)
        assert (duration is None) == (mine["duration_s"] is None), (path, mine)


def summarise(path):
    reader = pyedflib.EdfReader(str(path))
    try:
        signals = [summarise_signal(reader, i) for i in range(reader.signals_in_file)]
        onsets, durations, texts = reader.readAnnotations()
    finally:
        reader.close()
    # pyedflib reports a missing duration as -1.
    annotations = [
        {"onset_s": float(o), "duration_s": None if d < 0 else float(d), "text": str(t)}
        for o, d, t in zip(onsets, durations, texts)
    ]
    check_against_edfio(path, signals, annotations)
    return {
        "file": str(path.relative_to(DATA)),
        "signals": [s[0] for s in signals],
        "annotation_count": len(annotations),
        "annotations": annotations[:MAX_LISTED_ANNOTATIONS],
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for path in FILES:
        summary = summarise(path)
        (OUT / f"{path.name}.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(f"{summary['file']}: {len(summary['signals'])} signals, {summary['annotation_count']} annotations")


if __name__ == "__main__":
    main()
