"""Video decoding: PyAV by default, decord and torchcodec when installed.

Frame numbering and count (all backends): frame ``i`` is the ``i``-th frame in presentation order, and the total
frame count is the one MMAction2's UniFormerV2 configs see through ``DecordInit``, i.e. decord's ``len(reader)``:
the number of (non-empty) video packets in the stream. For the PyAV backend we count those packets while demuxing
(no decoding). MMAction2's own ``PyAVInit`` takes ``container.streams.video[0].frames`` instead, the container
header's frame count, which is 0 for formats without one (MKV, WebM) and can disagree with the packets (it agrees
on every video of the tests).

The PyAV backend decodes only what the requested frames need:

* the file is demuxed once (a cheap pass without decoding, as decord does when it opens a file);
* groups of pictures (from one keyframe to the next) holding no requested frame are not decoded at all (the
  decoder is drained and flushed between the groups it decodes, which is the in-memory equivalent of a seek);
* within the groups decoded, H.264/HEVC packets whose frame is not requested are given to the decoder with
  ``skip_frame = NONREF``, so frames that no other frame references are skipped;
* decoding stops after the last requested frame, only requested frames are converted to RGB (in parallel, see
  :func:`uniformerv2.data.transforms.num_threads`), and the decoder runs with FFmpeg's threading
  (``thread_type = "AUTO"``).

Frames are matched to indices by presentation timestamp; if a stream's timestamps do not allow that (missing or
duplicated timestamps, frames coming out of the decoder out of order as in AVI files with packed B-frames), or a
requested frame does not come out, the video is decoded again sequentially from the start and frames are numbered
in decoding output order (what decord and MMAction2's ``PyAVDecode`` do).

RGB conversion is FFmpeg's (swscale) ``yuv -> rgb24``, as in MMAction2's ``PyAVDecode`` (``frame.to_rgb()``), so
our frames equal MMAction2's PyAV path. decord (what the UniFormerV2 configs use) gives the same pixels on even
frame sizes; its wheels bundle an older FFmpeg whose conversion of odd-sized 4:2:0 frames differs (a few grey
levels), and its random access can return shifted frames in open-GOP H.264 (see tests/fixtures/pipeline/README.md).

Rotation: a phone video stores its pixels sideways with a display rotation (the container's display matrix, the
``rotate`` tag of older files). Frames come out upright, as decord, OpenCV and the ffmpeg command line show them
(``np.rot90`` by PyAV's ``frame.rotation``, counterclockwise degrees): pixel-identical to ``ffmpeg -i video ...``'s
autorotated frames. So test views, training clips, ``predict`` and ``timeline`` all see the video as it is shown.

Timestamps: ``reader.times`` is every frame's presentation time in seconds (from the packets' timestamps, so a
variable-frame-rate video gets its real times), ``reader.fps`` its average frame rate.

A truncated MP4 whose index lists more frames than the file holds, an unreadable file, a file without a video
stream or without frames raise :class:`VideoDecodeError`, whose message names the
file: every command reports a bad video the same way.

:func:`rewrite_video` decodes a video and writes every frame, drawn on, through the library's one video writer
(:class:`uniformerv2.data.encode.VideoWriter`): the timeline's annotated copy and explain's overlays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar, Union

import numpy as np

from ..errors import UsageError, VideoDecodeError
from .encode import VideoWriter
from .transforms import parallel_map

PathLike = Union[str, "os.PathLike[str]"]

BACKENDS = ("pyav", "decord", "torchcodec")

# Codecs for which AVDISCARD_NONREF is known to skip exactly the frames no other frame references.
_NONREF_SKIP_CODECS = {"h264", "hevc"}


def _check_file(path: PathLike) -> str:
    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(path, "no such file")
    if p.is_dir():
        raise VideoDecodeError(path, "is a directory, not a video file")
    try:
        size = p.stat().st_size
    except OSError as e:  # pragma: no cover - permissions and the like
        raise VideoDecodeError(path, f"cannot read ({e.strerror or e})") from e
    if size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")
    return str(p)


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UsageError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _check_indices(path: str, indices: Sequence[int] | np.ndarray, num_frames: int) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= num_frames):
        bad = int(idx[(idx < 0) | (idx >= num_frames)][0])
        raise IndexError(f"{path}: frame index {bad} out of range for a video of {num_frames} frames")
    return idx


def frame_to_rgb(frame) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` of a PyAV frame, upright (its display rotation applied)."""
    # For even sizes swscale's unscaled yuv->rgb path gives the same pixels whatever the interpolation flag, and
    # "POINT" is the fastest way to it; odd sizes go through the scaler, where the flag matters: use PyAV's
    # default (what MMAction2's frame.to_rgb() uses).
    if frame.width % 2 == 0 and frame.height % 2 == 0:
        rgb = frame.reformat(format="rgb24", interpolation="POINT").to_ndarray()
    else:
        rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = int(round(getattr(frame, "rotation", 0) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


_Reader = TypeVar("_Reader", bound="VideoReader")


class VideoReader:
    """An opened video: ``num_frames``, ``fps``, ``times`` and ``read(indices)``; made by :func:`open_video`."""

    path: str
    num_frames: int
    fps: float = 30.0

    @property
    def times(self) -> np.ndarray:
        """Presentation time of every frame in seconds, from the first frame's (default: from ``fps``)."""
        return np.arange(self.num_frames, dtype=np.float64) / self.fps

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self: _Reader) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------------ PyAV


class PyAVReader(VideoReader):
    """PyAV reader (see the module docstring for what it decodes)."""

    def __init__(self, path: PathLike, threads: bool = True) -> None:
        try:
            import av
        except ImportError as e:  # pragma: no cover - av is a dependency
            raise ImportError("the 'pyav' video backend needs PyAV: pip install av") from e
        self._av = av
        self.path = _check_file(path)
        self.threads = threads
        container = self._open()
        try:
            stream = container.streams.video[0]
            self.codec_name = stream.codec_context.name
            header_frames = stream.frames
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate else 30.0
            time_base = float(stream.time_base) if stream.time_base else None
            is_mp4 = "mp4" in container.format.name or "mov" in container.format.name
            packets = []
            for packet in container.demux(stream):
                if packet.size > 0:
                    packets.append(packet)
        except av.error.FFmpegError as e:
            raise VideoDecodeError(self.path, f"truncated or corrupt video ({_reason(e)})") from e
        finally:
            container.close()
        if not packets:
            raise VideoDecodeError(self.path, "zero frames (the video stream has no packets)")
        if is_mp4 and header_frames > len(packets):  # MP4's sample table lists every packet
            raise VideoDecodeError(
                self.path,
                f"truncated video: the header lists {header_frames} frames, only {len(packets)} are in the file",
            )
        self._packets = packets
        self.num_frames = len(packets)
        pts = sorted(p.pts for p in packets if p.pts is not None)
        self._times = None
        if time_base and len(pts) == len(packets) and len(set(pts)) == len(pts):
            self._times = (np.asarray(pts, dtype=np.float64) - pts[0]) * time_base

    @property
    def times(self) -> np.ndarray:
        return self._times if self._times is not None else super().times

    def _open(self):
        av = self._av
        try:
            container = av.open(self.path, metadata_errors="ignore")
        except av.error.FFmpegError as e:
            raise VideoDecodeError(self.path, f"not a readable video ({_reason(e)})") from e
        if not container.streams.video:
            container.close()
            raise VideoDecodeError(self.path, "no video stream")
        return container

    def _codec(self):
        container = self._open()
        cc = container.streams.video[0].codec_context
        if self.threads:
            cc.thread_type = "AUTO"
        return container, cc

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = _check_indices(self.path, indices, self.num_frames)
        if idx.size == 0:
            raise ValueError(f"{self.path}: no frame indices given")
        wanted = sorted(set(idx.tolist()))
        frames = None
        try:
            frames = self._read_by_pts(wanted)
            if frames is None:
                frames = self._read_sequential(wanted)
        except self._av.error.FFmpegError as e:
            raise VideoDecodeError(self.path, f"truncated or corrupt video ({_reason(e)})") from e
        missing = [i for i in wanted if i not in frames]
        if not missing:
            keys = list(frames)
            frames = dict(zip(keys, parallel_map(self._to_rgb, [frames[k] for k in keys])))
        if missing:
            raise VideoDecodeError(
                self.path, f"truncated or corrupt video: frame {missing[0]} of {self.num_frames} could not be decoded"
            )
        first = frames[wanted[0]]
        out = np.empty((idx.size,) + first.shape, dtype=np.uint8)
        for j, i in enumerate(idx.tolist()):
            out[j] = frames[i]
        return out

    def _to_rgb(self, frame) -> np.ndarray:  # a method: a subclass may note what it converts
        return frame_to_rgb(frame)

    def _read_by_pts(self, wanted: list[int]) -> dict[int, np.ndarray] | None:
        packets = self._packets
        pts = [p.pts for p in packets]
        if any(t is None for t in pts) or len(set(pts)) != len(pts):
            return None
        order = sorted(pts)
        wanted_pts = {order[i]: i for i in wanted}
        n = len(packets)
        keys = [j for j, p in enumerate(packets) if p.is_keyframe]
        if not keys or keys[0] != 0:
            keys = [0] + keys
        gop_of = np.searchsorted(np.asarray(keys), np.arange(n), side="right") - 1
        gops = set()
        for j, p in enumerate(packets):
            if p.pts in wanted_pts:
                g = int(gop_of[j])
                gops.add(g)
                if g > 0 and p.pts < packets[keys[g]].pts:  # a leading picture (open GOP) needs the group before
                    gops.add(g - 1)
        bounds = keys + [n]
        container, cc = self._codec()
        skip = cc.name in _NONREF_SKIP_CODECS
        frames: dict[int, np.ndarray] = {}
        last_pts = None
        try:
            run_end = None
            for g in sorted(gops):
                if run_end is not None and bounds[g] != run_end:  # a gap: drain, then start afresh at a keyframe
                    cc.skip_frame = "DEFAULT"
                    for frame in cc.decode(None):
                        last_pts = self._take(frame, wanted_pts, frames, last_pts)
                        if last_pts is False:
                            return None
                    cc.flush_buffers()
                    last_pts = None
                for j in range(bounds[g], bounds[g + 1]):
                    p = packets[j]
                    if skip:
                        cc.skip_frame = "DEFAULT" if p.pts in wanted_pts else "NONREF"
                    for frame in cc.decode(p):
                        last_pts = self._take(frame, wanted_pts, frames, last_pts)
                        if last_pts is False:
                            return None
                    if len(frames) == len(wanted_pts):
                        return frames
                run_end = bounds[g + 1]
            cc.skip_frame = "DEFAULT"
            for frame in cc.decode(None):
                last_pts = self._take(frame, wanted_pts, frames, last_pts)
                if last_pts is False:
                    return None
        finally:
            container.close()
        return frames if len(frames) == len(wanted_pts) else None

    def _take(self, frame, wanted_pts: dict, frames: dict, last_pts):
        """Keep a wanted frame; False when timestamps cannot be trusted (unknown or out of order)."""
        t = frame.pts
        if t is None or (last_pts is not None and t <= last_pts):
            return False
        i = wanted_pts.get(t)
        if i is not None:
            frames[i] = frame  # converted to RGB at the end, in parallel
        return t

    def _read_sequential(self, wanted: list[int]) -> dict[int, np.ndarray]:
        wanted_set = set(wanted)
        last = wanted[-1]
        frames: dict[int, np.ndarray] = {}
        container, cc = self._codec()
        count = 0
        try:
            for p in list(self._packets) + [None]:
                for frame in cc.decode(p):
                    if count in wanted_set:
                        frames[count] = frame
                    count += 1
                if count > last:
                    break
        finally:
            container.close()
        return frames


def _reason(e: BaseException) -> str:
    """One line saying why a library failed: its OS error text, else the first line of its message."""
    lines = [line.strip() for line in str(getattr(e, "strerror", None) or e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


# ---------------------------------------------------------------------------------------------------- decord


class DecordReader(VideoReader):
    """decord's ``VideoReader`` (what MMAction2's UniFormerV2 configs use), one decoding thread as in DecordInit."""

    def __init__(self, path: PathLike, num_threads: int = 1) -> None:
        try:
            import decord
        except ImportError as e:
            raise ImportError("the 'decord' video backend needs decord: pip install decord") from e
        self.path = _check_file(path)
        try:
            self._vr = decord.VideoReader(self.path, num_threads=num_threads)
            self.num_frames = len(self._vr)
            self.fps = float(self._vr.get_avg_fps() or 30.0)
        except Exception as e:  # decord raises its own DECORDError / RuntimeError
            raise VideoDecodeError(self.path, f"not a readable video ({_reason(e)})") from e
        if self.num_frames <= 0:
            raise VideoDecodeError(self.path, "zero frames")

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = _check_indices(self.path, indices, self.num_frames)
        try:
            return np.ascontiguousarray(self._vr.get_batch(idx.tolist()).asnumpy())
        except Exception as e:
            raise VideoDecodeError(self.path, f"truncated or corrupt video ({_reason(e)})") from e


# ------------------------------------------------------------------------------------------------ torchcodec


class TorchCodecReader(VideoReader):
    """torchcodec's ``VideoDecoder`` in exact seek mode (it scans the file, so the count is the packets')."""

    def __init__(self, path: PathLike) -> None:
        try:
            from torchcodec.decoders import VideoDecoder
        except ImportError as e:
            raise ImportError("the 'torchcodec' video backend needs torchcodec: pip install torchcodec") from e
        self.path = _check_file(path)
        try:
            self._dec = VideoDecoder(self.path, seek_mode="exact", dimension_order="NHWC")
            self.num_frames = int(self._dec.metadata.num_frames)
            self.fps = float(self._dec.metadata.average_fps or 30.0)
        except Exception as e:
            raise VideoDecodeError(self.path, f"not a readable video ({_reason(e)})") from e
        if self.num_frames <= 0:
            raise VideoDecodeError(self.path, "zero frames")

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = _check_indices(self.path, indices, self.num_frames)
        try:
            return self._dec.get_frames_at(indices=idx.tolist()).data.numpy()
        except Exception as e:
            raise VideoDecodeError(self.path, f"truncated or corrupt video ({_reason(e)})") from e


# ---------------------------------------------------------------------------------------------------- public


def open_video(path: PathLike, backend: str = "pyav") -> VideoReader:
    """Open ``path`` with ``backend`` ('pyav', 'decord' or 'torchcodec'); raises :class:`VideoDecodeError`."""
    _check_backend(backend)
    if backend == "pyav":
        return PyAVReader(path)
    if backend == "decord":
        return DecordReader(path)
    return TorchCodecReader(path)


def probe_num_frames(path: PathLike, backend: str = "pyav") -> int:
    """The total frame count as MMAction2's ``DecordInit`` takes it (see the module docstring)."""
    with open_video(path, backend) as reader:
        return reader.num_frames


def read_frames(path: PathLike, indices: Sequence[int], backend: str = "pyav") -> np.ndarray:
    """uint8 RGB frames ``[len(indices), H, W, 3]`` at the given indices (repeats allowed, any order)."""
    with open_video(path, backend) as reader:
        return reader.read(indices)


# ---------------------------------------------------------------------------------------------------- writing


def draw_label(rgb: np.ndarray, text: str) -> np.ndarray:
    """``rgb`` with ``text`` in white on a black box in its top-left corner (a copy)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    box = draw.textbbox((4, 4), text)
    draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
    draw.text((4, 4), text, fill=(255, 255, 255))
    return np.asarray(img)


def rewrite_video(src: PathLike, dst: PathLike, draw, *, fps: float, crf: int = 23) -> Path:
    """Every frame of ``src``, upright, through ``draw(rgb, index, seconds_from_the_first_frame) -> rgb``, encoded
    into ``dst`` by the :class:`~uniformerv2.data.encode.VideoWriter` (moved into place whole, or not at all)."""
    import av

    with av.open(str(src), metadata_errors="ignore") as source, VideoWriter(dst, fps, crf=crf) as out:
        video = source.streams.video[0]
        video.thread_type = "AUTO"
        start = 0.0  # set from the first frame
        for n, frame in enumerate(source.decode(video)):
            t = float(frame.pts * video.time_base) if frame.pts is not None else None
            if n == 0:
                start = t or 0.0
            out.write(draw(frame_to_rgb(frame), n, (t - start) if t is not None else n / fps))
        if out.frames == 0:
            raise VideoDecodeError(src, "no frames to draw on")
    return out.path
