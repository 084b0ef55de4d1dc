"""The offline demo: ``uniformerv2 demo --work-dir DIR``. No internet, no GPU, a few minutes on 2 CPU cores.

1. Writes real video files (H.264 MP4, PyAV) of a task whose classes differ *only in temporal order*: three
   lamps stacked vertically light up one after the other, and the class is the order (top-middle-bottom,
   top-bottom-middle, ..., 6 classes). Every class shows the same kinds of frames (one lamp lit, in equal shares
   on average); only their order tells the classes apart. Lamp colour, position, spacing, size, background,
   noise and the lengths of the three phases are random per video. The task is invariant under the recipe's
   horizontal flip and small rotations.
2. Trains a small UniFormerV2 (local MHRA on, 0.3M parameters) through the real training path
   (:class:`uniformerv2.engine.train.Trainer`: annotation lists, the bad-sample check, the recipe's augmentation
   pipeline, AdamW with the warm-up/cosine schedule, validation each epoch, checkpoints, JSON-lines log, curves).
3. Evaluates held-out videos through the real multi-view test path (:func:`uniformerv2.engine.evaluate.evaluate`,
   ``clips x crops`` views, softmax averaged), then again with the frames of every view shuffled
   (a wrapper permutes the time axis of the model's input): with time destroyed the score must fall to chance.
4. Writes ``DIR/metrics.json`` (``top1``, ``chance``, ``top1_frames_shuffled``, ...) and ``DIR/curves.png``.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .atomic import atomic_copy, atomic_write_text
from .data.encode import VideoWriter

__all__ = [
    "DemoConfig",
    "ORDERS",
    "CLASS_NAMES",
    "make_lamp_video",
    "write_video",
    "write_dataset",
    "run_demo",
    "ShuffleFrames",
]

ORDERS: list[tuple[int, int, int]] = list(itertools.permutations(range(3), 3))  # lamp 0 = top, 2 = bottom
_LAMP = ("top", "middle", "bottom")
CLASS_NAMES: list[str] = ["-".join(_LAMP[i] for i in order) for order in ORDERS]


@dataclass
class DemoConfig:
    """The demo's data, model and schedule (sized for well under 10 minutes on 2 CPU cores).

    Training uses the recipe's pipeline and optimiser with these departures, all for a from-scratch model of 0.3M
    parameters on a few hundred tiny clips: learning rate 1e-3 (the recipe's 2e-6 x batch/256 is for fine-tuning
    CLIP), cosine down to 0.01x over 30 epochs, head dropout 0.1, crops of at least half the frame, and no
    RandAugment (with it, m7 n4, the model was still at chance after 11 epochs: set ``randaug=True`` to try).
    """

    train_per_class: int = 60
    val_per_class: int = 5
    test_per_class: int = 20
    video_frames: int = 16
    height: int = 40
    width: int = 48
    fps: int = 12
    seed: int = 0
    # model: a small UniFormerV2 with local MHRA
    size: int = 32
    frames: int = 8  # per clip
    model_overrides: dict = field(
        default_factory=lambda: dict(
            input_resolution=32,
            patch_size=8,
            width=64,
            layers=4,
            heads=4,
            t_size=8,
            no_lmhra=False,
            double_lmhra=True,
            return_list=(2, 3),
            n_layers=2,
            n_dim=64,
            n_head=4,
            mlp_factor=2.0,
            mlp_dropout=(0.0, 0.0),
        )
    )
    dropout_ratio: float = 0.1
    # training (the recipe's optimiser/schedule/augmentation; from-scratch learning rate and length)
    epochs: float = 30
    batch_size: int = 16
    lr: float = 1e-3
    eta_min_ratio: float = 0.01
    area_range: tuple = (0.5, 1.0)
    randaug: bool = False
    randaug_magnitude: float = 7.0
    randaug_num_layers: int = 4
    workers: int = 2
    # test protocol
    clips: int = 2
    crops: int = 3
    threads: int | None = None


# ------------------------------------------------------------------------------------------------- the videos


def _lamp(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """An anti-aliased filled ellipse mask ``[h, w]`` in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return np.clip((1.0 - d) * min(rx, ry) + 0.5, 0.0, 1.0)


def make_lamp_video(
    label: int, rng: np.random.Generator, *, frames: int = 16, height: int = 40, width: int = 48
) -> np.ndarray:
    """uint8 RGB ``[frames, height, width, 3]``: three stacked lamps lighting up in the order ``ORDERS[label]``."""
    order = ORDERS[label]
    h, w = height, width
    # three phases, each at least a fifth of the video (so that 8 uniformly sampled frames see every phase)
    min_len = max(1, frames // 5)
    slack = frames - 3 * min_len
    cuts = np.sort(rng.integers(0, slack + 1, size=2))
    lengths = [min_len + cuts[0], min_len + cuts[1] - cuts[0], min_len + slack - cuts[1]]
    lit = np.repeat(np.asarray(order), lengths)  # [frames] -> which lamp is on

    bg = rng.uniform(10, 70, size=3)
    texture = rng.normal(0, 8, size=(h, w, 1)) + bg
    hue = rng.uniform(0.35, 1.0, size=3)
    hue = hue / hue.max()
    on_color = hue * rng.uniform(190, 250)
    off_color = hue * rng.uniform(40, 80)
    spacing = rng.uniform(0.28, 0.32) * h
    cy = h / 2 + rng.uniform(-0.03, 0.03) * h
    cx = w / 2 + rng.uniform(-0.05, 0.05) * w
    ry = rng.uniform(0.11, 0.14) * h
    rx = rng.uniform(0.22, 0.32) * w
    masks = [_lamp(h, w, cy + (i - 1) * spacing, cx, ry, rx)[..., None] for i in range(3)]
    out = np.empty((frames, h, w, 3), dtype=np.uint8)
    for t in range(frames):
        img = texture + rng.normal(0, 4, size=(h, w, 1))
        for i, m in enumerate(masks):
            color = on_color if lit[t] == i else off_color
            img = img * (1 - m) + m * color
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 12) -> Path:
    """Write uint8 RGB ``[T, H, W, 3]`` as an H.264 MP4 (near-lossless: crf 10), atomically."""
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to write")
    with VideoWriter(path, fps, crf=10) as writer:
        for f in frames:
            writer.write(f)
    return writer.path


def write_dataset(root: str | os.PathLike, cfg: DemoConfig) -> dict[str, Path]:
    """Write train/val/test videos and MMAction2 annotation lists (``path label``) under ``root``."""
    root = Path(root)
    lists: dict[str, Path] = {}
    for split, per_class, offset in (
        ("train", cfg.train_per_class, 0),
        ("val", cfg.val_per_class, 1),
        ("test", cfg.test_per_class, 2),
    ):
        lines = []
        for label in range(len(ORDERS)):
            for k in range(per_class):
                rng = np.random.default_rng([cfg.seed, offset, label, k])
                rel = f"{split}/{CLASS_NAMES[label]}/{k:04d}.mp4"
                write_video(
                    root / rel,
                    make_lamp_video(label, rng, frames=cfg.video_frames, height=cfg.height, width=cfg.width),
                    cfg.fps,
                )
                lines.append(f"{rel} {label}")
        ann = root / f"{split}_list.txt"
        atomic_write_text(ann, "\n".join(lines) + "\n")
        lists[split] = ann
    atomic_write_text(root / "label_map.txt", "\n".join(CLASS_NAMES) + "\n")
    return lists


# ------------------------------------------------------------------------------------------------ evaluation


class ShuffleFrames(nn.Module):
    """The wrapped model, fed every clip with its frames in a random order (a fixed generator per forward call)."""

    def __init__(self, model: nn.Module, seed: int = 0) -> None:
        super().__init__()
        self.model = model
        self.cfg = model.cfg
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[0], x.shape[2]
        perms = torch.stack([torch.randperm(t, generator=self.generator) for _ in range(n)]).to(x.device)
        idx = perms.view(n, 1, t, 1, 1).expand(-1, x.shape[1], -1, x.shape[3], x.shape[4])
        return self.model(torch.gather(x, 2, idx))


# ---------------------------------------------------------------------------------------------------- pipeline


def run_demo(work_dir: str | os.PathLike, cfg: DemoConfig | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Write the data, train, test; return (and write to ``work_dir/metrics.json``) the metrics."""
    from .data import read_annotation_list
    from .engine.config import TrainConfig
    from .engine.evaluate import evaluate
    from .engine.train import Trainer
    from .protocol import Protocol

    cfg = cfg or DemoConfig()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    data = work_dir / "data"
    lists = write_dataset(data, cfg)
    t_data = time.perf_counter() - t0
    if progress:
        print(
            f"wrote {sum(len(p.read_text().splitlines()) for p in lists.values())} videos to {data} ({t_data:.1f}s)",
            file=sys.stderr,
        )

    tcfg = TrainConfig(
        model="uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb",
        init="none",
        num_classes=len(CLASS_NAMES),
        model_overrides=dict(cfg.model_overrides),
        dropout_ratio=cfg.dropout_ratio,
        ann_file=str(lists["train"]),
        data_root=str(data),
        val_ann_file=str(lists["val"]),
        labels=str(data / "label_map.txt"),
        frames=cfg.frames,
        size=cfg.size,
        short_side=cfg.size,
        area_range=tuple(cfg.area_range),
        randaug=cfg.randaug,
        randaug_magnitude=cfg.randaug_magnitude,
        randaug_num_layers=cfg.randaug_num_layers,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        eta_min_ratio=cfg.eta_min_ratio,
        workers=cfg.workers,
        work_dir=str(work_dir / "train"),
        seed=cfg.seed,
        device="cpu",
        progress=progress,
        keep_last=2,
        log_interval=5,
        val_batch_views=64,
        threads=cfg.threads,
    )
    result = Trainer(tcfg).fit()
    t_train = time.perf_counter() - t0 - t_data
    assert result.model is not None  # fit() returns the trained model
    model = result.model.eval()

    test = read_annotation_list(lists["test"], data)
    protocol = Protocol(cfg.frames, cfg.size, cfg.clips, cfg.crops)
    common: dict[str, Any] = dict(
        batch_views=96, workers=cfg.workers, device="cpu", progress=progress, class_names=CLASS_NAMES
    )
    res = evaluate(model, test, protocol, **common)
    res_shuffled = evaluate(ShuffleFrames(model, seed=cfg.seed), test, protocol, **common)
    t_total = time.perf_counter() - t0

    curves = work_dir / "curves.png"
    src = result.work_dir / "curves.png"
    if src.is_file():
        atomic_copy(src, curves)
    val = [h for h in result.history if h.get("type") == "val"]
    metrics = {
        "task": "order in which three stacked lamps light up (classes differ only in temporal order)",
        "classes": CLASS_NAMES,
        "top1": res.metrics["top1"],
        "top5": res.metrics.get("top5"),
        "mean_class_accuracy": res.metrics.get("mean1"),
        "chance": 1.0 / len(CLASS_NAMES),
        "top1_frames_shuffled": res_shuffled.metrics["top1"],
        "test_videos": res.num_videos,
        "test_failures": len(res.failures),
        "test_protocol": f"{cfg.clips} clips x {cfg.crops} crops, {cfg.frames} frames at {cfg.size}px",
        "train_videos": cfg.train_per_class * len(CLASS_NAMES),
        "val_top1_per_epoch": [round(v["top1"], 4) for v in val],
        "best_val_top1": result.best_top1,
        "train_steps": result.steps,
        "epochs": result.epochs,
        "model": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.model_overrides.items()},
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": {"data": round(t_data, 1), "train": round(t_train, 1), "total": round(t_total, 1)},
        "threads": torch.get_num_threads(),
        "model_path": str(result.model_path),
        "curves": str(curves),
        "train_log": str(result.work_dir / "log.jsonl"),
    }
    atomic_write_text(work_dir / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    return metrics
