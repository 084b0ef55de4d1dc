"""Deployment: ONNX Runtime and torch.export give the PyTorch logits, with a dynamic batch."""

from __future__ import annotations

import pytest
import torch

from helpers import randomised, tiny_config
from uniformerv2.checkpoint import save_checkpoint
from uniformerv2.cli import main
from uniformerv2.export import export_onnx, export_program, onnxruntime_max_abs_diff
from uniformerv2.model import UniFormerV2

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model() -> UniFormerV2:
    return randomised(UniFormerV2(tiny_config(no_lmhra=False, double_lmhra=True, temporal_downsample=True)))


def test_onnx_runtime_gives_the_pytorch_logits_for_any_batch(model, tmp_path):
    path = export_onnx(model, tmp_path / "m.onnx", frames=4)
    assert onnxruntime_max_abs_diff(model, path, frames=4, batches=(1, 3)) <= 1e-4


def test_exported_program_gives_the_pytorch_logits_for_any_batch(model, tmp_path):
    path = export_program(model, tmp_path / "m.pt2", frames=4)
    program = torch.export.load(str(path))
    x = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), atol=1e-5, rtol=1e-4)


def test_export_command_checks_onnx_runtime_parity(model, tmp_path, capsys):
    ckpt = save_checkpoint(model, tmp_path / "m.safetensors")
    assert main(["export", "--checkpoint", str(ckpt), "--frames", "4", "-o", str(tmp_path / "out.onnx")]) == 0
    out = capsys.readouterr().out
    assert "ONNX Runtime vs PyTorch: max abs logit difference" in out and (tmp_path / "out.onnx").exists()
