"""The ``uniformerv2`` command line: a thin layer over the Python API."""
from __future__ import annotations

import argparse
import ast
import json
import sys
from typing import Any, Callable, Sequence

__all__ = ["main", "parse_overrides"]


class UsageError(Exception):
    """A command-line argument that cannot be used; printed as one line."""


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``key=value`` pairs (values are Python literals, e.g. ``return_list=[8,9,10,11]``) -> dict."""
    out: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected key=value, e.g. --set drop_path_rate=0.1")
        key, text = item.split("=", 1)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[key.strip()] = value
    return out


def _fmt_count(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.1f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    from .zoo import get_preset, list_models
    names = list_models(args.pattern, source=args.source)
    presets = [get_preset(n) for n in names]
    if args.json:
        print(json.dumps([{"name": p.name, "source": p.source, "dataset": p.dataset, "frames": p.num_frames,
                           "resolution": p.resolution, "clips": p.num_clips, "crops": p.num_crops,
                           "top1": p.reported_top1, "url": p.url} for p in presets], indent=1))
        return 0
    if not presets:
        print(f"no preset matches {args.pattern!r}", file=sys.stderr)
        return 1
    rows = [[p.name, p.dataset, str(p.config.num_classes), f"{p.num_frames}x{p.resolution}",
             f"{p.num_clips}x{p.num_crops}", "-" if p.reported_top1 is None else f"{p.reported_top1:.1f}"]
            for p in presets]
    print(_table(rows, ["name", "dataset", "classes", "frames", "views", "top1"]))
    print(f"\n{len(presets)} presets. `uniformerv2 info NAME` for details.")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .factory import model_info
    info = model_info(args.name)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    cfg = info.pop("config")
    lines = [
        ("name", info["name"]),
        ("source", info["source"]),
        ("dataset", f"{info['dataset']} ({info['num_classes']} classes)"),
        ("input", f"{info['frames']} frames x {info['resolution']}x{info['resolution']}"),
        ("test protocol", f"{info['protocol']} = {info['views']} views"),
        ("parameters", f"{info['params']:,} ({_fmt_count(info['params'])}; reported {info['reported_params']})"),
        ("FLOPs per view", f"{_fmt_count(info['macs_per_view'])} multiply-adds = "
                           f"{_fmt_count(info['flops_per_view'])} FLOPs (reported {info['reported_flops']})"),
        ("pretraining", info["pretrain"]),
        ("reported top-1", "-" if info["top1"] is None else f"{info['top1']}"),
        ("reported top-5", "-" if info["top5"] is None else f"{info['top5']}"),
        ("checkpoint", f"{info['url']} ({info['checkpoint_format']})"),
        ("architecture", ", ".join(f"{k}={v}" for k, v in cfg.items())),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k.ljust(width)}  {v}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .checkpoint import convert
    overrides = parse_overrides(args.set)
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    out = convert(args.src, args.dst, model=args.model, fmt=args.format, **overrides)
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="uniformerv2", description="UniFormerV2 video action recognition.")
    parser.add_argument("--version", action="version", version=f"uniformerv2 {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="list the model presets")
    p.add_argument("pattern", nargs="?", help="glob over preset names, e.g. '*kinetics400*'")
    p.add_argument("--source", choices=["mmaction2", "original"], help="only presets from this model zoo")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="parameters, FLOPs, protocol, checkpoint and accuracy of a preset")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="convert a checkpoint between formats (MMAction2 .pth, original .pyth, "
                                       "CLIP, ours .safetensors)")
    p.add_argument("src", help="source checkpoint file or URL")
    p.add_argument("dst", help="destination: .safetensors (ours, with the architecture), .pth (MMAction2), "
                               ".pyth (original)")
    p.add_argument("--model", help="preset the source belongs to (not needed for our .safetensors files)")
    p.add_argument("--format", choices=["uniformerv2", "mmaction2", "pyth"], help="override the format chosen "
                   "from the destination suffix")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="architecture overrides (MMAction2 names)")
    p.set_defaults(func=cmd_convert)

    from .demo import add_demo_command
    from .engine.evaluate import add_test_command
    from .engine.train import add_train_command
    from .export import add_export_command
    from .inference import add_predict_command
    from .timeline import add_timeline_command
    add_predict_command(sub)
    add_timeline_command(sub)
    add_test_command(sub)
    add_train_command(sub)
    add_demo_command(sub)
    add_export_command(sub)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    from .checkpoint import CheckpointError
    from .hub import HubError
    from .model import ConfigError
    return (UsageError, CheckpointError, HubError, ConfigError, ValueError, FileNotFoundError, KeyError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _known_errors() as e:
        if args.debug:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"uniformerv2 {args.command}: error: {msg}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - anything else is a bug: one line, the traceback with --debug
        if args.debug:
            raise
        print(f"uniformerv2 {args.command}: error: {type(e).__name__}: {e} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
