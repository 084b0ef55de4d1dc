"""Deployment exports: ONNX (checked with ONNX Runtime) and torch.export ExportedProgram, with a dynamic batch."""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write
from .model import UniFormerV2

__all__ = ["export_onnx", "export_program", "onnxruntime_max_abs_diff", "add_export_command"]

MAX_BATCH = 4096


def _example(model: UniFormerV2, num_frames: int | None, batch: int = 2) -> torch.Tensor:
    cfg = model.cfg
    t = num_frames or cfg.t_size
    return torch.randn(batch, 3, t, cfg.input_resolution, cfg.input_resolution,
                       generator=torch.Generator().manual_seed(0))


def export_onnx(model: UniFormerV2, path: str | os.PathLike, *, num_frames: int | None = None,
                opset: int = 18) -> Path:
    """Write ``model`` as ONNX (input ``video`` [batch, 3, T, H, W] float32 -> ``logits``), batch dynamic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.onnx.export(model, (_example(model, num_frames),), dynamo=True, opset_version=opset,
                                dynamic_shapes={"x": {0: batch}}, input_names=["video"], output_names=["logits"],
                                verbose=False)
    # A large model keeps its weights in '<name>.onnx.data' beside the graph, referenced by that name: save both
    # under their final names in a scratch folder, then move the weights first and the graph last.
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as scratch:
        staged = Path(scratch) / path.name
        program.save(str(staged))
        for extra in sorted(Path(scratch).iterdir()):
            if extra != staged:
                os.replace(extra, path.parent / extra.name)
        os.replace(staged, path)
    return path


def export_program(model: UniFormerV2, path: str | os.PathLike, *, num_frames: int | None = None) -> Path:
    """Write ``model`` as a ``torch.export`` ExportedProgram (``.pt2``, load with ``torch.export.load``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(model.eval(), (_example(model, num_frames),), dynamic_shapes={"x": {0: batch}})
    return atomic_write(path, lambda tmp: torch.export.save(program, tmp))


def onnxruntime_max_abs_diff(model: UniFormerV2, onnx_path: str | os.PathLike, *, num_frames: int | None = None,
                             batches: tuple[int, ...] = (1, 3)) -> float:
    """Largest |ONNX Runtime logits - PyTorch logits| over random inputs of several batch sizes (fp32)."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for b in batches:
        x = _example(model, num_frames, batch=b)
        with torch.no_grad():
            expected = model.eval()(x).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        worst = max(worst, float(abs(got - expected).max()))
    return worst


def _cmd_export(args: argparse.Namespace) -> int:
    from .cli import parse_overrides
    from .factory import create_model
    model = create_model(args.model, checkpoint=args.checkpoint, **parse_overrides(args.set))
    suffix = ".onnx" if args.format == "onnx" else ".pt2"
    default_name = (args.model or Path(args.checkpoint).stem) + suffix
    out = Path(args.output or default_name)
    frames = args.frames or model.cfg.t_size
    if args.format == "onnx":
        export_onnx(model, out, num_frames=frames, opset=args.opset)
        print(f"wrote {out} (input 'video' [batch, 3, {frames}, {model.cfg.input_resolution}, "
              f"{model.cfg.input_resolution}] float32, normalised; output 'logits' [batch, {model.num_classes}])")
        if not args.no_check:
            diff = onnxruntime_max_abs_diff(model, out, num_frames=frames)
            print(f"ONNX Runtime vs PyTorch: max abs logit difference {diff:.3g} (batch 1 and 3)")
            if diff > 1e-4:
                print("error: ONNX Runtime disagrees with PyTorch by more than 1e-4", flush=True)
                return 1
    else:
        export_program(model, out, num_frames=frames)
        print(f"wrote {out} (torch.export.load it; dynamic batch)")
    return 0


def add_export_command(sub: Any) -> None:
    """Register ``uniformerv2 export``."""
    p = sub.add_parser("export", help="export a model to ONNX (checked with ONNX Runtime) or an ExportedProgram")
    p.add_argument("model", nargs="?", help="preset name (omit for our self-describing .safetensors)")
    p.add_argument("--checkpoint", help="weights to export (any supported format)")
    p.add_argument("--format", choices=["onnx", "exported-program"], default="onnx")
    p.add_argument("--output", "-o", help="output file (default: NAME.onnx / NAME.pt2)")
    p.add_argument("--frames", type=int, help="frames per clip (default: the preset's)")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="architecture overrides (MMAction2 names)")
    p.set_defaults(func=_cmd_export)
