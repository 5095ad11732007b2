#!/usr/bin/env python3
"""Small NeuroScope, Intan (one file per signal type) and legacy Open Ephys
recordings, and the reference reader's summary of each, for tests/new_formats.rs.

No real file small enough exists in these formats (see ../shared/data/formats/README.md),
so this script writes them from the formats' specifications (numpy, deterministic
signals) and `neo` reads them back as the reference: the golden values are what
neo's NeuroScopeRawIO, IntanRawIO and OpenEphysRawIO return, scaled to µV (V for
Open Ephys AUX/ADC channels).

Pinned environment: Python 3.11, numpy 2.1.3, neo 0.14.1.
    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install numpy==2.1.3 neo==0.14.1
    /tmp/refenv/bin/python tests/data/golden/gen_rodent_formats.py
Writes tests/data/formats/{neuroscope,intan,openephys_legacy}/ and
tests/data/golden/format_summaries/{neuroscope,intan,openephys_legacy}.json.
"""
import json
import pathlib
import shutil
import struct

import neo
import numpy as np
from neo.rawio import IntanRawIO, NeuroScopeRawIO, OpenEphysRawIO

HERE = pathlib.Path(__file__).resolve().parent
FILES = HERE.parent / "formats"
OUT = HERE / "format_summaries"
EDGE_VALUES = 8


def counts(frames, channels, seed):
    """int16 counts: a theta-like sine per channel plus noise, reaching both extremes."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    x = 8000 * np.sin(2 * np.pi * t * (0.003 + 0.001 * np.arange(channels)))
    x += rng.normal(0, 500, (frames, channels))
    x = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    x[3, 0], x[4, 0] = -32768, 32767
    return x


def summarise(label, unit, rate_hz, x):
    x = np.asarray(x, dtype=np.float64)
    return {
        "label": label, "unit": unit, "rate_hz": float(rate_hz), "sample_count": int(x.size),
        "first": x[:EDGE_VALUES].tolist(), "last": x[-EDGE_VALUES:].tolist(),
        "min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()), "std": float(x.std()),
    }


def neo_signals(reader, to_uv):
    """Every signal of every stream of a neo raw reader, scaled, by channel."""
    reader.parse_header()
    out = []
    for stream_index in range(reader.signal_streams_count()):
        raw = reader.get_analogsignal_chunk(0, 0, stream_index=stream_index)
        values = reader.rescale_signal_raw_to_float(raw, dtype="float64", stream_index=stream_index)
        stream_id = reader.header["signal_streams"][stream_index]["id"]
        channels = reader.header["signal_channels"]
        channels = channels[channels["stream_id"] == stream_id]
        for c, channel in enumerate(channels):
            factor, unit = to_uv(str(channel["units"]))
            out.append(summarise(str(channel["name"]), unit, channel["sampling_rate"], values[:, c] * factor))
    return out


def fresh(folder):
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def write_neuroscope():
    folder = fresh(FILES / "neuroscope")
    channels, rate, lfp_rate = 6, 20000, 1250
    # Shank 1: channels 0-2; shank 2: 3-5, channel 4 marked skip (a bad channel).
    groups = [[(0, 0), (1, 0), (2, 0)], [(3, 0), (4, 1), (5, 0)]]
    group_xml = "".join(
        "<group>" + "".join(f'<channel skip="{s}">{c}</channel>' for c, s in g) + "</group>" for g in groups
    )
    (folder / "session.xml").write_text(
        '<?xml version="1.0"?>\n<parameters version="1.0" creator="neuroloop gen_rodent_formats.py">'
        "<acquisitionSystem><nBits>16</nBits>"
        f"<nChannels>{channels}</nChannels><samplingRate>{rate}</samplingRate>"
        "<voltageRange>20</voltageRange><amplification>1000</amplification><offset>0</offset>"
        f"</acquisitionSystem><fieldPotentials><lfpSamplingRate>{lfp_rate}</lfpSamplingRate></fieldPotentials>"
        f"<anatomicalDescription><channelGroups>{group_xml}</channelGroups></anatomicalDescription>"
        "</parameters>\n"
    )
    counts(2000, channels, 1).tofile(folder / "session.dat")
    reader = NeuroScopeRawIO(filename=str(folder / "session.xml"))
    return {"files": "neuroscope/session.dat", "reference": f"neo {neo.__version__} NeuroScopeRawIO",
            "signals": neo_signals(reader, lambda unit: ({"mV": 1e3, "V": 1e6}[unit], "uV"))}


def qstring(text):
    data = text.encode("utf-16-le")
    return struct.pack("<I", len(data)) + data


def write_intan():
    folder = fresh(FILES / "intan")
    rate = 20000.0
    names = ["A-000", "A-001", "A-002", "A-003"]
    header = struct.pack("<I", 0xC6912702) + struct.pack("<hh", 3, 0) + struct.pack("<f", rate)
    # DSP enabled, actual/desired DSP cutoff, lower, upper bandwidth; notch mode; impedance test frequencies.
    header += struct.pack("<h", 1) + struct.pack("<6f", 1.0, 0.1, 7500.0, 1.0, 0.1, 7500.0)
    header += struct.pack("<h", 0) + struct.pack("<2f", 1000.0, 1000.0)
    header += qstring("note one") + qstring("") + qstring("")
    header += struct.pack("<h", 0)  # temperature sensors (v1.1+)
    header += struct.pack("<h", 0)  # board mode (v1.3+)
    header += qstring("n/a")  # reference channel (v2.0+)
    header += struct.pack("<h", 1)  # signal groups
    header += qstring("Port A") + qstring("A") + struct.pack("<hhh", 1, len(names) + 1, len(names) + 1)
    for i, name in enumerate(names + ["A-031"]):
        custom = "CA1-pyr" if i == 1 else name
        enabled = 0 if i == len(names) else 1  # the last channel is disabled: not in amplifier.dat
        header += qstring(name) + qstring(custom) + struct.pack("<hhhh", i, i, 0, enabled)
        header += struct.pack("<6h", i, 0, 0, 0, 0, 0) + struct.pack("<2f", 1e5, -30.0)
    (folder / "info.rhd").write_bytes(header)
    frames = 1500
    counts(frames, len(names), 2).tofile(folder / "amplifier.dat")
    np.arange(frames, dtype=np.int32).tofile(folder / "time.dat")
    reader = IntanRawIO(filename=str(folder / "info.rhd"))
    reader.parse_header()
    # Only the amplifier stream: neo also lists the time stream.
    out = [s for s in neo_signals(reader, lambda unit: ({"uV": 1.0, "mV": 1e3, "V": 1e6}[unit], "uV"))
           if s["label"] in ("A-000", "CA1-pyr", "A-001", "A-002", "A-003")]
    return {"files": "intan/amplifier.dat", "reference": f"neo {neo.__version__} IntanRawIO", "signals": out}


def continuous_file(path, channel, bit_volts, rate, values, first_sample):
    header = (
        "header.format = 'Open Ephys Data Format'; \n"
        "header.version = 0.4;\n"
        "header.header_bytes = 1024;\n"
        "header.description = 'each record contains one 64-bit timestamp, one 16-bit sample count (N), "
        "1 uint16 recordingNumber, N 16-bit samples, and one 10-byte record marker (0 1 2 3 4 5 6 7 8 255)'; \n"
        "header.date_created = '1-Dec-2026 000000';\n"
        f"header.channel = '{channel}';\n"
        "header.channelType = 'Continuous';\n"
        f"header.sampleRate = {rate};\n"
        "header.blockLength = 1024;\n"
        "header.bufferSize = 1024;\n"
        f"header.bitVolts = {bit_volts};\n"
    ).encode()
    data = header.ljust(1024, b" ")
    for r in range(len(values) // 1024):
        data += struct.pack("<qHH", first_sample + 1024 * r, 1024, 0)
        data += values[1024 * r:1024 * (r + 1)].astype(">i2").tobytes()
        data += bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 255])
    path.write_bytes(data)


def write_open_ephys_legacy():
    folder = fresh(FILES / "openephys_legacy")
    x = counts(3 * 1024, 3, 3)
    continuous_file(folder / "100_CH1.continuous", "CH1", 0.195, 30000, x[:, 0], 4096)
    continuous_file(folder / "100_CH2.continuous", "CH2", 0.195, 30000, x[:, 1], 4096)
    continuous_file(folder / "100_AUX1.continuous", "AUX1", 0.0000374, 30000, x[:, 2], 4096)
    reader = OpenEphysRawIO(dirname=str(folder))
    return {"files": "openephys_legacy/", "reference": f"neo {neo.__version__} OpenEphysRawIO",
            "signals": neo_signals(reader, lambda unit: (1.0, unit))}


def main():
    OUT.mkdir(exist_ok=True)
    for name, write in [("neuroscope", write_neuroscope), ("intan", write_intan),
                        ("openephys_legacy", write_open_ephys_legacy)]:
        (OUT / f"{name}.json").write_text(json.dumps(write(), indent=1) + "\n")
    print(f"versions: numpy {np.__version__}, neo {neo.__version__}")


if __name__ == "__main__":
    main()
