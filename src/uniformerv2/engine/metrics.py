"""Classification metrics with exactly MMAction2 1.2.0's definitions (``AccMetric``, ``evaluation/functional``).

* top-k accuracy: a video counts when its label is among the last ``k`` columns of ``np.argsort(scores, axis=1)``
  (numpy's default sort, as MMAction2 calls it). Ties are therefore broken by numpy's default sort order, which is
  not the index order and depends on the numpy build and the CPU. Note that top-1 uses that order too, while the
  predicted label (and mean class accuracy) use ``np.argmax``, the first maximum: on tied scores they can differ.
  With ``k`` greater than the number of classes every video counts.
* mean class accuracy: the mean, over the classes that are a label *or a prediction* of some video, of
  hits / videos of that class, where a class that is predicted but never a label contributes 0. Classes that are
  neither a label nor a prediction do not count. (So it is not the mean over the labelled classes only.)

``compute_metrics`` returns AccMetric's keys: ``top1``, ``top5`` (one per k) and ``mean1``; MMEngine's logs show
them with the ``acc/`` prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "top_k_accuracy",
    "mean_class_accuracy",
    "per_class_accuracy",
    "confusion_matrix",
    "compute_metrics",
    "best_label_mapping",
]


def _scores(scores: Any) -> np.ndarray:
    if hasattr(scores, "detach"):  # torch tensor
        scores = scores.detach().cpu().numpy()
    elif isinstance(scores, (list, tuple)):
        scores = (
            np.stack([s.detach().cpu().numpy() if hasattr(s, "detach") else np.asarray(s) for s in scores])
            if len(scores)
            else np.zeros((0, 0), np.float32)
        )
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [videos, classes], got shape {tuple(scores.shape)}")
    return scores


def _labels(labels: Any, n: int) -> np.ndarray:
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray([int(x) for x in np.asarray(labels).reshape(-1)], dtype=np.int64)
    if labels.shape[0] != n:
        raise ValueError(f"{labels.shape[0]} labels for {n} score rows")
    return labels


def top_k_accuracy(scores: Any, labels: Any, topk: int | Iterable[int] = (1, 5)) -> list[float]:
    """Fraction of videos whose label is among the ``k`` highest scores, for each ``k`` (MMAction2's definition)."""
    scores = _scores(scores)
    labels = _labels(labels, scores.shape[0])
    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    if scores.shape[0] == 0:
        return [float("nan")] * len(ks)
    order = np.argsort(scores, axis=1)  # MMAction2 relies on numpy's default sort, ties included
    out = []
    for k in ks:
        if k < 1:
            raise ValueError(f"top-k needs k >= 1, got {k}")
        best = order[:, -k:]
        out.append(float(np.any(best == labels[:, None], axis=1).sum() / scores.shape[0]))
    return out


def confusion_matrix(predictions: Any, labels: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts, int64 [num_classes, num_classes]: row = true class, column = predicted class.

    Unlike MMAction2's ``confusion_matrix`` (which keeps only the classes that occur), every class has its row and
    column; MMAction2's matrix is this one restricted to ``np.unique(concat(predictions, labels))``.
    """
    pred = np.asarray(predictions, dtype=np.int64).reshape(-1)
    true = np.asarray(labels, dtype=np.int64).reshape(-1)
    if pred.shape != true.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {true.shape[0]} labels")
    if num_classes is None:
        num_classes = int(max(pred.max(initial=-1), true.max(initial=-1)) + 1)
    if pred.size and (min(pred.min(), true.min()) < 0 or max(pred.max(), true.max()) >= num_classes):
        raise ValueError(f"class index outside [0, {num_classes})")
    return (
        np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
        .reshape(num_classes, num_classes)
        .astype(np.int64)
    )


def mean_class_accuracy(scores: Any, labels: Any) -> float:
    """MMAction2's mean class accuracy (see the module docstring for how absent classes count)."""
    scores = _scores(scores)
    labels = _labels(labels, scores.shape[0])
    if scores.shape[0] == 0:
        return float("nan")
    pred = np.argmax(scores, axis=1).astype(np.int64)
    num_classes = max(scores.shape[1], int(labels.max()) + 1)
    cm = confusion_matrix(pred, labels, num_classes).astype(np.float64)
    present = np.unique(np.concatenate((pred, labels)))
    counts = cm.sum(axis=1)[present]
    hits = np.diag(cm)[present]
    return float(np.mean([h / c if c else 0.0 for c, h in zip(counts, hits)]))


def per_class_accuracy(scores: Any, labels: Any, num_classes: int | None = None) -> list[dict[str, Any]]:
    """One row per class: ``class`` index, ``count`` (videos labelled with it), ``correct`` (of those predicted as
    it by argmax), ``predicted`` (videos predicted as it), ``accuracy`` (correct / count, ``None`` when count is 0).
    """
    scores = _scores(scores)
    labels = _labels(labels, scores.shape[0])
    if num_classes is None:
        num_classes = max(scores.shape[1], int(labels.max(initial=-1)) + 1)
    pred = np.argmax(scores, axis=1).astype(np.int64) if scores.shape[0] else np.zeros(0, np.int64)
    cm = confusion_matrix(pred, labels, num_classes)
    rows = []
    for c in range(num_classes):
        count, correct = int(cm[c].sum()), int(cm[c, c])
        rows.append(
            {
                "class": c,
                "count": count,
                "correct": correct,
                "predicted": int(cm[:, c].sum()),
                "accuracy": (correct / count) if count else None,
            }
        )
    return rows


def compute_metrics(scores: Any, labels: Any, topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """AccMetric's ``compute_metrics`` with its default ``metric_list``: ``{'top1', 'top5', 'mean1'}``."""
    out = {f"top{k}": v for k, v in zip(topk, top_k_accuracy(scores, labels, topk))}
    out["mean1"] = mean_class_accuracy(scores, labels)
    return out


def best_label_mapping(cm: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """The one-to-one reassignment of predicted to true classes that a confusion matrix supports best (Hungarian
    matching, scipy's ``linear_sum_assignment``): the accuracy it would give and the ``(true, predicted)`` pairs of
    the labelled classes that it moves, most videos first. A much higher accuracy than top-1 means the labels are
    the right classes in another order."""
    from scipy.optimize import linear_sum_assignment

    cm = np.asarray(cm, dtype=np.int64)
    total = int(cm.sum())
    if total == 0:
        return float("nan"), []
    true, pred = linear_sum_assignment(-cm)
    accuracy = float(cm[true, pred].sum() / total)
    moved = [(int(t), int(p)) for t, p in zip(true, pred) if t != p and cm[t].sum() and cm[t, p]]
    moved.sort(key=lambda tp: -cm[tp[0], tp[1]])
    return accuracy, moved
