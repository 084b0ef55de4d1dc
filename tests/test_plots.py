"""Every PNG is drawn on its own Figure: plotting never changes the caller's matplotlib backend."""

from __future__ import annotations

import matplotlib
import numpy as np

from uniformerv2.plots import write_confusion_png, write_curves, write_timeline_png


def test_plots_leave_the_matplotlib_backend_alone(tmp_path):
    matplotlib.use("svg")  # what a notebook or an application may have chosen
    before = matplotlib.get_backend()
    history = [
        {"type": "train", "epoch_float": 0.5, "loss": 1.0, "acc": 0.5, "lr": 1e-3},
        {"type": "val", "epoch": 1, "top1": 0.6, "loss": 0.9},
    ]
    paths = [
        write_curves(history, tmp_path / "curves.png"),
        write_confusion_png(tmp_path / "cm.png", np.array([[3, 1], [0, 2]]), ["a", "b"], top1=0.83),
        write_timeline_png(
            tmp_path / "tl.png",
            np.array([0.0, 1.0]),
            np.array([2.0, 3.0]),
            np.array([[0.9, 0.1], [0.2, 0.8]]),
            ["a", "b"],
            title="t",
        ),
    ]
    assert matplotlib.get_backend() == before
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
