"""``uniformerv2 live``: recognition on a camera, a stream or a file, with bounded lag and memory."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import (
    EXIT_OK,
    add_labels_argument,
    add_model_arguments,
    add_set_argument,
    add_size_argument,
    add_speed_arguments,
    build_classifier,
    command,
    device,
    duration,
    positive_int,
    seconds,
)

EXAMPLES = [
    "uniformerv2 live /dev/video0 --checkpoint my_model.safetensors",
    "uniformerv2 live rtsp://192.168.1.20:8554/cam --model PRESET --every 1s --json > decisions.jsonl",
    "uniformerv2 live long.mp4 --realtime --checkpoint my_model.safetensors --annotate seen.mp4",
]


def register(sub: Any) -> None:
    p = command(
        sub,
        "live",
        help="recognise actions on a camera, a stream (rtsp://, udp://, http://) or a file played in real time",
        examples=EXAMPLES,
    )
    p.add_argument("source", help="a camera (/dev/video0), a stream URL, or a file (with --realtime)")
    add_model_arguments(p)
    p.add_argument(
        "--window",
        type=duration,
        default="2s",
        help="video each decision scores: seconds (2s), or frames (64f) of a source that reports its "
        "frame rate (default 2s)",
    )
    p.add_argument(
        "--every",
        type=duration,
        default="0.5s",
        help="time between decisions: seconds (0.5s) or frames (15f) (default 0.5s); when the model is "
        "slower, decisions are skipped, not queued",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.0,
        help="show the top class only when its probability reaches this (default 0)",
    )
    p.add_argument("--top-k", type=positive_int, default=3, help="classes per decision (default 3)")
    p.add_argument("--realtime", action="store_true", help="play a file at its own speed (tests, demos)")
    p.add_argument("--duration", type=seconds, help="stop after this long (default: until the source ends)")
    p.add_argument(
        "--reconnects", type=int, default=3, help="reopen a stalled or dropped stream this many times (default 3)"
    )
    p.add_argument("--stall", type=seconds, default=5.0, help="a stream silent this long is stalled (default 5s)")
    p.add_argument("--json", action="store_true", help="one JSON line per decision on stdout")
    p.add_argument("--annotate", metavar="OUT.mp4", help="write what was seen with the running label drawn on it")
    p.add_argument("--frames", type=positive_int, help="frames per decision (default: the model's)")
    p.add_argument("--crops", type=int, choices=[1, 3], default=1, help="crops per decision (default 1)")
    add_labels_argument(p)
    add_size_argument(p)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    add_speed_arguments(p)
    add_set_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..live import AnnotatedWriter, stream

    clf = build_classifier(args, views=(1, args.crops))
    writer = AnnotatedWriter(args.annotate) if args.annotate else None

    def log(message: str) -> None:
        print(f"\nuniformerv2 live: {message}", file=sys.stderr, flush=True)

    count = 0
    try:
        for decision in stream(
            clf,
            args.source,
            window=args.window,
            every=args.every,
            top_k=args.top_k,
            realtime=args.realtime,
            duration=args.duration,
            stall_s=args.stall,
            reconnects=args.reconnects,
            on_frame=writer.write if writer else None,
            log=log,
        ):
            count += 1
            label, score = decision.top[0]
            shown = f"{label} {score:.0%}" if score >= args.threshold else "..."
            if writer is not None:
                writer.label = shown
            if args.json:
                print(json.dumps(decision.to_dict()), flush=True)
            else:
                others = "  ".join(f"{n} {s:.0%}" for n, s in decision.top[1:])
                print(
                    f"\r{decision.stream_time:8.2f}s  {shown:30s}  {others}  (lag {decision.lag:.2f}s)",
                    end="",
                    flush=True,
                )
    finally:
        if not args.json and count:
            print()
        if writer is not None:
            path = writer.close()
            if path:
                print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK
