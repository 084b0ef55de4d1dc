"""Checkpoint downloads into a local cache, with the standard library and a tqdm progress bar.

The cache is the one torch.hub and MMAction2/mmengine use (``~/.cache/torch/hub/checkpoints`` by default), so
checkpoints users already downloaded are found. A download goes to ``<file>.part`` first, is resumed with an HTTP
``Range`` request when a ``.part`` is left over, is checked against the sha256 prefix OpenMMLab puts in its file
names (``<name>_<YYYYMMDD>-<8 hex>.pth``), and only then is moved under its final name (flushed to disk, with the
permissions of a plain write: :func:`uniformerv2.atomic.move_into_place`), so an interrupted download never leaves a
file under the final name. A full disk is an :class:`~uniformerv2.errors.OutputError` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from .atomic import file_errors, move_into_place
from .errors import CheckpointNotFoundError, ChecksumError, DownloadError, HubError, OutputError

__all__ = [
    "sha256_file",
    "ChecksumError",
    "DownloadError",
    "HubError",
    "cache_dir",
    "download",
    "hash_prefix_from_name",
    "is_url",
    "resolve",
]

CHUNK_SIZE = 1 << 20
_URL_SCHEMES = frozenset({"http", "https", "file"})
_HASH_RE = re.compile(r"_\d{8}-([0-9a-f]{8,64})\.\w+$")
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_USER_AGENT = "uniformerv2-hub (Python urllib)"


def cache_dir() -> Path:
    """Return (creating it) the checkpoint cache: $UNIFORMERV2_CACHE, else torch.hub's checkpoints directory."""
    env = os.environ
    if env.get("UNIFORMERV2_CACHE"):
        path = Path(env["UNIFORMERV2_CACHE"]).expanduser()
    elif env.get("TORCH_HOME"):
        path = Path(env["TORCH_HOME"]).expanduser() / "hub" / "checkpoints"
    elif env.get("XDG_CACHE_HOME"):
        path = Path(env["XDG_CACHE_HOME"]).expanduser() / "torch" / "hub" / "checkpoints"
    else:
        path = Path.home() / ".cache" / "torch" / "hub" / "checkpoints"
    with file_errors(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def is_url(s: str) -> bool:
    """Return whether ``s`` is an http, https or file URL."""
    parsed = urllib.parse.urlparse(str(s))
    if parsed.scheme not in _URL_SCHEMES:
        return False
    return bool(parsed.path) if parsed.scheme == "file" else bool(parsed.netloc)


def hash_prefix_from_name(filename: str) -> str | None:
    """Return the sha256 hex prefix of an OpenMMLab name ``<name>_<YYYYMMDD>-<hex>.pth``, else None."""
    match = _HASH_RE.search(os.path.basename(filename))
    return match.group(1) if match else None


def download(
    url: str,
    *,
    dst_dir: Path | None = None,
    progress: bool = True,
    check_hash: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Fetch ``url`` into the cache (resuming, verifying, atomically renaming) and return the cached path."""
    dst = Path(dst_dir if dst_dir is not None else cache_dir()) / _filename_from_url(url)
    with file_errors(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
    expected = hash_prefix_from_name(dst.name) if check_hash else None
    if dst.is_file() and _cached_file_ok(dst, expected):
        return dst
    part = _part_path(dst)
    if urllib.parse.urlparse(url).scheme == "file":
        _copy_file_url(url, dst, progress=progress)
    else:
        _fetch_http(url, dst, progress=progress, timeout=timeout)
    if expected is not None:
        # Hash the bytes on disk (not the bytes streamed) so the file put in place is the file verified.
        actual = sha256_file(part)
        if not actual.startswith(expected):
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"Checksum mismatch for {url}: its name promises a sha256 starting with {expected}, "
                f"but the downloaded file's sha256 is {actual}. The partial file was removed; try again."
            )
    try:
        move_into_place(part, dst)
    except OutputError:
        if part.exists() or not dst.is_file():  # else another process finished the same download first
            raise
    return dst


def resolve(path_or_url: str | os.PathLike, **kw) -> Path:
    """Return a local path for a checkpoint: download URLs (``**kw`` go to :func:`download`), check local paths."""
    target = os.fspath(path_or_url)
    if is_url(target):
        return download(target, **kw)
    path = Path(target).expanduser()
    if not path.exists():
        raise CheckpointNotFoundError(f"{path}: no such checkpoint file")
    return path


def _filename_from_url(url: str) -> str:
    """Return the file name a URL's path ends with (its query string ignored)."""
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if not name:
        raise DownloadError(f"Cannot derive a file name from URL {url!r}")
    return name


def _part_path(dst: Path) -> Path:
    """Return the ``.part`` file a download into ``dst`` is written to."""
    return dst.with_name(dst.name + ".part")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of a file, read in chunks: downloads, ``check``'s exact copies and ``extract``'s
    journal all hash files with it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _cached_file_ok(path: Path, expected: str | None) -> bool:
    """Return whether a cached file can be used: no hash to check, or its sha256 starts with it."""
    if expected is None:
        return True
    actual = sha256_file(path)
    if actual.startswith(expected):
        return True
    warnings.warn(
        f"Cached {path} has sha256 {actual}, not starting with {expected}; downloading it again.", stacklevel=2
    )
    return False


def _offline_message(url: str, reason: object, dst: Path) -> str:
    """Return the DownloadError message: the URL, the reason and how to go on without network access."""
    lines = [f"Could not download {url}: {reason}."]
    part = _part_path(dst)
    if part.exists():
        lines.append(f"The partial download is kept in {part}; calling again resumes it.")
    lines.append(
        "To work offline, download the file elsewhere and pass its local path "
        f"(checkpoint=/path/to/{dst.name} in Python, --checkpoint /path/to/{dst.name} on the command line), "
        f"or put it in the cache directory {dst.parent} (as {dst})."
    )
    return "\n".join(lines)


@contextlib.contextmanager
def _network_errors(url: str, dst: Path) -> Iterator[None]:
    """Turn network failures raised inside the block into one DownloadError."""
    try:
        yield
    except urllib.error.HTTPError as e:
        raise DownloadError(
            _offline_message(url, f"HTTP error {e.code} {e.reason}", dst), url=url, cache_path=dst
        ) from e
    except urllib.error.URLError as e:
        raise DownloadError(_offline_message(url, e.reason, dst), url=url, cache_path=dst) from e
    except (http.client.HTTPException, OSError) as e:
        raise DownloadError(_offline_message(url, str(e) or type(e).__name__, dst), url=url, cache_path=dst) from e


def _progress_bar(name: str, total: int | None, initial: int, progress: bool) -> tqdm:
    """Return a byte-counting tqdm bar for a download."""
    return tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not progress
    )


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """Return (first byte, total size or None) of a ``Content-Range`` header, or None if unparsable."""
    match = _CONTENT_RANGE_RE.fullmatch((value or "").strip())
    if match is None:
        return None
    return int(match.group(1)), None if match.group(3) == "*" else int(match.group(3))


def _open(url: str, start: int, timeout: float) -> tuple[http.client.HTTPResponse, int, int | None]:
    """Open ``url`` from byte ``start`` when the server honours Range; return (response, start used, total)."""
    headers = {"User-Agent": _USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if start and e.code == 416:  # the leftover .part does not fit the file: start over
            e.close()
            return _open(url, 0, timeout)
        raise
    if start and resp.status == 206:
        content_range = _parse_content_range(resp.headers.get("Content-Range"))
        if content_range is not None and content_range[0] == start:
            return resp, start, content_range[1]
        resp.close()
        return _open(url, 0, timeout)
    length = resp.headers.get("Content-Length", "")
    return resp, 0, int(length) if length.isdigit() else None


def _fetch_http(url: str, dst: Path, *, progress: bool, timeout: float) -> None:
    """Stream ``url`` into ``dst``'s ``.part``, resuming a leftover one; raise DownloadError on a short body."""
    part = _part_path(dst)
    leftover = part.stat().st_size if part.is_file() else 0
    with _network_errors(url, dst):
        resp, start, total = _open(url, leftover, timeout)
    with (
        file_errors(dst),
        resp,
        open(part, "ab" if start else "wb") as f,
        _progress_bar(dst.name, total, start, progress) as bar,
    ):
        while True:
            with _network_errors(url, dst):
                chunk = resp.read(CHUNK_SIZE)
            if not chunk:
                break
            f.write(chunk)
            bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(
            _offline_message(url, f"the transfer stopped after {size} of {total} bytes", dst), url=url, cache_path=dst
        )


def _copy_file_url(url: str, dst: Path, *, progress: bool) -> None:
    """Copy the file a ``file://`` URL names into ``dst``'s ``.part``."""
    src = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    with _network_errors(url, dst):
        fin: BinaryIO = open(src, "rb")
    with (
        file_errors(dst),
        fin,
        open(_part_path(dst), "wb") as fout,
        _progress_bar(dst.name, src.stat().st_size, 0, progress) as bar,
    ):
        while chunk := fin.read(CHUNK_SIZE):
            fout.write(chunk)
            bar.update(len(chunk))
