"""Golden metric values from MMAction2 1.2.0's ``AccMetric`` for ``tests/test_metrics.py``.

Run with the reference environment's Python (MMAction2 1.2.0 installed), never the project's, from the repository
root:

  /tmp/uniformerv2-ref/bin/python scripts/make_metric_fixture.py

It draws score matrices and labels with a fixed seed, feeds them to ``AccMetric(metric_list=('top_k_accuracy',
'mean_class_accuracy'))`` exactly as MMAction2's test loop does (``process`` with one dict per video holding a
``pred_score`` float tensor and a ``gt_label`` long tensor of shape [1], then ``compute_metrics(metric.results)``),
and writes into ``--out`` (default ``tests/fixtures/metrics``):

  <case>_scores.npy   float32 [N, C]
  <case>_labels.npy   int64 [N]
  <case>_argsort.npy  int64 [N, C], the oracle machine's ``np.argsort(scores, axis=1)``: MMAction2's top-k breaks
                      ties by numpy's default sort, whose order depends on the numpy build and the CPU's SIMD; the
                      test uses it to tell whether tie-sensitive values can be compared where it runs
  <case>_confusion.npy  int64, MMAction2's ``confusion_matrix(argmax(scores), labels)``: rows true, columns
                      predicted, over its compressed label set (the classes that are a label or a prediction)
  expected.json       per case: AccMetric's values (top1, top5, mean1 as float64) and that label set; plus the
                      versions used.

Cases:
  random   200 x 20, distinct scores; labels never use classes 3 and 17 (class 3 is still predicted sometimes,
           which MMAction2's mean class accuracy counts as a class with accuracy 0); class 11 is neither a label
           nor ever predicted.
  ties     200 x 20, scores quantised to 4 levels (ties inside and across the top-5 boundary, some rows all
           equal); labels never use classes 0 and 19.
  small    7 x 3, fewer classes than k=5.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import mmaction
import mmengine
import numpy as np
import torch
from mmaction.evaluation import AccMetric
from mmaction.evaluation.functional.accuracy import confusion_matrix


def make_cases(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    cases = {}

    # random: distinct scores, absent classes
    n, c = 200, 20
    scores = rng.standard_normal((n, c)).astype(np.float32)
    scores[:, 11] -= 100.0  # never predicted
    allowed = np.array([k for k in range(c) if k not in (3, 11, 17)])
    labels = rng.choice(allowed, size=n).astype(np.int64)
    # make the true class likely to win often enough that accuracies are not trivial
    boost = rng.random(n) < 0.5
    scores[np.arange(n)[boost], labels[boost]] += 2.0
    scores[rng.random(n) < 0.15, 3] += 5.0  # class 3 predicted sometimes but never a label
    cases["random"] = (scores, labels)

    # ties: quantised scores
    scores = rng.integers(0, 4, size=(n, c)).astype(np.float32) / 4.0
    scores[::17] = 0.5  # rows that are all equal
    labels = rng.integers(1, c - 1, size=n).astype(np.int64)
    cases["ties"] = (scores, labels)

    # small: fewer classes than top-5
    scores = rng.random((7, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 2], dtype=np.int64)
    cases["small"] = (scores, labels)
    return cases


def run_acc_metric(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    metric = AccMetric(metric_list=("top_k_accuracy", "mean_class_accuracy"))
    samples = [
        dict(pred_score=torch.from_numpy(s.copy()), gt_label=torch.LongTensor([int(label)]))
        for s, label in zip(scores, labels)
    ]
    for start in range(0, len(samples), 16):  # batches, as the test loop hands them over
        metric.process({}, samples[start : start + 16])
    values = metric.compute_metrics(metric.results)
    return {k: float(v) for k, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="tests/fixtures/metrics")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    expected: dict = {
        "command": "/tmp/uniformerv2-ref/bin/python scripts/make_metric_fixture.py"
        + (f" --seed {args.seed}" if args.seed != 20240601 else ""),
        "versions": {
            "mmaction2": mmaction.__version__,
            "mmengine": mmengine.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "cases": {},
    }
    for name, (scores, labels) in make_cases(args.seed).items():
        np.save(os.path.join(args.out, f"{name}_scores.npy"), scores)
        np.save(os.path.join(args.out, f"{name}_labels.npy"), labels)
        # what AccMetric.process stores: pred.cpu().numpy() (float32) and label.item()
        pred = np.argmax(np.stack(scores), axis=1)
        label_set = np.unique(np.concatenate((pred, labels)))
        expected["cases"][name] = {
            "shape": list(scores.shape),
            "acc_metric": run_acc_metric(scores, labels),
            "confusion_label_set": label_set.tolist(),
        }
        np.save(os.path.join(args.out, f"{name}_confusion.npy"), confusion_matrix(list(pred), list(labels)))
        np.save(os.path.join(args.out, f"{name}_argsort.npy"), np.argsort(np.stack(list(scores)), axis=1))
        print(name, expected["cases"][name]["acc_metric"])
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
