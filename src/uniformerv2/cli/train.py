"""``uniformerv2 train``: fine-tune with MMAction2's UniFormerV2 recipe; every TrainConfig field is an option."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ._common import EXIT_OK, add_dataclass_arguments, add_set_argument, command, parse_overrides

EXAMPLES = [
    "uniformerv2 train --model uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb "
    "--init pretrained --folder my_videos/ --val-split 0.1 --work-dir work_dirs/run",
    "uniformerv2 train --config run.py --resume",
    "torchrun --nproc-per-node 4 -m uniformerv2.cli train --model PRESET --ann-file train.txt --fsdp",
]


def register(sub: Any) -> None:
    from ..engine.config import LEGACY_NAMES, TrainConfig

    p = command(
        sub,
        "train",
        help="fine-tune a model (MMAction2's UniFormerV2 B/16 recipe by default; torchrun for several processes)",
        description="Fine-tune UniFormerV2 with MMAction2's recipe. Every field of "
        "uniformerv2.engine.config.TrainConfig is an option; --config FILE (JSON, or a Python "
        "file defining `config = TrainConfig(...)` or a dict) sets many at once, and options "
        "override it. Launch with `torchrun --nproc-per-node N -m uniformerv2.cli train ...` for "
        "several processes.",
        examples=EXAMPLES,
    )
    p.add_argument("model_arg", nargs="?", metavar="MODEL", default=argparse.SUPPRESS, help="same as --model")
    p.add_argument("--config", dest="config_file", metavar="FILE", help="a JSON or Python training config")
    add_set_argument(p, dest="model_set")
    add_dataclass_arguments(p, TrainConfig, aliases=LEGACY_NAMES)
    p.set_defaults(func=run)


def _load_config_file(path: str) -> Any:
    from ..engine.config import TrainConfig
    from ..errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: no such config file")
    if p.suffix == ".json":
        try:
            return TrainConfig.from_dict(json.loads(p.read_text()))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
    # TrainConfig(...) in a config file also takes the names earlier releases used (amp=, clip_len=, ...)
    ns: dict[str, Any] = {"TrainConfig": lambda **kw: TrainConfig.from_dict(kw)}
    exec(compile(p.read_text(), str(p), "exec"), ns)  # the user's own config file
    obj = ns.get("config")
    if isinstance(obj, TrainConfig):
        return obj
    if isinstance(obj, dict):
        return TrainConfig.from_dict(obj)
    raise ConfigError(f"{path}: define `config = TrainConfig(...)` or `config = dict(...)`")


def config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig of a command line: the config file's, then the options."""
    import dataclasses

    from ..engine.config import TrainConfig
    from ..errors import UsageError

    cfg = _load_config_file(args.config_file) if getattr(args, "config_file", None) else TrainConfig()
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    positional = getattr(args, "model_arg", None)
    if positional:
        if "model" in overrides and overrides["model"] != positional:
            raise UsageError(f"two models given: {positional!r} and --model {overrides['model']!r}")
        overrides["model"] = positional
    if getattr(args, "model_set", None):
        overrides["model_overrides"] = {**cfg.model_overrides, **parse_overrides(args.model_set)}
    return cfg.replace(**overrides)


def run(args: argparse.Namespace) -> int:
    from ..engine import distributed as D
    from ..engine.train import Trainer

    cfg = config_from_args(args)
    try:
        result = Trainer(cfg).fit()
    finally:
        D.destroy_distributed()
    if D.get_rank() == 0:
        print(
            f"trained {result.steps} steps ({result.epochs} epochs); model: {result.model_path}"
            + (f"; best val top-1 {result.best_top1:.4f}: {result.best_path}" if result.best_top1 is not None else "")
            + f"; log: {result.work_dir / 'log.jsonl'}; curves: {result.work_dir / 'curves.png'}"
        )
    return EXIT_OK
