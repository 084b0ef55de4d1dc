"""``uniformerv2 demo``: the offline end-to-end demo."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ._common import EXIT_OK, add_workers_argument, command

EXAMPLES = ["uniformerv2 demo --work-dir demo-run", "uniformerv2 demo --work-dir /tmp/quick --epochs 5"]


def register(sub: Any) -> None:
    from ..demo import DemoConfig

    p = command(
        sub,
        "demo",
        help="offline end-to-end demo: write videos, train a small model, test it (CPU, a few minutes)",
        examples=EXAMPLES,
    )
    p.add_argument("--work-dir", required=True, help="where the videos, checkpoints, metrics.json and curves go")
    p.add_argument("--epochs", type=float, help=f"training epochs (default {DemoConfig.epochs})")
    p.add_argument(
        "--train-per-class", type=int, help=f"training videos per class (default {DemoConfig.train_per_class})"
    )
    p.add_argument("--test-per-class", type=int, help=f"test videos per class (default {DemoConfig.test_per_class})")
    add_workers_argument(p, None, f"DataLoader worker processes (default {DemoConfig.workers})")
    p.add_argument("--seed", type=int, help="random seed of the videos and the training (default 0)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import CLASS_NAMES, DemoConfig, run_demo

    cfg = DemoConfig()
    for name in ("epochs", "train_per_class", "test_per_class", "workers", "seed"):
        if getattr(args, name, None) is not None:
            setattr(cfg, name, getattr(args, name))
    t0 = time.perf_counter()
    m = run_demo(args.work_dir, cfg, progress=args.progress)
    print(
        f"demo: {m['train_videos']} training videos, {m['test_videos']} test videos, {len(CLASS_NAMES)} classes "
        f"that differ only in temporal order"
    )
    print(
        f"  test top-1 {m['top1']:.3f} ({m['test_protocol']}); with the frames shuffled "
        f"{m['top1_frames_shuffled']:.3f}; chance {m['chance']:.3f}"
    )
    print(f"  {time.perf_counter() - t0:.0f}s on {m['threads']} threads")
    print(f"  metrics: {Path(args.work_dir) / 'metrics.json'}")
    print(f"  curves:  {m['curves']}")
    return EXIT_OK
