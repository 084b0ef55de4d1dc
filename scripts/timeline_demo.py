"""The timeline on a long video whose action changes midway, scored by the offline demo's trained model.

    .venv/bin/uniformerv2 demo --work-dir /tmp/demo                  # trains the model (a few minutes)
    .venv/bin/python scripts/timeline_demo.py --work-dir /tmp/demo   # writes /tmp/demo/timeline/...

The video strings together demo clips of one class (the three lamps lighting up in one order), then clips of
another class; each clip lasts one window, and windows are aligned with the clips (stride = window), so every
window shows one whole clip. The plot should show the first class on the left half, the second on the right.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from uniformerv2.demo import CLASS_NAMES, DemoConfig, make_lamp_video, write_video


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", required=True, help="the demo's work dir (metrics.json, data/label_map.txt)")
    ap.add_argument("--first", type=int, default=0, help="class of the first half")
    ap.add_argument("--second", type=int, default=5, help="class of the second half")
    ap.add_argument("--clips", type=int, default=6, help="clips per half")
    ap.add_argument("--seed", type=int, default=123)
    args = ap.parse_args()
    work = Path(args.work_dir)
    metrics = json.loads((work / "metrics.json").read_text())
    cfg = DemoConfig()
    rng = np.random.default_rng(args.seed)
    clips = [
        make_lamp_video(label, rng, frames=cfg.video_frames, height=cfg.height, width=cfg.width)
        for label in [args.first] * args.clips + [args.second] * args.clips
    ]
    out = work / "timeline"
    video = write_video(out / "changing_action.mp4", np.concatenate(clips), fps=cfg.fps)
    window = f"{cfg.video_frames / cfg.fps:g}s"
    cmd = [
        sys.executable,
        "-m",
        "uniformerv2.cli",
        "timeline",
        str(video),
        "--checkpoint",
        metrics["model_path"],
        "--labels",
        str(work / "data" / "label_map.txt"),
        "--window",
        window,
        "--stride",
        window,
        "--frames",
        str(cfg.frames),
        "--crops",
        "3",
        "--top-k",
        "3",
        "--out-dir",
        str(out),
        "--annotate",
        str(out / "changing_action_annotated.mp4"),
        "--no-progress",
    ]
    print(" ".join(cmd))
    print(f"expected: {CLASS_NAMES[args.first]} for the first {args.clips} windows, then {CLASS_NAMES[args.second]}")
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
