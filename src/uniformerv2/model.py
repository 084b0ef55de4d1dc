"""The UniFormerV2 network (Li et al., arXiv 2211.09552), in the paper's concepts.

A CLIP image ViT becomes a video network:

* ``PatchEmbed``: the ViT patch projection, a 3D convolution that can also downsample time by 2.
* ``LocalUniBlock``: CLIP's residual attention block, optionally armed with a ``LocalMHRA`` (a temporal
  depthwise convolution relation aggregator) before the attention and, with ``double_lmhra``, before the MLP.
* ``GlobalUniBlock``: a learnable video token cross-attends to the tokens of one local block, after those tokens
  pass a ``DynamicPositionEncoding`` (a depthwise 3D convolution).
* ``UniFormerV2Backbone``: local blocks, the global blocks fed from the local blocks in ``return_list``, and the
  learned sigmoid fusion of the video token with the frames' class tokens.
* ``UniFormerHead``: dropout and a linear classifier.

Parameter names follow MMAction2 1.2.0 (``backbone.*`` and ``cls_head.*`` of its ``Recognizer3D``), so its
checkpoints load without renaming. Tensors are kept batch-first (``[batch, tokens, channels]``) throughout;
attention runs on :func:`torch.nn.functional.scaled_dot_product_attention`.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

__all__ = [
    "UniFormerV2Config",
    "UniFormerV2",
    "UniFormerV2Backbone",
    "UniFormerHead",
    "LocalUniBlock",
    "GlobalUniBlock",
    "LocalMHRA",
    "PatchEmbed",
    "ConfigError",
]


class ConfigError(ValueError):
    """An architecture configuration that cannot describe a valid network."""


@dataclass
class UniFormerV2Config:
    """Architecture of a UniFormerV2 classifier.

    Backbone fields carry the names and meaning of MMAction2 1.2.0's ``UniFormerV2`` backbone arguments; head
    fields those of its ``UniFormerHead``. ``frozen``, ``use_checkpoint`` and ``checkpoint_num`` come from the
    authors' original code.
    """

    # backbone: CLIP ViT (local UniBlocks)
    input_resolution: int = 224
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    heads: int = 12
    backbone_drop_path_rate: float = 0.0
    t_size: int = 8  # frames per clip the preset is trained on (the network accepts any count)
    kernel_size: int = 3  # temporal kernel of the downsampling patch embedding
    dw_reduction: float = 1.5
    temporal_downsample: bool = False
    no_lmhra: bool = True
    double_lmhra: bool = False
    # global UniBlocks
    return_list: tuple[int, ...] = (8, 9, 10, 11)
    n_layers: int = 4
    n_dim: int = 768
    n_head: int = 12
    mlp_factor: float = 4.0
    drop_path_rate: float = 0.0
    mlp_dropout: tuple[float, ...] = (0.5, 0.5, 0.5, 0.5)
    # classification head
    num_classes: int = 400
    dropout_ratio: float = 0.5
    # original code's extras
    frozen: bool = False  # no fusion: classify the video token only, and freeze the CLIP backbone
    use_checkpoint: bool = False  # gradient checkpointing ...
    checkpoint_num: int = 0  # ... of the first N local blocks

    def __post_init__(self) -> None:
        self.return_list = tuple(int(i) for i in self.return_list)
        self.mlp_dropout = tuple(float(p) for p in self.mlp_dropout)
        problems = []
        if self.input_resolution % self.patch_size:
            problems.append(f"input_resolution={self.input_resolution} is not a multiple of "
                            f"patch_size={self.patch_size}")
        if self.width % self.heads:
            problems.append(f"width={self.width} is not divisible by heads={self.heads}")
        if self.n_dim != self.width:
            problems.append(f"n_dim={self.n_dim} must equal width={self.width} (the global blocks read the "
                            "local blocks' tokens)")
        if self.n_dim % self.n_head:
            problems.append(f"n_dim={self.n_dim} is not divisible by n_head={self.n_head}")
        if len(self.return_list) != self.n_layers:
            problems.append(f"return_list has {len(self.return_list)} entries but n_layers={self.n_layers}")
        if len(self.mlp_dropout) != self.n_layers:
            problems.append(f"mlp_dropout has {len(self.mlp_dropout)} entries but n_layers={self.n_layers}")
        bad = [i for i in self.return_list if not 0 <= i < self.layers]
        if bad:
            problems.append(f"return_list entries {bad} are not block indices 0..{self.layers - 1}")
        if list(self.return_list) != sorted(set(self.return_list)):
            problems.append(f"return_list={list(self.return_list)} must be strictly increasing")
        if self.num_classes < 1:
            problems.append(f"num_classes={self.num_classes} must be positive")
        if not self.no_lmhra and int(self.width // self.dw_reduction) < 1:
            problems.append(f"dw_reduction={self.dw_reduction} leaves no channels of width={self.width}")
        if problems:
            raise ConfigError("invalid UniFormerV2 configuration: " + "; ".join(problems))

    @property
    def grid_size(self) -> int:
        return self.input_resolution // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["return_list"] = list(self.return_list)
        d["mlp_dropout"] = list(self.mlp_dropout)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UniFormerV2Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown UniFormerV2 configuration fields: {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **overrides: Any) -> "UniFormerV2Config":
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown UniFormerV2 arguments: {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **overrides)


class QuickGELU(nn.Module):
    """CLIP's sigmoid approximation of GELU."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head attention, batch-first, with ``nn.MultiheadAttention``'s parameter names."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # [B, heads, n, head_dim]

    def forward(self, x: Tensor) -> Tensor:
        """Self-attention over ``x`` [B, n, C]."""
        b, n, c = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x [B, h, n, d]
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, c))

    def cross(self, x: Tensor, y: Tensor) -> Tensor:
        """Queries from ``x`` [B, n, C], keys and values from ``y`` [B, m, C]."""
        b, n, c = x.shape
        w_q, w_kv = self.in_proj_weight.split([c, 2 * c])
        b_q, b_kv = self.in_proj_bias.split([c, 2 * c])
        q = self._heads(F.linear(x, w_q, b_q))
        k, v = F.linear(y, w_kv, b_kv).view(b, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, c))


def _linspace(end: float, n: int) -> list[float]:
    """Drop-path rates rising linearly from 0 to ``end`` over ``n`` blocks (as torch.linspace, device-free)."""
    return [end * i / (n - 1) if n > 1 else 0.0 for i in range(n)]


def _drop_path(rate: float) -> nn.Module:
    return StochasticDepth(rate, mode="row") if rate > 0 else nn.Identity()


def _to_video(tokens: Tensor, n: int, t: int) -> Tensor:
    """Patch tokens [N*T, h*w, C] -> video [N, C, T, h, w] (a channels-last-3d view, no copy)."""
    nt, hw, c = tokens.shape
    side = int(round(hw ** 0.5))
    return tokens.view(n, t, side, side, c).permute(0, 4, 1, 2, 3)


def _to_tokens(video: Tensor) -> Tensor:
    """Video [N, C, T, h, w] -> patch tokens [N*T, h*w, C]."""
    n, c, t, h, w = video.shape
    return video.permute(0, 2, 3, 4, 1).reshape(n * t, h * w, c)


class PatchEmbed(nn.Conv3d):
    """Patch projection: a 3D convolution, of temporal kernel 1, or ``kernel_size`` with stride 2 in time."""

    def __init__(self, width: int, patch_size: int, temporal_downsample: bool, kernel_size: int = 3) -> None:
        if temporal_downsample:
            super().__init__(3, width, (kernel_size, patch_size, patch_size), (2, patch_size, patch_size),
                             ((kernel_size - 1) // 2, 0, 0), bias=False)
        else:
            super().__init__(3, width, (1, patch_size, patch_size), (1, patch_size, patch_size), bias=False)


class LocalMHRA(nn.Module):
    """Local multi-head relation aggregator: BatchNorm, 1x1 reduce, temporal depthwise conv, 1x1 expand."""

    def __init__(self, d_model: int, dw_reduction: float = 1.5, pos_kernel_size: int = 3) -> None:
        super().__init__()
        re_d_model = int(d_model // dw_reduction)
        self.pos_embed = nn.Sequential(
            nn.BatchNorm3d(d_model),
            nn.Conv3d(d_model, re_d_model, kernel_size=1),
            nn.Conv3d(re_d_model, re_d_model, kernel_size=(pos_kernel_size, 1, 1),
                      padding=(pos_kernel_size // 2, 0, 0), groups=re_d_model),
            nn.Conv3d(re_d_model, d_model, kernel_size=1),
        )
        nn.init.zeros_(self.pos_embed[3].weight)  # the block starts as the image ViT's
        nn.init.zeros_(self.pos_embed[3].bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.pos_embed(x)


class LocalUniBlock(nn.Module):
    """CLIP residual attention block with optional local MHRA: the local UniBlock."""

    def __init__(self, d_model: int, n_head: int, drop_path: float = 0.0, dw_reduction: float = 1.5,
                 no_lmhra: bool = False, double_lmhra: bool = True) -> None:
        super().__init__()
        self.no_lmhra = no_lmhra
        self.double_lmhra = double_lmhra
        if not no_lmhra:
            self.lmhra1 = LocalMHRA(d_model, dw_reduction=dw_reduction)
            if double_lmhra:
                self.lmhra2 = LocalMHRA(d_model, dw_reduction=dw_reduction)
        self.attn = Attention(d_model, n_head)
        self.ln_1 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(d_model, d_model * 4)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(d_model * 4, d_model)),
        ]))
        self.ln_2 = nn.LayerNorm(d_model)
        # Stochastic depth drops whole samples: videos in the MHRA branch, frames in attention and MLP.
        self.drop_path = _drop_path(drop_path)

    def _lmhra(self, x: Tensor, mhra: LocalMHRA, n: int, t: int) -> Tensor:
        # x: [N*T, 1+h*w, C]; the class tokens pass unchanged.
        cls_tok, patches = x[:, :1], x[:, 1:]
        video = _to_video(patches, n, t)  # [N, C, T, h, w]
        video = video + self.drop_path(mhra(video))
        return torch.cat([cls_tok, _to_tokens(video)], dim=1)

    def forward(self, x: Tensor, t: int) -> Tensor:
        """x: [N*T, 1+h*w, C] -> same shape."""
        n = x.shape[0] // t
        if not self.no_lmhra:
            x = self._lmhra(x, self.lmhra1, n, t)
        x = x + self.drop_path(self.attn(self.ln_1(x)))
        if not self.no_lmhra and self.double_lmhra:
            x = self._lmhra(x, self.lmhra2, n, t)
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class GlobalUniBlock(nn.Module):
    """A video token cross-attending to all tokens of all frames: the global UniBlock (``Extractor`` in MMAction2)."""

    def __init__(self, d_model: int, n_head: int, mlp_factor: float = 4.0, dropout: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.attn = Attention(d_model, n_head)
        self.ln_1 = nn.LayerNorm(d_model)
        d_mlp = round(mlp_factor * d_model)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(d_model, d_mlp)),
            ("gelu", QuickGELU()),
            ("dropout", nn.Dropout(dropout)),
            ("c_proj", nn.Linear(d_mlp, d_model)),
        ]))
        self.ln_2 = nn.LayerNorm(d_model)
        self.ln_3 = nn.LayerNorm(d_model)
        self.drop_path = _drop_path(drop_path)
        # zero-initialised outputs: a new global block starts as the identity
        nn.init.xavier_uniform_(self.mlp.c_fc.weight)
        for p in (self.attn.out_proj.weight, self.attn.out_proj.bias, self.mlp.c_proj.weight, self.mlp.c_proj.bias):
            nn.init.zeros_(p)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """x: video token [N, 1, C]; y: tokens [N, T*(1+h*w), C]."""
        x = x + self.drop_path(self.attn.cross(self.ln_1(x), self.ln_3(y)))
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class DynamicPositionEncoding(nn.Conv3d):
    """Depthwise 3x3x3 convolution added to the patch tokens before a global block reads them."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, dim, kernel_size=3, padding=1, groups=dim, bias=True)
        nn.init.zeros_(self.bias)


class UniFormerV2Backbone(nn.Module):
    """Patch embedding, local UniBlocks, global UniBlocks and their fusion; returns one feature per clip."""

    def __init__(self, cfg: UniFormerV2Config) -> None:
        super().__init__()
        self.cfg = cfg
        width = cfg.width
        self.conv1 = PatchEmbed(width, cfg.patch_size, cfg.temporal_downsample, cfg.kernel_size)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(cfg.grid_size ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(cfg)

    def forward(self, x: Tensor) -> Tensor:
        """x: normalised video [N, 3, T, H, W] -> feature [N, n_dim]."""
        x = self.conv1(x)  # [N, C, T', h, w]
        n, c, t, h, w = x.shape
        x = _to_tokens(x)  # [N*T', h*w, C]
        cls_tok = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, c)
        x = torch.cat([cls_tok, x], dim=1) + self.positional_embedding.to(x.dtype)  # [N*T', 1+h*w, C]
        x = self.ln_pre(x)
        return self.transformer(x, n, t)


class Transformer(nn.Module):
    """The stack of local UniBlocks, the global UniBlocks reading from them, and the fusion."""

    def __init__(self, cfg: UniFormerV2Config) -> None:
        super().__init__()
        self.return_list = cfg.return_list
        self.frozen = cfg.frozen
        self.use_checkpoint = cfg.use_checkpoint
        self.checkpoint_num = cfg.checkpoint_num
        b_dpr = _linspace(cfg.backbone_drop_path_rate, cfg.layers)
        self.resblocks = nn.ModuleList([
            LocalUniBlock(cfg.width, cfg.heads, drop_path=b_dpr[i], dw_reduction=cfg.dw_reduction,
                          no_lmhra=cfg.no_lmhra, double_lmhra=cfg.double_lmhra)
            for i in range(cfg.layers)
        ])
        self.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, cfg.n_dim))
        self.dpe = nn.ModuleList([DynamicPositionEncoding(cfg.n_dim) for _ in range(cfg.n_layers)])
        dpr = _linspace(cfg.drop_path_rate, cfg.n_layers)
        self.dec = nn.ModuleList([
            GlobalUniBlock(cfg.n_dim, cfg.n_head, mlp_factor=cfg.mlp_factor, dropout=cfg.mlp_dropout[i],
                           drop_path=dpr[i])
            for i in range(cfg.n_layers)
        ])
        self.norm = nn.LayerNorm(cfg.n_dim)
        if not cfg.frozen:
            self.balance = nn.Parameter(torch.zeros(cfg.n_dim))

    def _global_input(self, x: Tensor, j: int, n: int, t: int) -> Tensor:
        """Tokens of a local block [N*T, 1+h*w, C] plus their position encoding -> keys [N, T*(1+h*w), C]."""
        nt, length, c = x.shape
        pos = _to_tokens(self.dpe[j](_to_video(x[:, 1:], n, t)))  # [N*T, h*w, C]
        y = x + F.pad(pos, (0, 0, 1, 0))  # the class tokens get no position encoding
        return y.reshape(n, t * length, c)

    def forward(self, x: Tensor, n: int, t: int) -> Tensor:
        """x: [N*T, 1+h*w, C] -> fused clip feature [N, C]."""
        video_tok = self.temporal_cls_token.expand(n, 1, -1)
        j = 0
        for i, block in enumerate(self.resblocks):
            if self.use_checkpoint and i < self.checkpoint_num and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, t, use_reentrant=False)
            else:
                x = block(x, t)
            if i in self.return_list:
                video_tok = self.dec[j](video_tok, self._global_input(x, j, n, t))
                j += 1
        video_tok = video_tok[:, 0]  # [N, C]
        if self.frozen:
            return self.norm(video_tok)
        weight = torch.sigmoid(self.balance)
        frames_cls = x[:, 0].reshape(n, t, -1).mean(1)  # mean over time of the frames' class tokens
        return self.norm((1 - weight) * video_tok + weight * frames_cls)


class UniFormerHead(nn.Module):
    """Dropout and a linear classifier over the clip feature."""

    def __init__(self, num_classes: int, in_channels: int, dropout_ratio: float = 0.5) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        nn.init.trunc_normal_(self.fc_cls.weight, std=0.02)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_cls(self.dropout(x))


class UniFormerV2(nn.Module):
    """UniFormerV2 video classifier: normalised video [N, 3, T, H, W] -> logits [N, num_classes]."""

    def __init__(self, cfg: UniFormerV2Config | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = (cfg or UniFormerV2Config()).replace(**overrides) if overrides else (cfg or UniFormerV2Config())
        self.cfg = cfg
        self.backbone = UniFormerV2Backbone(cfg)
        self.cls_head = UniFormerHead(cfg.num_classes, cfg.n_dim, cfg.dropout_ratio)
        if cfg.frozen:
            self.freeze_backbone()

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def freeze_backbone(self) -> None:
        """Freeze the CLIP part (patch embedding, embeddings, local blocks) as the original frozen models do."""
        b = self.backbone
        for module in (b.conv1, b.ln_pre, b.transformer.resblocks):
            module.requires_grad_(False)
        b.class_embedding.requires_grad_(False)
        b.positional_embedding.requires_grad_(False)

    def check_input(self, x: Tensor) -> None:
        """Raise a ValueError that says what is wrong with an input video batch."""
        res = self.cfg.input_resolution
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"expected a video batch [N, 3, T, {res}, {res}], got shape {list(x.shape)}")
        if x.shape[-2:] != (res, res):
            raise ValueError(f"expected frames of {res}x{res} pixels (the model's input_resolution), "
                             f"got {x.shape[-2]}x{x.shape[-1]}")
        if self.cfg.temporal_downsample and x.shape[2] < 2:
            raise ValueError(f"this model downsamples time by 2 and needs at least 2 frames, got {x.shape[2]}")
        if not x.is_floating_point():
            raise ValueError(f"expected a normalised float video, got dtype {x.dtype}")

    def forward_features(self, x: Tensor) -> Tensor:
        """Normalised video [N, 3, T, H, W] -> clip feature [N, n_dim]."""
        self.check_input(x)
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.cls_head(self.forward_features(x))


def build_model(cfg: UniFormerV2Config | dict[str, Any] | None = None, **overrides: Any) -> UniFormerV2:
    """Build a randomly initialised UniFormerV2 from a config (or its dict) and argument overrides."""
    if isinstance(cfg, dict):
        cfg = UniFormerV2Config.from_dict(cfg)
    return UniFormerV2(cfg, **overrides)
