"""Logit parity with the reference implementations, on golden fixtures they produced.

``fixtures/mmaction2/*``: MMAction2 1.2.0's Recognizer3D (``shared/ref/dump.py``; commands in the README there).
``fixtures/original/*``: the authors' original SlowFast-based model (``scripts/make_original_fixture.py``).
Each fixture's checkpoint is loaded with :func:`uniformerv2.load_checkpoint`, exactly as a user would.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import uniformerv2
from helpers import FIXTURES
from uniformerv2.model import UniFormerV2, UniFormerV2Config

MEAN, STD = 114.75, 57.375  # MMAction2's ActionDataPreprocessor for UniFormerV2
TOL = dict(atol=1e-5, rtol=1e-4)  # the bound is 1e-4 absolute; we hold to 1e-5
FIELDS = {f.name for f in dataclasses.fields(UniFormerV2Config)}


def _dirs(kind: str) -> list[Path]:
    return sorted(p for p in (FIXTURES / kind).iterdir() if (p / "meta.json").exists())


def _mmaction2_model(meta: dict) -> UniFormerV2:
    backbone = {k: v for k, v in meta["model"]["backbone"].items() if k in FIELDS}
    head = meta["model"]["cls_head"]
    return UniFormerV2(
        UniFormerV2Config(**backbone, num_classes=head["num_classes"], dropout_ratio=head["dropout_ratio"])
    )


@pytest.mark.parametrize("fixture", _dirs("mmaction2"), ids=lambda p: p.name)
def test_mmaction2_checkpoint_gives_mmaction2_features_logits_and_scores(fixture: Path):
    meta = json.loads((fixture / "meta.json").read_text())
    model = _mmaction2_model(meta)
    uniformerv2.load_checkpoint(model, fixture / "checkpoint.pth")
    raw = torch.load(fixture / "input.pt", weights_only=True)  # [batch, views, 3, T, H, W] in [0, 255]
    expected = torch.load(fixture / "outputs.pt", weights_only=True)
    views = ((raw - MEAN) / STD).flatten(0, 1)
    with torch.no_grad():
        features = model.eval().forward_features(views)
        logits = model.cls_head(features)
    scores = logits.softmax(-1).view(raw.shape[0], raw.shape[1], -1).mean(1)  # average_clips='prob'
    torch.testing.assert_close(features, expected["features"], **TOL)
    torch.testing.assert_close(logits, expected["cls_score"], **TOL)
    torch.testing.assert_close(scores, expected["scores"], **TOL)


def _original_model(meta: dict) -> UniFormerV2:
    args = meta["args"]
    cfg = {k: v for k, v in args.items() if k in FIELDS}
    cfg["dropout_ratio"] = args["cls_dropout"]
    return UniFormerV2(UniFormerV2Config(**cfg))


@pytest.mark.parametrize("fixture", _dirs("original"), ids=lambda p: p.name)
def test_original_pyth_checkpoint_gives_the_original_logits(fixture: Path):
    meta = json.loads((fixture / "meta.json").read_text())
    model = _original_model(meta)
    report = uniformerv2.load_checkpoint(model, fixture / "checkpoint.pyth")
    assert report["format"] == "pyth"
    x = torch.load(fixture / "input.pt", weights_only=True)
    expected = torch.load(fixture / "outputs.pt", weights_only=True)["logits"]
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), expected, **TOL)


def test_original_frozen_model_has_no_fusion_and_a_frozen_clip_part():
    meta = json.loads((FIXTURES / "original" / "frozen" / "meta.json").read_text())
    model = _original_model(meta)
    assert not hasattr(model.backbone.transformer, "balance")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        ".dec." in n
        or ".dpe." in n
        or "temporal_cls_token" in n
        or "transformer.norm" in n
        or n.startswith("cls_head.")
        for n in trainable
    )
