"""Video encoding: the library's one video writer (frames in, an H.264 MP4 moved into place when it is whole)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ..atomic import AtomicPath, file_errors, remove_stale_temporaries

__all__ = ["VideoWriter"]


class VideoWriter:
    """Writes uint8 RGB frames ``[H, W, 3]``, one :meth:`write` each, as a video of ``fps`` frames a second.

    The codec is H.264 (libx264, constant quality ``crf``, preset ``ultrafast``) where PyAV has libx264, MPEG-4
    Part 2 otherwise, in yuv420p: 4:2:0 needs even sizes, so an odd width or height loses its last column or row.
    The size is the first frame's. The container is the one ``path``'s extension names (MP4 for ``.mp4``).

    The video is written under a temporary name beside ``path`` (made at once, so an unwritable folder fails
    here, not at the first frame) and moved onto ``path`` by :meth:`close`, with :mod:`uniformerv2.atomic`'s
    permissions. A failure in :meth:`write` or :meth:`close`, or in the body of a ``with`` block, removes it:
    ``path`` is the whole video or what it was before, and no temporary file is left. A full disk (any failure
    of the file system) is an :class:`~uniformerv2.errors.OutputError` naming ``path``.
    """

    def __init__(self, path: str | os.PathLike, fps: float, *, crf: int = 10) -> None:
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self.frames = 0  # written so far
        remove_stale_temporaries(self.path)  # what a killed earlier writer of this video left
        self._target: AtomicPath | None = AtomicPath(self.path, keep_suffix=True)
        self._container: Any = None
        self._stream: Any = None

    @property
    def size(self) -> tuple[int, int] | None:
        """The video's (width, height), once the first frame set it."""
        return (self._stream.width, self._stream.height) if self._stream is not None else None

    @contextmanager
    def _discard_on_failure(self) -> Iterator[None]:
        try:
            with file_errors(self.path):
                yield
        except BaseException:
            self.abort()
            raise

    def _open(self, tmp: Path, width: int, height: int) -> None:
        import av

        if width < 2 or height < 2:
            raise ValueError(f"{self.path}: a frame of {width}x{height} pixels is too small to encode (2x2 at least)")
        self._container = av.open(str(tmp), "w")
        stream = self._container.add_stream(
            "libx264" if "libx264" in av.codecs_available else "mpeg4", rate=max(1, int(round(self.fps)))
        )
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        if stream.codec_context.name in ("libx264", "h264"):
            stream.options = {"crf": str(self.crf), "preset": "ultrafast"}
        self._stream = stream

    def write(self, rgb: np.ndarray) -> None:
        """Encode one frame (uint8 RGB ``[H, W, 3]``; cropped to the video's even size)."""
        import av

        if self._target is None:
            raise ValueError(f"{self.path}: the video writer is closed")
        with self._discard_on_failure():
            if self._stream is None:
                self._open(self._target.tmp, rgb.shape[1], rgb.shape[0])
            img = np.ascontiguousarray(rgb[: self._stream.height, : self._stream.width])
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        """Flush the encoder, finish the file and move it onto ``path``; None (and no file) when no frame came or
        the writer was already closed."""
        if self._target is None:
            return None
        if self._stream is None:
            self.abort()
            return None
        with self._discard_on_failure():
            for packet in self._stream.encode():  # the frames the encoder still holds
                self._container.mux(packet)
            self._container.close()
            self._container = None
            target, self._target = self._target, None
            return target.commit()

    def abort(self) -> None:
        """Stop without writing ``path``: the temporary file is removed."""
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - the half-written file is removed anyway
                pass
        if self._target is not None:
            self._target.discard()
            self._target = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is None:
            self.close()
        else:
            self.abort()
