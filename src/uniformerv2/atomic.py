"""Atomic file writes: a file is written under a temporary name beside its destination, flushed to disk and
renamed into place, so a reader (or a crash) never sees half a file and the previous version survives."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable

__all__ = ["atomic_write", "atomic_write_file", "atomic_write_text"]


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


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, fsync, and rename onto ``path``; the old file survives any interruption."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
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
