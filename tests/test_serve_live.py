"""The Camera tab of `uniformerv2 serve`: JPEG frames over the WebSocket `/v1/live` at real speed to a tiny model
trained here to tell dark from bright, the running class following the picture, each connection with its own
frames, a closed connection's state freed, the API key as for every endpoint; and the page in headless Chromium
with a fake camera (a .y4m file) showing the right class over the live picture. Skips, saying why, where
websockets, Chromium, Playwright or the ffmpeg command line is missing."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'uniformerv2[serve]'")
pytest.importorskip(
    "websockets", reason="uvicorn serves WebSockets with the websockets package: pip install websockets"
)
from PIL import Image
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from helpers import train_config, write_frames
from test_serve import request, serving
from uniformerv2 import VideoClassifier
from uniformerv2.engine.train import Trainer
from uniformerv2.serving import ServeConfig, create_app

FPS = 12  # what the page sends
KEY = "live-key/ü"  # not a subprotocol token as it is: the page sends it in base64url
CHROMIUM = os.environ.get("UNIFORMERV2_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _clip(bright: bool, frames: int, seed: int, height: int = 32, width: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = 190 if bright else 50
    return np.clip(base + rng.normal(0, 12, (frames, height, width, 3)), 0, 255).astype(np.uint8)


def _jpeg(frame: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(frame).save(out, "JPEG", quality=85)
    return out.getvalue()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained to tell dark clips ('dark') from bright ones ('bright'), as tests/test_live.py's."""
    root = tmp_path_factory.mktemp("serve_live")
    lines = []
    for k in range(8):
        for label, bright in ((0, False), (1, True)):
            write_frames(root / f"{k}_{label}.mp4", _clip(bright, 8, 100 * k + label), fps=10)
            lines.append(f"{k}_{label}.mp4 {label}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "labels.txt").write_text("dark\nbright\n")
    cfg = train_config(
        root,
        root / "work",
        num_classes=2,
        epochs=4,
        batch_size=8,
        lr=3e-3,
        randaug=False,
        frames=4,
        labels=str(root / "labels.txt"),
        check_videos=False,
    )
    return Trainer(cfg).fit().model_path


@pytest.fixture(scope="module")
def app(model_path: Path) -> Any:
    return create_app(VideoClassifier.from_pretrained(model_path, dtype="float32"), ServeConfig(model_name="lamp"))


@pytest.fixture(scope="module")
def host(app: Any) -> Iterator[str]:
    with serving(app) as h:
        yield h


def _live_connections(host: str, key: str | None = None) -> float:
    """``uniformerv2_live_connections`` from /metrics."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    status, text, _ = request(host, "GET", "/metrics", headers=headers)
    assert status == 200
    return float(
        next(line.split()[1] for line in text.splitlines() if line.startswith("uniformerv2_live_connections "))
    )


def _wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Camera(threading.Thread):
    """Sends ``phases`` [(bright?, seconds)] of JPEG frames at ``FPS`` in real time on ``ws``, each stamped with
    the time it is sent; remembers when each phase began."""

    def __init__(self, ws: Any, phases: list[tuple[bool, float]], seed: int = 0) -> None:
        super().__init__(daemon=True)
        self.ws, self.phases, self.seed = ws, phases, seed
        self.starts: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            frames = {
                bright: [_jpeg(f) for f in _clip(bright, 24, self.seed + bright, 48, 64)] for bright in (False, True)
            }
            n = 0
            for bright, seconds in self.phases:
                start = time.monotonic()
                self.starts.append(start)
                for k in range(int(round(seconds * FPS))):
                    time.sleep(max(0.0, start + k / FPS - time.monotonic()))
                    self.ws.send(struct.pack(">d", time.monotonic()) + frames[bright][n % 24])
                    n += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e


def _decisions(ws: Any, until: Camera, extra: float = 0.6) -> list[dict]:
    """Decisions received until the camera has finished (and ``extra`` seconds more)."""
    out, end = [], None
    while end is None or time.monotonic() < end:
        if end is None and not until.is_alive():
            end = time.monotonic() + extra
        try:
            message = json.loads(ws.recv(timeout=0.2))
        except TimeoutError:
            continue
        assert message["type"] in ("decision", "ready"), message
        if message["type"] == "decision":
            out.append(message)
    assert until.error is None
    return out


# ------------------------------------------------------------------------------------------------- the socket


def test_the_running_class_follows_the_camera_from_dark_to_bright(host: str) -> None:
    with connect(f"ws://{host}/v1/live?every=0.25&window=1&top_k=2", subprotocols=["uniformerv2"]) as ws:
        assert ws.subprotocol == "uniformerv2"
        ready = json.loads(ws.recv(timeout=10))
        assert ready["type"] == "ready" and ready["size"] == 16 and ready["frames"] == 4
        assert (ready["every"], ready["window"], ready["top_k"]) == (0.25, 1.0, 2)
        camera = Camera(ws, [(False, 2.5), (True, 2.5)])
        camera.start()
        decisions = _decisions(ws, camera)
    switch = camera.starts[1]
    assert len(decisions) >= 10  # 20 ticks; a busy machine skips some
    dark = [d for d in decisions if d["stream_time"] < switch]
    bright = [d for d in decisions if d["window"][0] >= switch]  # windows wholly after the switch
    assert len(dark) >= 3 and len(bright) >= 3
    assert {d["top"][0]["label"] for d in dark} == {"dark"}
    assert {d["top"][0]["label"] for d in bright} == {"bright"}
    assert all(len(d["top"]) == 2 and d["top"][0]["score"] > 0.5 for d in decisions)
    assert all(d["window"][1] - d["window"][0] <= 1.0 + 1e-6 for d in decisions)
    assert max(d["lag"] for d in decisions) < 1.0  # newest frame to decision: one forward pass, well under 1 s
    times = [d["stream_time"] for d in decisions]
    assert times == sorted(times) and len(set(times)) == len(times)  # a decision only when a new frame came


def test_two_cameras_at_once_keep_their_own_frames_and_a_closed_one_is_freed(host: str, app: Any) -> None:
    assert _wait_for(lambda: _live_connections(host) == 0)
    url = f"ws://{host}/v1/live?every=0.25&window=1"
    with connect(url) as dark_ws, connect(url) as bright_ws:
        for ws in (dark_ws, bright_ws):
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        assert len(app.state.live) == 2 and _live_connections(host) == 2
        cameras = [Camera(dark_ws, [(False, 2.0)], seed=1), Camera(bright_ws, [(True, 2.0)], seed=2)]
        for camera in cameras:
            camera.start()
        got: dict[str, list[dict]] = {}
        threads = [
            threading.Thread(target=lambda n=name, w=ws, c=camera: got.__setitem__(n, _decisions(w, c)))
            for name, ws, camera in (("dark", dark_ws, cameras[0]), ("bright", bright_ws, cameras[1]))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        dark_ws.close()
        assert _wait_for(lambda: _live_connections(host) == 1)  # one closed: its state is gone, the other's not
    assert _wait_for(lambda: _live_connections(host) == 0)
    assert app.state.live.sessions == {}
    for name in ("dark", "bright"):
        assert len(got[name]) >= 4
        assert {d["top"][0]["label"] for d in got[name]} == {name}  # never the other camera's frames


def test_frames_that_are_not_images_or_late_are_dropped_and_the_connection_goes_on(host: str) -> None:
    with connect(f"ws://{host}/v1/live?every=0.1&window=1") as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        now = time.monotonic()
        ws.send(struct.pack(">d", now) + b"not a jpeg at all")
        assert json.loads(ws.recv(timeout=10)) == {"type": "error", "error": "frame 1: not a JPEG, PNG or WebP image"}
        ws.send("hello")
        assert "binary messages" in json.loads(ws.recv(timeout=10))["error"]
        ws.send(struct.pack(">d", float("nan")) + _jpeg(_clip(True, 1, 0)[0]))
        assert "not a finite number" in json.loads(ws.recv(timeout=10))["error"]
        ws.send(struct.pack(">d", now) + _jpeg(_clip(True, 1, 0)[0]))
        ws.send(struct.pack(">d", now - 1) + _jpeg(_clip(False, 1, 0)[0]))  # older than the last: dropped
        ws.send(struct.pack(">d", now + 0.001) + _jpeg(_clip(False, 1, 0)[0]))  # over 30 frames/s: thinned
        decision = json.loads(ws.recv(timeout=10))
        assert decision["type"] == "decision" and decision["top"][0]["label"] == "bright"
        assert decision["frames_kept"] == 1 and decision["stream_time"] == round(now, 3)
    with connect(f"ws://{host}/v1/live?every=0.1&window=1") as ws:  # bare JPEGs: stamped on arrival
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        ws.send(_jpeg(_clip(False, 1, 1)[0]))
        time.sleep(0.05)
        ws.send(_jpeg(_clip(False, 1, 2)[0]))
        decision = json.loads(ws.recv(timeout=10))
        assert decision["type"] == "decision" and decision["top"][0]["label"] == "dark"


def test_a_quiet_connection_is_closed_and_a_failing_model_is_reported(
    host: str, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from websockets.exceptions import ConnectionClosed

    hub = app.state.live
    monkeypatch.setattr(hub, "idle_s", 0.5)
    with connect(f"ws://{host}/v1/live") as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
        assert (e.value.rcvd.code, e.value.rcvd.reason) == (1000, "no frame for 0.5 s")
    monkeypatch.setattr(hub, "idle_s", 60.0)

    def broken(views: Any) -> Any:
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(hub.clf, "scores_of_views", broken)
    with connect(f"ws://{host}/v1/live?every=0.1") as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        ws.send(_jpeg(_clip(True, 1, 0)[0]))
        assert json.loads(ws.recv(timeout=10)) == {"type": "error", "error": "the model failed (RuntimeError)"}
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
        assert e.value.rcvd.code == 1011
    assert _wait_for(lambda: len(hub) == 0)


def test_the_api_key_is_required_as_a_token_or_a_subprotocol_and_connections_are_limited(model_path: Path) -> None:
    clf = VideoClassifier.from_pretrained(model_path, dtype="float32")
    app = create_app(clf, ServeConfig(model_name="lamp", api_key=KEY, warmup=False, max_live_connections=1))
    bearer = "bearer." + base64.urlsafe_b64encode(KEY.encode()).decode().rstrip("=")
    with serving(app) as h:

        def refused(url: str, **kw: Any) -> tuple[int, dict]:
            with pytest.raises(InvalidStatus) as e:
                connect(url, **kw).close()
            return e.value.response.status_code, json.loads(e.value.response.body)

        status, body = refused(f"ws://{h}/v1/live")
        assert status == 401 and "an API key is required" in body["error"]
        assert refused(f"ws://{h}/v1/live?token=wrong") == (403, {"error": "wrong API key"})
        assert refused(f"ws://{h}/v1/live", subprotocols=["uniformerv2", "bearer.d3Jvbmc"])[0] == 403
        assert refused(f"ws://{h}/v1/live", subprotocols=["uniformerv2", "bearer.%%%"])[0] == 403
        status, body = refused(f"ws://{h}/v1/live?token=live-key%2F%C3%BC&every=0")
        assert status == 400 and body["error"] == "every='0': must be a positive, finite duration"
        status, body = refused(f"ws://{h}/v1/live?token=live-key%2F%C3%BC&every=0.01")
        assert status == 400 and body["error"] == "every='0.01': must be at least 0.05 s"
        status, body = refused(f"ws://{h}/v1/live?token=live-key%2F%C3%BC&window=16f")  # the client's frame rate
        assert status == 400 and "a length in frames is not accepted here" in body["error"]
        with connect(f"ws://{h}/v1/live?token=live-key%2F%C3%BC") as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
            status, body = refused(f"ws://{h}/v1/live", subprotocols=["uniformerv2", bearer])
            assert status == 503 and body["error"].startswith("busy: 1 camera connections open")
        assert _wait_for(lambda: len(app.state.live) == 0)
        with connect(f"ws://{h}/v1/live", subprotocols=["uniformerv2", bearer]) as ws:
            assert ws.subprotocol == "uniformerv2"  # never the key echoed back
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        assert _wait_for(lambda: _live_connections(h, KEY) == 0)


# ------------------------------------------------------------------------------------------------ the page


@pytest.fixture(scope="module")
def fake_cameras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dark and a bright 160x120 camera picture as .y4m files, for Chromium's fake camera."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg command line (apt-get install ffmpeg) to make the fake camera's .y4m file")
    root = tmp_path_factory.mktemp("camera")
    out = {}
    for name, bright in (("dark", False), ("bright", True)):
        clip = write_frames(root / f"{name}.mp4", _clip(bright, 20, 7 + bright, 120, 160), fps=10)
        y4m = root / f"{name}.y4m"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-pix_fmt", "yuv420p", str(y4m)], check=True)
        out[name] = y4m
    return out


@pytest.mark.parametrize(
    "label,viewport,keyed",
    [("bright", {"width": 1000, "height": 800}, False), ("dark", {"width": 390, "height": 844}, True)],
)  # desktop, phone
def test_the_camera_tab_shows_the_running_class_over_the_live_picture(
    model_path: Path, host: str, app: Any, fake_cameras: dict, label: str, viewport: dict, keyed: bool, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    if not CHROMIUM:
        pytest.skip(
            "no Chromium on PATH (apt-get install chromium, as scripts/setup.sh does; or set UNIFORMERV2_CHROMIUM)"
        )
    with contextlib.ExitStack() as stack:
        if keyed:  # a server with an API key: the page sends it as a subprotocol
            app = create_app(
                VideoClassifier.from_pretrained(model_path, dtype="float32"),
                ServeConfig(model_name="lamp", api_key=KEY, warmup=False),
            )
            host = stack.enter_context(serving(app))
        assert _wait_for(lambda: len(app.state.live) == 0)
        _camera_page(sync_api, host, app, fake_cameras[label], label, viewport, keyed, tmp_path)


def _camera_page(
    sync_api: Any, host: str, app: Any, camera: Path, label: str, viewport: dict, keyed: bool, tmp_path: Path
) -> None:
    with sync_api.sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox refuses to run as root, which CI and containers are
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}",
            ],
        )
        try:
            page = browser.new_page(viewport=viewport)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "console",
                lambda m: (
                    m.type == "error"
                    and "status of 401" not in m.text  # the key asked for
                    and errors.append(m.text)
                ),
            )
            page.goto(f"http://{host}/")
            if keyed:
                page.fill("#key", KEY)
                page.click("#key-form button")
            sync_api.expect(page.locator("#model")).to_contain_text("lamp")
            sync_api.expect(page.locator("#camera-view")).to_be_hidden()
            page.click("#tab-camera")
            sync_api.expect(page.locator("#upload-view")).to_be_hidden()
            top = page.locator("#live-top li").first
            sync_api.expect(top).to_have_attribute("data-label", label, timeout=30_000)
            assert len(app.state.live) == 1
            assert page.evaluate("() => document.getElementById('camera').videoWidth") == 160
            # the overlay lies over the live picture
            video, overlay = page.locator("#camera").bounding_box(), page.locator("#live-top").bounding_box()
            assert video["x"] <= overlay["x"] and overlay["x"] + overlay["width"] <= video["x"] + video["width"]
            assert video["y"] <= overlay["y"] and overlay["y"] + overlay["height"] <= video["y"] + video["height"]
            sync_api.expect(page.locator("#live-info")).to_contain_text("frames/s sent")
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            folder = Path(os.environ.get("UNIFORMERV2_SCREENSHOTS") or tmp_path)
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"serve_camera_{label}.png"), full_page=True)
            # the server closes the connection (a restart, say): the page reconnects and goes on
            app.state.live.close_all(1012, "restarting")
            sync_api.expect(page.locator("#camera-view")).to_have_attribute("data-connects", "2", timeout=15_000)
            sync_api.expect(page.locator("#camera-status")).to_have_text("")
            stamp = float(page.locator("#live-top").get_attribute("data-stream-time"))
            page.wait_for_function(
                f"() => Number(document.getElementById('live-top').dataset.streamTime) > {stamp}", timeout=15_000
            )
            sync_api.expect(top).to_have_attribute("data-label", label)
            # back to the upload view: the camera stops and the server frees the connection
            page.click("#tab-upload")
            assert _wait_for(lambda: len(app.state.live) == 0)
            assert page.evaluate("() => document.getElementById('camera').srcObject === null")
            # the camera again, then the tab closed: freed too
            page.click("#tab-camera")
            assert _wait_for(lambda: len(app.state.live) == 1)
            page.close()
            assert _wait_for(lambda: len(app.state.live) == 0)
            assert errors == []
        finally:
            browser.close()
