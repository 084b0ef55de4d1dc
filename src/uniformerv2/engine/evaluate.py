"""Multi-view evaluation: MMAction2's test protocol.

Each video is decoded into ``clips x crops`` views (:class:`uniformerv2.data.TestViewsDataset`); the views of
several videos are run through the model together, at most ``batch_views`` at a time, and each video's score is the
mean over its views of the softmax of the logits (MMAction2's ``average_clips='prob'``). Metrics are those of
MMAction2's ``AccMetric`` (:mod:`uniformerv2.engine.metrics`). A video that cannot be decoded is recorded in
``EvalResult.failures`` as ``(path, reason)`` and the evaluation goes on. Under ``torchrun`` every rank scores a
disjoint, unpadded share of the videos and every rank ends up with the whole result, in the input order.
Writing the results (dumps, per-class tables, the confusion matrix) is :mod:`uniformerv2.engine.reports`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import TestViewsDataset, normalize
from ..errors import UsageError
from ..precision import autocast, compile_for_inference, resolve_dtype
from ..protocol import Protocol
from ..scoring import probabilities
from . import distributed as D
from .metrics import compute_metrics, confusion_matrix, per_class_accuracy

__all__ = ["EvalResult", "evaluate"]


@dataclass
class EvalResult:
    """The outcome of :func:`evaluate`. Scored videos are in input order; ``indices`` are their input positions."""

    indices: list[int]
    paths: list[str]
    labels: list[int | None]
    scores: torch.Tensor  # float32 [scored videos, classes]: mean over views of softmax(logits)
    failures: list[tuple[str, str]]  # (path, reason), input order
    metrics: dict[str, float]  # AccMetric's top1, top5, mean1; empty without labels
    num_videos: int
    protocol: Protocol
    class_names: list[str] | None = None

    @property
    def num_scored(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return int(self.scores.shape[1]) if self.scores.ndim == 2 else 0

    @property
    def predictions(self) -> torch.Tensor:
        """argmax of the averaged scores (the first maximum), as MMAction2's ``pred_label``."""
        return self.scores.argmax(dim=1) if self.num_scored else torch.zeros(0, dtype=torch.long)

    @property
    def has_labels(self) -> bool:
        return self.num_scored > 0 and all(label is not None for label in self.labels)

    def class_name(self, c: int) -> str:
        if self.class_names is not None and 0 <= c < len(self.class_names):
            return self.class_names[c]
        return str(c)

    def per_class(self) -> list[dict[str, Any]]:
        """:func:`per_class_accuracy` rows with a ``name`` column."""
        rows = per_class_accuracy(self.scores.numpy(), np.asarray(self.labels, dtype=np.int64), self.num_classes)
        for row in rows:
            row["name"] = self.class_name(row["class"])
        return rows

    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.predictions.numpy(), np.asarray(self.labels, dtype=np.int64), self.num_classes)


def evaluate(
    model: torch.nn.Module,
    samples: Sequence[Any],
    protocol: Protocol,
    *,
    batch_views: int | None = None,
    workers: int = 0,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    class_names: Sequence[str] | None = None,
    progress: bool = True,
    backend: str = "pyav",
    topk: Sequence[int] = (1, 5),
    distributed: bool | None = None,
    compile: bool = False,
) -> EvalResult:
    """Score ``samples`` (``VideoSample(path, label)``) with ``protocol``'s views; see the module docstring.

    ``batch_views``: at most this many views per forward pass (default: one video's views); videos are batched so
    that a forward is as full as possible. ``dtype``: None/'float32', 'auto', or 'bfloat16'/'float16' for autocast.
    ``compile``: run the network through :func:`uniformerv2.precision.compile_for_inference`.
    ``distributed``: None = shard across ranks when a process group with several ranks is initialised.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    samples = list(samples)
    views_per_video = protocol.views
    batch_views = int(batch_views or views_per_video)
    if batch_views < 1:
        raise UsageError(f"batch_views must be >= 1, got {batch_views}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = resolve_dtype(dtype, device)
    if distributed is None:
        distributed = (
            torch.distributed.is_available()
            and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1
        )
    rank = D.get_rank() if distributed else 0
    mine = D.shard_indices(len(samples)) if distributed else list(range(len(samples)))

    dataset = TestViewsDataset([samples[i] for i in mine], protocol, backend=backend)
    loader = DataLoader(
        dataset,
        batch_size=max(1, batch_views // views_per_video),
        shuffle=False,
        num_workers=workers,
        collate_fn=list,
        pin_memory=device.type == "cuda",
    )
    model = model.eval().to(device)
    forward = compile_for_inference(model) if compile else model
    autocast_context = autocast(device, dtype)  # re-entered for every forward

    records: list[tuple[int, str, int | None, np.ndarray]] = []
    failures: list[tuple[int, str, str]] = []
    bar = tqdm(
        total=len(dataset),
        unit="video",
        disable=not progress or rank != 0,
        dynamic_ncols=True,
        desc="test" + (f" (rank 0 of {D.get_world_size()})" if distributed else ""),
        file=sys.stderr,
    )
    with torch.inference_mode(), bar:
        for batch in loader:
            good = []
            for item in batch:
                index = mine[int(item["index"])]
                if item.get("views") is None:
                    path = str(item["path"])
                    reason = str(item.get("error") or "could not be decoded")
                    if reason.startswith(path + ": "):  # the path is printed beside the reason anyway
                        reason = reason[len(path) + 2 :]
                    failures.append((index, path, reason))
                else:
                    good.append((index, item))
            if good:
                views = torch.cat([item["views"] for _, item in good])
                logits = []
                for start in range(0, views.shape[0], batch_views):
                    x = normalize(
                        views[start : start + batch_views].to(device, non_blocking=True)
                    )  # uint8 on the device
                    with autocast_context:
                        out = forward(x)
                    logits.append(out.float())
                counts = [int(item["views"].shape[0]) for _, item in good]
                for (index, item), video_logits in zip(good, torch.cat(logits).split(counts)):
                    label = item.get("label")
                    video_scores = probabilities(video_logits).cpu().numpy()  # the one scoring rule
                    records.append((index, str(item["path"]), None if label is None else int(label), video_scores))
            bar.update(len(batch))
            if failures:
                bar.set_postfix(failed=len(failures), refresh=False)

    if distributed:
        parts = D.all_gather_objects((records, failures))
        records = [r for part in parts for r in part[0]]
        failures = [f for part in parts for f in part[1]]
    records.sort(key=lambda r: r[0])
    failures.sort(key=lambda f: f[0])
    seen = [r[0] for r in records] + [f[0] for f in failures]
    if sorted(seen) != list(range(len(samples))):
        raise RuntimeError("internal error: the videos were not each scored exactly once")

    num_classes = int(getattr(getattr(model, "cfg", None), "num_classes", 0) or 0)
    if records:
        scores = torch.from_numpy(np.stack([r[3] for r in records])).float()
    else:
        scores = torch.zeros(0, num_classes)
    labels = [r[2] for r in records]
    metrics: dict[str, float] = {}
    if records and all(label is not None for label in labels):
        metrics = compute_metrics(scores.numpy(), np.asarray(labels, dtype=np.int64), topk)
    return EvalResult(
        indices=[r[0] for r in records],
        paths=[r[1] for r in records],
        labels=labels,
        scores=scores,
        failures=[(f[1], f[2]) for f in failures],
        metrics=metrics,
        num_videos=len(samples),
        class_names=list(class_names) if class_names is not None else None,
        protocol=protocol,
    )
