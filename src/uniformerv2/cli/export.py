"""``uniformerv2 export``: ONNX (checked with ONNX Runtime) or a torch.export ExportedProgram."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    add_model_arguments,
    add_set_argument,
    add_size_argument,
    command,
    model_overrides,
    model_source,
    positive_int,
)

EXAMPLES = [
    "uniformerv2 export --checkpoint work_dirs/run/model.safetensors -o model.onnx",
    "uniformerv2 export uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb "
    "--checkpoint k400_b16.pth --format exported-program",
]


def register(sub: Any) -> None:
    p = command(
        sub,
        "export",
        help="export a model to ONNX (checked with ONNX Runtime) or an ExportedProgram",
        examples=EXAMPLES,
    )
    add_model_arguments(p, positional=True)
    p.add_argument(
        "--format",
        choices=["onnx", "exported-program"],
        default="onnx",
        help="onnx (default) or a torch.export ExportedProgram (.pt2)",
    )
    p.add_argument("--output", "-o", help="output file (default: NAME.onnx / NAME.pt2)")
    p.add_argument("--frames", type=positive_int, help="frames per clip (default: the model's)")
    add_size_argument(p)
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")
    add_set_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export_onnx, export_program, onnxruntime_max_abs_diff
    from ..factory import create_model

    name, checkpoint = model_source(args)
    model = create_model(name, checkpoint=checkpoint, **model_overrides(args))
    suffix = ".onnx" if args.format == "onnx" else ".pt2"
    if name:
        stem = Path(str(name)).name
    else:
        assert checkpoint is not None  # model_source raises when neither is given
        stem = Path(checkpoint).stem
    out = Path(args.output or stem + suffix)
    frames = args.frames or model.pretrained_cfg.protocol.frames
    size = model.cfg.input_resolution
    if args.format == "onnx":
        export_onnx(model, out, frames=frames, opset=args.opset)
        print(
            f"wrote {out} (input 'video' [batch, 3, {frames}, {size}, {size}] float32, normalised; output "
            f"'logits' [batch, {model.num_classes}])"
        )
        if not args.no_check:
            diff = onnxruntime_max_abs_diff(model, out, frames=frames)
            print(f"ONNX Runtime vs PyTorch: max abs logit difference {diff:.3g} (batch 1 and 3)")
            if diff > 1e-4:
                print("uniformerv2 export: error: ONNX Runtime disagrees with PyTorch by more than 1e-4", flush=True)
                return EXIT_ERROR
    else:
        export_program(model, out, frames=frames)
        print(f"wrote {out} (torch.export.load it; dynamic batch)")
    return EXIT_OK
