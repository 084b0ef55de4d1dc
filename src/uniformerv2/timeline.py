"""Scanning a long video with sliding windows: scores over time, a plot, CSV/JSON, and an annotated copy."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import typing
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .atomic import atomic_write_file, atomic_write_text
from .data.sampling import window_indices
from .duration import Duration, parse_duration, video_duration
from .errors import UsageError
from .plots import write_timeline_png
from .protocol import Protocol

if TYPE_CHECKING:
    from .data import VideoReader

__all__ = ["Timeline", "Scorer", "window_indices", "scan", "plot_timeline", "write_timeline", "annotate_video"]


class Scorer(typing.Protocol):
    """What :func:`scan` scores windows with: a :class:`~uniformerv2.inference.VideoClassifier`, or the HTTP
    service's classifier that sends its views through the shared batcher."""

    @property
    def protocol(self) -> Protocol: ...  # read-only members: a list of class names is a Sequence[str]
    @property
    def class_names(self) -> Sequence[str]: ...
    @property
    def backend(self) -> str: ...

    def scores_of_videos(self, view_sets: Sequence[torch.Tensor]) -> torch.Tensor: ...


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

    def to_dict(self, top_k: int = 5) -> dict[str, Any]:
        """The timeline as JSON data, what ``uniformerv2 timeline`` writes and ``/v1/timeline`` returns: ``video``,
        ``fps``, ``class_names``, ``windows`` (each one's ``start_s``, ``end_s`` and ``top`` k classes as
        ``{label, score}``) and every window's ``scores`` [W, C]."""
        k = min(top_k, self.scores.shape[1])
        order = np.argsort(-self.scores, axis=1)[:, :k]
        # "probability": the old name of "score", kept beside it for one release
        windows = [
            {
                "start_s": round(float(s), 3),
                "end_s": round(float(e), 3),
                "top": [
                    {
                        "label": self.class_names[c],
                        "score": float(self.scores[w, c]),
                        "probability": float(self.scores[w, c]),
                    }
                    for c in order[w]
                ],
            }
            for w, (s, e) in enumerate(zip(self.starts, self.ends))
        ]
        return {
            "video": self.video,
            "fps": self.fps,
            "class_names": list(self.class_names),
            "windows": windows,
            "scores": np.round(self.scores, 6).tolist(),
        }


def scan(
    clf: Scorer,
    video: str | os.PathLike | VideoReader,
    *,
    window: float | str | Duration = 2.0,
    stride: float | str | Duration = 1.0,
    windows_per_read: int = 16,
    max_windows: int | None = None,
    read_pool: Executor | None = None,
    progress: bool = True,
) -> Timeline:
    """Score every window of ``video`` (a path, or a video already opened, which is left open) with ``clf``'s
    crops, one clip per window of the protocol's frames.

    ``window``, ``stride``: durations as :func:`~uniformerv2.duration.parse_duration` reads them (``2``/``2s``
    seconds, ``16f`` frames at the video's frame rate). The windows of ``windows_per_read`` are decoded together
    (the next ones while these are scored, on ``read_pool``, by default a thread of its own) and scored together.
    ``max_windows``: more windows than this is a :class:`~uniformerv2.errors.UsageError` before anything is
    decoded."""
    from .data import VideoReader, open_video

    if isinstance(video, VideoReader):
        return _scan(clf, video, str(video.path), window, stride, windows_per_read, max_windows, read_pool, progress)
    with open_video(video, clf.backend) as reader:
        return _scan(clf, reader, str(video), window, stride, windows_per_read, max_windows, read_pool, progress)


def _scan(
    clf: Scorer,
    reader: VideoReader,
    name: str,
    window: float | str | Duration,
    stride: float | str | Duration,
    windows_per_read: int,
    max_windows: int | None,
    read_pool: Executor | None,
    progress: bool,
) -> Timeline:
    """:func:`scan` of an open video."""
    from tqdm.auto import tqdm

    window_s = parse_duration(window, name="window").seconds(reader.fps)
    stride_s = parse_duration(stride, name="stride").seconds(reader.fps)
    protocol = clf.protocol.replace(clips=1)  # one clip per window, the protocol's crops
    starts, ends, indices = window_indices(reader.times, window_s, stride_s, protocol.frames)
    if max_windows is not None and len(starts) > max_windows:
        raise UsageError(
            f"{len(starts)} windows ({video_duration(reader.times, reader.fps):.1f} s at a stride of "
            f"{stride_s:g} s); the limit is {max_windows}: use a longer stride"
        )
    scores = []
    chunks = _read_ahead(_window_views(reader, indices, windows_per_read, protocol), read_pool)
    with tqdm(total=len(starts), desc="windows", unit="win", disable=not progress) as bar, contextlib.closing(chunks):
        for views in chunks:
            scores.append(clf.scores_of_videos(views).numpy())
            bar.update(len(views))
    return Timeline(
        video=name,
        fps=reader.fps,
        starts=starts,
        ends=ends,
        scores=np.concatenate(scores),
        class_names=list(clf.class_names),
    )


def _window_views(
    reader: VideoReader, indices: np.ndarray, per_read: int, protocol: Protocol
) -> Iterator[list[torch.Tensor]]:
    """The views of consecutive windows (frame indices [W, frames]), ``per_read`` windows at a time; each frame
    they share is decoded once."""
    from .data import views_from_frames

    for lo in range(0, len(indices), per_read):
        chunk = indices[lo : lo + per_read]  # [w, frames]
        unique, inverse = np.unique(chunk, return_inverse=True)
        frames = reader.read(unique)
        inverse = inverse.reshape(chunk.shape)
        yield [views_from_frames(frames, protocol, inverse=inverse[w]) for w in range(len(chunk))]


def _read_ahead(items: Iterator[Any], pool: Executor | None) -> Generator[Any, None, None]:
    """``items``, each made on ``pool`` (default: a thread of its own), the next one while the caller works on the
    current one: the windows ahead are decoded while these are scored."""
    if pool is None:
        with ThreadPoolExecutor(1, thread_name_prefix="uniformerv2-read-ahead") as own:
            yield from _read_ahead(items, own)
        return
    done = object()
    pending = pool.submit(next, items, done)
    try:
        while True:
            item = pending.result()
            if item is done:
                return
            pending = pool.submit(next, items, done)
            yield item
    finally:  # stopped early (an error while scoring): the chunk being read is not wanted, nor is the reader busy
        if not pending.cancel():
            wait([pending])


def plot_timeline(tl: Timeline, path: str | os.PathLike, *, top_k: int = 5) -> Path:
    """A PNG: probability of the leading ``top_k`` classes over time, with the top-1 class as a band along the
    bottom."""
    return write_timeline_png(
        path,
        tl.starts,
        tl.ends,
        tl.scores,
        tl.class_names,
        top_k=top_k,
        title=f"{Path(tl.video).name}: top classes over time (band: top-1 per window)",
    )


def write_timeline(
    tl: Timeline, csv_path: str | os.PathLike | None, json_path: str | os.PathLike | None, *, top_k: int = 5
) -> None:
    """CSV (one row per window: start, end, top-k labels and probabilities) and/or JSON (:meth:`Timeline.to_dict`:
    the same, plus all scores)."""
    data = tl.to_dict(top_k)
    k = min(top_k, tl.scores.shape[1])

    def write_csv(f: Any) -> None:
        writer = csv.writer(f)
        writer.writerow(["start_s", "end_s"] + [x for i in range(1, k + 1) for x in (f"top{i}", f"prob{i}")])
        for r in data["windows"]:
            writer.writerow(
                [r["start_s"], r["end_s"]] + [x for t in r["top"] for x in (t["label"], f"{t['score']:.6f}")]
            )

    if csv_path:
        atomic_write_file(csv_path, write_csv, binary=False)
    if json_path:
        atomic_write_text(json_path, json.dumps(data, indent=1))


def annotate_video(tl: Timeline, out_path: str | os.PathLike) -> Path:
    """Write a copy of the video with the running top-1 class and its probability drawn on every frame."""
    from .data.decode import draw_label, rewrite_video

    def draw(rgb: np.ndarray, index: int, time_s: float) -> np.ndarray:
        found = tl.label_at(time_s)
        return draw_label(rgb, f"{found[0]} {found[1]:.0%}") if found else rgb

    return rewrite_video(tl.video, out_path, draw, fps=tl.fps)
