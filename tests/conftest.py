"""Shared helpers: tiny architectures (tests never build the big presets with real weights)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from uniformerv2.model import UniFormerV2, UniFormerV2Config

FIXTURES = Path(__file__).parent / "fixtures"


def _find_shared() -> Path:
    """The project's shared data (videos, label maps): $UNIFORMERV2_SHARED, or a `shared/` beside the checkout."""
    if os.environ.get("UNIFORMERV2_SHARED"):
        return Path(os.environ["UNIFORMERV2_SHARED"])
    root = Path(__file__).resolve().parents[1]
    for candidate in (root.parent / "shared", Path("/work/shared")):
        if (candidate / "data").is_dir():
            return candidate
    return root.parent / "shared"


SHARED = _find_shared()


def tiny_config(**overrides) -> UniFormerV2Config:
    base = dict(width=32, layers=3, heads=2, n_dim=32, n_head=2, return_list=(1, 2), n_layers=2,
                mlp_dropout=(0.5, 0.5), input_resolution=32, patch_size=16, t_size=4, num_classes=5)
    base.update(overrides)
    return UniFormerV2Config(**base)


def randomised(model: UniFormerV2, seed: int = 0) -> UniFormerV2:
    """Give every parameter and BatchNorm statistic random values, so zero-initialised parts matter too."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(1.0 + 0.5 * torch.rand(b.shape, generator=gen))
            elif name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
    return model.eval()


@pytest.fixture
def tiny_model() -> UniFormerV2:
    return randomised(UniFormerV2(tiny_config(no_lmhra=False, double_lmhra=True)))


@pytest.fixture
def video() -> torch.Tensor:
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
