"""``uniformerv2 predict``: classify video files with a model's test protocol."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ._common import (
    add_labels_argument,
    add_model_arguments,
    add_set_argument,
    add_size_argument,
    add_speed_arguments,
    build_classifier,
    command,
    device,
    exit_status,
    positive_int,
    views,
)

EXAMPLES = [
    "uniformerv2 predict video.mp4 --model uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb "
    "--checkpoint k400_b16.pth",
    "uniformerv2 predict videos/ --checkpoint work_dirs/run/model.safetensors --json > predictions.json",
    "uniformerv2 predict 'clips/*.mp4' --model mymodel.safetensors --views 1x1 --top-k 3",
]


def register(sub: Any) -> None:
    p = command(sub, "predict", help="classify video files with a model's test protocol", examples=EXAMPLES)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, folders or globs")
    add_model_arguments(p)
    p.add_argument("--top-k", type=positive_int, default=5, help="classes shown per video (default 5)")
    p.add_argument("--views", type=views, metavar="CLIPSxCROPS", help="e.g. 4x3 (default: the model's protocol)")
    p.add_argument("--frames", type=positive_int, help="frames per clip (default: the model's protocol)")
    add_labels_argument(p)
    add_size_argument(p)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    add_speed_arguments(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="machine-readable output on stdout: each class as "
        "{rank, label, score} (also as `probability`, the old name "
        "of `score`, for one more release)",
    )
    add_set_argument(p)
    p.set_defaults(func=run)


def _table(path: str, ranked: list[tuple[str, float]]) -> str:
    width = max(len(label) for label, _ in ranked)
    lines = [path]
    lines += [f"  {rank:>2}  {label.ljust(width)}  {prob:7.2%}" for rank, (label, prob) in enumerate(ranked, 1)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..data import expand_inputs
    from ..errors import VideoDecodeError

    clf = build_classifier(args, args.views)
    results, failures = [], []
    for path in expand_inputs(args.videos):
        try:
            if os.path.isdir(path):
                raise VideoDecodeError(path, "a folder with no video files")
            ranked = clf.predict(path, top_k=args.top_k)
        except VideoDecodeError as e:
            failures.append({"path": path, "reason": e.reason})
            print(str(e), file=sys.stderr)
            if args.debug:
                raise
            continue
        # "probability": the old name of "score", kept beside it for one release
        results.append(
            {
                "video": path,
                "predictions": [
                    {"rank": i + 1, "label": label, "score": score, "probability": score}
                    for i, (label, score) in enumerate(ranked)
                ],
            }
        )
        if not args.json:
            print(_table(path, ranked), flush=True)
    if args.json:
        print(
            json.dumps(
                {
                    "model": args.model or args.checkpoint,
                    "protocol": clf.protocol.describe(),
                    "results": results,
                    "failed": len(failures),
                    "failures": failures,
                },
                indent=1,
            )
        )
    return exit_status(len(results), len(failures))
