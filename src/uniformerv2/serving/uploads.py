"""Receiving an uploaded video: the multipart body streamed straight into a private temp file, with the limits
checked while it arrives (size, number and size of the other form fields), so no upload is held in memory and an
over-size one is refused as soon as it is seen to be."""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from .errors import ApiError

if TYPE_CHECKING:  # the TypedDict exists only for type checkers
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["ClientGone", "Upload", "receive_upload", "MIB"]

MIB = 1024 * 1024
# How much of an over-size body is still read (and thrown away) before answering 413: a client that sends its
# whole body before reading the answer (most do, browsers included) gets the 413 instead of a reset connection;
# a larger body is cut off without reading the rest.
DRAIN_BYTES = 16 * MIB
MAX_FIELDS = 16  # form fields besides the video
MAX_FIELD_BYTES = 64 * 1024  # a list of class names fits
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class ClientGone(Exception):
    """The client closed the connection before its upload was complete: nothing is left to answer."""


@dataclass
class Upload:
    """A received video: its private temp file (``None`` until one was written), the name the client gave it, its
    size, the other form fields, and how long receiving took."""

    path: Path | None
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def remove(self) -> None:
        """Delete the temp file (idempotent)."""
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None


def _too_large(max_bytes: int) -> ApiError:
    """The 413 answer for an upload over the limit."""
    return ApiError(413, f"upload too large: the limit is {max_bytes / MIB:g} MiB per video")


class _Receiver:
    """Callbacks of the streaming multipart parser: the file part goes to a temp file, other parts to a dict."""

    def __init__(self, directory: Path, file_field: str, max_bytes: int) -> None:
        self.directory = directory
        self.file_field = file_field
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.file_fields: list[str] = []  # names of the parts that carried a file, the right one or not
        self.headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self.part: str | None = None  # name of the part being received
        self.part_is_file = False
        self.buffer = bytearray()
        self.fd: int | None = None
        self.path: Path | None = None
        self.filename = ""
        self.size = 0
        self.ended = False
        self.error: ApiError | None = None  # raised after parser.write returns (the parser swallows nothing)

    # ---------------------------------------------------------------------------------------- callbacks

    def on_part_begin(self) -> None:
        """A new part: forget the previous one's headers."""
        self.headers = {}
        self.part, self.part_is_file = None, False
        self.buffer = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        """Part of a header's name."""
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        """Part of a header's value."""
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        """A header complete."""
        self.headers[self._header_field.strip().lower()] = self._header_value.strip()
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        """The part's headers complete: open the temp file for the video, or count a field."""
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self.part = name
        self.part_is_file = b"filename" in options
        if self.part_is_file:
            self.file_fields.append(name)
        if name == self.file_field:
            if self.fd is not None:
                raise ApiError(400, f"more than one {self.file_field!r} field: send one video per request")
            self.filename = Path(options.get(b"filename", b"video").decode("utf-8", "replace")).name or "video"
            suffix = Path(self.filename).suffix
            # keep the extension: FFmpeg guesses some formats from it; never anything a path could use
            self.fd, name = tempfile.mkstemp(
                prefix="upload-", suffix=suffix if _SAFE_SUFFIX.match(suffix) else "", dir=self.directory
            )  # mkstemp: mode 0600, O_EXCL
            self.path = Path(name)
        elif not self.part_is_file and len(self.fields) >= MAX_FIELDS:
            raise ApiError(400, f"too many form fields (at most {MAX_FIELDS} besides {self.file_field!r})")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        """Part of a part's body: to the temp file (size checked) or to the field's buffer."""
        if self.part == self.file_field and self.fd is not None:
            self.size += end - start
            if self.size > self.max_bytes:
                raise _too_large(self.max_bytes)
            view = memoryview(data)[start:end]
            while view:
                view = view[os.write(self.fd, view) :]
        elif not self.part_is_file:
            self.buffer += data[start:end]
            if len(self.buffer) > MAX_FIELD_BYTES:
                raise ApiError(400, f"form field {self.part!r} is longer than {MAX_FIELD_BYTES // 1024} KiB")
        # another file part (a wrong field name): not stored, reported once the body has been read

    def on_part_end(self) -> None:
        """A part complete: keep a field's text."""
        if self.part is not None and not self.part_is_file:
            self.fields[self.part] = self.buffer.decode("utf-8", "replace")
        self.buffer = bytearray()

    def on_end(self) -> None:
        """The closing boundary seen: the body is complete."""
        self.ended = True

    # ----------------------------------------------------------------------------------------------- use

    def callbacks(self) -> MultipartCallbacks:
        """The callbacks for ``MultipartParser``."""
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }

    def close_file(self) -> None:
        """Close the temp file (keeping its path)."""
        if self.fd is not None and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1  # closed, but a second video part is still recognised

    def discard(self) -> None:
        """Close and delete the temp file."""
        self.close_file()
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None


async def _drain(stream: Any) -> None:
    """Read and drop what is left of a refused body, up to :data:`DRAIN_BYTES` more (see there why)."""
    read = 0
    try:
        async for chunk in stream:
            read += len(chunk)
            if read > DRAIN_BYTES:
                break
    except ClientDisconnect:
        pass


async def receive_upload(request: Request, *, directory: Path, max_bytes: int, file_field: str = "video") -> Upload:
    """The request's multipart body, its ``file_field`` part streamed to a private temp file in ``directory``.

    Raises :class:`ApiError` (415 not multipart, 413 too large, 400 malformed or without the video field) and
    :class:`ClientGone`; on any error the temp file is already removed."""
    start = time.perf_counter()
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(
            415,
            f"send the video as multipart/form-data with the file in a field named {file_field!r} "
            f"(got Content-Type {request.headers.get('content-type', 'none')!r})",
        )
    declared = request.headers.get("content-length")
    body_limit = max_bytes + MAX_FIELDS * MAX_FIELD_BYTES + 64 * 1024  # the video, the fields and the part headers
    stream = request.stream()
    if declared is not None and declared.isdigit() and int(declared) > body_limit:
        if int(declared) <= body_limit + DRAIN_BYTES:
            await _drain(stream)
        raise _too_large(max_bytes)
    receiver = _Receiver(directory, file_field, max_bytes)
    parser = MultipartParser(boundary, receiver.callbacks())
    received = 0
    try:
        try:
            async for chunk in stream:
                received += len(chunk)
                if received > body_limit:
                    raise _too_large(max_bytes)
                parser.write(chunk)
            parser.finalize()
        except ApiError:
            receiver.discard()
            await _drain(stream)
            raise
        except MultipartParseError as e:
            raise ApiError(400, f"malformed multipart body ({e})") from None
        if not receiver.ended:
            raise ApiError(400, "the multipart body ended before its closing boundary (an interrupted upload?)")
        receiver.close_file()
        if receiver.path is None:
            got = ", ".join(repr(n) for n in receiver.file_fields + list(receiver.fields)) or "no fields"
            raise ApiError(400, f"no video: send the file in a form field named {file_field!r} (got {got})")
        if receiver.size == 0:
            raise ApiError(400, f"the {file_field!r} field is an empty file (0 bytes)")
    except ClientDisconnect:
        receiver.discard()
        raise ClientGone() from None
    except BaseException:
        receiver.discard()
        raise
    return Upload(
        path=receiver.path,
        filename=receiver.filename,
        size=receiver.size,
        fields=receiver.fields,
        seconds=time.perf_counter() - start,
    )
