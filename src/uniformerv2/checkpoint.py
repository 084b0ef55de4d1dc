"""Checkpoint files: reading them safely, loading them into a model, saving them, and the metadata ours carry.

The format (MMAction2, original, CLIP, ours) is detected from the keys, never from the file name, and every
conversion between formats is :mod:`uniformerv2.conversions`'. Loading never unpickles code: ``.pth``/``.pyth``
go through ``torch.load(weights_only=True)``, and safetensors hold only tensors. Every failure is a
:class:`CheckpointError` that names the file.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ._version import __version__
from .atomic import atomic_write
from .config import PretrainedCfg, UniFormerV2Config
from .conversions import (
    FORMAT_NAME,
    channel_map,
    clip_to_uniformerv2,
    detect_format,
    first_keys,
    fit_pos_embed,
    from_uniformerv2,
    inflate_patch_kernel,
    k710_channel_map,
    select_head_channels,
    to_uniformerv2,
)
from .errors import CheckpointError, ConfigError
from .protocol import Protocol

if TYPE_CHECKING:  # annotations only: the network does not depend on its file formats
    from .model import UniFormerV2

__all__ = [
    "CheckpointError",
    "PRETRAINED_WEIGHTS",
    "read_checkpoint",
    "load_checkpoint",
    "load_state_dict",
    "save_checkpoint",
    "read_metadata",
    "read_config",
    "config_from_metadata",
    "pretrained_cfg_from_metadata",
]

SAFETENSORS_SUFFIXES = (".safetensors", ".st")
PRETRAINED_WEIGHTS = "model.safetensors"  # the weights of a Hugging Face-style folder (see hf_folder)

# --------------------------------------------------------------------------------------------- reading files


def _is_safetensors(path: Path) -> bool:
    if path.suffix in SAFETENSORS_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    # safetensors: an 8-byte little-endian header length, then a JSON object
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30)


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    return tensors, dict(meta)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _read_torch(path: Path) -> Any:
    if _is_torchscript(path):
        return _read_torchscript(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as e:
        msg = str(e)
        marker = "Trying to load unsupported GLOBAL "
        if marker in msg:
            detail = msg.split(marker, 1)[1].split("\n", 1)[0].strip()
            raise CheckpointError(
                f"{path}: refused to load: the file contains pickled code or objects ({detail}), and "
                "uniformerv2 only loads tensors (torch.load(weights_only=True)). If you trust the file, convert "
                "it to a plain state dict or safetensors yourself."
            ) from None
        if "Unsupported" in msg or "weights_only" in msg.lower() or "Weights only load failed" in msg:
            raise CheckpointError(
                f"{path}: refused to load: the file holds objects other than tensors "
                f"and plain containers ({msg.strip().splitlines()[-1][:200]})"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({msg.splitlines()[0][:200]})") from None
    except EOFError:
        raise CheckpointError(f"{path}: the file is empty or truncated") from None
    except RuntimeError as e:
        msg = str(e)
        if "TorchScript" in msg or "torch.jit" in msg or "constants.pkl" in msg:
            return _read_torchscript(path)
        if "zip archive" in msg or "central directory" in msg or "PytorchStreamReader" in msg:
            raise CheckpointError(
                f"{path}: the file is truncated or corrupt (it is not a complete "
                "PyTorch zip archive); download it again"
            ) from None
        raise CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint ({msg.splitlines()[0][:200]})") from None
    except Exception as e:  # noqa: BLE001 - the unpickler fails in many ways on files that are not checkpoints
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {str(e)[:200]})") from None


def _read_torchscript(path: Path) -> dict[str, Tensor]:
    """OpenAI's CLIP files are TorchScript archives; their weights are read without running Python pickles."""
    try:
        # torch.jit.load is unannotated in torch's own source
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())  # type: ignore[no-untyped-call]
    except Exception as e:  # noqa: BLE001 - any failure is a corrupt archive for the user
        raise CheckpointError(f"{path}: a TorchScript archive that cannot be read ({str(e)[:200]})") from None


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read a checkpoint file safely; return its flat tensor state dict and any metadata (safetensors only)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        if (path / PRETRAINED_WEIGHTS).is_file():  # a save_pretrained directory
            return read_checkpoint(path / PRETRAINED_WEIGHTS)
        raise CheckpointError(f"{path}: is a directory without {PRETRAINED_WEIGHTS}, not a checkpoint")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if _is_safetensors(path):
        return _read_safetensors(path)
    obj = _read_torch(path)
    return _unwrap(obj, path), {}


def _unwrap(obj: Any, path: Path) -> dict[str, Tensor]:
    """Find the state dict inside the common checkpoint wrappers."""
    for key in ("state_dict", "model_state", "model", "module"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors (keys: {first_keys(obj.keys())})")
    if all(k.startswith("module.") for k in tensors):  # saved from DistributedDataParallel
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


# -------------------------------------------------------------------------------------------- loading


def load_checkpoint(
    model: UniFormerV2,
    path_or_url: str | os.PathLike[str],
    *,
    strict: bool = True,
    channel_map_name: str | os.PathLike[str] | None = None,
    progress: bool = True,
    replace_head: bool | None = None,
) -> dict[str, Any]:
    """Load any supported checkpoint (file or URL) into ``model``; return a report of what was loaded.

    A CLIP checkpoint initialises the image part only. A Kinetics-710 head is mapped to a 400/600/700-class
    model through the shipped channel map (or ``channel_map_name``). ``replace_head`` (default: ``not strict``):
    a head of another size is skipped with a warning (fine-tuning on new classes). ``strict``: any other missing
    or unexpected key is an error; shapes must always fit.
    """
    from .hub import resolve

    path = resolve(path_or_url, progress=progress)
    state_dict, metadata = read_checkpoint(path)
    try:
        return load_state_dict(
            model, state_dict, metadata, strict=strict, channel_map_name=channel_map_name, replace_head=replace_head
        )
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def load_state_dict(
    model: UniFormerV2,
    state_dict: Mapping[str, Tensor],
    metadata: Mapping[str, str] | None = None,
    *,
    strict: bool = True,
    channel_map_name: str | os.PathLike[str] | None = None,
    replace_head: bool | None = None,
) -> dict[str, Any]:
    """Convert a state dict of any supported format and load it into ``model`` (see :func:`load_checkpoint`)."""
    if replace_head is None:
        replace_head = not strict
    fmt = detect_format(state_dict, metadata)
    own = model.state_dict()
    if fmt == "clip":
        sd = clip_to_uniformerv2(state_dict)
        conv = sd["backbone.conv1.weight"]
        if conv.ndim == 4:
            sd["backbone.conv1.weight"] = inflate_patch_kernel(conv, own["backbone.conv1.weight"].shape[2])
        fit_pos_embed(sd, own)
        _check_shapes(sd, own)
        model.load_state_dict(sd, strict=False)
        return {"format": fmt, "loaded": sorted(sd), "skipped": []}

    sd = to_uniformerv2(state_dict, fmt)
    skipped: list[str] = []
    head = sd.get("cls_head.fc_cls.weight", sd.get("cls_head.fc_cls.bias"))
    want = model.cfg.num_classes
    if head is not None and head.shape[0] != want:
        mapped = channel_map_name or k710_channel_map(head.shape[0], want)
        if mapped is not None:
            sd = select_head_channels(sd, channel_map(mapped))
        elif replace_head:
            skipped = [k for k in ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias") if k in own]
            for k in skipped:
                sd.pop(k, None)
            warnings.warn(
                f"the checkpoint's head has {head.shape[0]} classes and the model {want}: "
                "the head keeps its fresh initialisation",
                stacklevel=3,
            )
    fit_pos_embed(sd, own)
    _check_shapes(sd, own)
    missing = [k for k in own if k not in sd and k not in skipped and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    if only_head(sd):  # a bare head state dict
        missing = [k for k in missing if k.startswith("cls_head.")]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing keys {first_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {first_keys(unexpected)}")
        raise CheckpointError(
            f"does not fit the model ({fmt} format): "
            + "; ".join(parts)
            + ". Is it a checkpoint of another architecture (check the preset or overrides)?"
        )
    model.load_state_dict(sd, strict=False)
    return {
        "format": fmt,
        "loaded": sorted(k for k in sd if k in own),
        "skipped": skipped,
        "missing": missing,
        "unexpected": unexpected,
    }


def only_head(sd: Mapping[str, Tensor]) -> bool:
    return bool(sd) and all(k.startswith("cls_head.") for k in sd)


def _check_shapes(sd: Mapping[str, Tensor], own: Mapping[str, Tensor]) -> None:
    bad = [
        f"{k} {list(v.shape)} (model: {list(own[k].shape)})"
        for k, v in sd.items()
        if k in own and v.shape != own[k].shape
    ]
    if bad:
        raise CheckpointError(
            "shapes differ from the model's: "
            + first_keys(bad, 3)
            + ". Is it a checkpoint of another architecture (check the preset or overrides)?"
        )


# ------------------------------------------------------------------------------ our own format, saving


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of one of our safetensors checkpoints, read from its header only (empty for other files)."""
    path = Path(path)
    if not path.is_file() or not _is_safetensors(path):
        return {}
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def config_from_metadata(meta: Mapping[str, str], source: object = "checkpoint") -> UniFormerV2Config | None:
    """The architecture our checkpoints record in their metadata, or None when there is none."""
    if meta.get("format") != FORMAT_NAME or "config" not in meta:
        return None
    try:
        return UniFormerV2Config.from_dict(json.loads(meta["config"]))
    except (json.JSONDecodeError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{source}: the stored model configuration is invalid ({e})") from None


def read_config(path: str | os.PathLike[str]) -> UniFormerV2Config | None:
    """The architecture stored in one of our safetensors checkpoints, or None for other files."""
    return config_from_metadata(read_metadata(path), path)


def _json_list(text: str | None) -> list[str] | None:
    try:
        value = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


def pretrained_cfg_from_metadata(
    meta: Mapping[str, str], cfg: UniFormerV2Config
) -> tuple[Protocol | None, list[str] | None]:
    """The test protocol and class names our checkpoints record (each None where the file has none).

    Reads the current layout (``protocol``, ``class_names`` as JSON) and the one earlier releases wrote
    (``num_frames``, ``resolution``, ``num_clips``, ``num_crops``, ``sampling``; ``label_map``).
    """
    protocol = None
    if meta.get("protocol"):
        try:
            protocol = Protocol.from_dict(json.loads(meta["protocol"]))
        except (json.JSONDecodeError, TypeError, ValueError):
            protocol = None
    elif any(k in meta for k in ("num_frames", "resolution", "num_clips", "num_crops", "sampling")):
        fields: dict[str, Any] = {"frames": int(cfg.t_size), "size": int(cfg.input_resolution)}
        for key, meta_key in (
            ("frames", "num_frames"),
            ("size", "resolution"),
            ("clips", "num_clips"),
            ("crops", "num_crops"),
        ):
            if str(meta.get(meta_key, "")).isdigit():
                fields[key] = int(meta[meta_key])
        if meta.get("sampling") in ("mmaction2", "original"):
            fields["sampling"] = meta["sampling"]
        protocol = Protocol(**fields)
    names = _json_list(meta.get("class_names"))
    if names is None and meta.get("label_map"):
        from .data.labels import read_label_map

        names = list(read_label_map(meta["label_map"]))
    return protocol, names


def save_checkpoint(
    model: UniFormerV2 | Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    config: UniFormerV2Config | None = None,
    fmt: str = "uniformerv2",
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a model atomically: 'uniformerv2' (safetensors + config), 'mmaction2' (.pth) or 'pyth' (.pyth)."""
    path = Path(path)
    meta = {}
    if isinstance(model, nn.Module):
        config = config or model.cfg
        state = model.state_dict()
        pretrained = getattr(model, "pretrained_cfg", None)
        if isinstance(pretrained, PretrainedCfg):
            meta.update(pretrained.to_metadata())
    else:
        state = dict(model)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if fmt == "uniformerv2":
        if config is None:
            raise CheckpointError("saving a bare state dict in the uniformerv2 format needs its config")
        from safetensors.torch import save_file

        meta.update({"format": FORMAT_NAME, "config": json.dumps(config.to_dict()), "uniformerv2_version": __version__})
        meta.update(extra_metadata or {})
        atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))
    elif fmt == "mmaction2":
        atomic_write(
            path,
            lambda tmp: torch.save(
                {"state_dict": from_uniformerv2(state, fmt), "meta": dict(extra_metadata or {})}, tmp
            ),
        )
    elif fmt == "pyth":
        atomic_write(path, lambda tmp: torch.save({"model_state": from_uniformerv2(state, fmt)}, tmp))
    else:
        raise CheckpointError(f"unknown checkpoint format {fmt!r}; choose one of uniformerv2, mmaction2, pyth")
    return path
