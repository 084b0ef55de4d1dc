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

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from .config import ConfigError, PretrainedCfg, UniFormerV2Config
from .protocol import Protocol

__all__ = [
    "UniFormerV2Config",
    "PretrainedCfg",
    "UniFormerV2",
    "UniFormerV2Backbone",
    "UniFormerHead",
    "LocalUniBlock",
    "GlobalUniBlock",
    "LocalMHRA",
    "PatchEmbed",
    "ConfigError",
    "FEATURE_KINDS",
]

# What ``UniFormerV2.forward_features(x, kind=...)`` can return (see its docstring); "pooled" is the default.
FEATURE_KINDS = ("pooled", "video-token", "frame-cls", "patch-mean", "logits", "probs")


class QuickGELU(nn.Module):
    """CLIP's sigmoid approximation of GELU: ``x * sigmoid(1.702 x)``, that is ``silu(1.702 x) / 1.702``."""

    ALPHA = 1.702

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.ALPHA * x)


class Mlp(nn.Module):
    """CLIP's MLP, ``c_proj(QuickGELU(c_fc(x)))`` (with dropout before ``c_proj`` in the global blocks).

    The submodule names are those of MMAction2's ``nn.Sequential`` (``c_fc``, ``gelu``, ``dropout``, ``c_proj``).
    The forward pass uses ``QuickGELU(h) = silu(1.702 h) / 1.702``: both factors ride in the two GEMMs (``addmm``'s
    ``alpha``/``beta``), so the activation is one fused SiLU pass over the widest tensor of the network instead of
    three elementwise passes and two temporaries.
    """

    def __init__(self, d_model: int, d_hidden: int, dropout: float | None = None) -> None:
        super().__init__()
        self.c_fc = nn.Linear(d_model, d_hidden)
        self.gelu = QuickGELU()
        if dropout is not None:
            self.dropout = nn.Dropout(dropout)
        self.c_proj = nn.Linear(d_hidden, d_model)

    def _drop(self, h: Tensor) -> Tensor:
        return self.dropout(h) if hasattr(self, "dropout") else h

    def forward(self, x: Tensor) -> Tensor:
        """x: [..., C] -> [..., C]."""
        if (
            type(self.c_fc) is not nn.Linear
            or type(self.c_proj) is not nn.Linear  # e.g. int8-quantised
            or torch.compiler.is_compiling()
        ):  # inductor fuses the activation itself and prepacks F.linear
            y: Tensor = self.c_proj(self._drop(self.gelu(self.c_fc(x))))
            return y
        a = QuickGELU.ALPHA
        rows = x.reshape(-1, x.shape[-1])  # [M, C], a view
        h = torch.addmm(self.c_fc.bias, rows, self.c_fc.weight.t(), beta=a, alpha=a)  # 1.702 * c_fc(x): [M, 4C]
        h = F.silu(h, inplace=not h.requires_grad)  # 1.702 * QuickGELU(c_fc(x))
        out = torch.addmm(self.c_proj.bias, self._drop(h), self.c_proj.weight.t(), alpha=1 / a)  # [M, C]
        return out.view(*x.shape[:-1], out.shape[-1])


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

    def in_projection(self, x: Tensor) -> Tensor:
        """The fused query-key-value projection [B, n, C] -> [B, n, 3C] (int8 quantisation overrides it)."""
        return F.linear(x, self.in_proj_weight, self.in_proj_bias)

    def forward(self, x: Tensor) -> Tensor:
        """Self-attention over ``x`` [B, n, C]."""
        b, n, c = x.shape
        qkv = self.in_projection(x).view(b, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x [B, heads, n, d] (views)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, n, d]
        projected: Tensor = self.out_proj(out.transpose(1, 2).reshape(b, n, c))
        return projected

    def cross(self, x: Tensor, y: Tensor) -> Tensor:
        """Queries from ``x`` [B, n, C], keys and values from ``y`` [B, m, C].

        Like ``nn.MultiheadAttention``'s fast path, inference (autograd off) takes a cheaper but equal route,
        :meth:`cross_absorbed`; with autograd on (training, FLOP counting) keys and values are projected as in the
        paper, :meth:`cross_projected`.
        """
        return self.cross_projected(x, y) if torch.is_grad_enabled() else self.cross_absorbed(x, y)

    def cross_projected(self, x: Tensor, y: Tensor) -> Tensor:
        """Cross-attention with all ``m`` keys and values projected: O(m C^2)."""
        b, n, c = x.shape
        w_q, w_kv = torch.split(self.in_proj_weight, [c, 2 * c])
        b_q, b_kv = torch.split(self.in_proj_bias, [c, 2 * c])
        q = F.linear(x, w_q, b_q).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # [B, heads, n, d]
        kv = F.linear(y, w_kv, b_kv).view(b, -1, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x [B, heads, m, d]
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, n, d]
        projected: Tensor = self.out_proj(out.transpose(1, 2).reshape(b, n, c))
        return projected

    def cross_absorbed(self, x: Tensor, y: Tensor) -> Tensor:
        """Cross-attention without projecting ``y``: O(m C heads), for few queries (the video token) over many keys.

        With ``k_j = W_k y_j + b_k`` and ``v_j = W_v y_j + b_v`` per head, ``q . k_j = (W_k^T q) . y_j + q . b_k``,
        where the last term is the same for every key (the softmax ignores it), and ``sum_j p_j v_j =
        W_v (sum_j p_j y_j) + b_v`` because the weights ``p_j`` sum to 1. So each head's query is taken into
        ``y``'s space, attends over ``y`` itself (keys = values = ``y``, shared by all heads), and the pooled
        ``y`` is projected.
        """
        b, n, c = x.shape
        h, d = self.num_heads, self.head_dim
        w_q, w_k, w_v = self.in_proj_weight.view(3, h, d, c).unbind(0)  # [heads, d, C] each
        b_q, _, b_v = self.in_proj_bias.view(3, h, d).unbind(0)  # [heads, d]; b_k cancels in the softmax
        q = F.linear(x, w_q.reshape(c, c), b_q.reshape(c)).view(b, n, h, d)
        q_y = torch.einsum("bnhd,hdc->bnhc", q, w_k).reshape(b, 1, n * h, c)  # queries in y's space
        kv = y.unsqueeze(1)  # [B, 1, m, C]: one key/value "head" shared by the n * heads queries
        pooled = F.scaled_dot_product_attention(q_y, kv, kv, scale=d**-0.5)  # [B, 1, n * heads, C]
        out = torch.einsum("bnhc,hdc->bnhd", pooled.view(b, n, h, c), w_v) + b_v  # [B, n, heads, d]
        projected: Tensor = self.out_proj(out.reshape(b, n, c))
        return projected


def _linspace(end: float, n: int) -> list[float]:
    """Drop-path rates rising linearly from 0 to ``end`` over ``n`` blocks (as torch.linspace, device-free)."""
    return [end * i / (n - 1) if n > 1 else 0.0 for i in range(n)]


def _drop_path(rate: float) -> nn.Module:
    return StochasticDepth(rate, mode="row") if rate > 0 else nn.Identity()


def _to_video(tokens: Tensor, n: int, t: int) -> Tensor:
    """Patch tokens [N*T, h*w, C] -> video [N, C, T, h, w] (a channels-last-3d view, no copy)."""
    nt, hw, c = tokens.shape
    side = int(round(hw**0.5))
    return tokens.view(n, t, side, side, c).permute(0, 4, 1, 2, 3)


def _to_tokens(video: Tensor) -> Tensor:
    """Video [N, C, T, h, w] -> patch tokens [N*T, h*w, C] (a view when the video is channels-last-3d)."""
    n, c, t, h, w = video.shape
    return video.permute(0, 2, 3, 4, 1).reshape(n * t, h * w, c)


class PatchEmbed(nn.Conv3d):
    """Patch projection: a 3D convolution, of temporal kernel 1, or ``kernel_size`` with stride 2 in time."""

    def __init__(self, width: int, patch_size: int, temporal_downsample: bool, kernel_size: int = 3) -> None:
        if temporal_downsample:
            super().__init__(
                3,
                width,
                (kernel_size, patch_size, patch_size),
                (2, patch_size, patch_size),
                ((kernel_size - 1) // 2, 0, 0),
                bias=False,
            )
        else:
            super().__init__(3, width, (1, patch_size, patch_size), (1, patch_size, patch_size), bias=False)


class LocalMHRA(nn.Module):
    """Local multi-head relation aggregator: BatchNorm, 1x1 reduce, temporal depthwise conv, 1x1 expand."""

    def __init__(self, d_model: int, dw_reduction: float = 1.5, pos_kernel_size: int = 3) -> None:
        super().__init__()
        re_d_model = int(d_model // dw_reduction)
        bn = nn.BatchNorm3d(d_model)
        reduce = nn.Conv3d(d_model, re_d_model, kernel_size=1)
        temporal = nn.Conv3d(
            re_d_model,
            re_d_model,
            kernel_size=(pos_kernel_size, 1, 1),
            padding=(pos_kernel_size // 2, 0, 0),
            groups=re_d_model,
        )
        expand = nn.Conv3d(re_d_model, d_model, kernel_size=1, bias=True)
        nn.init.zeros_(expand.weight)  # the block starts as the image ViT's
        nn.init.zeros_(_bias(expand))
        self.pos_embed = nn.Sequential(bn, reduce, temporal, expand)

    def forward(self, x: Tensor) -> Tensor:
        """x: video [N, C, T, h, w], best channels-last-3d (the convolutions keep that layout) -> same shape."""
        bn, reduce, temporal, expand = self.pos_embed
        if bn.training or not bn.track_running_stats:
            x = reduce(bn(x))
        else:  # inference: the BatchNorm is a per-channel affine map, folded into the 1x1 reduction
            x = F.conv3d(x, *_fold_batchnorm(bn, reduce))
        out: Tensor = expand(temporal(x))
        return out


def _bias(conv: nn.Conv3d) -> Tensor:
    """The bias of a convolution built with ``bias=True`` (typed as optional by torch)."""
    assert conv.bias is not None
    return conv.bias


def _fold_batchnorm(bn: nn.Module, conv: nn.Module) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``conv(bn(x))`` as one 1x1x1 convolution, for a BatchNorm using its running statistics."""
    # LocalMHRA.pos_embed's layers, typed as plain modules by nn.Sequential; the checks are free once compiled
    assert isinstance(bn, nn.BatchNorm3d) and isinstance(conv, nn.Conv3d)
    assert bn.running_var is not None and bn.running_mean is not None  # track_running_stats, checked by the caller
    scale = torch.rsqrt(bn.running_var + bn.eps)  # [C_in]
    shift = -bn.running_mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    w = conv.weight  # [C_out, C_in, 1, 1, 1]
    bias = w.flatten(1) @ shift
    if conv.bias is not None:
        bias = bias + conv.bias
    return w * scale.view(1, -1, 1, 1, 1), bias


class LocalUniBlock(nn.Module):
    """CLIP residual attention block with optional local MHRA: the local UniBlock."""

    def __init__(
        self,
        d_model: int,
        n_head: int,
        drop_path: float = 0.0,
        dw_reduction: float = 1.5,
        no_lmhra: bool = False,
        double_lmhra: bool = True,
    ) -> None:
        super().__init__()
        self.no_lmhra = no_lmhra
        self.double_lmhra = double_lmhra
        if not no_lmhra:
            self.lmhra1 = LocalMHRA(d_model, dw_reduction=dw_reduction)
            if double_lmhra:
                self.lmhra2 = LocalMHRA(d_model, dw_reduction=dw_reduction)
        self.attn = Attention(d_model, n_head)
        self.ln_1 = nn.LayerNorm(d_model)
        self.mlp = Mlp(d_model, d_model * 4)
        self.ln_2 = nn.LayerNorm(d_model)
        # Stochastic depth drops whole samples: videos in the MHRA branch, frames in attention and MLP.
        self.drop_path = _drop_path(drop_path)

    def _lmhra(self, x: Tensor, mhra: LocalMHRA, n: int, t: int) -> Tensor:
        # x: [N*T, 1+h*w, C]; the class tokens pass unchanged.
        cls_tok, patches = x[:, :1], x[:, 1:]
        delta = self.drop_path(mhra(_to_video(patches, n, t)))  # [N, C, T, h, w], channels-last-3d
        return torch.cat([cls_tok, patches + _to_tokens(delta)], dim=1)  # _to_tokens: a view, no copy

    def forward(self, x: Tensor, t: int) -> Tensor:
        """x: [N*T, 1+h*w, C] -> same shape."""
        n = x.shape[0] // t
        if not self.no_lmhra:
            x = self._lmhra(x, self.lmhra1, n, t)
        x = x + self.drop_path(self.attn(self.ln_1(x)))
        if not self.no_lmhra and self.double_lmhra:
            x = self._lmhra(x, self.lmhra2, n, t)
        mlp: Tensor = self.drop_path(self.mlp(self.ln_2(x)))
        return x + mlp


class GlobalUniBlock(nn.Module):
    """A video token cross-attending to all tokens of all frames: the global UniBlock (``Extractor`` in MMAction2)."""

    def __init__(
        self, d_model: int, n_head: int, mlp_factor: float = 4.0, dropout: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.attn = Attention(d_model, n_head)
        self.ln_1 = nn.LayerNorm(d_model)
        d_mlp = round(mlp_factor * d_model)
        self.mlp = Mlp(d_model, d_mlp, dropout)
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
        mlp: Tensor = self.drop_path(self.mlp(self.ln_2(x)))
        return x + mlp


class DynamicPositionEncoding(nn.Conv3d):
    """Depthwise 3x3x3 convolution added to the patch tokens before a global block reads them."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, dim, kernel_size=3, padding=1, groups=dim, bias=True)
        nn.init.zeros_(_bias(self))


class UniFormerV2Backbone(nn.Module):
    """Patch embedding, local UniBlocks, global UniBlocks and their fusion; returns one feature per clip."""

    def __init__(self, cfg: UniFormerV2Config) -> None:
        super().__init__()
        self.cfg = cfg
        width = cfg.width
        self.conv1 = PatchEmbed(width, cfg.patch_size, cfg.temporal_downsample, cfg.kernel_size)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(cfg.grid_size**2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(cfg)

    def forward(self, x: Tensor, kind: str = "pooled") -> Tensor:
        """x: normalised video [N, 3, T, H, W] -> feature [N, n_dim] (``kind``: see ``Transformer.forward``)."""
        x = self.conv1(x)  # [N, C, T', h, w] (bf16 under bf16 autocast)
        n, c, t, h, w = x.shape
        # The residual stream keeps the parameters' dtype: under autocast only the GEMMs, convolutions and
        # attention run in bf16, while the residual sums and every LayerNorm stay fp32.
        x = _to_tokens(x).to(self.positional_embedding.dtype)  # [N*T', h*w, C]
        cls_tok = self.class_embedding.expand(x.shape[0], 1, c)
        x = torch.cat([cls_tok, x], dim=1) + self.positional_embedding  # [N*T', 1+h*w, C]
        x = self.ln_pre(x)
        feature: Tensor = self.transformer(x, n, t, kind)
        return feature


class Transformer(nn.Module):
    """The stack of local UniBlocks, the global UniBlocks reading from them, and the fusion."""

    def __init__(self, cfg: UniFormerV2Config) -> None:
        super().__init__()
        self.return_list = cfg.return_list
        self.frozen = cfg.frozen
        self.grad_checkpointing = 0  # the first N local blocks recompute their activations in backward
        b_dpr = _linspace(cfg.backbone_drop_path_rate, cfg.layers)
        self.resblocks = nn.ModuleList(
            [
                LocalUniBlock(
                    cfg.width,
                    cfg.heads,
                    drop_path=b_dpr[i],
                    dw_reduction=cfg.dw_reduction,
                    no_lmhra=cfg.no_lmhra,
                    double_lmhra=cfg.double_lmhra,
                )
                for i in range(cfg.layers)
            ]
        )
        self.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, cfg.n_dim))
        self.dpe = nn.ModuleList([DynamicPositionEncoding(cfg.n_dim) for _ in range(cfg.n_layers)])
        dpr = _linspace(cfg.drop_path_rate, cfg.n_layers)
        self.dec = nn.ModuleList(
            [
                GlobalUniBlock(
                    cfg.n_dim, cfg.n_head, mlp_factor=cfg.mlp_factor, dropout=cfg.mlp_dropout[i], drop_path=dpr[i]
                )
                for i in range(cfg.n_layers)
            ]
        )
        self.norm = nn.LayerNorm(cfg.n_dim)
        if not cfg.frozen:
            self.balance = nn.Parameter(torch.zeros(cfg.n_dim))

    def _global_input(self, x: Tensor, j: int, n: int, t: int) -> Tensor:
        """Tokens of a local block [N*T, 1+h*w, C] plus their position encoding -> keys [N, T*(1+h*w), C]."""
        nt, length, c = x.shape
        pos = _to_tokens(self.dpe[j](_to_video(x[:, 1:], n, t)))  # [N*T, h*w, C], a view (channels-last conv)
        y = torch.cat([x[:, :1], x[:, 1:] + pos], dim=1)  # the class tokens get no position encoding
        return y.view(n, t * length, c)

    def forward(self, x: Tensor, n: int, t: int, kind: str = "pooled") -> Tensor:
        """x: [N*T, 1+h*w, C] -> fused clip feature [N, C] (``kind="pooled"``), the video token before the fusion
        [N, C] (``"video-token"``), or from the last local block the frames' class tokens [N, T, C]
        (``"frame-cls"``) or their patch tokens averaged over space [N, T, C] (``"patch-mean"``)."""
        local_only = kind in ("frame-cls", "patch-mean")  # the global blocks are not needed for these
        video_tok = self.temporal_cls_token.expand(n, 1, -1)
        j = 0
        for i, block in enumerate(self.resblocks):
            if i < self.grad_checkpointing and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, t, use_reentrant=False)
            else:
                x = block(x, t)
            if i in self.return_list and not local_only:
                video_tok = self.dec[j](video_tok, self._global_input(x, j, n, t))
                j += 1
        if kind == "frame-cls":
            return x[:, 0].reshape(n, t, -1)
        if kind == "patch-mean":
            return x[:, 1:].mean(1).reshape(n, t, -1)
        video_tok = video_tok[:, 0]  # [N, C]
        if kind == "video-token":
            return video_tok
        if not self.frozen:
            weight = torch.sigmoid(self.balance)
            frames_cls = x[:, 0].reshape(n, t, -1).mean(1)  # mean over time of the frames' class tokens
            video_tok = (1 - weight) * video_tok + weight * frames_cls
        feature: Tensor = self.norm(video_tok)
        return feature


class UniFormerHead(nn.Module):
    """Dropout and a linear classifier over the clip feature."""

    def __init__(self, num_classes: int, in_channels: int, dropout_ratio: float = 0.5) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        nn.init.trunc_normal_(self.fc_cls.weight, std=0.02)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.fc_cls(self.dropout(x))
        return logits


class UniFormerV2(nn.Module):
    """UniFormerV2 video classifier: normalised video [N, 3, T, H, W] -> logits [N, num_classes]."""

    def __init__(self, cfg: UniFormerV2Config | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = (cfg or UniFormerV2Config()).replace(**overrides) if overrides else (cfg or UniFormerV2Config())
        self.cfg = cfg
        self.backbone = UniFormerV2Backbone(cfg)
        self.cls_head = UniFormerHead(cfg.num_classes, cfg.n_dim, cfg.dropout_ratio)
        # where the weights came from, the test protocol and the class names: set by create_model
        self.pretrained_cfg = PretrainedCfg(protocol=Protocol(cfg.t_size, cfg.input_resolution))
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
            raise ValueError(
                f"expected frames of {res}x{res} pixels (the model's input_resolution), got {x.shape[-2]}x{x.shape[-1]}"
            )
        if self.cfg.temporal_downsample and x.shape[2] < 2:
            raise ValueError(f"this model downsamples time by 2 and needs at least 2 frames, got {x.shape[2]}")
        if not x.is_floating_point():
            raise ValueError(f"expected a normalised float video, got dtype {x.dtype}")

    def save_pretrained(self, directory: str, *, metrics: Mapping[str, Any] | None = None) -> str:
        """A Hugging Face-style directory: ``config.json``, ``model.safetensors`` and a model card ``README.md``
        (see :func:`uniformerv2.hf_folder.save_pretrained`); load it with ``uniformerv2.from_pretrained``."""
        from .hf_folder import save_pretrained

        return str(save_pretrained(self, directory, metrics=metrics))

    def push_to_hub(
        self, repo_id: str, *, metrics: Mapping[str, Any] | None = None, private: bool = False, token: str | None = None
    ) -> str:
        """Upload :meth:`save_pretrained`'s directory to the Hugging Face Hub (needs ``huggingface_hub``)."""
        import tempfile

        from .hf_folder import upload_folder

        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, metrics=metrics)
            return upload_folder(tmp, repo_id, private=private, token=token)

    def select_classes(self, rows: list[int]) -> None:
        """Keep only the output classes ``rows``, in that order: the head's rows are taken, nothing is trained."""
        fc = self.cls_head.fc_cls
        index = torch.as_tensor(rows, dtype=torch.long, device=fc.weight.device)
        head = nn.Linear(fc.in_features, len(rows), device=fc.weight.device, dtype=fc.weight.dtype)
        with torch.no_grad():
            head.weight.copy_(fc.weight.index_select(0, index))
            head.bias.copy_(fc.bias.index_select(0, index))
        self.cls_head.fc_cls = head
        self.cfg = self.cfg.replace(num_classes=len(rows))

    def set_grad_checkpointing(self, enable: bool = True, blocks: int | None = None) -> None:
        """Recompute the activations of the first ``blocks`` local blocks (default: all) in the backward pass."""
        n = len(self.backbone.transformer.resblocks)
        self.backbone.transformer.grad_checkpointing = (n if blocks is None else min(int(blocks), n)) if enable else 0

    @property
    def grad_checkpointing(self) -> int:
        """How many local blocks recompute their activations in the backward pass (0: none)."""
        return self.backbone.transformer.grad_checkpointing

    def no_weight_decay(self) -> set[str]:
        """Names of the parameters that are embeddings or tokens rather than layer weights (timm's convention).

        The recipe decays them like weights; an optimiser may exempt them (``embed_decay_mult=0``).
        """
        names = {"backbone.class_embedding", "backbone.positional_embedding", "backbone.transformer.temporal_cls_token"}
        if not self.cfg.frozen:
            names.add("backbone.transformer.balance")
        return names

    def forward_features(self, x: Tensor, kind: str = "pooled") -> Tensor:
        """Normalised video [N, 3, T, H, W] -> clip feature [N, n_dim], the fused feature the head sees.

        ``kind`` (one of :data:`FEATURE_KINDS`) picks another output: ``"video-token"`` [N, n_dim], the last
        global block's video token before the fusion; ``"frame-cls"`` [N, T', width], each frame's class token
        after the last local block; ``"patch-mean"`` [N, T', width], that block's patch tokens averaged over
        space; ``"logits"`` [N, num_classes]; ``"probs"``, their softmax (float32). T' is the temporal token count:
        T, or T / 2 for a model that downsamples time.
        """
        if kind not in FEATURE_KINDS:
            raise ValueError(f"unknown feature kind {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
        self.check_input(x)
        if kind in ("logits", "probs"):
            logits = self.forward_head(self.backbone(x))
            return logits if kind == "logits" else logits.float().softmax(-1)
        feature: Tensor = self.backbone(x, kind)
        return feature

    def forward_head(self, features: Tensor) -> Tensor:
        """Clip feature [N, n_dim] -> logits [N, num_classes]."""
        logits: Tensor = self.cls_head(features)
        return logits

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
