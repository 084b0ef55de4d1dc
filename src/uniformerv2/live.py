"""Live recognition from a camera, a stream or a file played at its own speed, with bounded lag and memory.

A reader thread decodes the source into a fixed-size ring buffer of recent frames (each already resized to the
model's short side, so the buffer's memory is bounded by its length). Every ``every`` seconds the recogniser takes
the frames of the last ``window`` seconds of stream time, samples the model's frame count from them and scores
that one clip. When the model is slower than real time the next decision simply takes the newest window -- nothing
queues -- so a decision's lag (from the arrival of the newest frame it saw to its result) stays below one window
plus one forward pass. A source that stalls or drops is reported and reopened, up to ``reconnects`` times.
"""

from __future__ import annotations

import collections
import io
import math
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data.decode import frame_to_rgb
from .data.transforms import resize_short_side
from .data.views import views_from_frames
from .duration import NOMINAL_FPS, Duration, parse_duration
from .errors import UsageError, VideoDecodeError

__all__ = ["Decision", "FrameBuffer", "SourceReader", "LiveRecognizer", "AnnotatedWriter", "stream", "decode_image"]

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")  # what a camera's frames may be sent as (decode_image)


@dataclass
class Decision:
    """One scoring of the latest window: stream and wall time, lag, and the top classes."""

    stream_time: float  # seconds of stream time at the newest frame of the window
    wall_time: float  # time.time() when the decision was made
    lag: float  # seconds from the arrival of the window's newest frame to this decision
    window: tuple[float, float]  # stream times of the window's first and newest frame
    top: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream_time": round(self.stream_time, 3),
            "wall_time": round(self.wall_time, 3),
            "lag": round(self.lag, 3),
            "window": [round(self.window[0], 3), round(self.window[1], 3)],
            "top": [{"label": label, "score": round(score, 6)} for label, score in self.top],
        }


class FrameBuffer:
    """The most recent frames, ``(stream_time, arrival_time, rgb)``; the oldest drop out when it is full."""

    def __init__(self, capacity: int) -> None:
        self._frames: collections.deque = collections.deque(maxlen=max(2, capacity))
        self._lock = threading.Lock()

    def push(self, stream_time: float, frame: np.ndarray) -> None:
        with self._lock:
            self._frames.append((stream_time, time.monotonic(), frame))

    def window(self, seconds: float) -> list[tuple[float, float, np.ndarray]]:
        """The frames of the last ``seconds`` of stream time, oldest first."""
        with self._lock:
            frames = list(self._frames)
        if not frames:
            return []
        newest = frames[-1][0]
        return [f for f in frames if f[0] > newest - seconds - 1e-9]

    def __len__(self) -> int:
        return len(self._frames)


class SourceReader(threading.Thread):
    """Decodes ``source`` into a :class:`FrameBuffer` on its own thread; reopens a stalled or dropped stream."""

    def __init__(
        self,
        source: str,
        buffer: FrameBuffer,
        *,
        size: int,
        realtime: bool = False,
        stall_s: float = 5.0,
        reconnects: int = 3,
        on_frame: Callable[[np.ndarray, float], None] | None = None,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        super().__init__(name="uniformerv2-live-reader", daemon=True)
        self.source, self.buffer, self.size = source, buffer, size
        self.realtime, self.stall_s, self.reconnects = realtime, stall_s, reconnects
        self.on_frame, self.log = on_frame, log
        self.stop_event = threading.Event()
        self.finished = threading.Event()  # the source ended (a file) or gave up (a stream)
        self.error: str | None = None
        self.fps: float | None = None  # the frame rate the source reports, once it is open (None: it reports none)
        self.opened = threading.Event()  # the source was opened (``fps`` is known) at least once
        self.last_arrival = time.monotonic()

    def _open(self) -> Any:
        import av

        # probing a live stream needs a moment: give the open a few seconds more than a stall, and probe 1 s
        options = {"analyzeduration": "1000000"}
        kwargs: dict[str, Any] = {"metadata_errors": "ignore", "timeout": (self.stall_s + 5.0, self.stall_s)}
        if self.source.startswith("/dev/video"):
            kwargs["format"] = "v4l2"
        elif "://" in self.source:
            kwargs["options"] = options
        try:
            container = av.open(self.source, **kwargs)
        except av.error.ExitError:
            raise VideoDecodeError(self.source, f"no video arrived within {self.stall_s + 5.0:g} s") from None
        except av.error.FFmpegError as e:
            raise VideoDecodeError(self.source, f"cannot be opened ({str(e).splitlines()[0]})") from None
        if not container.streams.video:
            container.close()
            raise VideoDecodeError(self.source, "no video stream")
        return container

    def run(self) -> None:
        attempts = 0
        is_stream = "://" in self.source or self.source.startswith("/dev/")
        while not self.stop_event.is_set():
            try:
                ended = self._read_once()
            except VideoDecodeError as e:
                ended, reason = False, e.reason
            else:
                reason = "the stream ended"
            if self.stop_event.is_set() or (ended and not is_stream):
                break
            attempts += 1
            if attempts > self.reconnects:
                self.error = f"{self.source}: {reason}; gave up after {self.reconnects} reconnects"
                break
            self.log(f"{self.source}: {reason}; reconnecting ({attempts} of {self.reconnects})")
            time.sleep(min(2.0, 0.2 * attempts))
        self.finished.set()

    def _read_once(self) -> bool:
        """Decode until the source ends (True) or fails (VideoDecodeError)."""
        import av

        container = self._open()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self.opened.set()
            step = 1.0 / (self.fps or NOMINAL_FPS)  # a frame without a timestamp: one frame interval after the last
            start_wall: float | None = None
            start_pts = 0.0  # set with start_wall
            n = 0
            for frame in container.decode(stream):
                if self.stop_event.is_set():
                    return True
                t = float(frame.pts * stream.time_base) if frame.pts is not None else n * step
                n += 1
                if self.realtime:  # a file played at its own speed
                    if start_wall is None:
                        start_wall, start_pts = time.monotonic(), t
                    delay = (t - start_pts) - (time.monotonic() - start_wall)
                    if delay > 0:
                        time.sleep(delay)
                rgb = frame_to_rgb(frame)
                if self.on_frame is not None:
                    self.on_frame(rgb, t)
                self.buffer.push(t, resize_short_side(rgb, self.size))
                self.last_arrival = time.monotonic()
            return True
        except av.error.ExitError:  # PyAV's read timeout fired
            raise VideoDecodeError(self.source, f"stalled: no data for {self.stall_s:g} s") from None
        except av.error.FFmpegError as e:
            raise VideoDecodeError(self.source, f"the stream failed ({str(e).splitlines()[0]})") from None
        finally:
            container.close()


class LiveRecognizer:
    """Scores the newest window of a :class:`FrameBuffer` with a :class:`~uniformerv2.inference.VideoClassifier`."""

    def __init__(self, clf: Any, *, window: float = 2.0, top_k: int = 5, slow_down: float = 0.0) -> None:
        self.clf = clf
        self.window = window
        self.top_k = top_k
        self.protocol = clf.protocol.replace(clips=1)
        self.slow_down = slow_down  # extra seconds per forward: to show what a slower model does (tests)
        self._last_arrival: float | None = None

    def decide(self, buffer: FrameBuffer) -> Decision | None:
        """A decision on the newest window, or None when no frame arrived since the last one (a stalled source
        gets no stale decisions)."""
        frames = buffer.window(self.window)
        if len(frames) < 1 or frames[-1][1] == self._last_arrival:
            return None
        self._last_arrival = frames[-1][1]
        times = np.array([f[0] for f in frames])
        # the model's frame count, spread over the window as test-mode UniformSample spreads it over a clip
        span = max(times[-1] - times[0], 1e-6)
        centres = times[0] + (np.arange(self.protocol.frames) + 0.5) * span / self.protocol.frames
        pick = np.clip(np.searchsorted(times, centres, side="right") - 1, 0, len(frames) - 1)
        unique, inverse = np.unique(pick, return_inverse=True)
        stack = np.stack([frames[i][2] for i in unique])
        views = views_from_frames(stack, self.protocol, inverse=inverse)
        scores = self.clf.scores_of_views(views)
        if self.slow_down:
            time.sleep(self.slow_down)
        now = time.monotonic()
        return Decision(
            stream_time=float(times[-1]),
            wall_time=time.time(),
            lag=now - frames[-1][1],
            window=(float(times[0]), float(times[-1])),
            top=self.clf.top_k(scores, self.top_k),
        )


def decode_image(data: bytes, size: int, *, max_pixels: int = 4096 * 4096) -> np.ndarray:
    """A camera frame sent as an image (JPEG, PNG or WebP): its RGB pixels, uint8 [H, W, 3]. A JPEG is decoded at the
    smallest DCT scale that keeps its short side at least ``size`` (fast for a large frame); an image of more than
    ``max_pixels`` is refused from its header, before decoding. ValueError on anything else."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as img:
            w, h = img.size
            if w < 1 or h < 1 or w * h > max_pixels:
                raise ValueError(f"a {w}x{h} image; send at most {max_pixels} pixels")
            if img.format == "JPEG" and min(w, h) > size:
                scale = size / min(w, h)
                img.draft("RGB", (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))
            return np.asarray(img.convert("RGB"))
    except ValueError:
        raise
    except UnidentifiedImageError:
        raise ValueError("not a JPEG, PNG or WebP image") from None
    except (OSError, Image.DecompressionBombError, SyntaxError, struct.error) as e:  # a broken one
        raise ValueError(f"a broken image ({type(e).__name__}: {e})") from None


def stream(
    clf: Any,
    source: str,
    *,
    window: float | str | Duration = 2.0,
    every: float | str | Duration = 0.5,
    top_k: int = 5,
    realtime: bool = False,
    duration: float | None = None,
    stall_s: float = 5.0,
    reconnects: int = 3,
    on_frame: Callable[[np.ndarray, float], None] | None = None,
    log: Callable[[str], None] = lambda message: None,
    slow_down: float = 0.0,
) -> Iterator[Decision]:
    """Decisions on ``source`` every ``every`` seconds until it ends (a file), ``duration`` seconds pass, or the
    stream is given up (then a :class:`~uniformerv2.errors.VideoDecodeError`).

    ``window``, ``every``: durations as :func:`~uniformerv2.duration.parse_duration` reads them; in frames
    (``16f``) they are counted at the frame rate the source reports, and a source that reports none is a
    :class:`~uniformerv2.errors.UsageError`."""
    window_d, every_d = parse_duration(window, name="window"), parse_duration(every, name="every")
    # room for a 120 fps source (or the window's own frames); older frames drop out
    capacity = (window_d.frames() if window_d.in_frames else int(math.ceil(window_d.value * 120))) + 8
    buffer = FrameBuffer(capacity)
    reader = SourceReader(
        source,
        buffer,
        size=clf.protocol.size,
        realtime=realtime,
        stall_s=stall_s,
        reconnects=reconnects,
        on_frame=on_frame,
        log=log,
    )
    reader.start()
    try:
        window_s, every_s = _seconds(window_d, reader, "window"), _seconds(every_d, reader, "every")
        recognizer = LiveRecognizer(clf, window=window_s, top_k=top_k, slow_down=slow_down)
        started = time.monotonic()
        next_tick = started + every_s
        while duration is None or time.monotonic() - started < duration:
            wait = next_tick - time.monotonic()
            if wait > 0:
                reader.finished.wait(timeout=wait)  # returns at once when the source ends
            if reader.error:
                break
            # a tick that came while the model was busy is skipped, never queued
            next_tick = max(next_tick + every_s, time.monotonic())
            decision = recognizer.decide(buffer)
            if decision is not None:
                yield decision
            if reader.finished.is_set():
                break
    finally:
        reader.stop_event.set()
        reader.join(timeout=stall_s + 1)
    if reader.error:
        raise VideoDecodeError(source, reader.error.split(": ", 1)[-1])


def _seconds(length: Duration, reader: SourceReader, name: str) -> float:
    """``length`` in seconds; a length in frames at the frame rate the source reports, once it is open."""
    if not length.in_frames:
        return length.value
    while not reader.opened.is_set() and not reader.finished.is_set():
        reader.opened.wait(0.05)
    if not reader.opened.is_set():  # never opened: the reader's error says why
        return length.value / NOMINAL_FPS
    if reader.fps is None:
        raise UsageError(
            f"--{name} {length}: {reader.source} reports no frame rate to count frames with; give "
            f"seconds, e.g. --{name} 2s"
        )
    return length.seconds(reader.fps)


class AnnotatedWriter:
    """Writes what the source showed, with the running top class drawn on it, to a video moved into place at the
    end (``close``); frames arrive from the reader thread, the label from the decisions. A failed write (a full
    disk) stops the writing, not the recognition, and is raised by ``close``."""

    def __init__(self, path: str, fps: float = 30.0) -> None:
        from .data.encode import VideoWriter

        self.label = ""
        self._writer = VideoWriter(path, fps, crf=23)  # its temporary file is made now: a bad folder fails here
        self.path = self._writer.path
        self._error: Exception | None = None
        self._lock = threading.Lock()

    def write(self, rgb: np.ndarray, stream_time: float) -> None:
        from .data.decode import draw_label

        with self._lock:
            if self._error is not None:
                return
            try:
                self._writer.write(draw_label(rgb, self.label) if self.label else rgb)
            except Exception as e:  # noqa: BLE001 - on the reader thread: kept for close, the writer removed its file
                self._error = e

    def close(self) -> str | None:
        """The path written, or None when no frame came; raises the error that stopped the writing, if any."""
        with self._lock:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            path = self._writer.close()
            return str(path) if path is not None else None
