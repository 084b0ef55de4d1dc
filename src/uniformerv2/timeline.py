"""Scanning a long video with sliding windows: scores over time, a plot, CSV/JSON, and an annotated copy."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_file, atomic_write_text
from .inference import VideoClassifier
from .data.sampling import window_indices
from .plots import write_timeline_png

__all__ = ["Timeline", "window_indices", "scan", "plot_timeline", "write_timeline", "annotate_video"]


@dataclass
class Timeline:
    """Window start/end times in seconds [W, 2] and the classifier's probabilities per window [W, C]."""

    video: str
    fps: float
    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    class_names: list[str]

    def top1(self) -> list[tuple[str, float]]:
        idx = self.scores.argmax(1)
        return [(self.class_names[i], float(self.scores[w, i])) for w, i in enumerate(idx)]

    def label_at(self, t: float) -> tuple[str, float] | None:
        """Top class of the window whose centre is nearest to time ``t`` (seconds)."""
        if not len(self.starts):
            return None
        centres = (self.starts + self.ends) / 2
        w = int(np.abs(centres - t).argmin())
        i = int(self.scores[w].argmax())
        return self.class_names[i], float(self.scores[w, i])


def scan(clf: VideoClassifier, video: str | os.PathLike, *, window_s: float = 2.0, stride_s: float = 1.0,
         windows_per_read: int = 16, progress: bool = True) -> Timeline:
    """Score every window of ``video`` with ``clf``'s crops (one clip per window)."""
    from tqdm.auto import tqdm

    from .data import open_video, views_from_frames
    path = str(video)
    p = clf.protocol
    window_protocol = p.replace(clips=1)  # one clip per window, the protocol's crops
    with open_video(path, clf.backend) as reader:
        fps = reader.fps
        starts, ends, indices = window_indices(reader.times, window_s, stride_s, p.frames)
        scores = []
        bar = tqdm(total=len(starts), desc="windows", unit="win", disable=not progress)
        for lo in range(0, len(starts), windows_per_read):
            chunk = indices[lo:lo + windows_per_read]
            unique, inverse = np.unique(chunk, return_inverse=True)
            frames = reader.read(unique)
            for w in range(len(chunk)):
                views = views_from_frames(frames, window_protocol, inverse=inverse.reshape(chunk.shape)[w])
                scores.append(clf.scores_of_views(views).numpy())
                bar.update(1)
        bar.close()
    return Timeline(video=path, fps=fps, starts=starts, ends=ends, scores=np.stack(scores),
                    class_names=list(clf.class_names))


def plot_timeline(tl: Timeline, path: str | os.PathLike, *, max_classes: int = 5) -> Path:
    """A PNG: probability of the leading classes over time, with the top-1 class as a band along the bottom."""
    return write_timeline_png(path, tl.starts, tl.ends, tl.scores, tl.class_names, max_classes=max_classes,
                              title=f"{Path(tl.video).name}: top classes over time (band: top-1 per window)")


def write_timeline(tl: Timeline, csv_path: str | os.PathLike | None, json_path: str | os.PathLike | None, *,
                   top_k: int = 5) -> None:
    """CSV (one row per window: start, end, top-k labels and probabilities) and/or JSON (the same, plus all scores)."""
    k = min(top_k, tl.scores.shape[1])
    order = np.argsort(-tl.scores, axis=1)[:, :k]
    rows = [{"start_s": round(float(s), 3), "end_s": round(float(e), 3),
             "top": [{"label": tl.class_names[c], "probability": float(tl.scores[w, c])} for c in order[w]]}
            for w, (s, e) in enumerate(zip(tl.starts, tl.ends))]
    def write_csv(f: Any) -> None:
        writer = csv.writer(f)
        writer.writerow(["start_s", "end_s"] + [x for i in range(1, k + 1) for x in (f"top{i}", f"prob{i}")])
        for r in rows:
            writer.writerow([r["start_s"], r["end_s"]] +
                            [x for t in r["top"] for x in (t["label"], f"{t['probability']:.6f}")])
    if csv_path:
        atomic_write_file(csv_path, write_csv, binary=False)
    if json_path:
        atomic_write_text(json_path, json.dumps({"video": tl.video, "fps": tl.fps, "class_names": tl.class_names,
                                                 "windows": rows, "scores": np.round(tl.scores, 6).tolist()},
                                                indent=1))


def annotate_video(tl: Timeline, out_path: str | os.PathLike) -> Path:
    """Write a copy of the video with the running top-1 class and its probability drawn on every frame."""
    from .data.decode import draw_label, rewrite_video

    def draw(rgb: np.ndarray, index: int, time_s: float) -> np.ndarray:
        found = tl.label_at(time_s)
        return draw_label(rgb, f"{found[0]} {found[1]:.0%}") if found else rgb

    return rewrite_video(tl.video, out_path, draw, fps=tl.fps)
