"""Deployment exports: ONNX (checked with ONNX Runtime) and torch.export ExportedProgram, with a dynamic batch."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .atomic import atomic_write, file_errors, move_into_place
from .model import UniFormerV2

__all__ = ["export_onnx", "export_program", "onnxruntime_max_abs_diff"]

MAX_BATCH = 4096


def _example(model: UniFormerV2, frames: int | None, batch: int = 2) -> torch.Tensor:
    cfg = model.cfg
    t = frames or cfg.t_size
    return torch.randn(
        batch, 3, t, cfg.input_resolution, cfg.input_resolution, generator=torch.Generator().manual_seed(0)
    )


def export_onnx(model: UniFormerV2, path: str | os.PathLike, *, frames: int | None = None, opset: int = 18) -> Path:
    """Write ``model`` as ONNX (input ``video`` [batch, 3, T, H, W] float32 -> ``logits``), batch dynamic."""
    path = Path(path)
    with file_errors(path):  # a folder that cannot be made fails before the slow export
        path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.onnx.export(
        model,
        (_example(model, frames),),
        dynamo=True,
        opset_version=opset,
        dynamic_shapes={"x": {0: batch}},
        input_names=["video"],
        output_names=["logits"],
        verbose=False,
    )
    assert program is not None  # dynamo=True always returns an ONNXProgram (None is the legacy exporter's)
    # A large model keeps its weights in '<name>.onnx.data' beside the graph, referenced by that name: save both
    # under their final names in a scratch folder, then move the weights first and the graph last.
    with file_errors(path), tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as scratch:
        staged = Path(scratch) / path.name
        program.save(str(staged))
        for extra in sorted(Path(scratch).iterdir()):
            if extra != staged:
                move_into_place(extra, path.parent / extra.name)
        move_into_place(staged, path)
    return path


def export_program(model: UniFormerV2, path: str | os.PathLike, *, frames: int | None = None) -> Path:
    """Write ``model`` as a ``torch.export`` ExportedProgram (``.pt2``, load with ``torch.export.load``)."""
    path = Path(path)
    with file_errors(path):  # a folder that cannot be made fails before the slow export
        path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(model.eval(), (_example(model, frames),), dynamic_shapes={"x": {0: batch}})
    return atomic_write(path, lambda tmp: torch.export.save(program, tmp))


def onnxruntime_max_abs_diff(
    model: UniFormerV2, onnx_path: str | os.PathLike, *, frames: int | None = None, batches: tuple[int, ...] = (1, 3)
) -> float:
    """Largest |ONNX Runtime logits - PyTorch logits| over random inputs of several batch sizes (fp32)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for b in batches:
        x = _example(model, frames, batch=b)
        with torch.no_grad():
            expected = model.eval()(x).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        worst = max(worst, float(abs(got - expected).max()))
    return worst
