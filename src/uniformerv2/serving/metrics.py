"""Prometheus metrics of the server (requests, errors, latency, batch sizes, queue depth), in a registry of its
own so several apps in one process (tests) never share counters, and the ASGI middleware that counts requests."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics", "MetricsMiddleware", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 150, 600)
_VIEW_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256)


class Metrics:
    """The server's metrics; ``render()`` is the Prometheus text exposition."""

    def __init__(self, queued_views: Callable[[], float]) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "uniformerv2_requests", "HTTP requests answered, by endpoint and status", ["endpoint", "status"], registry=r
        )
        self.errors = Counter(
            "uniformerv2_errors",
            "requests answered with an error status (4xx, 5xx), by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "uniformerv2_request_seconds",
            "time from a request's arrival to its answer",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "uniformerv2_requests_in_progress", "model requests being received, decoded or scored", registry=r
        )
        self.batch_views = Histogram(
            "uniformerv2_batch_views", "views per forward pass of the network", buckets=_VIEW_BUCKETS, registry=r
        )
        self.batch_jobs = Histogram(
            "uniformerv2_batch_jobs",
            "videos (or timeline windows) sharing a forward pass",
            buckets=_VIEW_BUCKETS,
            registry=r,
        )
        self.forward_seconds = Histogram(
            "uniformerv2_forward_seconds", "duration of a forward pass", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.decode_seconds = Histogram(
            "uniformerv2_decode_seconds", "decoding an upload into its test views", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.queue_views = Gauge(
            "uniformerv2_queue_views", "views waiting for a forward pass (queue depth)", registry=r
        )
        self.queue_views.set_function(queued_views)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP answer by endpoint (the known paths; anything else is ``other``)
    and status, and times it. An exception that escapes is counted as the 500 it becomes."""

    def __init__(self, app: Any, metrics: Metrics, endpoints: Iterable[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = set(endpoints)

    async def __call__(
        self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in self.endpoints else "/static" if path.startswith("/static/") else "other"
        status = 500
        start = time.perf_counter()

        async def send_status(message: dict) -> None:
            """Pass a message on, noting the response's status."""
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            m = self.metrics
            m.requests.labels(endpoint, str(status)).inc()
            if status >= 400:
                m.errors.labels(endpoint, str(status)).inc()
            m.latency.labels(endpoint).observe(time.perf_counter() - start)
