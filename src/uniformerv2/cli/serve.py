"""``uniformerv2 serve``: an HTTP service and a web page that classify uploaded videos, with dynamic batching."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ._common import (
    EXIT_OK,
    add_labels_argument,
    add_model_arguments,
    add_set_argument,
    add_size_argument,
    add_speed_arguments,
    add_workers_argument,
    alias,
    build_classifier,
    command,
    device,
    model_source,
    non_negative_float,
    positive_float,
    positive_int,
    seconds,
    views,
    warn,
)

EXAMPLES = [
    "uniformerv2 serve --checkpoint work_dirs/run/model.safetensors   # then open http://127.0.0.1:8000/",
    "uniformerv2 serve uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb --host 0.0.0.0 "
    "--port 8080   # with UNIFORMERV2_API_KEY set",
    "uniformerv2 serve --checkpoint model.safetensors --max-batch-views 48 --max-upload-mb 50 --max-duration 120s",
]
DESCRIPTION = """Serve a model over HTTP: a JSON API with dynamic batching (the views of concurrent requests share
forward passes), Prometheus metrics, and a web page to drop a video on.

  curl -F video=@clip.mp4 'http://127.0.0.1:8000/v1/predict?top_k=3'
  API: POST /v1/predict, /v1/timeline, /v1/features; GET /v1/model, /healthz, /metrics; WebSocket /v1/live (the
  page's Camera tab); docs at /docs."""
API_KEY_ENV = "UNIFORMERV2_API_KEY"


def register(sub: Any) -> None:
    """Add the ``serve`` command and its options."""
    p = command(
        sub,
        "serve",
        help="serve a model over HTTP: a JSON API with dynamic batching, and a web page",
        description=DESCRIPTION,
        examples=EXAMPLES,
    )
    add_model_arguments(p, positional=True)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for every interface: "
        "then set an API key)",
    )
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument(
        "--views",
        type=views,
        metavar="CLIPSxCROPS",
        help="default views per video, e.g. 4x3 (default: the model's protocol; a request may ask for others)",
    )
    p.add_argument("--frames", type=positive_int, help="frames per clip (default: the model's protocol)")
    p.add_argument(
        "--max-batch-views",
        type=positive_int,
        default=24,
        help="most views in one forward pass, from one or several requests (default 24)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=non_negative_float,
        default=10.0,
        help="how long a forward pass that is not full waits for more views while other uploads are "
        "being decoded (default 10 ms)",
    )
    p.add_argument(
        "--max-upload-mb",
        type=positive_float,
        default=200.0,
        help="largest upload accepted, in MiB (default 200); larger ones get 413",
    )
    p.add_argument(
        "--max-duration",
        dest="max_duration_s",
        type=seconds,
        default=600.0,
        help="longest video accepted, in seconds: 600 or 600s (default 600); longer ones get 413",
    )
    alias(p, "--max-duration-s", dest="max_duration_s", type=seconds)
    p.add_argument(
        "--max-concurrent",
        type=positive_int,
        default=32,
        help="requests received, decoded or scored at once (default 32); more get 503 and Retry-After",
    )
    add_workers_argument(p, None, help="decoding threads (default: the number of CPUs, at most 4)")
    p.add_argument(
        "--api-key",
        default=None,
        help=f"require 'Authorization: Bearer KEY' on every endpoint but /healthz (default: "
        f"${API_KEY_ENV}, which keeps the key out of the process list; none: no key)",
    )
    add_labels_argument(p)
    add_size_argument(p)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    add_speed_arguments(p)
    p.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="server log level (default info: one line per request)",
    )
    add_set_argument(p)
    p.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (``M_ARENA_MAX``) unless ``$MALLOC_ARENA_MAX`` says otherwise.

    glibc gives threads that allocate at once arenas of their own (up to 8 per core), and the decode threads'
    frames fragment them: measured on 2 cores, 16 clients, the server's resident memory grew by 20-40 MiB every
    200 requests with the default, and stayed flat (941 -> 952 MiB over 1000 requests) with 2 arenas."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # -8: M_ARENA_MAX; later threads share these arenas
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to cap
        pass


def run(args: argparse.Namespace) -> int:
    """Load the model, build the app and serve it with uvicorn until interrupted."""
    try:
        import uvicorn

        from ..serving import ServeConfig, create_app
    except ImportError as e:
        raise UsageError(
            f"`uniformerv2 serve` needs the serve extra ({e.name} is missing): pip install 'uniformerv2[serve]'"
        ) from None
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be between 0 and 65535")
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    if not api_key and not _is_loopback(args.host):
        warn(
            "serve",
            f"listening on {args.host} without an API key: anyone who reaches this port can use the "
            f"model (set --api-key or ${API_KEY_ENV})",
        )
    model, checkpoint = model_source(args)
    name = model if model is not None else checkpoint
    assert name is not None  # model_source raises when neither is given
    # the server compiles its own forward passes; the classifier stays eager
    clf = build_classifier(argparse.Namespace(**{**vars(args), "compile": False}), args.views)
    workers = args.workers if args.workers else min(4, os.cpu_count() or 1)
    config = ServeConfig(
        model_name=Path(name).name if os.path.exists(name) else name,  # no server paths
        max_batch_views=args.max_batch_views,
        max_wait_ms=args.max_wait_ms,
        max_upload_mb=args.max_upload_mb,
        max_duration_s=args.max_duration_s,
        max_concurrent=args.max_concurrent,
        api_key=api_key,
        workers=workers,
        compile=args.compile,
    )
    _limit_malloc_arenas()
    app = create_app(clf, config)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"serving {config.model_name} ({clf.protocol.describe()}) on http://{shown}:{args.port}/ "
        f"(API docs: /docs{', API key required' if api_key else ''})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, server_header=False)
    return EXIT_OK
