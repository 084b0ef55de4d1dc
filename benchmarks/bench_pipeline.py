"""Benchmark the test-time data pipeline (decode, sample, resize, crop) against MMAction2 1.2.0's, in one run.

    .venv/bin/python benchmarks/bench_pipeline.py [--rounds 5] [--write-md]

Ours runs in this process (``uniformerv2.data.read_test_views``); MMAction2's pipeline of the UniFormerV2 test
configs (``DecordInit -> UniformSample(test_mode=True) -> DecordDecode -> Resize(scale=(-1, 224)) -> ThreeCrop(224)
-> FormatShape('NCTHW')``) runs in a subprocess of the oracle environment (``--ref-python``), timed inside that
process. The two are interleaved video by video, round by round, on the same videos, after one warm-up pass each.
Throughput is videos per second over all timed calls. ``--write-md`` replaces the ``## Test-time data pipeline``
section of BENCHMARKS.md (leaving the rest of the file alone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _measure import cpu_description

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Test-time data pipeline"

REF_WORKER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import logging
logging.disable(logging.WARNING)
from mmaction.datasets.transforms import (CenterCrop, DecordDecode, DecordInit, FormatShape, PyAVDecode, PyAVInit,
                                          Resize, ThreeCrop, UniformSample)
import mmaction
cache = {}
def pipeline(clip_len, num_clips, num_crops, size, decoder):
    key = (clip_len, num_clips, num_crops, size, decoder)
    if key not in cache:
        init, decode = (DecordInit(), DecordDecode()) if decoder == "decord" else (PyAVInit(), PyAVDecode())
        crop = ThreeCrop(crop_size=size) if num_crops == 3 else CenterCrop(crop_size=size)
        cache[key] = [init, UniformSample(clip_len=clip_len, num_clips=num_clips, test_mode=True), decode,
                      Resize(scale=(-1, size)), crop, FormatShape(input_format="NCTHW")]
    return cache[key]
print(json.dumps({"mmaction2": mmaction.__version__}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    steps = pipeline(req["clip_len"], req["num_clips"], req["num_crops"], req["size"], req["decoder"])
    t0 = time.perf_counter()
    results = dict(filename=req["path"], start_index=0, modality="RGB")
    for step in steps:
        results = step(results)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "shape": list(results["imgs"].shape)}), flush=True)
"""


class RefWorker:
    def __init__(self, python: str) -> None:
        self.proc = subprocess.Popen(
            [python, "-c", REF_WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.version = json.loads(self.proc.stdout.readline())["mmaction2"]

    def run(self, **req) -> tuple[float, list]:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the MMAction2 worker died")
        out = json.loads(line)
        return out["seconds"], out["shape"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def parse_protocol(text: str) -> tuple[int, int, int]:
    t, k, c = (int(x) for x in text.lower().split("x"))
    return t, k, c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = ROOT.parent / "shared"
    if not (shared / "data").is_dir():
        shared = Path("/work/shared")
    default_videos = [str(shared / "data" / "videos" / v) for v in ("demo.mp4", "test.mp4", "test.avi")]
    ap.add_argument("--videos", nargs="+", default=default_videos)
    ap.add_argument("--protocols", nargs="+", default=["8x4x3", "16x4x3"], help="clip_len x num_clips x num_crops")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ref-python", default="/tmp/uniformerv2-ref/bin/python")
    ap.add_argument("--ref-decoder", default="decord", choices=["decord", "pyav"])
    ap.add_argument("--backend", default="pyav")
    ap.add_argument("--write-md", action="store_true", help="update the section in BENCHMARKS.md")
    args = ap.parse_args()

    from uniformerv2 import Protocol
    from uniformerv2.data import read_test_views

    ref = RefWorker(args.ref_python)
    rows = []
    try:
        for proto in args.protocols:
            clip_len, num_clips, num_crops = parse_protocol(proto)
            req = dict(
                clip_len=clip_len, num_clips=num_clips, num_crops=num_crops, size=args.size, decoder=args.ref_decoder
            )
            ours_t, ref_t = 0.0, 0.0
            for rnd in range(args.rounds + 1):  # round 0 warms both up
                for video in args.videos:
                    t0 = time.perf_counter()
                    protocol = Protocol(clip_len, args.size, num_clips, num_crops)
                    views = read_test_views(video, protocol, backend=args.backend)
                    dt = time.perf_counter() - t0
                    rt, shape = ref.run(path=video, **req)
                    if list(views.shape) != shape:
                        raise SystemExit(f"{video}: our views {list(views.shape)} != MMAction2's {shape}")
                    if rnd:
                        ours_t += dt
                        ref_t += rt
            n = args.rounds * len(args.videos)
            rows.append(dict(protocol=proto, ours=n / ours_t, ref=n / ref_t, ratio=ref_t / ours_t))
            print(
                f"{proto}: ours {n / ours_t:.2f} videos/s, MMAction2 ({args.ref_decoder}) {n / ref_t:.2f} "
                f"videos/s, ratio {ref_t / ours_t:.2f}x",
                flush=True,
            )
    finally:
        ref.close()

    import av
    import numpy as np
    import torch

    machine = f"{os.cpu_count()} CPUs ({cpu_description()}), {platform.system()} {platform.machine()}"
    command = ".venv/bin/python benchmarks/bench_pipeline.py " + " ".join(sys.argv[1:])
    lines = [
        SECTION,
        "",
        "Test-time views (decode, sample, resize, crop; uint8 NCTHW, no normalisation) per second, ours "
        "(`uniformerv2.data.read_test_views`, PyAV backend) against MMAction2 1.2.0's UniFormerV2 test pipeline "
        f"(`{args.ref_decoder}` decoder, `DecordInit -> UniformSample -> DecordDecode -> Resize(-1, {args.size}) -> "
        f"ThreeCrop({args.size}) -> FormatShape`), interleaved in the same run on the same videos "
        f"({', '.join(Path(v).name for v in args.videos)}), {args.rounds} rounds after a warm-up.",
        "",
        "| protocol (frames x clips x crops) | ours (videos/s) | MMAction2 (videos/s) | speed-up |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['protocol']} | {r['ours']:.2f} | {r['ref']:.2f} | {r['ratio']:.2f}x |")
    lines += [
        "",
        f"Machine: {machine}; shared with other jobs while measured, so absolute numbers are noisy, the ratio "
        "less so (both sides see the same load).",
        f"Versions: ours with PyAV {av.__version__}, numpy {np.__version__}, torch {torch.__version__}; "
        f"MMAction2 {ref.version} in the oracle environment ({args.ref_python}).",
        f"Command: `{command}`",
        "",
    ]
    text = "\n".join(lines)
    print()
    print(text)
    if args.write_md:
        path = ROOT / "BENCHMARKS.md"
        old = path.read_text() if path.exists() else "# Benchmarks\n"
        start = old.find(SECTION)
        if start < 0:
            new = old.rstrip("\n") + "\n\n" + text
        else:
            nxt = old.find("\n## ", start + len(SECTION))
            new = old[:start] + text + ("" if nxt < 0 else "\n" + old[nxt + 1 :])
        path.write_text(new.rstrip("\n") + "\n")
        print(f"updated {path}")


if __name__ == "__main__":
    main()
