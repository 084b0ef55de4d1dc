"""Probing video files: what each one is, or why it is unusable, in worker processes with a time-out per file.

Every file is opened, its video stream read, and the frames the test protocol samples decoded (not just the
header), in worker processes with a time-out, so a file that hangs the decoder (or the file system) is reported
and the run goes on. For each file: size, sha256, frame count, fps, duration, resolution, codec, display rotation
and the perceptual hashes of :mod:`.hashing`. :func:`decode_problem` is the lighter probe ``train`` runs before a
run (the header and the first frame, with the training decoder), worded in the same problem kinds.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.decode import PyAVReader, frame_to_rgb, open_video
from ..data.views import sample_test_indices
from ..errors import UniFormerV2Error, UsageError, VideoDecodeError
from ..hub import sha256_file
from ..protocol import Protocol
from .hashing import frame_hashes
from .records import DEFAULT_PROTOCOL, VideoInfo

__all__ = ["inspect_video", "inspect_videos", "decode_problem"]


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # only a multi-byte character cut at the end of the sample is forgiven
            return False
        text = head[: e.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * max(1, len(text))


def _mp4_cut(path: str, size: int) -> str | None:
    """Why an MP4/MOV file looks cut short (a top-level box running past the end, or no 'moov' index), if so."""
    boxes: list[str] = []
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size, box_type = int.from_bytes(header[:4], "big"), header[4:8].decode("latin-1")
            if box_size == 1 and len(header) >= 16:
                box_size = int.from_bytes(header[8:16], "big")
            if not boxes and box_type != "ftyp":
                return None  # not an ISO media file
            boxes.append(box_type)
            if box_size == 0:
                break  # the last box, to the end of the file
            if box_size < 8:
                return None
            if offset + box_size > size:
                return (
                    f"truncated: the file ends at byte {size} inside its {box_type!r} box, which needs "
                    f"{offset + box_size} bytes"
                )
            offset += box_size
    if boxes and "moov" not in boxes:
        return "truncated or unfinished: no 'moov' index (the recording or the copy did not finish)"
    return None


def _stream_types(path: str) -> list[str]:
    import av

    try:
        with av.open(path, metadata_errors="ignore") as container:
            return [s.type for s in container.streams]
    except Exception:  # noqa: BLE001 - only to word the message
        return []


def _open_failure(path: str, size: int, reason: str) -> tuple[str, str]:
    """(kind, detail) of a file that :func:`~uniformerv2.data.open_video` refused."""
    if reason.startswith("empty file"):
        return "empty", reason
    if reason.startswith("no video stream"):
        types = sorted(set(_stream_types(path)))
        return "no-video-stream", reason + (f" (streams: {', '.join(types)})" if types else " (no streams)")
    if reason.startswith("zero frames"):
        return "no-frames", reason
    if reason.startswith("truncated"):
        return "truncated", reason
    if reason.startswith("not a readable video"):
        with open(path, "rb") as f:
            head = f.read(4096)
        if _looks_like_text(head):
            return "not-a-video", f"a text file, not a video (starts {head[:40].decode('utf-8', 'replace')!r})"
        cut = _mp4_cut(path, size)
        if cut:
            return "truncated", cut
        return "unreadable", reason
    return "decode-error", reason


class _ProbeReader(PyAVReader):
    """The PyAV reader of the test views, noting the display rotation and coded size of the frames it converts."""

    rotation = 0
    coded: tuple[int, int] = (0, 0)

    def _to_rgb(self, frame: Any) -> np.ndarray:
        self.rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
        self.coded = (frame.width, frame.height)
        return frame_to_rgb(frame)


def inspect_video(path: str, protocol: Protocol = DEFAULT_PROTOCOL) -> VideoInfo:
    """Open one file, decode the frames ``protocol`` samples, and record what it is (or why it is unusable)."""
    t0 = time.perf_counter()
    info = VideoInfo(path=path)

    def fail(kind: str, detail: str) -> VideoInfo:
        info.kind, info.error, info.seconds = kind, detail, time.perf_counter() - t0
        return info

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return fail("missing", "no such file")
    except OSError as e:
        return fail("unreadable", f"cannot read ({e.strerror or e})")
    if stat.S_ISDIR(st.st_mode):
        return fail("unreadable", "a directory, not a video file")
    info.size = st.st_size
    if info.size == 0 and stat.S_ISREG(st.st_mode):  # a FIFO or a device has no size: it is read like a file
        return fail("empty", "empty file (0 bytes)")
    try:
        info.sha256 = sha256_file(path)  # a FIFO or a stuck network mount blocks here: the time-out covers it
        reader = _ProbeReader(path, threads=False)  # one process per core: no FFmpeg threads on top
    except VideoDecodeError as e:
        return fail(*_open_failure(path, info.size, e.reason))
    except OSError as e:
        return fail("unreadable", f"cannot read ({e.strerror or e})")
    except Exception as e:  # noqa: BLE001 - whatever a decoder raises is this file's problem
        return fail("decode-error", f"{type(e).__name__}: {e}")
    try:
        info.frames, info.fps, info.codec = reader.num_frames, float(reader.fps), reader.codec_name
        times = reader.times
        n = reader.num_frames
        info.duration = float(times[-1]) * n / (n - 1) if n > 1 and times[-1] > 0 else n / max(info.fps, 1e-6)
        indices = np.unique(sample_test_indices(n, protocol))
        frames = reader.read(indices)
    except VideoDecodeError as e:
        return fail(*_read_failure(e.reason))
    except Exception as e:  # noqa: BLE001
        return fail("decode-error", f"{type(e).__name__}: {e}")
    finally:
        reader.close()
    info.height, info.width = int(frames.shape[1]), int(frames.shape[2])
    info.coded_width, info.coded_height = reader.coded
    info.rotation = reader.rotation
    if n < protocol.frames:
        info.warnings.append(("few-frames", f"{n} frames, fewer than the {protocol.frames} of a clip"))
    info.hashes, info.key = frame_hashes(frames)
    if info.key is None:
        info.warnings.append(("blank", f"all {len(frames)} sampled frames are a uniform colour"))
    info.seconds = time.perf_counter() - t0
    return info


def _read_failure(reason: str) -> tuple[str, str]:
    """(kind, detail) of a file that opened but whose frames could not be read."""
    return ("truncated" if reason.startswith("truncated video") else "decode-error"), reason


def decode_problem(path: str, backend: str = "pyav") -> tuple[str, str] | None:
    """(kind, detail) when an existing file cannot be opened, or its first frame decoded, with ``backend`` (the
    check ``train`` runs before a run); None when it can. Kinds as :func:`inspect_video` reports them."""
    try:
        reader = open_video(path, backend)
    except VideoDecodeError as e:
        return _open_failure(path, os.path.getsize(path), e.reason)
    except ImportError:
        raise
    except OSError as e:
        return "unreadable", f"cannot read ({e.strerror or e})"
    except Exception as e:  # noqa: BLE001 - whatever a decoder raises is this file's problem
        return "decode-error", f"{type(e).__name__}: {e}"
    try:
        with reader:
            if reader.num_frames < 1:
                return "no-frames", "no frames"
            reader.read([0])
    except VideoDecodeError as e:
        return _read_failure(e.reason)
    except Exception as e:  # noqa: BLE001
        return "decode-error", f"{type(e).__name__}: {e}"
    return None


def _worker(conn: Any, protocol: dict[str, Any]) -> None:
    """A worker process: inspect the paths it is sent, one at a time, until it is sent None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends the workers
    import av  # noqa: F401 - imported before the first video's clock starts, not during it
    import torch

    torch.set_num_threads(1)  # the frames' RGB conversion runs in this process alone: processes are the parallelism
    p = Protocol.from_dict(protocol)
    conn.send(("ready", None, None))
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):
            return
        if path is None:
            return
        conn.send(("done", path, inspect_video(path, p)))


# BLAS and OpenMP pools of one thread in the workers: OpenBLAS threads spin while they wait, so on a loaded machine a
# small matrix product (the thumbnails) runs 10-60x slower with a pool per worker than with one thread; the
# variables must be in the environment before numpy is imported, i.e. when the worker (or its server) starts
_WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextlib.contextmanager
def _worker_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _WORKER_ENV}
    os.environ.update(_WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _context() -> Any:
    """Worker processes forked from a clean server process that has the package imported (fast to replace when
    one is killed, and no threads of this process are copied); spawn where there is no forkserver."""
    import multiprocessing

    try:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])  # this module
        return ctx
    except ValueError:
        return multiprocessing.get_context("spawn")


_START_TIMEOUT = 300  # seconds for a worker to import the package (torch): minutes on a loaded machine at worst


@dataclass
class _Slot:
    process: Any
    conn: Any
    ready: bool = False
    path: str | None = None
    started: float = 0.0
    born: float = field(default_factory=time.monotonic)


def inspect_videos(
    paths: Sequence[str],
    protocol: Protocol = DEFAULT_PROTOCOL,
    *,
    workers: int = 2,
    timeout: float = 60.0,
    progress: bool = True,
) -> dict[str, VideoInfo]:
    """:func:`inspect_video` of every path in ``workers`` processes; a file still running after ``timeout``
    seconds is a ``timeout`` problem (its worker is killed and replaced), a worker that dies is a ``crash``."""
    from multiprocessing.connection import wait

    from tqdm.auto import tqdm

    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    if not timeout > 0:
        raise UsageError(f"timeout must be positive, got {timeout}")
    ctx = _context()
    todo = collections.deque(dict.fromkeys(paths))
    results: dict[str, VideoInfo] = {}
    total = len(todo)
    failed_starts = 0

    def start() -> _Slot:
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker, args=(child, protocol.to_dict()), daemon=True, name="uniformerv2-check")
        with _worker_env():  # the first start also starts the fork server, whose environment the workers inherit
            process.start()
        child.close()
        return _Slot(process, parent)

    def stop(slot: _Slot) -> None:
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join(5)
        slot.conn.close()

    slots = [start() for _ in range(min(workers, total))]
    bar = tqdm(total=total, unit="video", desc="checking", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    try:
        while len(results) < total:
            for slot in slots:
                if slot.ready and slot.path is None and todo:
                    slot.path, slot.started = todo.popleft(), time.monotonic()
                    slot.conn.send(slot.path)
            busy = [s.started + timeout for s in slots if s.path is not None]
            wait_s = max(0.0, min(busy) - time.monotonic()) if busy else 1.0
            ready = wait([s.conn for s in slots], timeout=wait_s)
            for i, slot in enumerate(slots):
                if slot.conn not in ready:
                    continue
                try:
                    what, path, info = slot.conn.recv()
                except (EOFError, OSError):  # the worker died: a decoder crash on this file, or a failed start
                    slot.process.join(5)
                    code = slot.process.exitcode
                    if slot.path is not None:
                        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                        results[slot.path] = VideoInfo(
                            path=slot.path, kind="crash", error=f"the decoder crashed ({how})"
                        )
                        bar.update()
                    elif not slot.ready:
                        failed_starts += 1
                        if failed_starts > 3:
                            raise UniFormerV2Error(
                                "the check's worker processes could not start (a script that runs the check must "
                                "do so under `if __name__ == '__main__':`, as multiprocessing requires)"
                            ) from None
                    stop(slot)
                    slots[i] = start()
                    continue
                if what == "ready":
                    slot.ready = True
                else:
                    results[path] = info
                    slot.path = None
                    bar.update()
            now = time.monotonic()
            for i, slot in enumerate(slots):
                if not slot.ready and now - slot.born > _START_TIMEOUT:
                    raise UniFormerV2Error(f"the check's worker processes did not start within {_START_TIMEOUT} s")
                if slot.path is not None and now - slot.started >= timeout:
                    results[slot.path] = VideoInfo(
                        path=slot.path,
                        kind="timeout",
                        seconds=now - slot.started,
                        error=f"gave up after {timeout:g} s (the decoder or the file system hangs on it)",
                    )
                    bar.update()
                    stop(slot)
                    slots[i] = start()
    finally:
        bar.close()
        for slot in slots:
            try:
                if slot.path is None and slot.process.is_alive():
                    slot.conn.send(None)
                    slot.process.join(2)
            except (OSError, ValueError):
                pass
            stop(slot)
    return results
