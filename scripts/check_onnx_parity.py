"""ONNX Runtime parity for a full-size preset (default B/16 8x224), fp32, batch 1 and 3.

    .venv/bin/python scripts/check_onnx_parity.py [--model NAME] [--checkpoint PATH]

Without a checkpoint the weights are random (seeded): no published weights can be downloaded here.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import uniformerv2
from uniformerv2.export import export_onnx, onnxruntime_max_abs_diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb")
    ap.add_argument("--checkpoint")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = uniformerv2.create_model(args.model, checkpoint=args.checkpoint).eval()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = export_onnx(model, Path(tmp) / "model.onnx")
        export_s = time.perf_counter() - t0
        diff = onnxruntime_max_abs_diff(model, path, batches=(1, 3))
        size = path.stat().st_size + sum(p.stat().st_size for p in Path(tmp).glob("*.data"))
    print(
        json.dumps(
            {
                "model": args.model,
                "max_abs_logit_diff": diff,
                "export_seconds": round(export_s, 1),
                "onnx_bytes": size,
                "pass_1e-4": diff <= 1e-4,
            }
        )
    )


if __name__ == "__main__":
    main()
