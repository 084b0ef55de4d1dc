"""Checkpoint formats: which one a state dict is, and every conversion between them and our parameter names.

* ``mmaction2``: MMAction2 ``Recognizer3D`` state dicts (``backbone.*``, ``cls_head.*``), bare or wrapped in
  ``{'state_dict': ...}``; a bare backbone or head state dict is accepted too. These are our own parameter names.
* ``pyth``: the authors' original SlowFast-based checkpoints (``{'model_state': ...}``), whose head lives in
  ``backbone.transformer.proj`` (LayerNorm, Dropout, Linear).
* ``clip``: a CLIP image encoder to initialise from: OpenAI CLIP (``visual.*``; TorchScript archives too),
  open_clip (``visual.*``), Hugging Face ``CLIPVisionModel``/``CLIPModel`` (``vision_model.*``), or MMAction2's
  extracted CLIP visual encoders (``conv1.weight``, ``transformer.resblocks.*``). The 2D patch convolution is
  inflated to 3D as MMAction2 does (the 2D kernel at the temporal centre, zeros elsewhere).
* ``uniformerv2``: our own safetensors files, with the architecture in the metadata.

Also the head's channel maps (Kinetics-710 onto 400/600/700 classes) and the position embedding's resampling to
another input size. Pure functions of state dicts: reading and writing files is :mod:`uniformerv2.checkpoint`'s job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor

from .errors import CheckpointError

__all__ = [
    "FORMAT_NAME",
    "detect_format",
    "to_uniformerv2",
    "from_uniformerv2",
    "clip_to_uniformerv2",
    "inflate_patch_kernel",
    "resample_pos_embed",
    "fit_pos_embed",
    "channel_map",
    "select_head_channels",
    "k710_channel_map",
    "head_size",
    "first_keys",
]

FORMAT_NAME = "uniformerv2"  # the ``format`` our safetensors files record in their metadata


def first_keys(keys: Iterable[str], n: int = 5) -> str:
    """The first ``n`` keys, comma-separated, and how many there are in all: keys named in an error message."""
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
    raise CheckpointError(
        f"not a UniFormerV2, MMAction2, original UniFormerV2 or CLIP checkpoint (keys: {first_keys(sorted(keys))})"
    )


def to_uniformerv2(state_dict: Mapping[str, Tensor], fmt: str) -> dict[str, Tensor]:
    """Rename a 'mmaction2', 'pyth' or 'uniformerv2' state dict to this package's parameter names."""
    out: dict[str, Tensor] = {}
    for k, v in state_dict.items():
        if k.startswith("data_preprocessor."):  # MMAction2's mean/std buffers; we normalise in the data pipeline
            continue
        if fmt == "pyth":
            k = k[len("backbone.") :] if k.startswith("backbone.") else k
            if k.startswith("transformer.proj.0."):
                k = "backbone.transformer.norm." + k[len("transformer.proj.0.") :]
            elif k.startswith("transformer.proj.2."):
                k = "cls_head.fc_cls." + k[len("transformer.proj.2.") :]
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
            k = "backbone.transformer.proj.0." + k[len("backbone.transformer.norm.") :]
        elif k.startswith("cls_head.fc_cls."):
            k = "backbone.transformer.proj.2." + k[len("cls_head.fc_cls.") :]
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
    patches = torch.nn.functional.interpolate(
        patches, size=(grid, grid), mode="bicubic", align_corners=False, antialias=grid < old
    )
    patches = patches.permute(0, 2, 3, 1).reshape(grid * grid, c).to(pos_embed.dtype)  # [grid*grid, C]
    return torch.cat([pos_embed[:1], patches])


def fit_pos_embed(sd: dict[str, Tensor], own: Mapping[str, Tensor]) -> None:
    """A checkpoint trained at another input size: resample its position embedding to the model's grid."""
    key = "backbone.positional_embedding"
    if (
        key in sd
        and key in own
        and sd[key].ndim == 2
        and sd[key].shape != own[key].shape
        and sd[key].shape[1] == own[key].shape[1]
    ):
        sd[key] = resample_pos_embed(sd[key], int(round((own[key].shape[0] - 1) ** 0.5)))


def inflate_patch_kernel(weight_2d: Tensor, time_dim: int) -> Tensor:
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
        sd = {k[len("visual.") :]: v for k, v in sd.items() if k.startswith("visual.")}
    out = {}
    for k, v in sd.items():
        if k in ("conv1.weight", "class_embedding", "positional_embedding") or k.startswith(
            ("ln_pre.", "transformer.resblocks.")
        ):
            out["backbone." + k] = v
    if "backbone.conv1.weight" not in out:
        raise CheckpointError(f"no CLIP image encoder found (keys: {first_keys(sorted(state_dict))})")
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
                [sd[src + f"self_attn.{proj}_proj.{kind}"] for proj in ("q", "k", "v")]
            )
            out[dst + f"attn.out_proj.{kind}"] = sd[src + f"self_attn.out_proj.{kind}"]
            out[dst + f"ln_1.{kind}"] = sd[src + f"layer_norm1.{kind}"]
            out[dst + f"ln_2.{kind}"] = sd[src + f"layer_norm2.{kind}"]
            out[dst + f"mlp.c_fc.{kind}"] = sd[src + f"mlp.fc1.{kind}"]
            out[dst + f"mlp.c_proj.{kind}"] = sd[src + f"mlp.fc2.{kind}"]
        i += 1
    return out


# ------------------------------------------------------------------------------------------ channel maps


def channel_map(name_or_path: str | os.PathLike[str]) -> list[int]:
    """Rows of the Kinetics-710 head that a Kinetics-400/600/700 head takes ('k400', 'k600', 'k700' or a JSON)."""
    key = str(name_or_path).lower().replace("kinetics", "k").replace("-", "")
    if key in ("k400", "k600", "k700"):
        text = (resources.files("uniformerv2") / "labels" / f"channel_map_{key}.json").read_text()
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
    for key in (
        "cls_head.fc_cls.weight",
        "backbone.transformer.proj.2.weight",
        "transformer.proj.2.weight",
        "fc_cls.weight",
    ):
        if key in state_dict and state_dict[key].ndim == 2:
            return int(state_dict[key].shape[0])
    return None
