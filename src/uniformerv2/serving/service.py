"""What the HTTP endpoints share (:class:`Service`): the classifier behind the batcher, the decode pool, the upload
folder, the metrics, and each request's options, video and model calls -- the library does the work
(:func:`~uniformerv2.data.read_test_views`, :func:`~uniformerv2.timeline.scan`,
:func:`~uniformerv2.inference.probabilities`); this adds the limits, the threads and the HTTP answers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials

from ..data import VideoReader, open_video, read_test_views
from ..data.labels import SHIPPED_LABEL_MAPS, shipped_label_map
from ..duration import Duration, video_duration
from ..errors import UniFormerV2Error, UsageError, VideoDecodeError
from ..inference import VideoClassifier
from ..precision import compile_for_inference
from ..protocol import Protocol, parse_views
from ..timeline import Timeline, scan
from .batcher import BatchedClassifier, BatchStats, DynamicBatcher
from .errors import ApiError, check_key
from .metrics import Metrics
from .options import first
from .uploads import MIB, ClientGone, Upload, receive_upload

__all__ = ["ServeConfig", "Service", "WINDOWS_PER_READ"]

log = logging.getLogger("uniformerv2.serve")
T = TypeVar("T")

WINDOWS_PER_READ = 16  # timeline windows decoded (and scored) together; the next ones are decoded meanwhile


@dataclass(frozen=True)
class ServeConfig:
    """The server's limits, batching and access key (see ``uniformerv2 serve --help``)."""

    model_name: str = "model"
    max_batch_views: int = 24
    max_wait_ms: float = 10.0
    max_upload_mb: float = 200.0
    max_duration_s: float = 600.0
    max_concurrent: int = 32  # requests received, decoded or scored at once; more are answered 503
    max_request_views: int = 30  # clips x crops one request may ask for
    max_timeline_windows: int = 3600
    api_key: str | None = None
    workers: int = 2  # decode threads
    compile: bool = False  # the network under torch.compile (the classifier itself is left eager)
    warmup: bool = True  # one forward pass before the first request
    max_live_connections: int = 8  # camera connections (/v1/live) open at once; more are refused 503


class Service:
    """What the endpoints share: the classifier, the batcher, the decode pool, the temp folder, the metrics."""

    def __init__(self, clf: VideoClassifier, cfg: ServeConfig) -> None:
        self.clf = clf
        self.cfg = cfg
        model_forward = compile_for_inference(clf.model) if cfg.compile else clf.model
        forwards = {"logits": model_forward, "pooled": clf.feature_forward("pooled", compile=cfg.compile)}
        self.batcher = DynamicBatcher(
            forwards,
            device=clf.device,
            dtype=clf.dtype,
            max_batch_views=cfg.max_batch_views,
            max_wait_ms=cfg.max_wait_ms,
            on_batch=self._on_batch,
        )
        self.metrics = Metrics(lambda: self.batcher.queued_views)
        self.max_bytes = int(cfg.max_upload_mb * MIB)
        self.pool: ThreadPoolExecutor | None = None
        self.tmpdir: Path | None = None
        self.active = 0

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Make the private upload folder and the decode pool, start the model thread, run the warm-up."""
        self.tmpdir = Path(tempfile.mkdtemp(prefix="uniformerv2-serve-"))  # mode 0700: uploads are private
        self.pool = ThreadPoolExecutor(max(1, self.cfg.workers), thread_name_prefix="uniformerv2-decode")
        self.batcher.start()
        if self.cfg.warmup:
            p = self.clf.protocol
            self.batcher.submit(torch.zeros(1, 3, p.frames, p.size, p.size, dtype=torch.uint8)).result()

    def stop(self) -> None:
        """Stop the model thread and the pool; remove the upload folder and anything left in it."""
        self.batcher.close()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _on_batch(self, stats: BatchStats) -> None:
        """Record a forward pass in the metrics (called on the model thread)."""
        self.metrics.batch_views.observe(stats.views)
        self.metrics.batch_jobs.observe(stats.jobs)
        self.metrics.forward_seconds.observe(stats.seconds)

    # ------------------------------------------------------------------------------------------- access

    def check_key(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        """The API key from the ``Authorization: Bearer`` header (:func:`~uniformerv2.serving.errors.check_key`)."""
        check_key(
            self.cfg.api_key,
            credentials.credentials if credentials is not None else None,
            how="send the header 'Authorization: Bearer KEY'",
        )

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of ``max_concurrent`` places for a model request; none free: 503 (retry)."""
        if self.active >= self.cfg.max_concurrent:
            raise ApiError(503, f"busy: {self.active} requests in progress; retry in a moment", {"Retry-After": "1"})
        self.active += 1
        self.metrics.in_progress.inc()
        try:
            yield
        finally:
            self.active -= 1
            self.metrics.in_progress.dec()

    @contextlib.asynccontextmanager
    async def upload(self, request: Request) -> AsyncIterator[Upload]:
        """The request's video in a private temp file, removed when the block ends, whatever happens."""
        assert self.tmpdir is not None, "the app was not started (use it through uvicorn, which runs its lifespan)"
        upload = await receive_upload(request, directory=self.tmpdir, max_bytes=self.max_bytes)
        try:
            yield upload
        finally:
            upload.remove()

    # ------------------------------------------------------------------------------------------ options

    def protocol(self, options: Mapping[str, str]) -> Protocol:
        """The model's protocol with the request's ``views`` (CLIPSxCROPS)."""
        text = first(options, "views")
        if text is None:
            return self.clf.protocol
        try:
            clips, crops = parse_views(text)
        except UniFormerV2Error as e:
            raise ApiError(400, f"views={text!r}: {e}") from None
        if clips * crops > self.cfg.max_request_views:
            raise ApiError(400, f"views={text!r}: {clips * crops} views, the limit is {self.cfg.max_request_views}")
        return self.clf.protocol.replace(clips=clips, crops=crops)

    def labels(self, options: Mapping[str, str]) -> tuple[list[int] | None, list[str]]:
        """The head rows and names of the classes a request asks to score (``labels``: a shipped label map's
        name, or class names separated by commas or new lines), as ``predict --labels`` applies them; by default
        every class."""
        text = first(options, "labels")
        if text is None:
            return None, list(self.clf.class_names)
        try:
            if text in SHIPPED_LABEL_MAPS:  # never a path: a client names no file on the server
                wanted = shipped_label_map(text)
            else:
                wanted = [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]
            if not wanted:
                raise ApiError(400, "labels: no class names given")
            return self.clf.class_rows(wanted, source="labels"), wanted
        except UniFormerV2Error as e:
            raise ApiError(400, str(e)) from None

    def classifier(
        self,
        protocol: Protocol | None = None,
        rows: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> BatchedClassifier:
        """The classifier of one request: its views and classes, its forward passes through the batcher (recorded
        for its timing)."""
        return BatchedClassifier(
            self.clf, self.batcher, protocol=protocol, rows=rows, class_names=class_names, record=True
        )

    # -------------------------------------------------------------------------------------------- video

    def _decode_error(self, upload: Upload, e: BaseException) -> ApiError:
        """The 4xx answer for a file the decoder refused; never the server's temp path in it."""
        if isinstance(e, ApiError):
            return e
        if isinstance(e, VideoDecodeError):
            reason = e.reason
        else:  # anything else a hostile or broken file makes the decoder raise is still the file's fault
            log.warning("decoding %r failed", upload.filename, exc_info=e)
            reason = f"could not be decoded ({type(e).__name__}: {e})"
        if upload.path is not None:
            reason = reason.replace(str(upload.path), upload.filename)
        return ApiError(422, f"{upload.filename}: {reason}")

    def open_upload(self, upload: Upload) -> UploadedVideo:
        """The upload opened for reading, its length checked against ``max_duration_s``."""
        try:
            if upload.path is None:
                raise ValueError("the upload's file was already removed")
            reader = open_video(upload.path, self.clf.backend)
        except Exception as e:  # noqa: BLE001 - see _decode_error
            raise self._decode_error(upload, e) from None
        video = UploadedVideo(reader, upload, self._decode_error)
        if video.duration > self.cfg.max_duration_s:
            video.close()
            raise ApiError(
                413,
                f"{upload.filename}: video too long ({video.duration:.1f} s); the limit is "
                f"{self.cfg.max_duration_s:g} s",
            )
        return video

    def _read_views(self, upload: Upload, protocol: Protocol) -> tuple[torch.Tensor, float, float]:
        """An upload's test views (:func:`~uniformerv2.data.read_test_views`), its duration, the seconds it took."""
        start = time.perf_counter()
        with self.open_upload(upload) as video:
            views = read_test_views(video, protocol)
        seconds = time.perf_counter() - start
        self.metrics.decode_seconds.observe(seconds)
        return views, video.duration, seconds

    async def views_of(self, request: Request, upload: Upload, protocol: Protocol) -> tuple[torch.Tensor, float, float]:
        """Read an upload's test views on the pool, telling the batcher that they are on their way."""
        if await request.is_disconnected():  # gone while uploading the last bytes: do not decode for nobody
            raise ClientGone()
        with self.batcher.incoming():
            return await self.in_pool(self._read_views, upload, protocol)

    # --------------------------------------------------------------------------------------------- work

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a decode thread."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    async def run_one(self, clf: BatchedClassifier, views: torch.Tensor, kind: str) -> torch.Tensor:
        """One request's views through the batcher; cancelled when the request ends first (an error, a client
        gone)."""
        future = clf.submit(views, kind)
        try:
            return await asyncio.wrap_future(future)
        finally:
            future.cancel()

    async def timeline(
        self, upload: Upload, clf: BatchedClassifier, window: Duration, stride: Duration
    ) -> tuple[Timeline, float]:
        """:func:`~uniformerv2.timeline.scan` of an upload with ``clf`` (the windows' views batched with everyone
        else's, decoded on the pool a few windows ahead), and the seconds spent decoding."""
        decoding = _TimedPool(self)
        with self.batcher.incoming():
            video = await decoding.run(self.open_upload, upload)
        try:
            tl = await asyncio.get_running_loop().run_in_executor(
                None,
                functools.partial(
                    scan,
                    clf,
                    video,
                    window=window,
                    stride=stride,
                    windows_per_read=WINDOWS_PER_READ,
                    max_windows=self.cfg.max_timeline_windows,
                    read_pool=decoding,
                    progress=False,
                ),
            )
        except UsageError as e:  # a duration in frames, too many windows
            raise ApiError(400, str(e)) from None
        finally:
            await self.in_pool(video.close)
        self.metrics.decode_seconds.observe(decoding.seconds)
        return tl, decoding.seconds


class UploadedVideo(VideoReader):
    """An upload opened for reading, under the name the client gave it: whatever makes reading its frames fail is
    the file's fault (a 422 naming it), never the server's; ``duration`` is its length in seconds."""

    def __init__(self, reader: VideoReader, upload: Upload, error: Callable[[Upload, BaseException], ApiError]):
        self._reader, self._upload, self._error = reader, upload, error
        self.path = upload.filename
        self.num_frames, self.fps = reader.num_frames, reader.fps
        self.duration = video_duration(reader.times, reader.fps)

    @property
    def times(self) -> np.ndarray:
        return self._reader.times

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        try:
            return self._reader.read(indices)
        except Exception as e:  # noqa: BLE001 - see Service._decode_error
            raise self._error(self._upload, e) from None

    def close(self) -> None:
        self._reader.close()


class _TimedPool(Executor):
    """The service's decode pool as seen by one request: every job timed (the request's decode time) and marked
    as views on their way to the batcher while it runs."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.seconds = 0.0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future:
        """``fn(*args)`` on the decode pool, timed."""

        def timed() -> T:
            with self.service.batcher.incoming():
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start

        assert self.service.pool is not None
        return self.service.pool.submit(timed)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the decode pool, timed, awaited."""
        return await asyncio.wrap_future(self.submit(fn, *args))
