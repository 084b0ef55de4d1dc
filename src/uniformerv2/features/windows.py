"""Sliding windows over a video for feature extraction: what they are (:class:`WindowSpec`) and, for one video,
where they fall and which frames each samples (:func:`plan_windows`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.sampling import window_indices
from ..duration import Duration, parse_duration, video_duration
from ..errors import UsageError

__all__ = ["WindowSpec", "WindowPlan", "plan_windows"]


@dataclass(frozen=True)
class WindowSpec:
    """Sliding windows: ``window`` and ``stride`` (:class:`~uniformerv2.duration.Duration`: ``16f`` frames, ``2s``
    or a bare ``2`` seconds; text is parsed by :func:`~uniformerv2.duration.parse_duration`), ``fps`` (resample
    time first: the frame grid is ``k / fps`` seconds, frame ``k`` being the video frame shown then), ``crops`` (1:
    centre, 3: three crops, averaged), ``align_end`` (a last window that ends with the video, off the stride
    grid, so no frame is left out: the default, as in the timeline; ``False`` keeps a strictly regular grid)."""

    window: Duration = Duration(16, "f")
    stride: Duration = Duration(4, "f")
    fps: float | None = None
    crops: int = 1
    align_end: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", parse_duration(self.window, name="window"))
        object.__setattr__(self, "stride", parse_duration(self.stride, name="stride"))
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise UsageError(f"fps must be positive, got {self.fps!r}")
        if self.crops not in (1, 3):
            raise UsageError(f"crops must be 1 or 3, got {self.crops!r}")

    @property
    def by_time(self) -> bool:
        """Windows cut by the frames' timestamps (both lengths in seconds, no resampling)."""
        return self.fps is None and not self.window.in_frames and not self.stride.in_frames

    def to_dict(self) -> dict[str, Any]:
        """The spec as the manifest and the journal record it (lengths with their unit: ``16f``, ``2s``)."""
        return {
            "window": str(self.window),
            "stride": str(self.stride),
            "fps": self.fps,
            "crops": self.crops,
            "align_end": self.align_end,
        }


@dataclass
class WindowPlan:
    """The windows of one video. ``start_frame``/``end_frame`` count frames of the time line (the resampled one
    with ``fps``), end exclusive; ``indices`` are the sampled frames of the video itself, ``[windows, frames]``."""

    starts_s: np.ndarray
    ends_s: np.ndarray
    start_frame: np.ndarray
    end_frame: np.ndarray
    indices: np.ndarray
    fps: float
    window_frames: float
    stride_frames: float
    window_s: float
    stride_s: float

    def __len__(self) -> int:
        return len(self.starts_s)


def plan_windows(times: np.ndarray, fps: float, spec: WindowSpec, frames: int) -> WindowPlan:
    """Sliding windows over a video whose frames are shown at ``times`` (seconds; ``fps`` its average rate), each
    sampled to ``frames`` frames by :func:`uniformerv2.data.sampling.window_indices`: the frame shown at the centre
    of each of ``frames`` equal segments of the window.

    The time line is the video's own frames, or with ``spec.fps`` the resampled grid ``k / spec.fps`` (frame ``k``
    is the video frame shown at that time; the grid has ``floor(duration * fps)`` frames). Window ``i`` covers the
    time-line frames ``[i * stride, i * stride + window)``; windows go on while a whole window fits (a video
    shorter than one window is one window over all of it), plus, with ``align_end``, one that ends with the video.
    So with ``window = 16f, stride = 4f`` and 8 frames per window, window ``i`` samples frames ``4 i + 1, 4 i + 3,
    ..., 4 i + 15``. Lengths in seconds are rounded to whole frames of the time line, except when both are in
    seconds and nothing is resampled: then windows are cut by the frames' timestamps (a variable frame rate is
    followed).
    """
    if len(times) == 0:
        raise ValueError("a video without frames has no windows")
    rel = np.asarray(times, dtype=np.float64) - float(times[0])
    n = len(rel)
    duration = video_duration(rel, fps)
    if spec.by_time:
        w, s = spec.window.value, spec.stride.value
        starts, ends, idx = window_indices(rel, w, s, frames, align_end=spec.align_end, duration=duration)
        start_frame = np.searchsorted(rel, starts + 1e-6, side="right") - 1
        end_frame = np.searchsorted(rel, ends - 1e-6, side="right")
        return WindowPlan(
            starts,
            ends,
            start_frame.astype(np.int64),
            end_frame.astype(np.int64),
            idx.astype(np.int64),
            float(fps),
            w * fps,
            s * fps,
            w,
            s,
        )
    line_fps = float(spec.fps or fps)
    if spec.fps:
        m = max(1, int(math.floor(duration * line_fps + 1e-6)))
        source = np.clip(np.searchsorted(rel, np.arange(m) / line_fps + 1e-6, side="right") - 1, 0, n - 1)
    else:
        m, source = n, np.arange(n)
    w, s = spec.window.frames(line_fps), spec.stride.frames(line_fps)
    # the time line in frames: times 0..m-1 and a duration of m frames cut windows measured in frames
    starts, ends, idx = window_indices(
        np.arange(m, dtype=np.float64), w, s, frames, align_end=spec.align_end, duration=float(m)
    )
    start_frame = np.round(starts).astype(np.int64)
    end_frame = np.round(ends).astype(np.int64)
    if spec.fps:
        starts_s, ends_s = start_frame / line_fps, end_frame / line_fps
    else:
        line = np.append(rel, duration)  # when each frame starts, and the end of the video
        starts_s, ends_s = line[start_frame], line[end_frame]
    return WindowPlan(
        starts_s,
        ends_s,
        start_frame,
        end_frame,
        source[idx].astype(np.int64),
        line_fps,
        float(w),
        float(s),
        w / line_fps,
        s / line_fps,
    )
