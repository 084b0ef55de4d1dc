"""``uniformerv2 explain``: where and when the model looks, as pictures and videos."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import (
    EXIT_OK,
    add_labels_argument,
    add_model_arguments,
    add_set_argument,
    add_size_argument,
    alias,
    build_classifier,
    command,
    device,
    positive_int,
)

EXAMPLES = [
    "uniformerv2 explain video.mp4 --checkpoint work_dirs/run/model.safetensors",
    "uniformerv2 explain video.mp4 --model uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb "
    "--class 'arm wrestling' --method gradcam --out-dir why/",
]


def register(sub: Any) -> None:
    p = command(
        sub,
        "explain",
        help="where and when the model looks: Grad-CAM and global-block attention maps "
        "over the video, as MP4, PNG and .npy",
        examples=EXAMPLES,
    )
    p.add_argument("video", help="the video file")
    add_model_arguments(p)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--class", dest="target", help="the class to explain, by name (default: the predicted one)")
    target.add_argument("--top-k", type=positive_int, default=1, help="explain the K most probable classes (default 1)")
    alias(target, "--top", dest="top_k", type=positive_int)  # the old spelling, accepted for one more release
    p.add_argument(
        "--method",
        choices=["gradcam", "attention", "both"],
        default="both",
        help="gradcam: Grad-CAM on a local block's patch tokens; attention: where the global blocks' "
        "video token attends (default: both)",
    )
    p.add_argument("--block", type=int, default=-1, help="the local block Grad-CAM reads (default: the last, -1)")
    p.add_argument("--frames", type=positive_int, help="frames of the explained view (default: the model's)")
    add_labels_argument(p)
    add_size_argument(p)
    p.add_argument("--out-dir", help="where the files go (default: <video>_explain/)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16", "float16"],
        default="float32",
        help="autocast dtype (default float32: gradients in full precision)",
    )
    add_set_argument(p)
    p.set_defaults(func=run, compile=False)


def run(args: argparse.Namespace) -> int:
    from ..explain import write_explanation

    clf = build_classifier(args, views=(1, 1))
    targets: list[Any] = [args.target] if args.target else None  # type: ignore[assignment]
    if targets is None:
        scores = clf.scores(args.video)
        targets = [int(i) for i in scores.topk(min(args.top_k, scores.numel())).indices]
    out_dir = Path(args.out_dir or Path(args.video).with_suffix("").name + "_explain")
    for target in targets:
        ex = clf.explain(args.video, target=target, method=args.method, block=args.block)
        folder = out_dir if len(targets) == 1 else out_dir / ex.target_name.replace("/", "_")
        shares = ex.frame_contributions()
        print(f"{args.video}: {ex.target_name} ({ex.probability:.1%}); frames {ex.indices.tolist()}")
        for name, share in shares.items():
            print(f"  {name:9s} share per frame: " + " ".join(f"{v:.2f}" for v in share))
        for path in write_explanation(ex, folder):
            print(f"wrote {path}")
    return EXIT_OK
