"""Are the explanations faithful? The deletion test and a localisation score on the demo's temporal task.

Run the offline demo first (`uniformerv2 demo --work-dir DIR`), then:

    .venv/bin/python scripts/explain_faithfulness.py --work-dir DIR

For every test video of the demo (its centre view, the trained model's predicted class):

* deletion: blank the 10% of the clip's pixels with the highest map values (to the mean colour) and record how much
  the predicted class's probability falls; the same for 10% chosen at random (the mean of 5 draws). A faithful map
  makes the first drop much larger than the second.
* localisation: the share of the map's mass on the pixels that change over the clip (the lamps: temporal standard
  deviation above 10 grey levels) against those pixels' share of the image.

Both are reported for Grad-CAM (the last local block) and the global blocks' attention.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from uniformerv2 import create_model
from uniformerv2.data import read_annotation_list
from uniformerv2.data.transforms import normalize
from uniformerv2.data.views import read_test_views
from uniformerv2.explain import attention_maps, deletion_test, gradcam


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", required=True, help="the demo's work dir (train/model.safetensors, data/)")
    ap.add_argument("--fraction", type=float, default=0.1, help="share of the pixels blanked (default 0.1)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    work = Path(args.work_dir)
    model = create_model(work / "train" / "model.safetensors").eval()
    protocol = model.pretrained_cfg.protocol.replace(clips=1, crops=1)
    samples = read_annotation_list(work / "data" / "test_list.txt", work / "data")
    rows = {"gradcam": [], "attention": []}
    for sample in samples:
        views = read_test_views(sample.path, protocol)  # uint8 [1, 3, T, S, S]
        x = normalize(views)
        with torch.no_grad():
            target = int(model(x).argmax(-1))
        pixels = views[0].float()  # [3, T, S, S]
        moving = (pixels.std(dim=1).mean(0) > 10).expand(x.shape[2], -1, -1)  # [T, S, S]: the lamps
        cam, _ = gradcam(model, x, target)
        attn, _ = attention_maps(model, x)
        for name, m in (("gradcam", cam[0]), ("attention", attn.mean(0)[0])):
            drop, random_drop = deletion_test(model, x, m, target, fraction=args.fraction)
            on_lamps = float(m[moving].sum() / m.sum().clamp_min(1e-12))
            rows[name].append((drop, random_drop, on_lamps, float(moving.float().mean())))
    report = {}
    for name, r in rows.items():
        a = np.asarray(r)
        report[name] = {
            "videos": len(a),
            "map_drop": float(a[:, 0].mean()),
            "random_drop": float(a[:, 1].mean()),
            "ratio": float(a[:, 0].mean() / max(a[:, 1].mean(), 1e-9)),
            "mass_on_moving_pixels": float(a[:, 2].mean()),
            "moving_pixel_share": float(a[:, 3].mean()),
        }
        v = report[name]
        print(
            f"{name:9s}: blanking the top {args.fraction:.0%} lowers p(predicted) by {v['map_drop']:.3f}, random "
            f"{args.fraction:.0%} by {v['random_drop']:.3f} ({v['ratio']:.1f}x); {v['mass_on_moving_pixels']:.1%} "
            f"of the map on the moving pixels, which are {v['moving_pixel_share']:.1%} of the image "
            f"({len(a)} videos)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
