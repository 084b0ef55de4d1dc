"""The HTTP service: :func:`create_app` makes a FastAPI app that classifies uploaded videos with a
:class:`~uniformerv2.inference.VideoClassifier`, and serves the web page.

Where the work happens: the network thread (uvicorn's event loop) receives uploads, streaming each to a private
temp file; a pool of decode threads turns files into test views (PyAV releases the GIL while it decodes); one model
thread (:class:`~uniformerv2.serving.batcher.DynamicBatcher`) runs the network over batches that mix the views of
concurrent requests. A slow decode therefore never stalls the model, and a burst of requests shares forward passes.

Every bad request is answered ``4xx`` with ``{"error": "..."}`` saying what is wrong; temp files are removed
whatever happens; a client that leaves mid-upload costs only what it sent.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import math
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Mapping, Sequence, TypeVar

import numpy as np
import torch
from fastapi import APIRouter, Depends, FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..data import open_video, sample_test_indices, views_from_frames
from ..data.labels import SHIPPED_LABEL_MAPS, kinetics710_aliases, match_class_names
from ..features import feature_forward
from ..errors import UniFormerV2Error, VideoDecodeError
from ..inference import VideoClassifier
from ..precision import compile_for_inference
from ..protocol import Protocol, parse_views
from ..timeline import Timeline, window_indices, write_timeline
from .batcher import BatchStats, DynamicBatcher
from .live_ws import LiveHub
from .metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from .uploads import MIB, ApiError, ClientGone, Upload, receive_upload

__all__ = ["ServeConfig", "create_app", "STATIC_DIR"]

log = logging.getLogger("uniformerv2.serve")
STATIC_DIR = Path(__file__).parent / "static"
T = TypeVar("T")

WINDOWS_PER_READ = 16  # timeline windows decoded together (as timeline.scan reads them)
WINDOWS_AHEAD = 64  # timeline windows decoded ahead of the model at most: bounds a long video's memory
ENDPOINTS = ("/", "/healthz", "/metrics", "/v1/model", "/v1/predict", "/v1/timeline", "/v1/features", "/docs",
             "/openapi.json")
# The web page's own files hold no data and reach no model, so they load without the key (a browser cannot
# send a header when it opens a page); the page asks for the key and sends it with every API call.
PAGE_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                               "object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


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


# ------------------------------------------------------------------------------------------------- options

def _first(options: Mapping[str, str], name: str) -> str | None:
    """An option's value, or None when it is missing or blank."""
    value = options.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def _int_option(options: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """A whole-number option within [lo, hi]; 400 otherwise."""
    text = _first(options, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"{name}={text!r}: expected a whole number") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name}={value}: must be between {lo} and {hi}")
    return value


def _seconds_option(options: Mapping[str, str], name: str, default: float) -> float:
    """A positive duration option in seconds ('2' or '2s'); 400 otherwise."""
    text = _first(options, name)
    if text is None:
        return default
    try:
        value = float(text[:-1] if text.lower().endswith("s") else text)
    except ValueError:
        raise ApiError(400, f"{name}={text!r}: expected a duration in seconds, e.g. 2 or 2s") from None
    if not math.isfinite(value) or value <= 0:
        raise ApiError(400, f"{name}={text!r}: must be a positive duration in seconds")
    return value


def _merged(request: Request, upload: Upload | None) -> dict[str, str]:
    """Options from the query string, overridden by form fields of the same name."""
    options = dict(request.query_params)
    if upload is not None:
        options.update(upload.fields)
    return options


def _duration(times: np.ndarray, fps: float) -> float:
    """A video's length in seconds: its last frame's time plus one frame interval (as timeline windows count)."""
    if len(times) > 1:
        return float(times[-1] - times[0] + (times[-1] - times[-2]))
    return 1.0 / fps if fps > 0 else 0.0


def _ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for JSON."""
    return round(seconds * 1000, 2)


# --------------------------------------------------------------------------------------------- the service

class _Service:
    """What the endpoints share: the classifier, the batcher, the decode pool, the temp folder, the metrics."""

    def __init__(self, clf: VideoClassifier, cfg: ServeConfig) -> None:
        self.clf = clf
        self.cfg = cfg
        model_forward = compile_for_inference(clf.model) if cfg.compile else clf.model
        forwards = {"logits": model_forward, "pooled": feature_forward(clf.model, "pooled", compile=cfg.compile)}
        self.batcher = DynamicBatcher(forwards, device=clf.device, dtype=clf.dtype,
                                      max_batch_views=cfg.max_batch_views, max_wait_ms=cfg.max_wait_ms,
                                      on_batch=self._on_batch)
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
        """Nothing without a key configured; else 401 without a bearer token, 403 with a wrong one."""
        key = self.cfg.api_key
        if not key:
            return
        if credentials is None:
            raise ApiError(401, "an API key is required: send the header 'Authorization: Bearer KEY'",
                           {"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.credentials.encode(), key.encode()):
            raise ApiError(403, "wrong API key", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of ``max_concurrent`` places for a model request; none free: 503 (retry)."""
        if self.active >= self.cfg.max_concurrent:
            raise ApiError(503, f"busy: {self.active} requests in progress; retry in a moment",
                           {"Retry-After": "1"})
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

    # --------------------------------------------------------------------------------------------- work

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a decode thread."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    async def results(self, futures: Sequence[Future]) -> list[torch.Tensor]:
        """The outputs of the batcher's futures, awaited in order."""
        return [await asyncio.wrap_future(f) for f in futures]

    async def run_one(self, views: torch.Tensor, kind: str) -> tuple[torch.Tensor, list[Future]]:
        """One request's views through the batcher: the output, and the future (for the timing); cancelled when the
        request ends first (an error, a client gone)."""
        futures = [self.batcher.submit(views, kind)]
        try:
            (out,) = await self.results(futures)
        finally:
            futures[0].cancel()
        return out, futures

    def protocol(self, options: Mapping[str, str]) -> Protocol:
        """The model's protocol with the request's ``views`` (CLIPSxCROPS)."""
        text = _first(options, "views")
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
        text = _first(options, "labels")
        if text is None:
            return None, list(self.clf.class_names)
        if text in SHIPPED_LABEL_MAPS:  # never a path: a client names no file on the server
            from importlib import resources
            lines = resources.files("uniformerv2").joinpath(f"labels/label_map_{text}.txt").read_text("utf-8")
            wanted = [n.strip() for n in lines.splitlines() if n.strip()]
        else:
            wanted = [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]
        if not wanted:
            raise ApiError(400, "labels: no class names given")
        known = self.clf.class_names
        try:
            rows = match_class_names(wanted, known, source="labels",
                                     aliases=kinetics710_aliases() if len(known) == 710 else None)
        except UniFormerV2Error as e:
            raise ApiError(400, str(e)) from None
        return rows, wanted

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

    def open_upload(self, upload: Upload) -> Any:
        """The upload opened for reading, its length checked against ``max_duration_s``."""
        try:
            reader = open_video(upload.path, self.clf.backend)
        except Exception as e:  # noqa: BLE001 - see _decode_error
            raise self._decode_error(upload, e) from None
        duration = _duration(reader.times, reader.fps)
        if duration > self.cfg.max_duration_s:
            reader.close()
            raise ApiError(413, f"{upload.filename}: video too long ({duration:.1f} s); the limit is "
                                f"{self.cfg.max_duration_s:g} s")
        reader.duration = duration
        return reader

    def decode(self, upload: Upload, protocol: Protocol) -> tuple[torch.Tensor, float, float]:
        """Test views of an upload (what ``read_test_views`` makes), its duration, and the seconds it took."""
        start = time.perf_counter()
        reader = self.open_upload(upload)
        try:
            inds = sample_test_indices(reader.num_frames, protocol)
            unique, inverse = np.unique(inds, return_inverse=True)
            frames = reader.read(unique)
        except Exception as e:  # noqa: BLE001 - see _decode_error
            raise self._decode_error(upload, e) from None
        finally:
            reader.close()
        views = views_from_frames(frames, protocol, inverse=inverse.reshape(-1))
        seconds = time.perf_counter() - start
        self.metrics.decode_seconds.observe(seconds)
        return views, reader.duration, seconds

    def window_views(self, upload: Upload, reader: Any, chunk: np.ndarray, protocol: Protocol) -> list[torch.Tensor]:
        """Views of consecutive timeline windows (frame indices ``chunk`` [W, frames]), as ``timeline.scan``
        makes them."""
        try:
            unique, inverse = np.unique(chunk, return_inverse=True)
            frames = reader.read(unique)
        except Exception as e:  # noqa: BLE001 - see _decode_error
            raise self._decode_error(upload, e) from None
        inverse = inverse.reshape(chunk.shape)
        return [views_from_frames(frames, protocol, inverse=inverse[w]) for w in range(len(chunk))]

    async def views_of(self, request: Request, upload: Upload, protocol: Protocol) -> tuple[torch.Tensor, float,
                                                                                              float]:
        """Decode an upload's test views on the pool, telling the batcher that they are on their way."""
        if await request.is_disconnected():  # gone while uploading the last bytes: do not decode for nobody
            raise ClientGone()
        with self.batcher.incoming():
            return await self.in_pool(self.decode, upload, protocol)


def _scores(logits: torch.Tensor, rows: list[int] | None) -> torch.Tensor:
    """Softmax per view, mean over views (``VideoClassifier.scores_of_views``), over the chosen head rows."""
    if rows is not None:
        logits = logits[:, rows]
    return logits.float().softmax(-1).mean(0)


def _top(scores: torch.Tensor, names: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The k best classes as [{label, score}], best first."""
    values, indices = scores.topk(min(k, scores.numel()))
    return [{"label": names[i], "score": float(v)} for v, i in zip(values.tolist(), indices.tolist())]


def _timing(upload: Upload, decode_s: float, futures: Sequence[Future], start: float) -> dict[str, float]:
    """Milliseconds spent receiving, decoding, waiting for the model (the longest wait of the request's jobs) and
    in the model (first batch start to last batch end, other requests' views included), and in all."""
    jobs = [f.job for f in futures]  # type: ignore[attr-defined]
    started = [j.started for j in jobs if j.started is not None]
    finished = [j.finished for j in jobs if j.finished is not None]
    return {"upload": _ms(upload.seconds), "decode": _ms(decode_s),
            "queue": _ms(max((j.queue_s for j in jobs), default=0.0)),
            "model": _ms(max(finished) - min(started) if started and finished else 0.0),
            "total": _ms(time.perf_counter() - start)}


# -------------------------------------------------------------------------------------------------- the app

_VIDEO_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["video"],
    "properties": {"video": {"type": "string", "format": "binary",
                             "description": "the video file (any format FFmpeg reads)"}}}}}}}
_OPTIONS_NOTE = " Options may be given in the query string or as form fields of the same name."


def create_app(clf: VideoClassifier, config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app serving ``clf``: the JSON API under ``/v1``, ``/healthz``, ``/metrics`` and the web page
    at ``/``. Run it with uvicorn (its lifespan starts the model thread and the decode pool)."""
    cfg = config or ServeConfig()
    service = _Service(clf, cfg)
    live = LiveHub(clf, service.batcher, service.metrics.registry, api_key=cfg.api_key,
                   max_connections=cfg.max_live_connections)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Start the service before the first request and stop it after the last."""
        await asyncio.get_running_loop().run_in_executor(None, service.start)  # the warm-up forward blocks
        try:
            yield
        finally:
            live.stop()
            service.stop()

    app = FastAPI(title="UniFormerV2", version=__version__, lifespan=lifespan,
                  description="Video action recognition with UniFormerV2. Send a video as multipart/form-data in "
                              "the field `video`. With an API key, every endpoint but `/healthz` (and the web "
                              "page's own files) needs `Authorization: Bearer KEY`; the camera's WebSocket "
                              "`/v1/live` takes it as `?token=KEY` or a `bearer.<base64url key>` subprotocol.")
    app.state.service = service
    app.state.live = live
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, endpoints=ENDPOINTS)

    # ---------------------------------------------------------------------------------------- errors

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        """ApiError -> its status and {"error": message}."""
        return JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        """Starlette's 404/405/... -> {"error": ...} like every other error."""
        message = {404: f"not found: {request.url.path}",
                   405: f"method {request.method} not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
        return JSONResponse({"error": message}, status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        """A parameter FastAPI could not parse -> 400 {"error": ...}."""
        parts = [f"{'.'.join(str(x) for x in err.get('loc', ()))}: {err.get('msg')}" for err in e.errors()]
        return JSONResponse({"error": "; ".join(parts) or "invalid request"}, status_code=400)

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, e: ClientGone) -> Response:
        """A client gone mid-upload: nothing to say, to nobody."""
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception) -> JSONResponse:
        """A bug: logged with its traceback, answered 500 without details."""
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=e)
        return JSONResponse({"error": f"internal error ({type(e).__name__}); see the server log"}, status_code=500)

    # ----------------------------------------------------------------------------------------- public

    @app.get("/healthz", summary="Liveness: 200 while the server runs (no key needed)")
    async def healthz() -> dict[str, str]:
        """Liveness, for load balancers and orchestrators."""
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        """The web page."""
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_SECURITY_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ------------------------------------------------------------------------------------ with the key

    bearer = HTTPBearer(auto_error=False, description="the server's API key (`--api-key`), when it has one")

    def require_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        """The API key check of every endpoint but /healthz and the page's own files."""
        service.check_key(credentials)

    api = APIRouter(dependencies=[Depends(require_key)])

    @api.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @api.get("/v1/model", summary="The model: name, classes, test protocol, limits")
    async def model_info() -> dict[str, Any]:
        """What the model is and what the server accepts."""
        p = clf.protocol
        return {"name": cfg.model_name, "num_classes": len(clf.class_names), "classes": list(clf.class_names),
                "protocol": {**p.to_dict(), "views": p.views, "description": p.describe()},
                "dtype": str(clf.dtype or torch.float32).replace("torch.", ""), "device": str(clf.device),
                "version": __version__,
                "limits": {"max_upload_mb": cfg.max_upload_mb, "max_duration_s": cfg.max_duration_s,
                           "max_request_views": cfg.max_request_views,
                           "max_timeline_windows": cfg.max_timeline_windows},
                "batching": {"max_batch_views": cfg.max_batch_views, "max_wait_ms": cfg.max_wait_ms}}

    @api.post("/v1/predict", openapi_extra=_VIDEO_BODY, summary="Classify a video",
              description="Top-k classes of the uploaded video with the model's test protocol (softmax per view, "
                          "mean over views): the scores `uniformerv2 predict` gives for the same file." + _OPTIONS_NOTE)
    async def predict(request: Request,
                      top_k: str | None = Query(None, description="classes returned (default 5)"),
                      views: str | None = Query(None, description="CLIPSxCROPS, e.g. 4x3 (default: the model's)"),
                      labels: str | None = Query(None, description="score only these classes: a shipped label map "
                                                 "(k400, k600, k700, k710, mitv1) or names separated by commas")
                      ) -> dict[str, Any]:
        """Top-k classes of an uploaded video."""
        start = time.perf_counter()
        async with service.slot():
            _predict_options(service, _merged(request, None))  # refuse bad options before the upload
            async with service.upload(request) as upload:
                options = _merged(request, upload)
                k, protocol, (rows, names) = _predict_options(service, options)
                views_t, duration, decode_s = await service.views_of(request, upload, protocol)
                logits, futures = await service.run_one(views_t, "logits")
                return {"video": upload.filename, "model": cfg.model_name, "protocol": protocol.describe(),
                        "views": protocol.views, "duration_s": round(duration, 3),
                        "predictions": _top(_scores(logits, rows), names, k),
                        "timing_ms": _timing(upload, decode_s, futures, start)}

    @api.post("/v1/features", openapi_extra=_VIDEO_BODY, summary="Pooled feature vector of a video",
              description="The feature the classification head sees, averaged over the test views "
                          "(`VideoClassifier.features(video)`)." + _OPTIONS_NOTE)
    async def features(request: Request,
                       views: str | None = Query(None, description="CLIPSxCROPS, e.g. 4x3 (default: the model's)")
                       ) -> dict[str, Any]:
        """The pooled feature vector of an uploaded video."""
        start = time.perf_counter()
        async with service.slot():
            service.protocol(_merged(request, None))
            async with service.upload(request) as upload:
                protocol = service.protocol(_merged(request, upload))
                views_t, duration, decode_s = await service.views_of(request, upload, protocol)
                feats, futures = await service.run_one(views_t, "pooled")
                vector = feats.mean(0)
                return {"video": upload.filename, "model": cfg.model_name, "kind": "pooled",
                        "protocol": protocol.describe(), "views": protocol.views, "duration_s": round(duration, 3),
                        "dim": int(vector.numel()), "feature": vector.tolist(),
                        "timing_ms": _timing(upload, decode_s, futures, start)}

    @api.post("/v1/timeline", openapi_extra=_VIDEO_BODY, summary="Scores over time (sliding windows)",
              description="One clip per window, the protocol's frames, `crops` crops: the JSON that "
                          "`uniformerv2 timeline` writes (plus `model` and `timing_ms`)." + _OPTIONS_NOTE)
    async def timeline(request: Request,
                       window: str | None = Query(None, description="window length in seconds (default 2)"),
                       stride: str | None = Query(None, description="step between windows in seconds (default 1)"),
                       crops: str | None = Query(None, description="crops per window: 1 (default) or 3"),
                       top_k: str | None = Query(None, description="classes listed per window (default 5)"),
                       labels: str | None = Query(None, description="as for /v1/predict")) -> dict[str, Any]:
        """Scores over sliding windows of an uploaded video."""
        start = time.perf_counter()
        async with service.slot():
            _timeline_options(service, _merged(request, None))
            async with service.upload(request) as upload:
                window_s, stride_s, protocol, k, (rows, names) = _timeline_options(service, _merged(request, upload))
                if await request.is_disconnected():
                    raise ClientGone()
                return await _scan(service, upload, window_s, stride_s, protocol, k, rows, names, start)

    app.include_router(api)

    @app.websocket("/v1/live")
    async def live_camera(websocket: WebSocket) -> None:
        """The Camera tab: JPEG frames in, running top classes out (see :mod:`uniformerv2.serving.live_ws`);
        the API key as for every other endpoint, from ``?token=`` or a ``bearer.`` subprotocol."""
        await live.handle(websocket)

    return app


def _predict_options(service: _Service, options: Mapping[str, str]) -> tuple[int, Protocol,
                                                                              tuple[list[int] | None, list[str]]]:
    """top_k, protocol and class rows of a /v1/predict request (400 on a bad one)."""
    return (_int_option(options, "top_k", 5, 1, 10_000), service.protocol(options), service.labels(options))


def _timeline_options(service: _Service, options: Mapping[str, str]) -> tuple[float, float, Protocol, int,
                                                                               tuple[list[int] | None, list[str]]]:
    """window, stride, protocol, top_k and class rows of a /v1/timeline request (400 on a bad one)."""
    window_s = _seconds_option(options, "window", 2.0)
    stride_s = _seconds_option(options, "stride", 1.0)
    crops = _int_option(options, "crops", 1, 1, 3)
    if crops not in (1, 3):
        raise ApiError(400, f"crops={crops}: must be 1 (centre) or 3")
    protocol = service.clf.protocol.replace(clips=1, crops=crops)
    return window_s, stride_s, protocol, _int_option(options, "top_k", 5, 1, 10_000), service.labels(options)


async def _scan(service: _Service, upload: Upload, window_s: float, stride_s: float, protocol: Protocol, k: int,
                rows: list[int] | None, names: list[str], start: float) -> dict[str, Any]:
    """``timeline.scan`` with the windows' views batched with everyone else's, decoded a few windows ahead."""
    cfg = service.cfg
    futures: list[Future] = []
    decode_s = 0.0
    with service.batcher.incoming():
        t0 = time.perf_counter()
        reader = await service.in_pool(service.open_upload, upload)
        decode_s += time.perf_counter() - t0
    try:
        starts, ends, indices = window_indices(reader.times, window_s, stride_s, protocol.frames)
        if len(starts) > cfg.max_timeline_windows:
            raise ApiError(400, f"{len(starts)} windows ({reader.duration:.1f} s at a stride of {stride_s:g} s); the "
                                f"limit is {cfg.max_timeline_windows}: use a longer stride")
        done = 0
        for lo in range(0, len(starts), WINDOWS_PER_READ):
            with service.batcher.incoming():
                t0 = time.perf_counter()
                views = await service.in_pool(service.window_views, upload, reader,
                                              indices[lo:lo + WINDOWS_PER_READ], protocol)
                decode_s += time.perf_counter() - t0
            futures.extend(service.batcher.submit(v, "logits") for v in views)
            del views
            while len(futures) - done > WINDOWS_AHEAD:
                await asyncio.wrap_future(futures[done])
                done += 1
        logits = await service.results(futures)
    finally:
        for f in futures:  # an error or a client gone: the windows not yet scored are not worth scoring
            f.cancel()
        await service.in_pool(reader.close)
    service.metrics.decode_seconds.observe(decode_s)
    scores = torch.stack([_scores(x, rows) for x in logits]).numpy()
    tl = Timeline(video=upload.filename, fps=reader.fps, starts=starts, ends=ends, scores=scores, class_names=names)
    assert service.tmpdir is not None
    with tempfile.TemporaryDirectory(dir=service.tmpdir) as tmp:  # one layout, one writer: timeline's own
        path = Path(tmp) / "timeline.json"
        write_timeline(tl, None, path, top_k=k)
        out = json.loads(path.read_text())
    out["model"] = cfg.model_name
    out["timing_ms"] = _timing(upload, decode_s, futures, start)
    return out
