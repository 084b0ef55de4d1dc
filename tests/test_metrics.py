"""Metrics equal MMAction2 1.2.0's AccMetric on the same scores (fixture: tests/fixtures/metrics/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from uniformerv2.engine.metrics import (
    compute_metrics,
    confusion_matrix,
    mean_class_accuracy,
    per_class_accuracy,
    top_k_accuracy,
)
from uniformerv2.plots import top_confused_pairs

FIXTURE = Path(__file__).parent / "fixtures" / "metrics"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
CASES = sorted(EXPECTED["cases"])


def _load(case: str) -> tuple[np.ndarray, np.ndarray]:
    return np.load(FIXTURE / f"{case}_scores.npy"), np.load(FIXTURE / f"{case}_labels.npy")


def _same_tie_order(case: str, scores: np.ndarray) -> bool:
    """Whether numpy's default argsort orders ties here as it did on the machine that made the fixture."""
    return np.array_equal(np.argsort(scores, axis=1), np.load(FIXTURE / f"{case}_argsort.npy"))


@pytest.mark.parametrize("case", CASES)
def test_acc_metric_equals_oracle(case: str) -> None:
    scores, labels = _load(case)
    expected = EXPECTED["cases"][case]["acc_metric"]
    got = compute_metrics(scores, labels)
    assert list(got) == ["top1", "top5", "mean1"]
    assert got["mean1"] == pytest.approx(expected["mean1"], abs=1e-12, rel=0)
    if not _same_tie_order(case, scores):
        pytest.skip(
            "numpy's default sort breaks ties differently on this machine than on the oracle's; "
            "MMAction2's top-k depends on it"
        )
    for key in ("top1", "top5"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12, rel=0), key


@pytest.mark.parametrize("case", CASES)
def test_inputs_as_tensors_and_lists(case: str) -> None:
    scores, labels = _load(case)
    ref = compute_metrics(scores, labels)
    assert compute_metrics(torch.from_numpy(scores), torch.from_numpy(labels)) == ref
    assert compute_metrics([torch.from_numpy(s) for s in scores], labels.tolist()) == ref


@pytest.mark.parametrize("case", CASES)
def test_confusion_matrix_restricted_equals_oracle(case: str) -> None:
    scores, labels = _load(case)
    label_set = EXPECTED["cases"][case]["confusion_label_set"]
    cm = confusion_matrix(scores.argmax(1), labels, scores.shape[1])
    assert cm.shape == (scores.shape[1],) * 2 and cm.sum() == len(labels)
    np.testing.assert_array_equal(cm[np.ix_(label_set, label_set)], np.load(FIXTURE / f"{case}_confusion.npy"))
    # classes outside the label set have empty rows and columns
    others = [c for c in range(scores.shape[1]) if c not in label_set]
    assert cm[others].sum() == 0 and cm[:, others].sum() == 0


def test_absent_classes_in_mean_class_accuracy() -> None:
    # class 2 is predicted but never a label: counts as a class with accuracy 0; class 3 is neither: ignored
    scores = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], np.float32)
    labels = np.array([0, 1, 1, 0])
    assert mean_class_accuracy(scores, labels) == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    rows = per_class_accuracy(scores, labels)
    assert [r["accuracy"] for r in rows] == [1.0, 0.5, None, None]
    assert [r["count"] for r in rows] == [2, 2, 0, 0]
    assert [r["predicted"] for r in rows] == [2, 1, 1, 0]


def test_top_k_larger_than_classes_and_pairs() -> None:
    scores = np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)
    assert top_k_accuracy(scores, [0, 0], (1, 5)) == [0.5, 1.0]
    cm = confusion_matrix([1, 0, 1, 2], [0, 0, 0, 1], 3)
    assert top_confused_pairs(cm) == [(0, 1, 2), (1, 2, 1)]
