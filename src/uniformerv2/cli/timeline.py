"""``uniformerv2 timeline``: score sliding windows of a long video."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import (
    EXIT_OK,
    add_labels_argument,
    add_model_arguments,
    add_set_argument,
    add_size_argument,
    add_speed_arguments,
    alias,
    build_classifier,
    command,
    device,
    duration,
    positive_int,
)

EXAMPLES = [
    "uniformerv2 timeline long.mp4 --checkpoint work_dirs/run/model.safetensors",
    "uniformerv2 timeline match.mp4 --model uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb "
    "--window 2s --stride 0.5s --annotate match_labelled.mp4",
]


def register(sub: Any) -> None:
    p = command(
        sub,
        "timeline",
        help="score sliding windows of a long video: plot, CSV/JSON, annotated copy",
        description="Score sliding windows of a long video: plot, CSV/JSON, annotated copy.\n\nThe JSON "
        "lists each window's top classes as {label, score} (also as `probability`, the old "
        "name of `score`, for one more release).",
        examples=EXAMPLES,
    )
    p.add_argument("video", help="the video file")
    add_model_arguments(p)
    p.add_argument(
        "--window",
        type=duration,
        default="2s",
        help="window length: seconds (2 or 2s) or frames at the video's rate (64f) (default 2s)",
    )
    p.add_argument(
        "--stride", type=duration, default="1s", help="step between windows: seconds (1s) or frames (32f) (default 1s)"
    )
    p.add_argument("--frames", type=positive_int, help="frames sampled per window (default: the model's)")
    p.add_argument("--crops", type=int, choices=[1, 3], default=1, help="crops per window (default: centre only)")
    p.add_argument(
        "--top-k",
        type=positive_int,
        default=5,
        help="classes in the plot, the CSV and each window of the JSON (default 5)",
    )
    alias(p, "--top", dest="top_k", type=positive_int)  # the old spelling, accepted for one more release
    add_labels_argument(p)
    add_size_argument(p)
    p.add_argument("--out-dir", help="where the PNG, CSV and JSON go (default: <video>_timeline/)")
    p.add_argument("--annotate", metavar="OUT.mp4", help="also write the video with the running top class drawn")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    add_speed_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_set_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..timeline import annotate_video, plot_timeline, scan, write_timeline

    clf = build_classifier(args, views=(1, args.crops))
    tl = scan(clf, args.video, window=args.window, stride=args.stride, progress=not args.no_progress)
    out_dir = Path(args.out_dir or Path(args.video).with_suffix("").name + "_timeline")
    stem = Path(args.video).stem
    png = plot_timeline(tl, out_dir / f"{stem}_timeline.png", top_k=args.top_k)
    write_timeline(tl, out_dir / f"{stem}_timeline.csv", out_dir / f"{stem}_timeline.json", top_k=args.top_k)
    for (start, end), (label, prob) in zip(zip(tl.starts, tl.ends), tl.top1()):
        print(f"{start:8.2f}s - {end:8.2f}s  {label}  {prob:.1%}")
    print(f"\nwrote {png}\nwrote {out_dir / f'{stem}_timeline.csv'}\nwrote {out_dir / f'{stem}_timeline.json'}")
    if args.annotate:
        print(f"wrote {annotate_video(tl, args.annotate)}")
    return EXIT_OK
