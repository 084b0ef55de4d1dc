"""Golden parameter counts of MMAction2 1.2.0's UniFormerV2 configs (the oracle for tests/test_zoo.py).

Run with a Python that has MMAction2 1.2.0 installed (never the project's environment)::

    /tmp/uniformerv2-ref/bin/python scripts/oracle_param_counts.py

For every ``configs/recognition/uniformerv2/*.py`` shipped inside the installed ``mmaction`` package this builds
the config's ``model`` with MMAction2's own registry (CLIP weights and checkpoints disabled, so nothing is
downloaded), counts its parameters (all, ``backbone.*`` and ``cls_head.*``), and records the facts of the config
that the zoo mirrors: the backbone arguments, the head, and the test pipeline's sampling and cropping. The result
is written to ``tests/fixtures/param_counts/mmaction2_param_counts.json``, keyed by config name without ``.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "param_counts" / "mmaction2_param_counts.json"
)
BACKBONE_KEYS = (
    "input_resolution",
    "patch_size",
    "width",
    "layers",
    "heads",
    "backbone_drop_path_rate",
    "t_size",
    "kernel_size",
    "dw_reduction",
    "temporal_downsample",
    "no_lmhra",
    "double_lmhra",
    "return_list",
    "n_layers",
    "n_dim",
    "n_head",
    "mlp_factor",
    "drop_path_rate",
    "mlp_dropout",
)


def config_dir() -> Path:
    """The uniformerv2 config folder inside the installed mmaction package."""
    import mmaction

    return Path(os.path.dirname(mmaction.__file__)) / ".mim" / "configs" / "recognition" / "uniformerv2"


def count(module: torch.nn.Module) -> int:
    """Number of scalar parameters of a module."""
    return sum(p.numel() for p in module.parameters())


def test_protocol(cfg: Any) -> dict[str, Any] | None:
    """Sampling and cropping of the config's test pipeline, or None where it has none."""
    pipeline = cfg.get("test_pipeline")
    if not pipeline:
        return None
    out: dict[str, Any] = {}
    for step in pipeline:
        kind = step["type"]
        if kind == "UniformSample":
            out["clip_len"] = step["clip_len"]
            out["num_clips"] = step["num_clips"]
        elif kind == "Resize":
            out["resize_scale"] = list(step["scale"])
        elif kind in ("ThreeCrop", "CenterCrop", "TenCrop"):
            out["crop"] = kind
            out["crop_size"] = step["crop_size"]
            out["num_crops"] = {"ThreeCrop": 3, "CenterCrop": 1, "TenCrop": 10}[kind]
    return out


def describe(path: Path) -> dict[str, Any]:
    """Build one config's model and return its parameter counts and mirrored facts."""
    from mmaction.registry import MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(str(path))
    model_cfg = cfg.model.copy()
    backbone = model_cfg.backbone
    head = model_cfg.cls_head
    facts = {
        "backbone": {
            k: (list(backbone[k]) if isinstance(backbone[k], (list, tuple)) else backbone[k])
            for k in BACKBONE_KEYS
            if k in backbone
        },
        "clip_pretrained_name": backbone.get("pretrained"),
        "head": {
            "type": head["type"],
            "num_classes": head["num_classes"],
            "in_channels": head["in_channels"],
            "dropout_ratio": head.get("dropout_ratio"),
        },
        "head_channel_map": head.get("channel_map"),
        "test_protocol": test_protocol(cfg),
    }
    backbone["clip_pretrained"] = False
    for part in (backbone, head):
        for key in ("init_cfg", "pretrained", "channel_map"):
            part.pop(key, None)
    model = MODELS.build(model_cfg)
    facts["params"] = {"total": count(model), "backbone": count(model.backbone), "cls_head": count(model.cls_head)}
    del model
    gc.collect()
    return facts


def main(argv: list[str] | None = None) -> int:
    """Write the JSON of golden counts for every uniformerv2 config."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)

    import mmaction
    from mmaction.utils import register_all_modules

    register_all_modules()
    torch.set_grad_enabled(False)
    paths = sorted(config_dir().glob("*.py"))
    if not paths:
        print(f"no configs under {config_dir()}", file=sys.stderr)
        return 1
    result: dict[str, Any] = {}
    for path in paths:
        result[path.stem] = describe(path)
        print(f"{path.stem}: {result[path.stem]['params']}", flush=True)
    payload = {
        "_meta": {
            "mmaction2_version": mmaction.__version__,
            "torch_version": torch.__version__,
            "configs": len(result),
            "command": "python scripts/oracle_param_counts.py",
        },
        "configs": result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(result)} configs to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
