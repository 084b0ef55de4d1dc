"""Soak test of `live`: a long stream at real speed; resident memory and lag over time.

    .venv/bin/python benchmarks/bench_live.py --minutes 10 [--checkpoint MODEL.safetensors]

The source is a generated lamp video (the demo's task) looped at real speed by the ffmpeg command line over UDP on
127.0.0.1 (loopback only); the model is the given checkpoint, or a tiny random one. Memory is the process's
resident set sampled every 10 s; the check is that it stays within 50 MiB of its value after the first minute.
Prints a Markdown table row for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _measure import cpu_description, memory_mib


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--checkpoint", help="the model (default: a tiny random one)")
    ap.add_argument("--window", type=float, default=2.0)
    ap.add_argument("--every", type=float, default=0.5)
    ap.add_argument("--json", help="write the samples here")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        print("needs the ffmpeg command line (apt-get install ffmpeg)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers import randomised, tiny_config, write_frames
    from uniformerv2 import VideoClassifier, save_checkpoint
    from uniformerv2.demo import make_lamp_video
    from uniformerv2.model import UniFormerV2

    tmp = Path(tempfile.mkdtemp(prefix="bench_live_"))
    rng = np.random.default_rng(0)
    clip = np.concatenate([make_lamp_video(k % 6, rng, frames=24, height=64, width=80) for k in range(6)])
    video = write_frames(tmp / "lamps.mp4", clip, fps=12)
    checkpoint = args.checkpoint or save_checkpoint(randomised(UniFormerV2(tiny_config())), tmp / "tiny.safetensors")
    clf = VideoClassifier.from_pretrained(checkpoint, dtype="float32")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sender = subprocess.Popen(
        [
            "ffmpeg",
            "-v",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(video),
            "-c:v",
            "mpeg2video",
            "-q:v",
            "4",
            "-f",
            "mpegts",
            f"udp://127.0.0.1:{port}?pkt_size=1316",
        ]
    )
    samples: list[tuple[float, float]] = []
    lags: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        start = time.monotonic()
        while not stop.wait(10.0):
            samples.append((time.monotonic() - start, memory_mib("VmRSS")))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    duration = args.minutes * 60
    try:
        for decision in clf.stream(
            f"udp://127.0.0.1:{port}", window=args.window, every=args.every, duration=duration, stall_s=10
        ):
            lags.append(decision.lag)
    finally:
        stop.set()
        sender.kill()
    after_first_minute = [m for t, m in samples if t >= 60]
    base = after_first_minute[0] if after_first_minute else samples[0][1]
    growth = max(m for _, m in samples) - base if samples else float("nan")
    p50, p90, p99 = np.percentile(lags, [50, 90, 99])
    cpu = cpu_description()
    print(
        f"| {args.minutes:g} min | {len(lags)} | {p50:.3f} | {p90:.3f} | {p99:.3f} | {max(lags):.3f} | "
        f"{base:.0f} | {max(m for _, m in samples):.0f} | {growth:+.1f} | {cpu} |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": samples, "lags": lags}) + "\n")
    return 0 if growth < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
