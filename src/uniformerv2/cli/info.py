"""``uniformerv2 info``: parameters, FLOPs, protocol, checkpoint and accuracy of a preset."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import EXIT_OK, command

EXAMPLES = [
    "uniformerv2 info uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb",
    "uniformerv2 info k400_k710_uniformerv2_l14_32x336 --json",
]


def _count(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.1f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def register(sub: Any) -> None:
    p = command(sub, "info", help="parameters, FLOPs, protocol, checkpoint and accuracy of a preset", examples=EXAMPLES)
    p.add_argument("name", help="a preset name (`uniformerv2 list`)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..factory import model_info

    info = model_info(args.name)
    if args.json:
        print(json.dumps(info, indent=1))
        return EXIT_OK
    cfg = info.pop("config")
    lines = [
        ("name", info["name"]),
        ("source", info["source"]),
        ("dataset", f"{info['dataset']} ({info['num_classes']} classes)"),
        ("input", f"{info['frames']} frames x {info['resolution']}x{info['resolution']}"),
        ("test protocol", f"{info['protocol']} = {info['views']} views"),
        ("parameters", f"{info['params']:,} ({_count(info['params'])}; reported {info['reported_params']})"),
        (
            "FLOPs per view",
            f"{_count(info['macs_per_view'])} multiply-adds = "
            f"{_count(info['flops_per_view'])} FLOPs (reported {info['reported_flops']})",
        ),
        ("pretraining", info["pretrain"]),
        ("reported top-1", "-" if info["top1"] is None else f"{info['top1']}"),
        ("reported top-5", "-" if info["top5"] is None else f"{info['top5']}"),
        ("checkpoint", f"{info['url']} ({info['checkpoint_format']})"),
        ("architecture", ", ".join(f"{k}={v}" for k, v in cfg.items())),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k.ljust(width)}  {v}")
    return EXIT_OK
