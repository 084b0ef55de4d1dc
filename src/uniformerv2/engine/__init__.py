"""Evaluation and training: the engines that run a model over many videos.

* :mod:`.evaluate`: :func:`evaluate` with MMAction2's multi-view test protocol; :mod:`.reports`: what ``test``
  writes; :mod:`.metrics`: MMAction2's ``AccMetric`` definitions.
* :mod:`.config`: :class:`TrainConfig`; :mod:`.train`: the :class:`Trainer`; :mod:`.build`: a run's model and
  videos; :mod:`.step`: one optimiser step; :mod:`.optim`: the recipe's optimiser and schedule; :mod:`.sampler`:
  the resumable data order; :mod:`.state`: training checkpoints and RNG states.
* :mod:`.distributed`: torchrun process-group helpers; :mod:`.parallel`: DDP / FSDP2 behind one object.
"""

from .evaluate import EvalResult, evaluate
from .metrics import compute_metrics, confusion_matrix, mean_class_accuracy, per_class_accuracy, top_k_accuracy

__all__ = [
    "EvalResult",
    "compute_metrics",
    "confusion_matrix",
    "evaluate",
    "mean_class_accuracy",
    "per_class_accuracy",
    "top_k_accuracy",
]
