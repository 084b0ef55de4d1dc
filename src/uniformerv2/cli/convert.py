"""``uniformerv2 convert``: a checkpoint in another format, checked against its architecture."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import EXIT_OK, add_set_argument, command, parse_overrides

EXAMPLES = [
    "uniformerv2 convert work_dirs/run/model.safetensors my-model/ --metrics report/test_metrics.json",
    "uniformerv2 convert k400_k710_uniformerv2_b16_8x224.pyth k400_b16.safetensors --model "
    "k400_k710_uniformerv2_b16_8x224",
    "uniformerv2 convert k710.pth k400.safetensors --model uniformerv2-base-p16-res224_clip-pre_u8_kinetics710-rgb "
    "--num-classes 400",
]


def register(sub: Any) -> None:
    p = command(
        sub,
        "convert",
        help="convert a checkpoint between formats (MMAction2 .pth, original .pyth, CLIP, ours .safetensors)",
        examples=EXAMPLES,
    )
    p.add_argument("src", help="source checkpoint file or URL")
    p.add_argument(
        "dst",
        help="destination: .safetensors (ours, with the architecture), .pth (MMAction2), "
        ".pyth (original), or a folder (an existing one, or a name ending in / or without a suffix): a Hugging "
        "Face-style directory (config.json, model.safetensors, a model card README.md)",
    )
    p.add_argument("--model", help="preset the source belongs to (not needed for our .safetensors files)")
    p.add_argument(
        "--format",
        choices=["uniformerv2", "mmaction2", "pyth", "pretrained"],
        help="the destination format (default: from its suffix)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        help="a new classifier head of this many classes (only the head may then differ from the source)",
    )
    p.add_argument(
        "--metrics",
        metavar="FILE",
        help="with a folder destination: accuracy the model card states, from `test --out-dir`'s *_metrics.json, "
        "the demo's or a run's metrics.json, or a JSON mapping such as {\"top1\": 0.81}",
    )
    add_set_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..factory import convert

    overrides = parse_overrides(args.set)
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    metrics = None
    if args.metrics:
        from ..hf_folder import read_metrics

        metrics = read_metrics(args.metrics)
        print(f"--metrics {args.metrics}: stating {', '.join(f'{k} {v:.4f}' for k, v in metrics.items())}")
    # metrics are stated in a folder's model card, so they make the destination a folder whatever its name
    fmt = "pretrained" if metrics is not None else args.format
    out = convert(args.src, args.dst, model=args.model, fmt=fmt, metrics=metrics, **overrides)
    print(f"wrote {out}")
    return EXIT_OK
