"""The network of feature extraction: ``model.forward_features(x, kind)`` as a callable that can be compiled."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import UsageError
from ..model import FEATURE_KINDS, UniFormerV2
from ..precision import compile_for_inference

__all__ = ["FEATURE_KINDS", "check_kind", "feature_forward"]


class _Features(nn.Module):
    """``model.forward_features(x, kind)`` as a module's forward, so it can be compiled like the model."""

    def __init__(self, model: UniFormerV2, kind: str) -> None:
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x, kind=self.kind)


def check_kind(kind: str) -> None:
    """``kind`` is one of :data:`~uniformerv2.model.FEATURE_KINDS`, else a :class:`UsageError` listing them."""
    if kind not in FEATURE_KINDS:
        raise UsageError(f"unknown feature kind {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")


def feature_forward(model: UniFormerV2, kind: str = "pooled", *, compile: bool = False) -> Callable[..., torch.Tensor]:
    """A callable ``f(normalised views) -> features`` of ``kind``, compiled with
    :func:`~uniformerv2.precision.compile_for_inference` when ``compile``."""
    check_kind(kind)
    module = _Features(model, kind).eval()
    return compile_for_inference(module) if compile else module
