"""Full-size parity with MMAction2 1.2.0: B/16 and L/14 presets, random weights, real sizes (too big for fixtures).

For each preset this runs the oracle (``shared/ref/dump.py`` in its own virtual environment) on the preset's
MMAction2 config at full size, then loads the dumped MMAction2 checkpoint into ``uniformerv2.create_model(NAME,
checkpoint=...)`` and compares features, per-view logits and averaged scores.

    bash ../shared/ref/setup.sh
    .venv/bin/python scripts/check_full_parity.py            # B/16 and L/14, 8x224, 2 views
    .venv/bin/python scripts/check_full_parity.py \
        --names uniformerv2-large-p14-res336_clip-kinetics710-pre_u32_kinetics400-rgb
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import uniformerv2

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [
    "uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb",
    "uniformerv2-large-p14-res224_clip-kinetics710-pre_u8_kinetics400-rgb",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--names", nargs="*", default=DEFAULT)
    ap.add_argument("--ref-python", default=os.environ.get("UNIFORMERV2_REF_PYTHON", "/tmp/uniformerv2-ref/bin/python"))
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--out", help="keep the oracle dumps here (default: a temporary directory)")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out or tmp)
        for name in args.names:
            preset = uniformerv2.get_preset(name)
            out = base / name
            cmd = [
                args.ref_python,
                f"{args.shared}/ref/dump.py",
                "--config",
                f"{name}.py",
                "--frames",
                str(preset.num_frames),
                "--size",
                str(preset.resolution),
                "--views",
                str(args.views),
                "--batch",
                "1",
                "--seed",
                "0",
                "--out",
                str(out),
            ]
            print("oracle:", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            model = uniformerv2.create_model(name, checkpoint=out / "checkpoint.pth")
            raw = torch.load(out / "input.pt", weights_only=True)
            ref = torch.load(out / "outputs.pt", weights_only=True)
            with torch.no_grad():
                feats = model.forward_features(((raw - 114.75) / 57.375).flatten(0, 1))
                logits = model.cls_head(feats)
            scores = logits.softmax(-1).view(raw.shape[0], raw.shape[1], -1).mean(1)
            row = {
                "name": name,
                "params": sum(p.numel() for p in model.parameters()),
                "max_abs_diff_features": (feats - ref["features"]).abs().max().item(),
                "max_abs_diff_logits": (logits - ref["cls_score"]).abs().max().item(),
                "max_abs_diff_scores": (scores - ref["scores"]).abs().max().item(),
                "max_abs_logit": ref["cls_score"].abs().max().item(),
            }
            print(json.dumps(row), flush=True)
            results.append(row)
            del model
    worst = max(r["max_abs_diff_logits"] for r in results)
    print(f"worst logit difference {worst:.3g} ({'PASS' if worst <= 1e-4 else 'FAIL'} at 1e-4)")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
