#!/usr/bin/env python3
"""An LSL amplifier for neuroloop's tests (pylsl 1.18.6, the version
tests/run-all.sh installs): streams samples from a file (float64, interleaved,
little-endian) or a synthetic signal, paced on the LSL clock; optionally
listens to neuroloop's marker stream; can misbehave on request (a gap in its
timestamps, a clock reset, a NaN sample, vanishing mid-stream).

Sample n is stamped t0 + n / rate (so the timestamps stay consistent when
--speed > 1 pushes faster than real time) and pushed once
t0 + n / (rate * speed) has passed (from --realtime-from on, at real time),
in chunks of --chunk samples. Before the
first sample it waits for a consumer and, with --markers, for neuroloop's
marker stream, so neither the first samples nor the first markers are missed.
The report (--report, JSON) gives the local clock time of every push, and
every marker received with its timestamp and arrival time.

Run it with LSLAPICFG naming tests/lsl/lsl_api.cfg: everything stays on the
loopback interface.
"""

import argparse
import json
import math
import os
import sys
import threading
import time

import numpy as np
import pylsl


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--type", default="EEG")
    p.add_argument("--source-id", default="")
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--channels", type=int, required=True)
    p.add_argument("--samples", help="float64 interleaved frames to stream")
    p.add_argument("--seconds", type=float, help="synthetic signal of this length")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--realtime-from", type=int,
                   help="push at --speed up to this sample, at real time from it on")
    p.add_argument("--chunk", type=int, default=1)
    p.add_argument("--format", default="float32", choices=["float32", "double64", "string"])
    p.add_argument("--unit", default="microvolts", help="'none' leaves units out")
    p.add_argument("--labels", help="comma-separated channel labels (default C1, C2, ...)")
    p.add_argument("--gap-at", type=int, help="stamps from this sample on skip --gap-frames")
    p.add_argument("--gap-frames", type=int, default=0)
    p.add_argument("--reset-at", type=int, help="the clock goes back 1 s at this sample")
    p.add_argument("--nan-at", type=int, help="channel 1 of this sample is NaN")
    p.add_argument("--vanish-at", type=int, help="exit abruptly after this sample")
    p.add_argument("--markers", help="name of neuroloop's marker stream to listen to")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--wait-s", type=float, default=60.0, help="longest wait for peers")
    p.add_argument("--linger-s", type=float, default=30.0,
                   help="after the last sample, wait this long for the marker stream to end")
    return p.parse_args()


def frames(args):
    if args.samples:
        data = np.fromfile(args.samples, dtype="<f8")
        return data.reshape(-1, args.channels)
    n = int(args.seconds * args.rate)
    t = np.arange(n) / args.rate
    rng = np.random.default_rng(1)
    # 10 Hz alpha and white noise, in µV, different on every channel.
    phase = rng.uniform(0, 2 * math.pi, args.channels)
    return 20 * np.sin(2 * math.pi * 10 * t[:, None] + phase) + rng.normal(0, 5, (n, args.channels))


def outlet(args):
    fmt = {"float32": pylsl.cf_float32, "double64": pylsl.cf_double64, "string": pylsl.cf_string}
    info = pylsl.StreamInfo(args.name, args.type, args.channels, args.rate, fmt[args.format],
                            args.source_id)
    chans = info.desc().append_child("channels")
    labels = args.labels.split(",") if args.labels else [f"C{k + 1}" for k in range(args.channels)]
    for label in labels:
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        if args.unit != "none":
            ch.append_child_value("unit", args.unit)
        ch.append_child_value("type", "EEG")
    return pylsl.StreamOutlet(info, chunk_size=args.chunk)


class MarkerListener(threading.Thread):
    """Receives neuroloop's markers until its stream ends."""

    def __init__(self, inlet):
        super().__init__(daemon=True)
        self.inlet = inlet
        self.markers = []
        self.ended = threading.Event()

    def run(self):
        try:
            while True:
                sample, ts = self.inlet.pull_sample(timeout=0.5)
                if sample is not None:
                    self.markers.append([pylsl.local_clock(), ts, sample[0]])
        except pylsl.util.LostError:
            pass
        self.ended.set()


def listen(args):
    found = pylsl.resolve_byprop("name", args.markers, 1, args.wait_s)
    if not found:
        sys.exit(f"peer.py: marker stream {args.markers!r} not found")
    inlet = pylsl.StreamInlet(found[0], recover=False)
    inlet.open_stream(timeout=args.wait_s)
    correction = inlet.time_correction(timeout=5.0)
    listener = MarkerListener(inlet)
    listener.start()
    return listener, correction


def pace(args, i):
    """When sample i is due, in seconds after the first."""
    fast = i if args.realtime_from is None else min(i, args.realtime_from)
    return fast / (args.rate * args.speed) + (i - fast) / args.rate


def main():
    args = parse_args()
    data = frames(args)
    out = outlet(args)
    if not out.wait_for_consumers(args.wait_s):
        sys.exit("peer.py: no consumer connected")
    listener, correction = listen(args) if args.markers else (None, 0.0)
    pushes = []
    t0 = pylsl.local_clock()
    n = 0
    while n < len(data):
        k = min(args.chunk, len(data) - n)
        due = t0 + pace(args, n + k - 1)
        wait = due - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)
        stamps = []
        for i in range(n, n + k):
            stamp = t0 + i / args.rate
            if args.gap_at is not None and i >= args.gap_at:
                stamp += args.gap_frames / args.rate
            if args.reset_at is not None and i >= args.reset_at:
                stamp -= 1.0
            stamps.append(stamp)
        chunk = data[n:n + k].copy()
        if args.nan_at is not None and n <= args.nan_at < n + k:
            chunk[args.nan_at - n, min(1, args.channels - 1)] = math.nan
        if args.format == "string":
            chunk = [[str(x) for x in row] for row in chunk]
        else:
            chunk = chunk.tolist()
        pushes.append([n, pylsl.local_clock()])
        out.push_chunk(chunk, stamps)
        n += k
        if args.vanish_at is not None and n > args.vanish_at:
            sys.stdout.flush()
            os._exit(0)
    if listener is not None:
        listener.ended.wait(args.linger_s)
    if args.report:
        report = {
            "t0": t0,
            "pushes": pushes,
            "time_correction": correction,
            "markers": listener.markers if listener else [],
            "marker_stream_ended": bool(listener and listener.ended.is_set()),
        }
        with open(args.report, "w") as f:
            json.dump(report, f)


if __name__ == "__main__":
    main()
