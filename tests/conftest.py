"""Fixtures: a tiny randomised model, a video batch, a real HTTP server on 127.0.0.1, a fresh download cache."""

from __future__ import annotations

import http.server
import re
import socket
import threading
from pathlib import Path

import pytest
import torch

from helpers import randomised, tiny_config
from uniformerv2.model import UniFormerV2


@pytest.fixture
def tiny_model() -> UniFormerV2:
    return randomised(UniFormerV2(tiny_config(no_lmhra=False, double_lmhra=True)))


@pytest.fixture
def video() -> torch.Tensor:
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


class Handler(http.server.BaseHTTPRequestHandler):
    """Serve files from ``server.root``; honour ``Range: bytes=N-`` unless told to ignore it or to misbehave."""

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append(dict(self.headers))
        if srv.mode == "fail":
            self.send_error(503, "told to fail")
            return
        path = srv.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and srv.mode != "ignore_range":
            start = int(match.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            body = data[start:]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.mode == "drop":
            srv.mode = "normal"  # drop once, then behave
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path):
    """A threaded HTTP server on an ephemeral port; ``server.url(name)`` gives a file's URL."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.root = tmp_path / "served"
    srv.root.mkdir()
    srv.requests = []
    srv.mode = "normal"
    srv.url = lambda name: f"http://127.0.0.1:{srv.server_address[1]}/{name}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point UNIFORMERV2_CACHE at a fresh tmp dir."""
    path = tmp_path / "cache"
    monkeypatch.setenv("UNIFORMERV2_CACHE", str(path))
    return path
