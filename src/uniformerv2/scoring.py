"""The one scoring rule: a video's class probabilities from its views' logits, and its top classes.

Everything that scores a video goes through here: :class:`~uniformerv2.inference.VideoClassifier`, the timeline,
``live``, the HTTP service and ``test`` (:func:`uniformerv2.engine.evaluate.evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["probabilities", "top_classes"]


def probabilities(logits: torch.Tensor, rows: Sequence[int] | None = None) -> torch.Tensor:
    """A video's class probabilities from the logits of its views [V, C]: softmax per view, mean over the views
    (MMAction2's ``average_clips='prob'``), float32 [C]. ``rows``: score only those classes (head rows), in that
    order -- the softmax runs over them alone, as over a head cut down to them (``--labels``)."""
    if rows is not None:
        logits = logits[:, list(rows)]
    return logits.float().softmax(-1).mean(0)


def top_classes(scores: torch.Tensor, class_names: Sequence[str], top_k: int = 5) -> list[tuple[str, float]]:
    """The ``top_k`` most probable classes of ``scores`` [C] as ``[(name, score), ...]``, most probable first."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    values, indices = scores.topk(min(top_k, scores.numel()))
    return [(class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]
