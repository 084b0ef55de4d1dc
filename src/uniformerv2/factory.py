"""Building models: ``create_model`` resolves a preset and/or a checkpoint once -- architecture, weights, test
protocol, class names -- and attaches what it found as ``model.pretrained_cfg``; plus ``convert`` and what
``info`` reports."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .checkpoint import (
    config_from_metadata,
    load_checkpoint,
    load_state_dict,
    pretrained_cfg_from_metadata,
    read_checkpoint,
    read_config,
    save_checkpoint,
)
from .config import PretrainedCfg, UniFormerV2Config
from .conversions import head_size, k710_channel_map
from .errors import CheckpointError, UnknownModelError, UsageError
from .hf_folder import HF_HUB_PREFIX, snapshot
from .hub import is_url, resolve
from .model import UniFormerV2
from .protocol import Protocol
from .zoo import CLIP_CHECKPOINT_URLS, Preset, get_preset

__all__ = [
    "create_model",
    "from_pretrained",
    "model_config",
    "apply_labels",
    "convert",
    "count_parameters",
    "count_flops",
    "model_info",
    "init_from_clip",
    "known_class_names",
]

_LIST_FIELDS = ("return_list", "mlp_dropout")
_GRAD_CHECKPOINT_KEYS = ("use_checkpoint", "checkpoint_num")


def _preset_or_file(
    name: str | os.PathLike[str] | None, checkpoint: str | os.PathLike[str] | None
) -> tuple[Preset | None, str | os.PathLike[str] | None]:
    """A model may be named by a preset, or by one of our self-describing checkpoint files in its place."""
    if name is None:
        return None, checkpoint
    if str(name).startswith(HF_HUB_PREFIX):
        return None, snapshot(str(name))
    try:
        return get_preset(str(name)), checkpoint
    except UnknownModelError:
        if checkpoint is None and (os.path.exists(name) or is_url(str(name))):
            return None, name
        raise


def known_class_names(
    num_classes: int, *, checkpoint_names: list[str] | None, preset: Preset | None
) -> tuple[tuple[str, ...] | None, str | None]:
    """The class names a model comes with and where from: those its checkpoint records, else its preset's label
    map, each only where its length fits the head."""
    from .data.labels import read_label_map

    candidates = [(checkpoint_names, "the checkpoint's class names")]
    if preset is not None and preset.label_map:
        candidates.append((read_label_map(preset.label_map), f"label map {preset.label_map!r}"))
    for names, source in candidates:
        if names is not None and len(names) == num_classes:
            return tuple(names), source
    return None, None


def apply_labels(model: UniFormerV2, labels: str | os.PathLike[str] | Sequence[str]) -> UniFormerV2:
    """Make ``model`` score exactly the classes ``labels`` names (a label-map file, a shipped map such as 'k400', or
    a list), in that order, by name: the head keeps the matching rows; nothing is trained.

    A model that names its classes (its checkpoint or preset does) is matched by name -- exactly, through the
    Kinetics-710 channel maps for a 710-class model, then ignoring case and punctuation -- so a list in another
    order is applied by name, never by position. A model without names takes a list of its own length as is.
    """
    from .data.labels import class_rows, read_label_map

    if isinstance(labels, (str, os.PathLike)):
        wanted, source = read_label_map(labels), f"--labels {labels}"
    else:
        wanted, source = [str(n) for n in labels], "labels"
    pretrained = model.pretrained_cfg
    known = pretrained.class_names
    if known is None:
        if len(wanted) != model.num_classes:
            raise UsageError(
                f"{source}: {len(wanted)} class names, but the model has {model.num_classes} classes "
                "and names none of them, so they cannot be matched by name"
            )
    else:
        rows = class_rows(wanted, known, source=source)
        if rows != list(range(len(known))):
            model.select_classes(rows)
    model.pretrained_cfg = pretrained.replace(class_names=tuple(wanted), class_names_source=source)
    return model


def create_model(
    name: str | os.PathLike[str] | None = None,
    *,
    pretrained: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    labels: str | os.PathLike[str] | Sequence[str] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> UniFormerV2:
    """Build a UniFormerV2 the way timm's ``create_model`` does.

    ``name`` is a preset (see :func:`uniformerv2.list_models`), or one of our safetensors files, which carry their
    architecture (then ``checkpoint`` may be omitted). ``pretrained=True`` downloads the preset's published
    checkpoint; ``checkpoint`` is a local file or URL in any supported format (MMAction2 ``.pth``, original
    ``.pyth``, CLIP weights, our ``.safetensors``). ``overrides`` use MMAction2's backbone argument names (and the
    original code's ``use_checkpoint``/``checkpoint_num``, which turn on gradient checkpointing). With no
    ``num_classes``, a checkpoint's own head size wins over the preset's; with one, only the classifier head may
    differ from the checkpoint. ``labels`` (a file, a shipped map or a list of names) makes the model score exactly
    those classes, in that order, matched by name (see :func:`apply_labels`).

    The model comes back in eval mode when weights were loaded, with ``model.pretrained_cfg`` saying which preset
    and checkpoint it is, its test protocol and its class names. The checkpoint file is read once.
    """
    grad_checkpoint = {k: overrides.pop(k) for k in _GRAD_CHECKPOINT_KEYS if k in overrides}
    for key in _LIST_FIELDS:
        if key in overrides and isinstance(overrides[key], list):
            overrides[key] = tuple(overrides[key])
    preset, source = _preset_or_file(name, checkpoint)
    if preset is not None and pretrained and source is None:
        if not preset.url:
            raise UsageError(
                f"preset {preset.name!r} has no published checkpoint; pass checkpoint=PATH (--checkpoint FILE)"
            )
        source = preset.url
    if preset is None and source is None:
        raise UsageError("name a preset (see `uniformerv2 list`) or one of our .safetensors checkpoints")

    state = None
    metadata: dict[str, str] = {}
    path: Path | None = None
    if source is not None:
        path = resolve(source, progress=progress)
        state, metadata = read_checkpoint(path)
    cfg = preset.config if preset is not None else config_from_metadata(metadata, path)
    if cfg is None:
        raise CheckpointError(
            f"{path}: this checkpoint does not record its architecture; name the preset it "
            "belongs to: --model PRESET on the command line (`uniformerv2 list` shows them), "
            "create_model('PRESET', checkpoint=...) in Python"
        )
    if num_classes is not None:
        overrides["num_classes"] = int(num_classes)
    elif state is not None:
        head = head_size(state)
        if head is not None and head != cfg.num_classes and k710_channel_map(head, cfg.num_classes) is None:
            overrides["num_classes"] = head
    model = UniFormerV2(cfg.replace(**overrides) if overrides else cfg)
    if grad_checkpoint.get("use_checkpoint"):
        model.set_grad_checkpointing(True, int(grad_checkpoint.get("checkpoint_num", 0)))
    if state is not None:
        try:
            load_state_dict(model, state, metadata, strict=True, replace_head=num_classes is not None)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
        model.eval()

    protocol, checkpoint_names = pretrained_cfg_from_metadata(metadata, model.cfg)
    if preset is not None:
        protocol = preset.protocol
    elif protocol is None:
        protocol = Protocol(int(model.cfg.t_size), int(model.cfg.input_resolution))
    # crops are the model's input size, which an override (input_resolution=R) may have changed
    protocol = protocol.replace(size=int(model.cfg.input_resolution))
    names, names_source = known_class_names(model.num_classes, checkpoint_names=checkpoint_names, preset=preset)
    model.pretrained_cfg = PretrainedCfg(
        protocol=protocol,
        preset=preset.name if preset else metadata.get("preset"),
        checkpoint=None if source is None else str(source),
        class_names=names,
        class_names_source=names_source,
    )
    return apply_labels(model, labels) if labels is not None else model


def model_config(name: str | os.PathLike[str], **overrides: Any) -> tuple[UniFormerV2Config, Preset | None]:
    """The architecture a preset or one of our checkpoint files describes, with ``overrides``, and the preset;
    nothing is built, downloaded or loaded (a file's header is read)."""
    preset, source = _preset_or_file(name, None)
    cfg: UniFormerV2Config | None
    if preset is not None:
        cfg = preset.config
    else:
        assert source is not None  # a name that is no preset is the file itself
        if is_url(str(source)):
            raise UsageError(f"{source}: name a preset, or a local copy of one of our .safetensors checkpoints")
        cfg = read_config(source)
        if cfg is None:
            raise CheckpointError(
                f"{source}: not one of our .safetensors checkpoints (which record their "
                "architecture); name a preset and pass the file as --init"
            )
    for key in _LIST_FIELDS:
        if key in overrides and isinstance(overrides[key], list):
            overrides[key] = tuple(overrides[key])
    return (cfg.replace(**overrides) if overrides else cfg), preset


def from_pretrained(name: str | os.PathLike[str], **kwargs: Any) -> UniFormerV2:
    """A model from a :meth:`~uniformerv2.UniFormerV2.save_pretrained` directory, ``hf-hub:ORG/NAME`` on the Hugging
    Face Hub, one of our checkpoint files, or a preset with its published weights; ``kwargs`` as create_model's."""
    preset, _ = _preset_or_file(name, None) if not str(name).startswith(HF_HUB_PREFIX) else (None, None)
    return create_model(name, pretrained=preset is not None, **kwargs)


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    model: str | None = None,
    fmt: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Path:
    """Convert a checkpoint to another format, checking that it loads into the named architecture.

    ``model`` names the preset whose architecture the checkpoint has (not needed for our own files).
    ``fmt`` defaults from the destination: a folder (or a name without a suffix) -> a save_pretrained directory,
    ``.safetensors`` -> ours, ``.pyth`` -> original, else MMAction2.
    With ``num_classes`` only the classifier head may differ; every other missing or unexpected key is an error.
    ``metrics`` (measured with ``test``) are stated in a folder's model card.
    """
    fmt = fmt or destination_format(dst)
    dst = Path(dst)
    if metrics is not None and fmt != "pretrained":
        raise UsageError(f"{dst}: metrics are stated in a folder's model card; the {fmt} format has no place for them")
    net = create_model(model, checkpoint=src, **overrides)
    if fmt == "pretrained":
        return Path(net.save_pretrained(str(dst), metrics=metrics))
    return save_checkpoint(net, dst, fmt=fmt)


#: Destination suffixes of :func:`convert` and the format each means.
CONVERT_SUFFIXES = {".safetensors": "uniformerv2", ".pth": "mmaction2", ".pt": "mmaction2", ".pyth": "pyth"}


def destination_format(dst: str | os.PathLike[str]) -> str:
    """The format :func:`convert` writes to ``dst``: a folder (an existing one, a name ending in ``/`` or without a
    suffix) is a Hugging Face-style directory, else the suffix says; an unknown suffix is a usage error."""
    text = os.fspath(dst)
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir() or not path.suffix:
        return "pretrained"
    if path.suffix in CONVERT_SUFFIXES:
        return CONVERT_SUFFIXES[path.suffix]
    known = ", ".join(f"{s} ({f})" for s, f in CONVERT_SUFFIXES.items())
    raise UsageError(
        f"{text}: unknown suffix {path.suffix!r}: give {known}, or a folder (end the name with /) for a Hugging "
        "Face-style directory"
    )


def init_from_clip(model: UniFormerV2, clip: str | os.PathLike[str], *, progress: bool = True) -> UniFormerV2:
    """Initialise the image part from CLIP: a file or URL of any CLIP format, or 'ViT-B/16', 'ViT-L/14', ..."""
    source = CLIP_CHECKPOINT_URLS.get(str(clip), clip)
    load_checkpoint(model, source, progress=progress)
    return model


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(cfg: UniFormerV2Config, frames: int | None = None, size: int | None = None) -> int:
    """FLOPs of one view (2 per multiply-add, torch.utils.flop_counter's convention), counted on the meta device."""
    t = frames or cfg.t_size
    r = size or cfg.input_resolution
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
