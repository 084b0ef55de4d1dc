"""Atomic file writes: a file is written under a temporary name beside its destination, flushed to disk and
renamed into place, so a reader (or a crash) never sees half a file and the previous version survives.

The file gets the permissions a plain ``open(path, "w")`` would give it (0666 less the umask), not the 0600 of
the temporary file, so teammates can read shared models. A write that fails for want of space, or for any other
reason of the file system, raises :class:`~uniformerv2.errors.OutputError` naming the destination.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Callable

from .errors import OutputError, UniFormerV2Error

__all__ = ["atomic_write", "atomic_write_file", "atomic_write_text", "atomic_write_bytes", "atomic_copy",
           "append_line"]

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
    """The one-line error for a failed write, or None when ``e`` is not about the file system."""
    if (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or any(s in str(e) for s in _NO_SPACE):
        return OutputError(f"{path}: no space left on device (the previous version, if any, is kept)")
    if any(s in str(e) for s in _WRITER_FAILURES):
        free = _free_bytes(path.parent)
        if free is not None and free < (1 << 20):
            return OutputError(f"{path}: no space left on device (the previous version, if any, is kept)")
        return OutputError(f"{path}: could not be written ({str(e).splitlines()[0][:200]})")
    if isinstance(e, OSError) and not isinstance(e, UniFormerV2Error):
        return OutputError(f"{path}: could not be written ({e.strerror or e})")
    return None


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, fsync, and rename onto ``path``; the old file survives any interruption."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _output_error(path, e) or e from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # after the writer, which may have replaced the file (safetensors does)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except Exception as e:  # noqa: BLE001 - the writers (torch, safetensors, PIL) raise their own types
        error = _output_error(path, e)
        if error is None:
            raise
        raise error from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_file(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool) -> Path:
    """:func:`atomic_write` for writers that take an open file (text files are UTF-8, no newline translation)."""
    def to_path(tmp: str) -> None:
        kwargs = {} if binary else {"encoding": "utf-8", "newline": ""}
        with open(tmp, "wb" if binary else "w", **kwargs) as f:
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
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError as e:
        raise _output_error(Path(path), e) or e from None
