"""The HTTP service: :func:`create_app` makes a FastAPI app that classifies uploaded videos with a
:class:`~uniformerv2.inference.VideoClassifier`, and serves the web page.

Where the work happens: the network thread (uvicorn's event loop) receives uploads, streaming each to a private
temp file; a pool of decode threads turns files into test views (PyAV releases the GIL while it decodes); one model
thread (:class:`~uniformerv2.serving.batcher.DynamicBatcher`) runs the network over batches that mix the views of
concurrent requests. A slow decode therefore never stalls the model, and a burst of requests shares forward passes.
The routes are here; what they share (:class:`~uniformerv2.serving.service.Service`) and the scoring itself (the
library's :mod:`uniformerv2.inference` and :mod:`uniformerv2.timeline`) are not.

Every bad request is answered ``4xx`` with ``{"error": "..."}`` saying what is wrong; temp files are removed
whatever happens; a client that leaves mid-upload costs only what it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch
from fastapi import APIRouter, Depends, FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..duration import Duration
from ..inference import VideoClassifier, probabilities, top_classes
from ..protocol import Protocol
from .errors import ApiError
from .live_ws import LiveHub
from .metrics import CONTENT_TYPE, MetricsMiddleware
from .options import duration_option, int_option
from .service import ServeConfig, Service
from .uploads import ClientGone, Upload

__all__ = ["ServeConfig", "create_app", "STATIC_DIR"]

log = logging.getLogger("uniformerv2.serve")
STATIC_DIR = Path(__file__).parent / "static"

ENDPOINTS = (
    "/",
    "/healthz",
    "/metrics",
    "/v1/model",
    "/v1/predict",
    "/v1/timeline",
    "/v1/features",
    "/docs",
    "/openapi.json",
)
# The web page's own files hold no data and reach no model, so they load without the key (a browser cannot
# send a header when it opens a page); the page asks for the key and sends it with every API call.
PAGE_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _merged(request: Request, upload: Upload | None) -> dict[str, str]:
    """Options from the query string, overridden by form fields of the same name."""
    options = dict(request.query_params)
    if upload is not None:
        options.update(upload.fields)
    return options


def _ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for JSON."""
    return round(seconds * 1000, 2)


def _timing(upload: Upload, decode_s: float, futures: Sequence[Future], start: float) -> dict[str, float]:
    """Milliseconds spent receiving, decoding, waiting for the model (the longest wait of the request's jobs) and
    in the model (first batch start to last batch end, other requests' views included), and in all."""
    jobs = [f.job for f in futures]  # type: ignore[attr-defined]
    started = [j.started for j in jobs if j.started is not None]
    finished = [j.finished for j in jobs if j.finished is not None]
    return {
        "upload": _ms(upload.seconds),
        "decode": _ms(decode_s),
        "queue": _ms(max((j.queue_s for j in jobs), default=0.0)),
        "model": _ms(max(finished) - min(started) if started and finished else 0.0),
        "total": _ms(time.perf_counter() - start),
    }


# -------------------------------------------------------------------------------------------------- the app

_VIDEO_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["video"],
                    "properties": {
                        "video": {
                            "type": "string",
                            "format": "binary",
                            "description": "the video file (any format FFmpeg reads)",
                        }
                    },
                }
            }
        },
    }
}
_OPTIONS_NOTE = " Options may be given in the query string or as form fields of the same name."


def create_app(clf: VideoClassifier, config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app serving ``clf``: the JSON API under ``/v1``, ``/healthz``, ``/metrics`` and the web page
    at ``/``. Run it with uvicorn (its lifespan starts the model thread and the decode pool)."""
    cfg = config or ServeConfig()
    service = Service(clf, cfg)
    live = LiveHub(
        clf, service.batcher, service.metrics.registry, api_key=cfg.api_key, max_connections=cfg.max_live_connections
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Start the service before the first request and stop it after the last."""
        await asyncio.get_running_loop().run_in_executor(None, service.start)  # the warm-up forward blocks
        try:
            yield
        finally:
            live.stop()
            service.stop()

    app = FastAPI(
        title="UniFormerV2",
        version=__version__,
        lifespan=lifespan,
        description="Video action recognition with UniFormerV2. Send a video as multipart/form-data in "
        "the field `video`. With an API key, every endpoint but `/healthz` (and the web "
        "page's own files) needs `Authorization: Bearer KEY`; the camera's WebSocket "
        "`/v1/live` takes it as `?token=KEY` or a `bearer.<base64url key>` subprotocol.",
    )
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
        message = {
            404: f"not found: {request.url.path}",
            405: f"method {request.method} not allowed on {request.url.path}",
        }.get(e.status_code, str(e.detail))
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
        return {
            "name": cfg.model_name,
            "num_classes": len(clf.class_names),
            "classes": list(clf.class_names),
            "protocol": {**p.to_dict(), "views": p.views, "description": p.describe()},
            "dtype": str(clf.dtype or torch.float32).replace("torch.", ""),
            "device": str(clf.device),
            "version": __version__,
            "limits": {
                "max_upload_mb": cfg.max_upload_mb,
                "max_duration_s": cfg.max_duration_s,
                "max_request_views": cfg.max_request_views,
                "max_timeline_windows": cfg.max_timeline_windows,
            },
            "batching": {"max_batch_views": cfg.max_batch_views, "max_wait_ms": cfg.max_wait_ms},
        }

    @api.post(
        "/v1/predict",
        openapi_extra=_VIDEO_BODY,
        summary="Classify a video",
        description="Top-k classes of the uploaded video with the model's test protocol (softmax per view, "
        "mean over views): the scores `uniformerv2 predict` gives for the same file." + _OPTIONS_NOTE,
    )
    async def predict(
        request: Request,
        top_k: str | None = Query(None, description="classes returned (default 5)"),
        views: str | None = Query(None, description="CLIPSxCROPS, e.g. 4x3 (default: the model's)"),
        labels: str | None = Query(
            None,
            description="score only these classes: a shipped label map "
            "(k400, k600, k700, k710, mitv1) or names separated by commas",
        ),
    ) -> dict[str, Any]:
        """Top-k classes of an uploaded video."""
        start = time.perf_counter()
        async with service.slot():
            _predict_options(service, _merged(request, None))  # refuse bad options before the upload
            async with service.upload(request) as upload:
                options = _merged(request, upload)
                k, protocol, (rows, names) = _predict_options(service, options)
                views_t, duration, decode_s = await service.views_of(request, upload, protocol)
                model = service.classifier(protocol)
                scores = probabilities(await service.run_one(model, views_t, "logits"), rows)
                return {
                    "video": upload.filename,
                    "model": cfg.model_name,
                    "protocol": protocol.describe(),
                    "views": protocol.views,
                    "duration_s": round(duration, 3),
                    "predictions": [{"label": label, "score": score} for label, score in top_classes(scores, names, k)],
                    "timing_ms": _timing(upload, decode_s, model.futures or [], start),
                }

    @api.post(
        "/v1/features",
        openapi_extra=_VIDEO_BODY,
        summary="Pooled feature vector of a video",
        description="The feature the classification head sees, averaged over the test views "
        "(`VideoClassifier.features(video)`)." + _OPTIONS_NOTE,
    )
    async def features(
        request: Request, views: str | None = Query(None, description="CLIPSxCROPS, e.g. 4x3 (default: the model's)")
    ) -> dict[str, Any]:
        """The pooled feature vector of an uploaded video."""
        start = time.perf_counter()
        async with service.slot():
            service.protocol(_merged(request, None))
            async with service.upload(request) as upload:
                protocol = service.protocol(_merged(request, upload))
                views_t, duration, decode_s = await service.views_of(request, upload, protocol)
                model = service.classifier(protocol)
                vector = (await service.run_one(model, views_t, "pooled")).mean(0)  # the mean over the views
                return {
                    "video": upload.filename,
                    "model": cfg.model_name,
                    "kind": "pooled",
                    "protocol": protocol.describe(),
                    "views": protocol.views,
                    "duration_s": round(duration, 3),
                    "dim": int(vector.numel()),
                    "feature": vector.tolist(),
                    "timing_ms": _timing(upload, decode_s, model.futures or [], start),
                }

    @api.post(
        "/v1/timeline",
        openapi_extra=_VIDEO_BODY,
        summary="Scores over time (sliding windows)",
        description="One clip per window, the protocol's frames, `crops` crops: the JSON that "
        "`uniformerv2 timeline` writes (plus `model` and `timing_ms`)." + _OPTIONS_NOTE,
    )
    async def timeline(
        request: Request,
        window: str | None = Query(None, description="window length: seconds (2 or 2s) or frames (64f) (default 2s)"),
        stride: str | None = Query(None, description="step between windows: seconds (1s) or frames (32f) (default 1s)"),
        crops: str | None = Query(None, description="crops per window: 1 (default) or 3"),
        top_k: str | None = Query(None, description="classes listed per window (default 5)"),
        labels: str | None = Query(None, description="as for /v1/predict"),
    ) -> dict[str, Any]:
        """Scores over sliding windows of an uploaded video."""
        start = time.perf_counter()
        async with service.slot():
            _timeline_options(service, _merged(request, None))
            async with service.upload(request) as upload:
                # the query parameters above only document the options: they are read from the merged form
                window_d, stride_d, protocol, k, (rows, names) = _timeline_options(service, _merged(request, upload))
                if await request.is_disconnected():
                    raise ClientGone()
                model = service.classifier(protocol, rows, names)
                tl, decode_s = await service.timeline(upload, model, window_d, stride_d)
                return {
                    **tl.to_dict(k),
                    "model": cfg.model_name,
                    "timing_ms": _timing(upload, decode_s, model.futures or [], start),
                }

    app.include_router(api)

    @app.websocket("/v1/live")
    async def live_camera(websocket: WebSocket) -> None:
        """The Camera tab: JPEG frames in, running top classes out (see :mod:`uniformerv2.serving.live_ws`);
        the API key as for every other endpoint, from ``?token=`` or a ``bearer.`` subprotocol."""
        await live.handle(websocket)

    return app


def _predict_options(
    service: Service, options: Mapping[str, str]
) -> tuple[int, Protocol, tuple[list[int] | None, list[str]]]:
    """top_k, protocol and class rows of a /v1/predict request (400 on a bad one)."""
    return (int_option(options, "top_k", 5, 1, 10_000), service.protocol(options), service.labels(options))


def _timeline_options(
    service: Service, options: Mapping[str, str]
) -> tuple[Duration, Duration, Protocol, int, tuple[list[int] | None, list[str]]]:
    """window, stride, protocol, top_k and class rows of a /v1/timeline request (400 on a bad one)."""
    window = duration_option(options, "window", 2.0)
    stride = duration_option(options, "stride", 1.0)
    crops = int_option(options, "crops", 1, 1, 3)
    if crops not in (1, 3):
        raise ApiError(400, f"crops={crops}: must be 1 (centre) or 3")
    protocol = service.clf.protocol.replace(clips=1, crops=crops)
    return window, stride, protocol, int_option(options, "top_k", 5, 1, 10_000), service.labels(options)
