"""Evaluation with MMAction2's multi-view test protocol (and the helpers training shares).

* :mod:`.metrics`: top-k accuracy, mean class accuracy, per-class accuracy, confusion matrix -- MMAction2
  1.2.0's ``AccMetric`` definitions.
* :mod:`.evaluate`: :func:`evaluate` (views batched across videos, softmax averaged over views), dumps, reports,
  and the ``uniformerv2 test`` command.
* :mod:`.distributed`: torchrun helpers (rank, world size, process group, sharding, gathering objects).
"""
from .evaluate import EvalResult, evaluate, read_dump, write_dump
from .metrics import compute_metrics, confusion_matrix, mean_class_accuracy, per_class_accuracy, top_k_accuracy

__all__ = [
    "EvalResult",
    "compute_metrics",
    "confusion_matrix",
    "evaluate",
    "mean_class_accuracy",
    "per_class_accuracy",
    "read_dump",
    "top_k_accuracy",
    "write_dump",
]
