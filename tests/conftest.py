"""Shared helpers: tiny architectures (tests never build the big presets with real weights)."""
from __future__ import annotations

import hashlib
import http.server
import os
import re
import socket
import threading
from pathlib import Path

import pytest
import torch

from uniformerv2.model import UniFormerV2, UniFormerV2Config

FIXTURES = Path(__file__).parent / "fixtures"


def _find_shared() -> Path:
    """The project's shared data (videos, label maps): $UNIFORMERV2_SHARED, or a `shared/` beside the checkout."""
    if os.environ.get("UNIFORMERV2_SHARED"):
        return Path(os.environ["UNIFORMERV2_SHARED"])
    root = Path(__file__).resolve().parents[1]
    for candidate in (root.parent / "shared", Path("/work/shared")):
        if (candidate / "data").is_dir():
            return candidate
    return root.parent / "shared"


SHARED = _find_shared()


def tiny_config(**overrides) -> UniFormerV2Config:
    base = dict(width=32, layers=3, heads=2, n_dim=32, n_head=2, return_list=(1, 2), n_layers=2,
                mlp_dropout=(0.5, 0.5), input_resolution=32, patch_size=16, t_size=4, num_classes=5)
    base.update(overrides)
    return UniFormerV2Config(**base)


def randomised(model: UniFormerV2, seed: int = 0) -> UniFormerV2:
    """Give every parameter and BatchNorm statistic random values, so zero-initialised parts matter too."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(1.0 + 0.5 * torch.rand(b.shape, generator=gen))
            elif name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
    return model.eval()


def write_lamp_dataset(root: Path, *, classes: int, per_class: int, frames: int, height: int, width: int,
                       seed: int = 0) -> Path:
    """Real H.264 videos of the demo's lamp task, ``train.txt`` listing all of them and ``val.txt`` every third."""
    import numpy as np

    from uniformerv2.demo import make_lamp_video, write_video
    lines = []
    for label in range(classes):
        for k in range(per_class):
            rel = f"c{label}/{k}.mp4"
            write_video(root / rel, make_lamp_video(label, np.random.default_rng([seed, label, k]), frames=frames,
                                                    height=height, width=width))
            lines.append(f"{rel} {label}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(lines[::3]) + "\n")
    return root


@pytest.fixture
def tiny_model() -> UniFormerV2:
    return randomised(UniFormerV2(tiny_config(no_lmhra=False, double_lmhra=True)))


@pytest.fixture
def video() -> torch.Tensor:
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------ a real HTTP server on 127.0.0.1

def openmmlab_name(data: bytes, stem: str = "uniformerv2-test") -> str:
    """Name a file the OpenMMLab way, with the real sha256 prefix of ``data``."""
    return f"{stem}_20230313-{hashlib.sha256(data).hexdigest()[:8]}.pth"


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
