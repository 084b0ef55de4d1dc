"""Checkpoint formats and every conversion between them.

Formats read (detected from the keys, never from the file name):

* ``mmaction2``: MMAction2 ``Recognizer3D`` state dicts (``backbone.*``, ``cls_head.*``), bare or wrapped in
  ``{'state_dict': ...}``; a bare backbone or head state dict is accepted too. These are our own parameter names.
* ``pyth``: the authors' original SlowFast-based checkpoints (``{'model_state': ...}``), whose head lives in
  ``backbone.transformer.proj`` (LayerNorm, Dropout, Linear).
* ``clip``: a CLIP image encoder to initialise from: OpenAI CLIP (``visual.*``; TorchScript archives too),
  open_clip (``visual.*``), Hugging Face ``CLIPVisionModel``/``CLIPModel`` (``vision_model.*``), or MMAction2's
  extracted CLIP visual encoders (``conv1.weight``, ``transformer.resblocks.*``). The 2D patch convolution is
  inflated to 3D as MMAction2 does (the 2D kernel at the temporal centre, zeros elsewhere).
* ``uniformerv2``: our own safetensors files, with the architecture in the metadata.

Loading never unpickles code: ``.pth``/``.pyth`` go through ``torch.load(weights_only=True)``, and safetensors
hold only tensors. Every failure is a :class:`CheckpointError` that names the file.
"""
from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import torch
from torch import Tensor, nn

from ._version import __version__
from .atomic import atomic_write
from .config import PretrainedCfg, UniFormerV2Config
from .errors import CheckpointError, ConfigError
from .protocol import Protocol

if TYPE_CHECKING:  # annotations only: the network does not depend on its file formats
    from .model import UniFormerV2

__all__ = [
    "CheckpointError",
    "read_checkpoint",
    "detect_format",
    "to_uniformerv2",
    "clip_to_uniformerv2",
    "load_checkpoint",
    "save_checkpoint",
    "read_config",
    "channel_map",
    "select_head_channels",
    "head_size",
    "k710_channel_map",
    "config_from_metadata",
    "resample_pos_embed",
    "save_pretrained",
    "pretrained_cfg_from_metadata",
]

FORMAT_NAME = "uniformerv2"
SAFETENSORS_SUFFIXES = (".safetensors", ".st")
PRETRAINED_WEIGHTS, PRETRAINED_CONFIG, MODEL_CARD = "model.safetensors", "config.json", "README.md"

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
    from safetensors import SafetensorError
    from safetensors.torch import safe_open
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
                "it to a plain state dict or safetensors yourself.") from None
        if "Unsupported" in msg or "weights_only" in msg.lower() or "Weights only load failed" in msg:
            raise CheckpointError(f"{path}: refused to load: the file holds objects other than tensors "
                                  f"and plain containers ({msg.strip().splitlines()[-1][:200]})") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({msg.splitlines()[0][:200]})") from None
    except EOFError:
        raise CheckpointError(f"{path}: the file is empty or truncated") from None
    except RuntimeError as e:
        msg = str(e)
        if "TorchScript" in msg or "torch.jit" in msg or "constants.pkl" in msg:
            return _read_torchscript(path)
        if "zip archive" in msg or "central directory" in msg or "PytorchStreamReader" in msg:
            raise CheckpointError(f"{path}: the file is truncated or corrupt (it is not a complete "
                                  "PyTorch zip archive); download it again") from None
        raise CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint ({msg.splitlines()[0][:200]})") \
            from None
    except Exception as e:  # noqa: BLE001 - the unpickler fails in many ways on files that are not checkpoints
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {str(e)[:200]})") from None


def _read_torchscript(path: Path) -> dict[str, Tensor]:
    """OpenAI's CLIP files are TorchScript archives; their weights are read without running Python pickles."""
    try:
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except Exception as e:  # noqa: BLE001 - any failure is a corrupt archive for the user
        raise CheckpointError(f"{path}: a TorchScript archive that cannot be read ({str(e)[:200]})") from None


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, str]]:
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
        raise CheckpointError(f"{path}: holds no tensors (keys: {_first(obj.keys())})")
    if all(k.startswith("module.") for k in tensors):  # saved from DistributedDataParallel
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def _first(keys: Iterable[str], n: int = 5) -> str:
    keys = list(keys)
    shown = ", ".join(map(str, keys[:n]))
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


# ------------------------------------------------------------------------------------------ format detection

def detect_format(state_dict: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None) -> str:
    """Name the format of a state dict: 'uniformerv2', 'mmaction2', 'pyth' or 'clip'."""
    if metadata and metadata.get("format") == FORMAT_NAME:
        return "uniformerv2"
    keys = set(state_dict)
    if _hf_clip_prefix(keys) is not None or "visual.conv1.weight" in keys:
        return "clip"
    if any(".transformer.proj." in f".{k}" for k in keys):
        return "pyth"
    if any(k.startswith(("backbone.", "cls_head.")) for k in keys):
        return "mmaction2"
    if "transformer.temporal_cls_token" in keys or "fc_cls.weight" in keys:
        return "mmaction2"  # a bare backbone or head state dict
    if "conv1.weight" in keys and any(k.startswith("transformer.resblocks.") for k in keys):
        return "clip"  # MMAction2's extracted CLIP visual encoder
    raise CheckpointError(f"not a UniFormerV2, MMAction2, original UniFormerV2 or CLIP checkpoint "
                          f"(keys: {_first(sorted(keys))})")


def to_uniformerv2(state_dict: Mapping[str, Tensor], fmt: str) -> dict[str, Tensor]:
    """Rename a 'mmaction2', 'pyth' or 'uniformerv2' state dict to this package's parameter names."""
    out: dict[str, Tensor] = {}
    for k, v in state_dict.items():
        if k.startswith("data_preprocessor."):  # MMAction2's mean/std buffers; we normalise in the data pipeline
            continue
        if fmt == "pyth":
            k = k[len("backbone."):] if k.startswith("backbone.") else k
            if k.startswith("transformer.proj.0."):
                k = "backbone.transformer.norm." + k[len("transformer.proj.0."):]
            elif k.startswith("transformer.proj.2."):
                k = "cls_head.fc_cls." + k[len("transformer.proj.2."):]
            else:
                k = "backbone." + k
        elif fmt in ("mmaction2", "uniformerv2"):
            if k.startswith("fc_cls."):
                k = "cls_head." + k
            elif not k.startswith(("backbone.", "cls_head.")):
                k = "backbone." + k
        else:
            raise CheckpointError(f"cannot rename format {fmt!r}")
        out[k] = v
    return out


def from_uniformerv2(state_dict: Mapping[str, Tensor], fmt: str) -> dict[str, Tensor]:
    """Rename our state dict to the 'mmaction2' or 'pyth' layout (the inverse of :func:`to_uniformerv2`)."""
    if fmt in ("mmaction2", "uniformerv2"):
        return dict(state_dict)
    if fmt != "pyth":
        raise CheckpointError(f"cannot write format {fmt!r}")
    out = {}
    for k, v in state_dict.items():
        if k.startswith("backbone.transformer.norm."):
            k = "backbone.transformer.proj.0." + k[len("backbone.transformer.norm."):]
        elif k.startswith("cls_head.fc_cls."):
            k = "backbone.transformer.proj.2." + k[len("cls_head.fc_cls."):]
        out[k] = v
    return out


# --------------------------------------------------------------------------------------------------- CLIP

def resample_pos_embed(pos_embed: Tensor, grid: int) -> Tensor:
    """Absolute position embedding ``[1 + g*g, C]`` -> ``[1 + grid*grid, C]`` for another input size: the class
    token's row kept, the patch grid resampled bicubically (``align_corners=False``), as timm's
    ``resample_abs_pos_embed`` does (antialiased when it shrinks)."""
    n, c = pos_embed.shape
    old = int(round((n - 1) ** 0.5))
    if old * old != n - 1:
        raise CheckpointError(f"the position embedding has {n - 1} patch rows, not a square grid")
    if old == grid:
        return pos_embed
    patches = pos_embed[1:].reshape(1, old, old, c).permute(0, 3, 1, 2).float()  # [1, C, g, g]
    patches = torch.nn.functional.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False,
                                              antialias=grid < old)
    patches = patches.permute(0, 2, 3, 1).reshape(grid * grid, c).to(pos_embed.dtype)  # [grid*grid, C]
    return torch.cat([pos_embed[:1], patches])


def _fit_pos_embed(sd: dict[str, Tensor], own: Mapping[str, Tensor]) -> None:
    """A checkpoint trained at another input size: resample its position embedding to the model's grid."""
    key = "backbone.positional_embedding"
    if key in sd and key in own and sd[key].ndim == 2 and sd[key].shape != own[key].shape \
            and sd[key].shape[1] == own[key].shape[1]:
        sd[key] = resample_pos_embed(sd[key], int(round((own[key].shape[0] - 1) ** 0.5)))


def _inflate(weight_2d: Tensor, time_dim: int) -> Tensor:
    """2D patch kernel [C, 3, p, p] -> 3D [C, 3, T, p, p]: the 2D kernel at the temporal centre, zeros elsewhere."""
    weight_3d = weight_2d.new_zeros(weight_2d.shape[:2] + (time_dim,) + weight_2d.shape[2:])
    weight_3d[:, :, time_dim // 2] = weight_2d
    return weight_3d


def clip_to_uniformerv2(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a CLIP image encoder (OpenAI, open_clip, Hugging Face, MMAction2 extract) to ``backbone.*`` names.

    The patch convolution stays 2D here; :func:`load_checkpoint` inflates it to the model's temporal kernel.
    Weights without a UniFormerV2 counterpart (text tower, ``ln_post``, ``proj``) are dropped.
    """
    sd = dict(state_dict)
    prefix = _hf_clip_prefix(sd)
    if prefix is not None:
        return _hf_clip_to_uniformerv2(sd, prefix)
    if any(k.startswith("visual.") for k in sd):
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
    out = {}
    for k, v in sd.items():
        if k in ("conv1.weight", "class_embedding", "positional_embedding") or k.startswith(
                ("ln_pre.", "transformer.resblocks.")):
            out["backbone." + k] = v
    if "backbone.conv1.weight" not in out:
        raise CheckpointError(f"no CLIP image encoder found (keys: {_first(sorted(state_dict))})")
    return out


def _hf_clip_prefix(keys: Iterable[str]) -> str | None:
    """Prefix of a Hugging Face CLIP vision tower's weights ('vision_model.' in CLIPModel), or None if absent."""
    for k in keys:
        if k.endswith("embeddings.patch_embedding.weight"):
            return k[: -len("embeddings.patch_embedding.weight")]
    return None


def _hf_clip_to_uniformerv2(sd: Mapping[str, Tensor], p: str) -> dict[str, Tensor]:
    out = {
        "backbone.conv1.weight": sd[p + "embeddings.patch_embedding.weight"],
        "backbone.class_embedding": sd[p + "embeddings.class_embedding"],
        "backbone.positional_embedding": sd[p + "embeddings.position_embedding.weight"],
        "backbone.ln_pre.weight": sd[p + "pre_layrnorm.weight"],
        "backbone.ln_pre.bias": sd[p + "pre_layrnorm.bias"],
    }
    i = 0
    while f"{p}encoder.layers.{i}.self_attn.q_proj.weight" in sd:
        src, dst = f"{p}encoder.layers.{i}.", f"backbone.transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [sd[src + f"self_attn.{proj}_proj.{kind}"] for proj in ("q", "k", "v")])
            out[dst + f"attn.out_proj.{kind}"] = sd[src + f"self_attn.out_proj.{kind}"]
            out[dst + f"ln_1.{kind}"] = sd[src + f"layer_norm1.{kind}"]
            out[dst + f"ln_2.{kind}"] = sd[src + f"layer_norm2.{kind}"]
            out[dst + f"mlp.c_fc.{kind}"] = sd[src + f"mlp.fc1.{kind}"]
            out[dst + f"mlp.c_proj.{kind}"] = sd[src + f"mlp.fc2.{kind}"]
        i += 1
    return out


# ------------------------------------------------------------------------------------------ channel maps

def channel_map(name_or_path: str | os.PathLike) -> list[int]:
    """Rows of the Kinetics-710 head that a Kinetics-400/600/700 head takes ('k400', 'k600', 'k700' or a JSON)."""
    key = str(name_or_path).lower().replace("kinetics", "k").replace("-", "")
    if key in ("k400", "k600", "k700"):
        text = resources.files("uniformerv2").joinpath("labels", f"channel_map_{key}.json").read_text()
    else:
        try:
            text = Path(name_or_path).read_text()
        except OSError as e:
            raise CheckpointError(f"{name_or_path}: cannot read the channel map ({e.strerror})") from None
    rows = json.loads(text)
    if not isinstance(rows, list) or not all(isinstance(r, int) for r in rows):
        raise CheckpointError(f"{name_or_path}: a channel map is a JSON list of row indices")
    return rows


def select_head_channels(state_dict: dict[str, Tensor], rows: list[int]) -> dict[str, Tensor]:
    """Keep the given rows of the classification head, as MMAction2's UniFormerHead ``channel_map`` does."""
    out = dict(state_dict)
    for k in ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias"):
        if k in out:
            if max(rows) >= out[k].shape[0]:
                raise CheckpointError(f"channel map selects row {max(rows)} of a {out[k].shape[0]}-class head")
            out[k] = out[k][rows]
    return out


_K710_TARGETS = {400: "k400", 600: "k600", 700: "k700"}


def k710_channel_map(head: int, num_classes: int) -> str | None:
    """The shipped channel map that takes a ``head``-class Kinetics-710 head onto a ``num_classes`` model, if any."""
    return _K710_TARGETS.get(num_classes) if head == 710 else None


def head_size(state_dict: Mapping[str, Tensor]) -> int | None:
    """Classes of the classifier in a state dict of any format (None when it has no head)."""
    for key in ("cls_head.fc_cls.weight", "backbone.transformer.proj.2.weight", "transformer.proj.2.weight",
                "fc_cls.weight"):
        if key in state_dict and state_dict[key].ndim == 2:
            return int(state_dict[key].shape[0])
    return None


# -------------------------------------------------------------------------------------------- loading

def load_checkpoint(model: UniFormerV2, path_or_url: str | os.PathLike, *, strict: bool = True,
                    channel_map_name: str | os.PathLike | None = None, progress: bool = True,
                    replace_head: bool | None = None) -> dict[str, Any]:
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
        return load_state_dict(model, state_dict, metadata, strict=strict, channel_map_name=channel_map_name,
                               replace_head=replace_head)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def load_state_dict(model: UniFormerV2, state_dict: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None,
                    *, strict: bool = True, channel_map_name: str | os.PathLike | None = None,
                    replace_head: bool | None = None) -> dict[str, Any]:
    """Convert a state dict of any supported format and load it into ``model`` (see :func:`load_checkpoint`)."""
    if replace_head is None:
        replace_head = not strict
    fmt = detect_format(state_dict, metadata)
    own = model.state_dict()
    if fmt == "clip":
        sd = clip_to_uniformerv2(state_dict)
        conv = sd["backbone.conv1.weight"]
        if conv.ndim == 4:
            sd["backbone.conv1.weight"] = _inflate(conv, own["backbone.conv1.weight"].shape[2])
        _fit_pos_embed(sd, own)
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
            warnings.warn(f"the checkpoint's head has {head.shape[0]} classes and the model {want}: "
                          "the head keeps its fresh initialisation", stacklevel=3)
    _fit_pos_embed(sd, own)
    _check_shapes(sd, own)
    missing = [k for k in own if k not in sd and k not in skipped and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    if only_head(sd):  # a bare head state dict
        missing = [k for k in missing if k.startswith("cls_head.")]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing keys {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_first(unexpected)}")
        raise CheckpointError(f"does not fit the model ({fmt} format): " + "; ".join(parts) +
                              ". Is it a checkpoint of another architecture (check the preset or overrides)?")
    model.load_state_dict(sd, strict=False)
    return {"format": fmt, "loaded": sorted(k for k in sd if k in own), "skipped": skipped,
            "missing": missing, "unexpected": unexpected}


def only_head(sd: Mapping[str, Tensor]) -> bool:
    return bool(sd) and all(k.startswith("cls_head.") for k in sd)


def _check_shapes(sd: Mapping[str, Tensor], own: Mapping[str, Tensor]) -> None:
    bad = [f"{k} {list(v.shape)} (model: {list(own[k].shape)})" for k, v in sd.items()
           if k in own and v.shape != own[k].shape]
    if bad:
        raise CheckpointError("shapes differ from the model's: " + _first(bad, 3) +
                              ". Is it a checkpoint of another architecture (check the preset or overrides)?")


# ---------------------------------------------------------------------------------- our own format, convert

def read_metadata(path: str | os.PathLike) -> dict[str, str]:
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


def read_config(path: str | os.PathLike) -> UniFormerV2Config | None:
    """The architecture stored in one of our safetensors checkpoints, or None for other files."""
    return config_from_metadata(read_metadata(path), path)


def _json_list(text: str | None) -> list[str] | None:
    try:
        value = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


def pretrained_cfg_from_metadata(meta: Mapping[str, str], cfg: UniFormerV2Config) -> tuple[Protocol | None,
                                                                                           list[str] | None]:
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
        for key, meta_key in (("frames", "num_frames"), ("size", "resolution"), ("clips", "num_clips"),
                              ("crops", "num_crops")):
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


def save_checkpoint(model: UniFormerV2 | Mapping[str, Tensor], path: str | os.PathLike, *,
                    config: UniFormerV2Config | None = None, fmt: str = "uniformerv2",
                    extra_metadata: Mapping[str, str] | None = None) -> Path:
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
        atomic_write(path, lambda tmp: torch.save({"state_dict": from_uniformerv2(state, fmt),
                                                    "meta": dict(extra_metadata or {})}, tmp))
    elif fmt == "pyth":
        atomic_write(path, lambda tmp: torch.save({"model_state": from_uniformerv2(state, fmt)}, tmp))
    else:
        raise CheckpointError(f"unknown checkpoint format {fmt!r}; choose one of uniformerv2, mmaction2, pyth")
    return path


# ------------------------------------------------------------------------------ Hugging Face-style directories

def save_pretrained(model: UniFormerV2, directory: str | os.PathLike, *,
                    metrics: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` as a Hugging Face-style directory: ``model.safetensors`` (our format, self-describing),
    ``config.json`` (architecture, ``id2label``, test protocol, input normalisation, the preset) and a model card
    ``README.md`` stating them and any ``metrics`` measured with ``test``. Each file is written atomically."""
    from .data.transforms import MEAN, STD
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pretrained: PretrainedCfg = model.pretrained_cfg
    save_checkpoint(model, directory / PRETRAINED_WEIGHTS)
    names = list(pretrained.class_names) if pretrained.class_names else None
    config = {
        "architectures": ["UniFormerV2"], "format": FORMAT_NAME, "uniformerv2_version": __version__,
        "preset": pretrained.preset, "config": model.cfg.to_dict(), "num_labels": model.num_classes,
        "id2label": {str(i): n for i, n in enumerate(names)} if names else None,
        "label2id": {n: i for i, n in enumerate(names)} if names else None,
        "protocol": pretrained.protocol.to_dict(),
        "normalization": {"mean": [MEAN] * 3, "std": [STD] * 3, "input": "RGB uint8 frames, (x - mean) / std"},
        "metrics": dict(metrics) if metrics else None,
    }
    atomic_write(directory / PRETRAINED_CONFIG,
                 lambda tmp: Path(tmp).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8"))
    card = _model_card(model, names, metrics)
    atomic_write(directory / MODEL_CARD, lambda tmp: Path(tmp).write_text(card, encoding="utf-8"))
    return directory


def _model_card(model: UniFormerV2, names: list[str] | None, metrics: Mapping[str, Any] | None) -> str:
    cfg, pretrained = model.cfg, model.pretrained_cfg
    p = pretrained.protocol
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "") if names else \
        "unnamed"
    lines = [
        "---", "library_name: uniformerv2", "tags: [video-classification, action-recognition, uniformerv2]", "---",
        "", f"# UniFormerV2{' (' + pretrained.preset + ')' if pretrained.preset else ''}", "",
        "A UniFormerV2 video classifier (Li et al., arXiv 2211.09552) saved with `uniformerv2`.", "",
        "## Architecture", "",
        f"CLIP ViT with {cfg.layers} local UniBlocks of width {cfg.width} ({cfg.heads} heads, patch {cfg.patch_size}, "
        f"input {cfg.input_resolution} px), {cfg.n_layers} global UniBlocks reading blocks "
        f"{list(cfg.return_list)}, local MHRA {'off' if cfg.no_lmhra else 'on'}, "
        f"{'no fusion (frozen)' if cfg.frozen else 'learned fusion'}; {model.num_classes} classes.", "",
        "## Classes", "", shown, "",
        "## Test protocol", "", f"{p.describe()}; the softmax is averaged over the {p.views} views. Frames are RGB, "
        "normalised as (x - 114.75) / 57.375.", "",
        "## Use", "", "```python", "import uniformerv2",
        "clf = uniformerv2.VideoClassifier.from_pretrained(\"path/to/this/folder\")",
        "clf.predict(\"video.mp4\")", "```", "",
    ]
    if metrics:
        lines += ["## Measured accuracy", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
        lines.append("")
    return "\n".join(lines)
