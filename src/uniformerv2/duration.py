"""Durations, one meaning everywhere: a bare number or ``2s`` is seconds, ``16f`` is frames; and a video's length.

Every command option, HTTP query field and WebSocket parameter that takes a length of time (``--window``,
``--stride``, ``--every``, ``--duration``, ``window=``, ...) parses it with :func:`parse_duration`, so ``2``,
``2s`` and ``2.0s`` are the same two seconds everywhere and ``16f`` is sixteen frames wherever frames make sense.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import UsageError

__all__ = ["Duration", "parse_duration", "video_duration", "NOMINAL_FPS"]

#: Frame rate assumed for a single frame of a video whose rate is unknown (its header says 0 or nothing).
NOMINAL_FPS = 30.0

Unit = Literal["s", "f"]
_DURATION = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(ms|s|f)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Duration:
    """A length of time: ``value`` seconds (``unit="s"``) or ``value`` frames (``unit="f"``, a whole number)."""

    value: float
    unit: Unit = "s"

    @property
    def in_frames(self) -> bool:
        return self.unit == "f"

    def seconds(self, fps: float | None = None) -> float:
        """This length in seconds; a length in frames needs the frame rate ``fps``."""
        if self.unit == "s":
            return self.value
        if fps is None or not fps > 0:
            raise UsageError(f"{self}: a length in frames needs a known frame rate")
        return self.value / fps

    def frames(self, fps: float | None = None) -> int:
        """This length in whole frames (seconds are rounded at ``fps``, to at least one frame)."""
        if self.unit == "f":
            return int(self.value)
        if fps is None or not fps > 0:
            raise UsageError(f"{self}: a length in seconds needs a frame rate to count frames")
        return max(1, int(round(self.value * fps)))

    def __str__(self) -> str:
        return f"{int(self.value)}f" if self.unit == "f" else f"{self.value:g}s"


def parse_duration(
    text: str | float | Duration,
    *,
    name: str | None = None,
    frames: bool = True,
    minimum: float | None = None,
    maximum: float | None = None,
    allow_zero: bool = False,
) -> Duration:
    """``"2"``, ``"2s"``, ``"2.5s"``, ``"500ms"`` -> seconds; ``"16f"`` -> frames (where ``frames`` is allowed).

    ``name`` is the option or field the text came from, named in the error (``name=text``; argparse adds the
    option's name itself). ``minimum``/``maximum`` bound a length in seconds (inclusive). Not a number, nan, inf,
    a negative length, zero (unless ``allow_zero``) and a fractional number of frames are
    :class:`~uniformerv2.errors.UsageError`.
    """
    raw = str(text).strip()
    what = f"{name}={raw!r}" if name else repr(raw)
    if isinstance(text, Duration):
        value, unit = text.value, text.unit
    else:
        value, unit = _read(raw, what, frames)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{what}: must be a positive, finite duration")
    if unit == "f" and value != int(value):
        raise UsageError(f"{what}: a length in frames is a whole number")
    if unit == "s" and minimum is not None and value < minimum:
        raise UsageError(f"{what}: must be at least {minimum:g} s")
    if unit == "s" and maximum is not None and value > maximum:
        raise UsageError(f"{what}: must be at most {maximum:g} s")
    return Duration(value, unit)


def _read(raw: str, what: str, frames: bool) -> tuple[float, Unit]:
    """The number and unit of a duration's text."""
    m = _DURATION.match(raw)
    if not m:
        hint = "e.g. 2 or 2s (seconds)" + (" or 16f (frames)" if frames else "")
        raise UsageError(f"{what}: expected a duration, {hint}")
    value, suffix = float(m.group(1)), (m.group(2) or "s").lower()
    if suffix == "f":
        if not frames:
            raise UsageError(f"{what}: a length in frames is not accepted here; give seconds, e.g. 2s")
        return value, "f"
    return (value / 1000.0 if suffix == "ms" else value), "s"


def video_duration(times: np.ndarray, fps: float | None = None) -> float:
    """A video's length in seconds: from its first frame to the end of its last one, which is shown for one frame
    interval (the last interval between timestamps; for a single frame ``1 / fps``, or ``1 / NOMINAL_FPS`` when the
    rate is unknown). ``0.0`` for no frames."""
    rel = np.asarray(times, dtype=np.float64)
    if len(rel) == 0:
        return 0.0
    rel = rel - rel[0]
    if len(rel) > 1:
        frame_s = float(rel[-1] - rel[-2])
    else:
        frame_s = 1.0 / fps if fps and math.isfinite(fps) and fps > 0 else 1.0 / NOMINAL_FPS
    return float(rel[-1] + frame_s)
