"""``uniformerv2 list``: the model presets."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import EXIT_ERROR, EXIT_OK, command

EXAMPLES = ["uniformerv2 list", "uniformerv2 list '*kinetics400*'", "uniformerv2 list --source original --json"]


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def register(sub: Any) -> None:
    p = command(sub, "list", help="list the model presets", examples=EXAMPLES)
    p.add_argument("pattern", nargs="?", help="glob over preset names, e.g. '*kinetics400*'")
    p.add_argument("--source", choices=["mmaction2", "original"], help="only presets from this model zoo")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..zoo import get_preset, list_models

    presets = [get_preset(n) for n in list_models(args.pattern, source=args.source)]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "source": p.source,
                        "dataset": p.dataset,
                        "frames": p.num_frames,
                        "resolution": p.resolution,
                        "clips": p.num_clips,
                        "crops": p.num_crops,
                        "top1": p.reported_top1,
                        "url": p.url,
                    }
                    for p in presets
                ],
                indent=1,
            )
        )
        return EXIT_OK
    if not presets:
        print(f"no preset matches {args.pattern!r}", file=sys.stderr)
        return EXIT_ERROR
    rows = [
        [
            p.name,
            p.dataset,
            str(p.config.num_classes),
            f"{p.num_frames}x{p.resolution}",
            f"{p.num_clips}x{p.num_crops}",
            "-" if p.reported_top1 is None else f"{p.reported_top1:.1f}",
        ]
        for p in presets
    ]
    print(table(rows, ["name", "dataset", "classes", "frames", "views", "top1"]))
    print(f"\n{len(presets)} presets. `uniformerv2 info NAME` for details.")
    return EXIT_OK
