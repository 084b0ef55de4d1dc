"""Atomic file writes: a file is written under a temporary name beside its destination, flushed to disk and
renamed into place, so a reader (or a crash) never sees half a file and the previous version survives.

The file gets the permissions a plain ``open(path, "w")`` would give it (0666 less the umask), not the 0600 of
the temporary file, so teammates can read shared models. A write that fails for want of space, or for any other
reason of the file system, raises :class:`~uniformerv2.errors.OutputError` naming the destination.

Every write of the library goes through here: :func:`atomic_write` (and its text, bytes, file and copy forms) for
a writer that takes a path or a file and writes it at once, :func:`atomic_path` for one that writes over time
(the video writer: frames arrive one by one, the file is moved into place at the end), :func:`move_into_place`
for a file finished elsewhere (a resumable download's ``.part``), :func:`append_line` for logs.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from .errors import OutputError, UniFormerV2Error

__all__ = [
    "remove_stale_temporaries",
    "atomic_write",
    "atomic_write_file",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_copy",
    "atomic_path",
    "AtomicPath",
    "move_into_place",
    "file_errors",
    "append_line",
]

_UMASK_LOCK = threading.Lock()
# torch.save reports a failed write as a RuntimeError from its zip writer ("unexpected pos", "file write failed"),
# safetensors as a SafetensorError quoting the OS error
_WRITER_FAILURES = ("unexpected pos", "file write failed", "inline_container", "I/O error")
_NO_SPACE = ("No space left on device", "os error 28", "Disk quota exceeded")


def _umask() -> int:
    with _UMASK_LOCK:  # the only portable way to read the umask is to set it and put it back
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _output_error(path: Path, e: BaseException) -> OutputError | None:
    """The one-line error for a failed write, or None when ``e`` is not about the file system (or is already one
    of the library's errors, which say what went wrong themselves)."""
    if isinstance(e, UniFormerV2Error):
        return None
    if (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or any(s in str(e) for s in _NO_SPACE):
        return OutputError(f"{path}: no space left on device (the previous version, if any, is kept)")
    if any(s in str(e) for s in _WRITER_FAILURES):
        free = _free_bytes(path.parent)
        if free is not None and free < (1 << 20):
            return OutputError(f"{path}: no space left on device (the previous version, if any, is kept)")
        return OutputError(f"{path}: could not be written ({str(e).splitlines()[0][:200]})")
    if isinstance(e, OSError):
        return OutputError(f"{path}: could not be written ({e.strerror or e})")
    return None


@contextmanager
def file_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn a file-system failure raised inside the block (a full disk, a read-only folder) into the one-line
    :class:`OutputError` naming ``path``; other errors pass through."""
    try:
        yield
    except Exception as e:
        error = _output_error(Path(path), e)
        if error is None:
            raise
        raise error from None


def move_into_place(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Give the finished file ``tmp`` a plain write's permissions, flush it to disk and rename it onto ``path``
    (in the same folder): readers see the old file or the new one, never half of one."""
    path = Path(path)
    with file_errors(path):
        os.chmod(tmp, 0o666 & ~_umask())  # after the writer, which may have replaced the file (safetensors does)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    return path


class AtomicPath:
    """A temporary file beside ``path`` for a writer to fill, moved onto ``path`` by :meth:`commit` and removed
    by :meth:`discard`; as a context manager it yields the temporary path and commits when the block succeeds,
    discards when it fails (a file-system failure becomes an :class:`OutputError` naming ``path``).

    The temporary name is ``.<name>.<random>.tmp``, or ``.<name>.<random>.tmp<suffix>`` with ``keep_suffix`` for
    writers that choose the format by the extension (PyAV's muxers, ``np.save``)."""

    def __init__(self, path: str | os.PathLike, *, keep_suffix: bool = False) -> None:
        self.path = Path(path)
        suffix = ".tmp" + (self.path.suffix if keep_suffix else "")
        with file_errors(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix, dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        """Move the written temporary file onto ``path`` (removing it if that fails)."""
        try:
            return move_into_place(self.tmp, self.path)
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the temporary file (when it is still there); ``path`` is left as it was."""
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:
            pass

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is None:
            self.commit()
            return
        self.discard()
        error = _output_error(self.path, e) if isinstance(e, Exception) else None
        if error is not None:
            raise error from None


def atomic_path(path: str | os.PathLike, *, keep_suffix: bool = False) -> AtomicPath:
    """``with atomic_path(dst) as tmp: <write tmp>``: ``dst`` appears, whole, when the block succeeds (see
    :class:`AtomicPath`)."""
    return AtomicPath(path, keep_suffix=keep_suffix)


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)``, fsync, and rename onto ``path``; the old file survives any interruption."""
    target = AtomicPath(path)
    with target as tmp:
        write(str(tmp))
    return target.path


def atomic_write_file(path: str | os.PathLike, write: Callable[[IO[Any]], object], *, binary: bool) -> Path:
    """:func:`atomic_write` for writers that take an open file (text files are UTF-8, no newline translation)."""

    def to_path(tmp: str) -> None:
        f: IO[Any]
        with open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8", newline="") as f:
            write(f)

    return atomic_write(path, to_path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_file(path, lambda f: f.write(text), binary=False)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write_file(path, lambda f: f.write(data), binary=True)


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log file (a crash loses at most that line); a failed write is an OutputError."""
    with file_errors(path), open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Remove the temporaries a killed writer of ``path`` left beside it (``.<name>.<random>.tmp[<suffix>]``;
    every other failure cleans up after itself); ``path`` a folder: those of every file in it. Returns how many."""
    target = Path(path)
    pattern = ".*.tmp*" if target.is_dir() else f".{glob.escape(target.name)}.*.tmp*"
    folder = target if target.is_dir() else target.parent
    removed = 0
    for tmp in folder.glob(pattern):
        try:
            tmp.unlink()
            removed += 1
        except OSError:  # gone already, or not ours to remove: a later write still succeeds
            pass
    return removed
