"""Building models: ``create_model`` from a preset name and/or a checkpoint, and what ``info`` reports."""
from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .checkpoint import CheckpointError, load_state_dict, read_checkpoint, read_config
from .hub import resolve
from .model import UniFormerV2, UniFormerV2Config
from .zoo import CLIP_CHECKPOINT_URLS, Preset, get_preset

__all__ = ["create_model", "count_parameters", "count_flops", "model_info", "init_from_clip"]

_LIST_FIELDS = ("return_list", "mlp_dropout")


def create_model(name: str | None = None, *, pretrained: bool = False, checkpoint: str | os.PathLike | None = None,
                 num_classes: int | None = None, progress: bool = True, **overrides: Any) -> UniFormerV2:
    """Build a UniFormerV2 the way timm's ``create_model`` does.

    ``name`` is a preset (see :func:`uniformerv2.list_models`); it may be omitted when ``checkpoint`` is one of our
    safetensors files, which carry their architecture. ``pretrained=True`` downloads the preset's published
    checkpoint; ``checkpoint`` is a local file or URL in any supported format (MMAction2 ``.pth``, original
    ``.pyth``, CLIP weights, our ``.safetensors``). ``overrides`` use MMAction2's backbone argument names.
    With no ``num_classes``, a checkpoint's own head size wins over the preset's. A loaded model is in eval mode.
    """
    for key in _LIST_FIELDS:
        if key in overrides and isinstance(overrides[key], list):
            overrides[key] = tuple(overrides[key])
    source = checkpoint
    preset: Preset | None = None
    if name is not None:
        preset = get_preset(name)
        cfg = preset.config
        if pretrained and source is None:
            if not preset.url:
                raise ValueError(f"preset {name!r} has no published checkpoint; pass checkpoint=PATH")
            source = preset.url
    else:
        if checkpoint is None:
            raise ValueError("create_model needs a preset name, or checkpoint= one of our .safetensors files")
        cfg = None
    state = metadata = None
    path = None
    if source is not None:
        path = resolve(source, progress=progress)
        if cfg is None:
            cfg = read_config(path)
            if cfg is None:
                raise CheckpointError(f"{path}: this checkpoint does not record its architecture; name the preset "
                                      "it belongs to, e.g. create_model('<preset>', checkpoint=...)")
        state, metadata = read_checkpoint(path)
    assert cfg is not None
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    elif state is not None:
        head = _head_size(state)
        if head is not None and head != cfg.num_classes and not (head == 710 and cfg.num_classes in (400, 600, 700)):
            overrides["num_classes"] = head
    model = UniFormerV2(cfg.replace(**overrides) if overrides else cfg)
    if state is not None:
        try:
            load_state_dict(model, state, metadata, strict=num_classes is None)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
        model.eval()
    return model


def _head_size(state: dict[str, torch.Tensor]) -> int | None:
    for key in ("cls_head.fc_cls.weight", "backbone.transformer.proj.2.weight", "transformer.proj.2.weight",
                "fc_cls.weight"):
        if key in state and state[key].ndim == 2:
            return int(state[key].shape[0])
    return None


def init_from_clip(model: UniFormerV2, clip: str | os.PathLike, *, progress: bool = True) -> UniFormerV2:
    """Initialise the image part from CLIP: a file or URL of any CLIP format, or 'ViT-B/16', 'ViT-L/14', ..."""
    from .checkpoint import load_checkpoint
    source = CLIP_CHECKPOINT_URLS.get(str(clip), clip)
    load_checkpoint(model, source, progress=progress)
    return model


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(cfg: UniFormerV2Config, num_frames: int | None = None, resolution: int | None = None) -> int:
    """FLOPs of one view (2 per multiply-add, torch.utils.flop_counter's convention), counted on the meta device."""
    t = num_frames or cfg.t_size
    r = resolution or cfg.input_resolution
    with torch.device("meta"):
        model = UniFormerV2(cfg).eval()
        x = torch.empty(1, 3, t, r, r)
        with FlopCounterMode(display=False) as counter:
            model(x)
    return int(counter.get_total_flops())


def model_info(name: str) -> dict[str, Any]:
    """What ``uniformerv2 info NAME`` prints: architecture, size, FLOPs, protocol, checkpoint and accuracy."""
    p = get_preset(name)
    with torch.device("meta"):
        params = count_parameters(UniFormerV2(p.config))
    flops = count_flops(p.config, p.num_frames, p.resolution)
    return {
        "name": p.name,
        "source": p.source,
        "dataset": p.dataset,
        "num_classes": p.config.num_classes,
        "frames": p.num_frames,
        "resolution": p.resolution,
        "protocol": f"{p.num_clips} clips x {p.num_crops} crops",
        "views": p.num_clips * p.num_crops,
        "params": params,
        "flops_per_view": flops,
        "macs_per_view": flops // 2,
        "reported_flops": p.flops,
        "reported_params": p.params,
        "pretrain": p.pretrain,
        "url": p.url,
        "checkpoint_format": p.checkpoint_format,
        "top1": p.reported_top1,
        "top5": p.top5,
        "config": p.config.to_dict(),
    }
