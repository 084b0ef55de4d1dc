"""Every PNG the package writes: training curves, the confusion matrix, the timeline plot, the dataset check.

Figures are drawn on their own ``Figure`` with the Agg canvas, never through ``pyplot`` or ``matplotlib.use``, so
plotting here never changes a notebook's or an application's matplotlib backend. Files are written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_bytes

__all__ = [
    "write_curves",
    "write_confusion_png",
    "write_timeline_png",
    "top_confused_pairs",
    "write_map_grid",
    "write_frame_contributions",
    "write_dataset_charts",
]


def _figure(width: float, height: float, dpi: int = 100) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike, dpi: int | None = None) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())


def write_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Loss, accuracy and learning-rate curves of a training log (``type`` 'train' and 'val' records)."""
    train = [h for h in history if h.get("type") == "train"]
    val = [h for h in history if h.get("type") == "val"]
    fig = _figure(15, 4)
    axes = fig.subplots(1, 3)
    if train:
        e = [h["epoch_float"] for h in train]
        axes[0].plot(e, [h["loss"] for h in train], label="train loss")
        axes[1].plot(e, [h["acc"] for h in train], label="train top-1 (augmented batches)")
        axes[2].plot(e, [h["lr"] for h in train])
    if val:
        axes[1].plot([h["epoch"] for h in val], [h["top1"] for h in val], "o-", label="val top-1")
        if "loss" in val[0]:
            axes[0].plot([h["epoch"] for h in val], [h["loss"] for h in val], "o-", label="val loss")
    for ax, title in zip(axes, ("loss", "accuracy", "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if train or val:
        axes[0].legend()
        axes[1].legend()
    axes[1].set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return _save(fig, path, dpi=90)


def top_confused_pairs(cm: np.ndarray, n: int = 20) -> list[tuple[int, int, int]]:
    """The ``n`` largest off-diagonal cells of a confusion matrix as (true, predicted, count), largest first."""
    off = np.array(cm, dtype=np.int64, copy=True)
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:n]
    pairs = []
    for idx in flat:
        t, p = divmod(int(idx), off.shape[1])
        if off[t, p] <= 0:
            break
        pairs.append((t, p, int(off[t, p])))
    return pairs


def write_confusion_png(
    path: str | os.PathLike,
    cm: np.ndarray,
    class_names: Sequence[str],
    *,
    top1: float | None = None,
    max_classes: int = 40,
) -> Path:
    """Row-normalised confusion matrix (rows: true class). Up to ``max_classes`` classes, those that are a label or
    a prediction; with more, the classes of the most frequent confusions (at most 30)."""
    present = [c for c in range(cm.shape[0]) if cm[c].sum() or cm[:, c].sum()]
    title = "confusion matrix"
    if len(present) > max_classes:
        chosen: list[int] = []
        for t, p, _ in top_confused_pairs(cm, n=cm.shape[0] ** 2):
            for c in (t, p):
                if c not in chosen and len(chosen) < 30:
                    chosen.append(c)
            if len(chosen) >= 30:
                break
        present = sorted(chosen) or present[:30]
        title = f"confusion matrix: the {len(present)} most confused of {cm.shape[0]} classes"
    sub = cm[np.ix_(present, present)].astype(np.float64)
    with np.errstate(all="ignore"):
        frac = np.nan_to_num(sub / cm[present].sum(axis=1, keepdims=True))
    n = max(1, len(present))
    inches = min(24.0, max(4.0, 0.32 * n + 2.5))
    fig = _figure(inches + 1.2, inches)
    ax = fig.add_subplot()
    image = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class's videos")
    names = [str(class_names[c])[:24] if c < len(class_names) else str(c) for c in present]
    ax.set_xticks(range(n), labels=names, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), labels=names, fontsize=7 if n > 20 else 9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title + (f" (top-1 {top1:.4f})" if top1 is not None else ""))
    if n <= 25:
        for i in range(len(present)):
            for j in range(len(present)):
                if sub[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(sub[i, j])),
                        ha="center",
                        va="center",
                        fontsize=7 if n > 10 else 10,
                        color="white" if frac[i, j] > 0.5 else "black",
                    )
    fig.tight_layout()
    return _save(fig, path)


def _shown_classes(scores: np.ndarray, max_classes: int) -> list[int]:
    """Classes that are top-1 somewhere (by how often), then the highest-scoring others, up to ``max_classes``."""
    top = scores.argmax(1)
    counts = np.bincount(top, minlength=scores.shape[1])
    order = sorted(set(top.tolist()), key=lambda c: -counts[c])
    for c in np.argsort(-scores.max(0)):
        if len(order) >= max_classes:
            break
        if int(c) not in order:
            order.append(int(c))
    return order[:max_classes]


def write_timeline_png(
    path: str | os.PathLike,
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    class_names: Sequence[str],
    *,
    title: str,
    top_k: int = 5,
) -> Path:
    """Probability of the ``top_k`` leading classes over time, with the top-1 class as a band along the bottom."""
    from matplotlib import colormaps

    centres = (starts + ends) / 2
    shown = _shown_classes(scores, top_k)
    fig = _figure(10, 4, dpi=120)
    ax = fig.add_subplot()
    colors = colormaps["tab10"]
    for k, c in enumerate(shown):
        ax.plot(centres, scores[:, c], color=colors(k % 10), lw=2, label=class_names[c])
    for w, c in enumerate(scores.argmax(1)):
        rank = shown.index(int(c)) if int(c) in shown else None
        ax.axvspan(
            starts[w],
            ends[w],
            ymin=0,
            ymax=0.04,
            color=colors(rank % 10) if rank is not None else "0.5",
            alpha=0.6,
            lw=0,
        )
    ax.set_xlim(0, float(ends.max()) if len(ends) else 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def write_map_grid(path: str | os.PathLike, frames: np.ndarray, overlays: dict[str, np.ndarray], *, title: str) -> Path:
    """A grid: the view's frames (uint8 [T, S, S, 3]) along the top row, then one row per method with its map
    drawn over them (``overlays``: name -> uint8 [T, S, S, 3])."""
    rows = [("frames", frames), *overlays.items()]
    t = frames.shape[0]
    fig = _figure(1.6 * t + 1.0, 1.7 * len(rows) + 0.6)
    axes = np.asarray(fig.subplots(len(rows), t, squeeze=False))
    for r, (name, images) in enumerate(rows):
        for c in range(t):
            ax = axes[r, c]
            ax.imshow(images[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name)
            if r == 0:
                ax.set_title(f"frame {c}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def write_frame_contributions(
    path: str | os.PathLike, shares: dict[str, np.ndarray], frame_indices: np.ndarray, *, title: str
) -> Path:
    """How much of each method's map lies on each explained frame (bars, one group per frame)."""
    fig = _figure(8, 3.2)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(shares))
    x = np.arange(len(frame_indices))
    for k, (name, share) in enumerate(shares.items()):
        ax.bar(x + k * width - 0.4 + width / 2, share, width=width, label=name)
    ax.set_xticks(x, labels=[str(int(i)) for i in frame_indices])
    ax.set_xlabel("frame of the video")
    ax.set_ylabel("share of the map")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)


def write_dataset_charts(
    out_dir: str | os.PathLike,
    *,
    durations: Sequence[float],
    fps: Sequence[float],
    resolutions: Mapping[str, int],
    class_counts: Mapping[str, Sequence[int]],
    class_names: Sequence[str] | None = None,
) -> dict[str, Path]:
    """The charts of a dataset check in ``out_dir``, those with data: histograms of the durations (s) and frame
    rates, the resolutions ('WxH' -> videos, the 15 commonest) and the videos per class of each list. Returns
    chart ('duration', 'fps', 'resolution', 'classes') -> path."""
    out = Path(out_dir)
    written: dict[str, Path] = {}
    for key, values, name, xlabel in (
        ("duration", durations, "durations.png", "duration (s)"),
        ("fps", fps, "fps.png", "frames per second"),
    ):
        if not len(values):
            continue
        fig = _figure(6, 3.5)
        ax = fig.add_subplot()
        ax.hist(values, bins=min(40, max(5, len(set(np.round(values, 2))))), color="tab:blue", edgecolor="white")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("videos")
        ax.set_title(f"{xlabel.split(' (')[0]} of {len(values)} usable videos")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written[key] = _save(fig, out / name)
    if resolutions:
        top = sorted(resolutions.items(), key=lambda kv: -kv[1])[:15]  # stable: ties keep their first-seen order
        fig = _figure(6, 0.6 + 0.3 * len(top) + 1)
        ax = fig.add_subplot()
        ax.barh([k for k, _ in top][::-1], [n for _, n in top][::-1], color="tab:green")
        ax.set_xlabel("videos")
        ax.set_title(
            "resolution (width x height as shown)"
            + (f", top 15 of {len(resolutions)}" if len(resolutions) > 15 else "")
        )
        fig.tight_layout()
        written["resolution"] = _save(fig, out / "resolutions.png")
    if class_counts:
        n = max(len(c) for c in class_counts.values())
        fig = _figure(min(16, max(6, 0.25 * n + 2)), 4)
        ax = fig.add_subplot()
        width = 0.8 / len(class_counts)
        for k, (name, counts) in enumerate(class_counts.items()):
            ax.bar(np.arange(len(counts)) + k * width, counts, width=width, label=name)
        ax.set_xlabel("class")
        ax.set_ylabel("usable videos")
        ax.set_title("videos per class")
        if n <= 40:
            labels = [str(c) if class_names is None else class_names[c][:20] for c in range(n)]
            ax.set_xticks(np.arange(n) + 0.4 - width / 2, labels=labels, rotation=90, fontsize=7)
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        written["classes"] = _save(fig, out / "class_counts.png")
    return written
