"""Live recognition over a WebSocket (``/v1/live``): the web page's Camera tab sends small JPEG frames, the server
keeps the newest ones of each connection in a ring buffer and sends back the running top classes.

One connection, one :class:`LiveSession`: a bounded :class:`~uniformerv2.live.FrameBuffer` (at most
``MAX_FPS`` frames a second of ``window`` seconds; faster frames are thinned out before they are decoded) and a
:class:`~uniformerv2.live.LiveRecognizer`. Every ``every`` seconds the session scores its newest window on a worker
thread; a tick that comes while the previous decision is still running is skipped, never queued, so a slow model
costs decisions, not lag. The network runs where every other request's does: the app's
:class:`~uniformerv2.serving.batcher.DynamicBatcher` (one model thread), so live views share forward passes with
uploads and with other cameras, and two forwards never run on the model at once. A closed connection's state is
dropped at once (``uniformerv2_live_connections`` in ``/metrics``).

The protocol, for other clients than the page:

* connect to ``ws://HOST/v1/live?every=0.5&window=2&top_k=5`` (all optional; durations in seconds, ``2`` or
  ``2s``: the frames' rate is the client's, so frames, ``16f``, are refused). With an API key, send it as the
  ``token`` query parameter, or (what the page does, so that the key stays out of access logs) offer the
  subprotocol ``bearer.<the key in base64url, unpadded>`` together with ``uniformerv2``, which the server selects;
  browsers cannot set ``Authorization`` on a WebSocket. A refused connection gets the HTTP answer the other
  endpoints give (401/403 with ``{"error": ...}``; 400 for a bad option; 503 when ``max_live_connections`` are open).
* send frames as binary messages: an 8-byte big-endian float64 timestamp in seconds (any clock that only moves
  forward; the page sends ``performance.now() / 1000``) followed by a JPEG (PNG and WebP are read too); a bare
  JPEG is stamped with its arrival time. Frames whose timestamp does not move forward are dropped.
* receive JSON text messages: ``{"type": "ready", ...}`` once (the model's input size and frame count, the options
  in force), then ``{"type": "decision", "top": [{"label", "score"}], "stream_time", "lag", "window", ...}``
  whenever a tick saw new frames, and ``{"type": "error", "error": ...}`` for a frame that was refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import logging
import math
import struct
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..data.transforms import resize_short_side
from ..live import FrameBuffer, LiveRecognizer, decode_image
from .batcher import BatchedClassifier, DynamicBatcher
from .errors import INVALID_TOKEN, ApiError, check_key
from .options import duration_option, int_option

__all__ = ["LiveHub", "LiveOptions", "LiveSession", "SUBPROTOCOL", "BEARER_PREFIX"]

log = logging.getLogger("uniformerv2.serve")

SUBPROTOCOL = "uniformerv2"  # offered by the page and selected by the server
BEARER_PREFIX = "bearer."  # a subprotocol carrying the API key (base64url): browsers cannot send Authorization
MAX_FPS = 30.0  # frames kept per second of stream time; faster ones are dropped before decoding
MAX_FRAME_BYTES = 2 * 1024 * 1024  # one binary message
MAX_FRAME_PIXELS = 4096 * 4096  # one decoded frame (checked from the header, before decoding)
IDLE_S = 60.0  # a connection that sends nothing for this long is closed
_LAG_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)
_TIMESTAMP = struct.Struct(">d")


# ------------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class LiveOptions:
    """What a connection asks for: a decision every ``every`` seconds on the newest ``window`` seconds."""

    every: float = 0.5
    window: float = 2.0
    top_k: int = 5

    @classmethod
    def parse(cls, query: Mapping[str, str], num_classes: int) -> LiveOptions:
        """The options of a connection's query string; :class:`~uniformerv2.serving.errors.ApiError` (400) on a
        bad one."""
        every = duration_option(query, "every", cls.every, frames=False, minimum=0.05, maximum=10.0)
        window = duration_option(query, "window", cls.window, frames=False, minimum=0.1, maximum=10.0)
        top_k = int_option(query, "top_k", cls.top_k, 1, 100)
        return cls(every=every.value, window=window.value, top_k=min(top_k, num_classes))


class _LiveMetrics:
    """The live endpoint's metrics, in the app's registry (shown in ``/metrics``)."""

    def __init__(self, registry: CollectorRegistry, connections: Any) -> None:
        self.connections = Gauge(
            "uniformerv2_live_connections",
            "camera connections open (/v1/live), each with its own frame buffer",
            registry=registry,
        )
        self.connections.set_function(connections)
        self.frames = Counter(
            "uniformerv2_live_frames",
            "frames received on /v1/live, by what became of them "
            "(kept, thinned: over the frame rate kept, late: timestamp not moving forward, bad)",
            ["outcome"],
            registry=registry,
        )
        self.decisions = Counter("uniformerv2_live_decisions", "decisions sent on /v1/live", registry=registry)
        self.skipped = Counter(
            "uniformerv2_live_skipped_ticks",
            "decision ticks skipped on /v1/live because the previous decision was still running",
            registry=registry,
        )
        self.lag = Histogram(
            "uniformerv2_live_lag_seconds",
            "from a window's newest frame's arrival to its decision",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )


# ----------------------------------------------------------------------------------------------- a session


class LiveSession:
    """One connection's state: its frame buffer, its recogniser and its counters."""

    def __init__(self, number: int, clf: BatchedClassifier, options: LiveOptions) -> None:
        self.number = number
        self.options = options
        self.size = clf.protocol.size
        self.buffer = FrameBuffer(int(math.ceil(options.window * MAX_FPS)) + 8)
        self.recognizer = LiveRecognizer(clf, window=options.window, top_k=options.top_k)
        self.opened = time.monotonic()
        self.last_time: float | None = None  # stream time of the newest kept frame
        self.received = self.kept = self.decisions = self.skipped = 0
        self.sender: _Sender | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def add_frame(self, data: bytes) -> tuple[str, str | None]:
        """Take one binary message: (outcome, error message or None); a kept frame goes into the buffer."""
        self.received += 1
        n = self.received
        if len(data) > MAX_FRAME_BYTES:
            return "bad", f"frame {n}: {len(data)} bytes; the limit is {MAX_FRAME_BYTES} (send small frames)"
        if data[:3] == b"\xff\xd8\xff":  # a bare JPEG: stamped on arrival
            stamp, image = time.monotonic() - self.opened, data
        elif len(data) > _TIMESTAMP.size:
            (stamp,), image = _TIMESTAMP.unpack_from(data), data[_TIMESTAMP.size :]
            if not math.isfinite(stamp):
                return "bad", f"frame {n}: the timestamp is not a finite number"
        else:
            return "bad", f"frame {n}: expected an 8-byte timestamp and a JPEG image, got {len(data)} bytes"
        if self.last_time is not None:
            if stamp <= self.last_time:
                return "late", None
            if stamp - self.last_time < 1.0 / MAX_FPS - 1e-6:
                return "thinned", None
        try:
            rgb = decode_image(image, self.size, max_pixels=MAX_FRAME_PIXELS)
        except ValueError as e:
            return "bad", f"frame {n}: {e}"
        self.buffer.push(stamp, resize_short_side(rgb, self.size))
        self.last_time = stamp
        self.kept += 1
        return "kept", None


# -------------------------------------------------------------------------------------------------- the hub


class LiveHub:
    """Every open ``/v1/live`` connection, the worker threads that make their decisions, and the access rule."""

    def __init__(
        self,
        clf: Any,
        batcher: DynamicBatcher,
        registry: CollectorRegistry,
        *,
        api_key: str | None = None,
        max_connections: int = 8,
        idle_s: float = IDLE_S,
    ) -> None:
        self.clf = BatchedClassifier(clf, batcher)  # shared by every connection
        self.num_classes = len(clf.class_names)
        self.api_key = api_key
        self.max_connections = max(1, max_connections)
        self.idle_s = idle_s
        self.sessions: dict[int, LiveSession] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.metrics = _LiveMetrics(registry, lambda: len(self.sessions))

    def __len__(self) -> int:
        return len(self.sessions)

    # ------------------------------------------------------------------------------------------- lifecycle

    @property
    def pool(self) -> ThreadPoolExecutor:
        """The decision threads (one per connection at most: a connection never has two decisions running)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_connections, thread_name_prefix="uniformerv2-live")
            return self._pool

    def close_all(self, code: int = 1001, reason: str = "the server is going away") -> None:
        """Close every open connection (from any thread); each one's state is dropped as its handler ends."""
        for session in list(self.sessions.values()):
            sender, loop = session.sender, session.loop
            if sender is not None and loop is not None and not loop.is_closed():
                asyncio.run_coroutine_threadsafe(sender.close(code, reason), loop)

    def stop(self) -> None:
        """Close the connections and stop the decision threads (the app's shutdown)."""
        self.close_all()
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    # ------------------------------------------------------------------------------------------- access

    def check_key(self, websocket: WebSocket) -> None:
        """The API key from the ``token`` query parameter or a ``bearer.<base64url>`` subprotocol
        (:func:`~uniformerv2.serving.errors.check_key`)."""
        if not self.api_key:
            return
        token = websocket.query_params.get("token")
        if token is None:
            for offered in websocket.scope.get("subprotocols") or ():
                if offered.startswith(BEARER_PREFIX):
                    token = _unbase64url(offered[len(BEARER_PREFIX) :])
                    if token is None:
                        raise ApiError(403, "wrong API key (the bearer. subprotocol is not base64url)", INVALID_TOKEN)
                    break
        check_key(
            self.api_key,
            token,
            how="add ?token=KEY to the URL, or offer the subprotocol 'bearer.' + the key in base64url",
        )

    # ------------------------------------------------------------------------------------------ a connection

    async def handle(self, websocket: WebSocket) -> None:
        """One connection, from the handshake to its close; its state is dropped whatever happens."""
        try:
            self.check_key(websocket)
            options = LiveOptions.parse(websocket.query_params, self.num_classes)
            if len(self.sessions) >= self.max_connections:
                raise ApiError(
                    503, f"busy: {len(self.sessions)} camera connections open; retry in a moment", {"Retry-After": "5"}
                )
        except ApiError as e:
            await _refuse(websocket, e)
            return
        session = LiveSession(next(self._numbers), self.clf, options)
        sender = _Sender(websocket)
        session.sender, session.loop = sender, asyncio.get_running_loop()
        self.sessions[session.number] = session  # before the first await: the limit above holds
        ticker: asyncio.Task | None = None
        try:
            offered = websocket.scope.get("subprotocols") or ()
            await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
            ticker = asyncio.create_task(self._decide_every(session, sender))
            p = self.clf.protocol
            await sender.send(
                {
                    "type": "ready",
                    "size": p.size,
                    "frames": p.frames,
                    "every": options.every,
                    "window": options.window,
                    "top_k": options.top_k,
                    "max_fps": MAX_FPS,
                    "max_frame_bytes": MAX_FRAME_BYTES,
                }
            )
            await self._receive(session, websocket, sender, ticker)
        except (WebSocketDisconnect, ConnectionError):
            pass
        except RuntimeError as e:  # sending on a connection the client closed meanwhile
            if (
                websocket.application_state != WebSocketState.DISCONNECTED
                and websocket.client_state != WebSocketState.DISCONNECTED
            ):
                raise
            log.debug("live connection %d: %s", session.number, e)
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ticker
            self.sessions.pop(session.number, None)
            session.sender = session.loop = None

    async def _receive(self, session: LiveSession, websocket: WebSocket, sender: _Sender, ticker: asyncio.Task) -> None:
        """Frames into the session's buffer until the client leaves, goes quiet, or the ticker fails."""
        while not ticker.done():
            try:
                message = await asyncio.wait_for(websocket.receive(), self.idle_s)
            except asyncio.TimeoutError:
                await sender.close(1000, f"no frame for {self.idle_s:g} s")
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is not None:
                outcome, error = session.add_frame(data)
                self.metrics.frames.labels(outcome).inc()
                if error:
                    await sender.send({"type": "error", "error": error})
            elif message.get("text") is not None:
                await sender.send(
                    {"type": "error", "error": "send frames as binary messages (an 8-byte timestamp and a JPEG image)"}
                )

    async def _decide_every(self, session: LiveSession, sender: _Sender) -> None:
        """Every ``every`` seconds a decision on a worker thread; ticks that pass while it runs are skipped."""
        loop = asyncio.get_running_loop()
        every = session.options.every
        next_tick = time.monotonic() + every
        while True:
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            try:
                decision = await loop.run_in_executor(self.pool, session.recognizer.decide, session.buffer)
            except Exception as e:
                log.error("live connection %d: a decision failed", session.number, exc_info=e)
                with contextlib.suppress(Exception):
                    await sender.send({"type": "error", "error": f"the model failed ({type(e).__name__})"})
                    await sender.close(1011, "the model failed; see the server log")
                return
            late = time.monotonic() - next_tick
            skipped = int(late // every) if late >= every else 0
            next_tick = max(next_tick + every, time.monotonic())
            if skipped:
                session.skipped += skipped
                self.metrics.skipped.inc(skipped)
            if decision is None:  # no frame since the last decision
                continue
            session.decisions += 1
            self.metrics.decisions.inc()
            self.metrics.lag.observe(decision.lag)
            await sender.send(
                {"type": "decision", **decision.to_dict(), "frames_kept": session.kept, "skipped": session.skipped}
            )


class _Sender:
    """Sends JSON on one connection from its two tasks (frames and decisions), one message at a time."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.lock = asyncio.Lock()

    async def send(self, message: dict) -> None:
        async with self.lock:
            await self.websocket.send_json(message)

    async def close(self, code: int, reason: str) -> None:
        async with self.lock:
            await _close(self.websocket, code, reason)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close an accepted connection unless it is closed already."""
    if websocket.application_state == WebSocketState.CONNECTED and websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code, reason[:120])


async def _refuse(websocket: WebSocket, e: ApiError) -> None:
    """Refuse a handshake with an HTTP answer like the other endpoints' (``{"error": ...}``) where the server
    can send one, else with a close (which servers answer 403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)
        )
    else:
        await websocket.close(1008 if e.status in (401, 403, 400) else 1013, e.message[:120])


def _unbase64url(text: str) -> str | None:
    """A base64url (unpadded) string's UTF-8 text; None when it is not one."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
