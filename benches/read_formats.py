#!/usr/bin/env python3
"""Reader throughput: neuroloop `info --read` beside the reference readers on the same files.

Writes larger versions of the test recordings to DIR (NeuroScope 64 ch x 20 kHz x 30 s, Intan 4 ch x 20 kHz x 10 min (its test header),
legacy Open Ephys 16 ch x 30 kHz x 30 s, the real OpenBCI GUI file repeated 10 times, an XDF with one
64-ch float32 stream at 1 kHz for 5 min written as LabRecorder writes it), then times reading every
sample, alternating neuroloop and the reference (best of 3, wall clock, same sitting).
Environment as tests/data/golden/gen_rodent_formats.py plus pyxdf 1.17.0.
    /tmp/refenv/bin/python benches/read_formats.py DIR
"""
import pathlib
import struct
import subprocess
import sys
import time

import numpy as np
import pyxdf
from neo.rawio import IntanRawIO, NeuroScopeRawIO, OpenEphysRawIO

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests/data/golden"))
import gen_rodent_formats as gen  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
NEUROLOOP = REPO / "target/release/neuroloop"


def write_files(d):
    d.mkdir(parents=True, exist_ok=True)
    ns = d / "ns"
    ns.mkdir(exist_ok=True)
    xml = (REPO / "tests/data/formats/neuroscope/session.xml").read_text()
    groups = "".join(f'<channel skip="0">{c}</channel>' for c in range(64))
    xml = xml.replace("<nChannels>6<", "<nChannels>64<")
    start, end = xml.index("<channelGroups>"), xml.index("</channelGroups>")
    xml = xml[:start] + f"<channelGroups><group>{groups}</group>" + xml[end:]
    (ns / "big.xml").write_text(xml)
    gen.counts(20000 * 30, 64, 5).tofile(ns / "big.dat")
    it = d / "intan"
    it.mkdir(exist_ok=True)
    header = (REPO / "tests/data/formats/intan/info.rhd").read_bytes()
    (it / "info.rhd").write_bytes(header)
    frames = 20000 * 600
    np.tile(gen.counts(20000, 4, 6), (600, 1)).tofile(it / "amplifier.dat")
    np.arange(frames, dtype=np.int32).tofile(it / "time.dat")
    oe = d / "oe"
    oe.mkdir(exist_ok=True)
    x = gen.counts(30 * 30000 // 1024 * 1024, 16, 7)
    for c in range(16):
        gen.continuous_file(oe / f"100_CH{c + 1}.continuous", f"CH{c + 1}", 0.195, 30000, x[:, c], 0)
    text = (REPO.parent / "shared/data/formats/openbci_gui_v6_blinks_jawclench_alpha.txt").read_text()
    lines = text.splitlines(keepends=True)
    head, body = lines[:5], lines[5:]
    (d / "big.txt").write_text("".join(head + body * 10))
    write_xdf(d / "big.xdf")
    return {
        "NeuroScope .dat": (ns / "big.dat", lambda: read_neo(NeuroScopeRawIO(filename=str(ns / "big.xml")))),
        "Intan amplifier.dat": (it / "amplifier.dat", lambda: read_neo(IntanRawIO(filename=str(it / "info.rhd")))),
        "Open Ephys .continuous": (oe, lambda: read_neo(OpenEphysRawIO(dirname=str(oe)))),
        "OpenBCI GUI text": (d / "big.txt", lambda: np.loadtxt(d / "big.txt", delimiter=",", comments="%",
                                                               skiprows=5, usecols=range(1, 12))),
        "XDF": (d / "big.xdf", lambda: pyxdf.load_xdf(str(d / "big.xdf"))),
    }


def write_xdf(path):
    def chunk(tag, content):
        return bytes([8]) + struct.pack("<QH", len(content) + 2, tag) + content
    rate, channels, seconds = 1000, 64, 300
    out = b"XDF:" + chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    info = (f'<?xml version="1.0"?><info><name>EEG</name><type>EEG</type><channel_count>{channels}'
            f'</channel_count><nominal_srate>{rate}</nominal_srate><channel_format>float32</channel_format></info>')
    out += chunk(2, struct.pack("<I", 1) + info.encode())
    rng = np.random.default_rng(8)
    with open(path, "wb") as f:
        f.write(out)
        for block in range(seconds * 10):  # LabRecorder writes about every 100 ms
            n = rate // 10
            values = rng.normal(0, 20, (n, channels)).astype("<f4")
            stamps = 100.0 + (block * n + np.arange(n)) / rate
            body = struct.pack("<I", 1) + bytes([4]) + struct.pack("<I", n)
            rows = [bytes([8]) + struct.pack("<d", t) + v.tobytes() for t, v in zip(stamps, values)]
            f.write(chunk(3, body + b"".join(rows)))
            if block % 50 == 0:
                f.write(chunk(4, struct.pack("<Idd", 1, 100.0 + block / 10, 0.001)))


def read_neo(reader):
    reader.parse_header()
    for s in range(reader.signal_streams_count()):
        raw = reader.get_analogsignal_chunk(0, 0, stream_index=s)
        reader.rescale_signal_raw_to_float(raw, dtype="float64", stream_index=s)


def best(run, repeats=3):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    d = pathlib.Path(sys.argv[1])
    files = write_files(d)
    print("| format | file | neuroloop info --read (s) | reference (s) | reference / neuroloop |")
    print("|---|---|---|---|---|")
    for name, (path, reference) in files.items():
        size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.iterdir()))
        ours = best(lambda: subprocess.run([NEUROLOOP, "info", "--read", path], check=True,
                                           stdout=subprocess.DEVNULL))
        theirs = best(reference)
        print(f"| {name} | {size / 1e6:.0f} MB | {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f} |", flush=True)


if __name__ == "__main__":
    main()
