"""`uniformerv2 serve`: the real server (uvicorn on 127.0.0.1) with a tiny model, every endpoint, scores equal to
the command line's, every bad upload answered 4xx while the server keeps serving, the API key, and the batcher."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'uniformerv2[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'uniformerv2[serve]'")
import uvicorn

from helpers import SHARED, randomised, tiny_config, write_frames
from uniformerv2 import VideoClassifier, save_checkpoint
from uniformerv2.cli import main
from uniformerv2.model import UniFormerV2
from uniformerv2.serving import DynamicBatcher, ServeConfig, create_app

VIDEOS = SHARED / "data" / "videos"
DEMO = VIDEOS / "demo.mp4"  # 10 s, 635 KB
BIG = VIDEOS / "test.mp4"  # 1.35 MB: over the test server's 1 MiB limit
AVI = VIDEOS / "test.avi"
KEY = "s3cret-key"


# ------------------------------------------------------------------------------------------------ a server


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 (a socket bound first, so the port is ours) in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def multipart(
    files: dict[str, tuple[str, bytes]] | None = None, fields: dict[str, str] | None = None
) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in (fields or {}).items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in (files or {}).items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def request(
    host: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    """(status, parsed JSON or text, headers) of one request on a fresh connection."""
    conn = http.client.HTTPConnection(host, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        data = res.read()
        kind = res.getheader("content-type", "")
        parsed = json.loads(data) if "json" in kind else data.decode("utf-8", "replace")
        return res.status, parsed, {k.lower(): v for k, v in res.getheaders()}
    finally:
        conn.close()


def upload(
    host: str,
    path: str,
    video: Path | bytes | None,
    *,
    name: str = "video",
    filename: str | None = None,
    fields: dict[str, str] | None = None,
    key: str | None = None,
) -> tuple[int, Any]:
    data = video.read_bytes() if isinstance(video, Path) else video
    files = (
        {name: (filename or (video.name if isinstance(video, Path) else "upload.mp4"), data)}
        if video is not None
        else None
    )
    body, ctype = multipart(files, fields)
    headers = {"Content-Type": ctype}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    status, parsed, _ = request(host, "POST", path, body, headers)
    return status, parsed


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "tiny.safetensors"
    return save_checkpoint(randomised(UniFormerV2(tiny_config(no_lmhra=False))), path)


@pytest.fixture(scope="module")
def classifier(checkpoint: Path) -> VideoClassifier:
    return VideoClassifier.from_pretrained(checkpoint, dtype="float32")


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """25 s (50 frames at 2 fps): over the test server's 20 s limit."""
    frames = np.random.default_rng(0).integers(0, 255, (50, 32, 32, 3), dtype=np.uint8)
    return write_frames(tmp_path_factory.mktemp("long") / "long.mp4", frames, fps=2)


@pytest.fixture(scope="module")
def app(checkpoint: Path) -> Any:
    clf = VideoClassifier.from_pretrained(checkpoint, dtype="float32")
    return create_app(
        clf, ServeConfig(model_name="tiny", max_upload_mb=1, max_duration_s=20, max_wait_ms=20, workers=2)
    )


@pytest.fixture(scope="module")
def host(app: Any) -> Iterator[str]:
    with serving(app) as h:
        yield h


@pytest.fixture(scope="module")
def keyed_host(checkpoint: Path) -> Iterator[str]:
    clf = VideoClassifier.from_pretrained(checkpoint, dtype="float32")
    with serving(create_app(clf, ServeConfig(model_name="tiny", api_key=KEY, warmup=False))) as h:
        yield h


def cli_json(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def assert_predictions_equal(served: list[dict], cli: list[dict]) -> None:
    assert [p["label"] for p in served] == [p["label"] for p in cli]
    np.testing.assert_allclose([p["score"] for p in served], [p["score"] for p in cli], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------- endpoints


def test_health_model_page_docs_and_404(host: str) -> None:
    assert request(host, "GET", "/healthz")[:2] == (200, {"status": "ok"})
    status, model, _ = request(host, "GET", "/v1/model")
    assert status == 200 and model["name"] == "tiny" and model["classes"] == [f"class_{i}" for i in range(5)]
    assert model["protocol"]["views"] == 12 and model["protocol"]["frames"] == 4 and model["dtype"] == "float32"
    status, page, headers = request(host, "GET", "/")
    assert (
        status == 200
        and "<title>UniFormerV2</title>" in page
        and "default-src 'self'" in headers["content-security-policy"]
    )
    for asset in ("/static/app.js", "/static/style.css"):
        assert request(host, "GET", asset)[0] == 200
    assert request(host, "GET", "/docs")[0] == 200
    status, schema, _ = request(host, "GET", "/openapi.json")
    assert {"/v1/predict", "/v1/timeline", "/v1/features", "/v1/model", "/healthz", "/metrics"} <= set(schema["paths"])
    status, body, _ = request(host, "GET", "/v1/nothing")
    assert status == 404 and body == {"error": "not found: /v1/nothing"}
    status, body, _ = request(host, "GET", "/v1/predict")
    assert status == 405 and "error" in body


@pytest.mark.parametrize("views", [None, "2x1"])
def test_predict_gives_the_scores_of_the_command_line(host: str, checkpoint: Path, capsys, views: str | None) -> None:
    extra = ["--views", views] if views else []
    cli = cli_json(
        capsys, "predict", str(DEMO), "--checkpoint", str(checkpoint), "--dtype", "float32", "--json", *extra
    )
    status, served = upload(host, "/v1/predict", DEMO, fields={"top_k": "5", **({"views": views} if views else {})})
    assert status == 200, served
    assert_predictions_equal(served["predictions"], cli["results"][0]["predictions"])
    assert served["protocol"] == cli["protocol"] and served["model"] == "tiny" and served["video"] == "demo.mp4"
    assert served["duration_s"] == pytest.approx(10.0, abs=0.1)
    assert set(served["timing_ms"]) == {"upload", "decode", "queue", "model", "total"}


def test_options_in_the_query_string_and_labels(host: str, classifier: VideoClassifier) -> None:
    status, served = upload(host, "/v1/predict?top_k=2&views=1x3", DEMO)
    assert status == 200 and len(served["predictions"]) == 2 and served["views"] == 3
    # labels: scores over those classes only, as `predict --labels` selects the head's rows
    status, served = upload(host, "/v1/predict", DEMO, fields={"labels": "class_3, class_1"})
    assert status == 200 and {p["label"] for p in served["predictions"]} == {"class_1", "class_3"}
    views = classifier.views(DEMO)
    from uniformerv2.data import normalize

    with torch.inference_mode():
        expected = classifier.model(normalize(views))[:, [3, 1]].softmax(-1).mean(0)
    got = {p["label"]: p["score"] for p in served["predictions"]}
    assert [got["class_3"], got["class_1"]] == pytest.approx(expected.tolist(), abs=1e-6)


def test_concurrent_requests_get_their_own_answers(host: str, classifier: VideoClassifier) -> None:
    """Requests that share forward passes each get their own video's scores."""
    cases = [(DEMO, None), (AVI, None), (DEMO, "1x3"), (AVI, "2x1"), (DEMO, "2x3"), (AVI, None)]
    expected = []
    for path, views in cases:
        p = (
            classifier.protocol.replace(**dict(zip(("clips", "crops"), map(int, views.split("x")))))
            if views
            else classifier.protocol
        )
        scores = classifier.scores_of_views(VideoClassifier(classifier.model, p, dtype="float32").views(path))
        expected.append(scores)
    answers: list[Any] = [None] * len(cases)

    def go(i: int) -> None:
        path, views = cases[i]
        answers[i] = upload(host, "/v1/predict", path, fields={"top_k": "5", **({"views": views} if views else {})})

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for (status, served), scores in zip(answers, expected):
        assert status == 200, served
        got = {p["label"]: p["score"] for p in served["predictions"]}
        want = {f"class_{i}": float(s) for i, s in enumerate(scores)}
        assert got == pytest.approx(want, abs=1e-6)


def test_timeline_is_the_json_of_the_timeline_command(host: str, checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "tl"
    assert (
        main(
            [
                "timeline",
                str(DEMO),
                "--checkpoint",
                str(checkpoint),
                "--dtype",
                "float32",
                "--out-dir",
                str(out),
                "--no-progress",
                "--window",
                "2s",
                "--stride",
                "1.5s",
                "--crops",
                "3",
            ]
        )
        == 0
    )
    cli = json.loads((out / "demo_timeline.json").read_text())
    status, served = upload(host, "/v1/timeline", DEMO, fields={"window": "2", "stride": "1.5s", "crops": "3"})
    assert status == 200, served
    assert served["video"] == "demo.mp4" and served["model"] == "tiny"
    assert served["fps"] == cli["fps"] and served["class_names"] == cli["class_names"]
    assert [(w["start_s"], w["end_s"]) for w in served["windows"]] == [
        (w["start_s"], w["end_s"]) for w in cli["windows"]
    ]
    assert [[t["label"] for t in w["top"]] for w in served["windows"]] == [
        [t["label"] for t in w["top"]] for w in cli["windows"]
    ]
    np.testing.assert_allclose(served["scores"], cli["scores"], rtol=0, atol=2e-6)
    top = served["windows"][0]["top"][0]
    assert set(top) == {"label", "score", "probability"} and top["probability"] == top["score"]  # the old name
    # the same windows in frames, at the video's 28 frames a second
    status, in_frames = upload(host, "/v1/timeline?window=56f&stride=42f", DEMO, fields={"crops": "3"})
    assert status == 200, in_frames
    assert [(w["start_s"], w["end_s"]) for w in in_frames["windows"]] == [
        (w["start_s"], w["end_s"]) for w in cli["windows"]
    ]
    np.testing.assert_allclose(in_frames["scores"], cli["scores"], rtol=0, atol=2e-6)


def test_features_are_the_classifiers(host: str, classifier: VideoClassifier) -> None:
    status, served = upload(host, "/v1/features", DEMO)
    assert status == 200, served
    expected = classifier.features(DEMO)
    assert served["kind"] == "pooled" and served["dim"] == expected.numel() == len(served["feature"])
    np.testing.assert_allclose(served["feature"], expected.numpy(), rtol=0, atol=1e-5)


def test_metrics_in_prometheus_text(host: str) -> None:
    assert upload(host, "/v1/predict", DEMO, fields={"views": "1x1"})[0] == 200
    assert upload(host, "/v1/predict", b"not a video")[0] == 422
    status, text, headers = request(host, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for name in (
        'uniformerv2_requests_total{endpoint="/v1/predict",status="200"}',
        'uniformerv2_errors_total{endpoint="/v1/predict",status="422"}',
        'uniformerv2_request_seconds_bucket{endpoint="/v1/predict"',
        "uniformerv2_batch_views_bucket",
        "uniformerv2_batch_jobs_bucket",
        "uniformerv2_queue_views",
        "uniformerv2_requests_in_progress",
        "uniformerv2_decode_seconds_bucket",
        "uniformerv2_forward_seconds_bucket",
    ):
        assert name in text, name


# ------------------------------------------------------------------------------------------ bad requests


def _bad_cases(long_video: Path) -> list[tuple[str, int, str, dict[str, Any]]]:
    """(name, status, words in the error, upload arguments)."""
    demo = DEMO.read_bytes()
    return [
        ("empty file", 400, "empty", dict(video=b"", filename="empty.mp4")),
        ("not a video", 422, "notes.mp4", dict(video=b"just some text\n" * 100, filename="notes.mp4")),
        ("truncated", 422, "cut.mp4", dict(video=demo[:2000], filename="cut.mp4")),
        ("truncated in the middle", 422, "half.mp4", dict(video=demo[: len(demo) // 2], filename="half.mp4")),
        ("too large", 413, "1 MiB", dict(video=BIG)),
        ("far too large", 413, "1 MiB", dict(video=os.urandom(3 * 1024 * 1024))),
        ("too long", 413, "too long", dict(video=long_video)),
        ("wrong field", 400, "'file'", dict(video=DEMO, name="file")),
        ("missing field", 400, "no video", dict(video=None, fields={"top_k": "3"})),
        ("top_k 0", 400, "top_k", dict(video=DEMO, fields={"top_k": "0"})),
        ("top_k text", 400, "top_k", dict(video=DEMO, fields={"top_k": "five"})),
        ("views", 400, "views", dict(video=DEMO, fields={"views": "5x2"})),
        ("too many views", 400, "limit", dict(video=DEMO, fields={"views": "20x3"})),
        ("labels", 400, "not classes", dict(video=DEMO, fields={"labels": "juggling"})),
    ]


def test_every_bad_upload_gets_a_4xx_that_says_why_and_the_server_goes_on(
    host: str, app: Any, long_video: Path
) -> None:
    for name, want, words, kwargs in _bad_cases(long_video):
        status, body = upload(host, "/v1/predict", **kwargs)
        assert status == want, (name, body)
        assert isinstance(body, dict) and words in body["error"], (name, body)
    # not multipart, a form without a boundary, a body that is not multipart at all, then two videos
    for headers, body, want in [
        ({"Content-Type": "video/mp4"}, DEMO.read_bytes()[:1000], 415),
        ({"Content-Type": "multipart/form-data"}, b"x", 415),
        ({"Content-Type": "multipart/form-data; boundary=zz"}, b"garbage" * 10, 400),
    ]:
        status, answer, _ = request(host, "POST", "/v1/predict", body, headers)
        assert status == want and "error" in answer, (headers, answer)
    data = DEMO.read_bytes()
    boundary = "b0undary"
    two = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n'.encode()
        + data
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="b.mp4"\r\n\r\n'.encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, answer, _ = request(
        host, "POST", "/v1/predict", two, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert status == 400 and "one video" in answer["error"]
    # the same for the other upload endpoints
    for path in ("/v1/timeline", "/v1/features"):
        assert upload(host, path, b"")[0] == 400
        assert upload(host, path, b"not a video")[0] == 422
        assert upload(host, path, long_video)[0] == 413
    status, body = upload(host, "/v1/timeline", DEMO, fields={"window": "-1"})
    assert (status, body) == (400, {"error": "window='-1': must be a positive, finite duration"})
    status, body = upload(host, "/v1/timeline", DEMO, fields={"stride": "1.5f"})
    assert (status, body) == (400, {"error": "stride='1.5f': a length in frames is a whole number"})
    status, body = upload(host, "/v1/timeline", DEMO, fields={"stride": "0.001"})  # too many windows
    assert (status, body["error"]) == (
        400,
        "8001 windows (10.0 s at a stride of 0.001 s); the limit is 3600: use a longer stride",
    )
    assert upload(host, "/v1/timeline", DEMO, fields={"crops": "2"})[0] == 400
    # still serving, and no upload left behind
    status, served = upload(host, "/v1/predict", DEMO, fields={"views": "1x1"})
    assert status == 200 and len(served["predictions"]) == 5
    assert list(app.state.service.tmpdir.iterdir()) == []


def test_a_client_leaving_mid_upload_costs_nothing(host: str, app: Any) -> None:
    service = app.state.service
    decodes = service.metrics.registry.get_sample_value("uniformerv2_decode_seconds_count")
    boundary = "cut"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n').encode()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", int(host.split(":")[1]))) as sock:
            sock.sendall(
                (
                    f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: 900000\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
                ).encode()
            )
            sock.sendall(head + DEMO.read_bytes()[:300_000])
            time.sleep(0.1)
    registry = service.metrics.registry

    def settled() -> bool:  # each counted as a 499 ("client closed request"), its temp file gone
        gone = registry.get_sample_value("uniformerv2_requests_total", {"endpoint": "/v1/predict", "status": "499"})
        return gone == 3 and list(service.tmpdir.iterdir()) == [] and service.active == 0

    deadline = time.monotonic() + 10
    while not settled() and time.monotonic() < deadline:  # the server notices the closed connections
        time.sleep(0.05)
    assert settled()
    assert registry.get_sample_value("uniformerv2_decode_seconds_count") == decodes  # nothing was decoded
    assert request(host, "GET", "/healthz")[0] == 200
    assert upload(host, "/v1/predict", DEMO, fields={"views": "1x1"})[0] == 200


def test_uploads_go_to_private_files(tmp_path: Path) -> None:
    from uniformerv2.serving.uploads import _Receiver

    receiver = _Receiver(tmp_path, "video", 1000)
    receiver.on_part_begin()
    for field, value in ((b"Content-Disposition", b'form-data; name="video"; filename="../../etc/x.mp4"'),):
        receiver.on_header_field(field, 0, len(field))
        receiver.on_header_value(value, 0, len(value))
        receiver.on_header_end()
    receiver.on_headers_finished()
    assert receiver.path is not None and receiver.path.parent == tmp_path and receiver.filename == "x.mp4"
    assert stat.S_IMODE(receiver.path.stat().st_mode) == 0o600
    receiver.discard()
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------------------------- the key


def test_the_api_key_is_required_everywhere_but_healthz(keyed_host: str) -> None:
    assert request(keyed_host, "GET", "/healthz")[0] == 200
    for path in ("/v1/model", "/metrics"):
        status, body, headers = request(keyed_host, "GET", path)
        assert status == 401 and "API key" in body["error"] and headers["www-authenticate"].startswith("Bearer")
        status, body, _ = request(keyed_host, "GET", path, headers={"Authorization": "Bearer wrong"})
        assert status == 403 and body == {"error": "wrong API key"}
        assert request(keyed_host, "GET", path, headers={"Authorization": "Basic " + KEY})[0] == 401
        assert request(keyed_host, "GET", path, headers={"Authorization": f"Bearer {KEY}"})[0] == 200
    for path in ("/v1/predict", "/v1/timeline", "/v1/features"):
        assert upload(keyed_host, path, DEMO)[0] == 401
        assert upload(keyed_host, path, DEMO, key="wrong")[0] == 403
    status, served = upload(keyed_host, "/v1/predict", DEMO, fields={"views": "1x1"}, key=KEY)
    assert status == 200 and len(served["predictions"]) == 5


def test_the_command_binds_loopback_and_reads_the_key_from_the_environment(checkpoint: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "UNIFORMERV2_API_KEY": KEY}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uniformerv2.cli",
            "serve",
            "--checkpoint",
            str(checkpoint),
            "--port",
            str(port),
            "--dtype",
            "float32",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if request(host, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        assert request(host, "GET", "/v1/model")[0] == 401
        status, model, _ = request(host, "GET", "/v1/model", headers={"Authorization": f"Bearer {KEY}"})
        assert status == 200 and model["name"] == "tiny.safetensors"  # the file's name, not its server path
        listening = (
            subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
            if Path("/usr/bin/ss").exists() or Path("/bin/ss").exists()
            else ""
        )
        if listening:  # State Recv-Q Send-Q Local-Address:Port Peer-Address:Port
            assert [line.split()[3] for line in listening.splitlines()] == [host]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "serving tiny.safetensors" in err and "API key required" in err


def test_serve_help_lists_every_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--host",
        "--port",
        "--dtype",
        "--compile",
        "--max-batch-views",
        "--max-wait-ms",
        "--max-upload-mb",
        "--max-duration",
        "--api-key",
        "--labels",
        "--size",
        "examples:",
    ):
        assert option in out, option


# ------------------------------------------------------------------------------------------------ batcher


def _batcher(model: UniFormerV2, **kw: Any) -> tuple[DynamicBatcher, list]:
    batches: list = []
    b = DynamicBatcher({"logits": model, "double": lambda x: model(x) * 2}, on_batch=batches.append, **kw)
    return b, batches


def test_batches_mix_requests_and_equal_the_unbatched_path(classifier: VideoClassifier) -> None:
    views = [classifier.views(DEMO), classifier.views(AVI)[:5], classifier.views(DEMO)[:1]]
    batcher, batches = _batcher(classifier.model, max_batch_views=8, max_wait_ms=0)
    futures = [batcher.submit(v) for v in views]  # all queued before the model thread starts
    batcher.start()
    try:
        outs = [f.result(60) for f in futures]
    finally:
        batcher.close()
    assert [b.views for b in batches] == [8, 8, 2]  # 12 + 5 + 1 views, cut at 8
    assert batches[0].jobs == 1 and batches[1].jobs == 2 and batches[2].jobs == 2
    for v, out in zip(views, outs):
        assert out.shape == (len(v), 5)
        scores = out.softmax(-1).mean(0)
        assert torch.allclose(scores, classifier.scores_of_views(v), atol=1e-6, rtol=0)
    assert all(f.job.model_s >= 0 and f.job.queue_s >= 0 for f in futures)


def test_kinds_never_share_a_batch_and_a_cancelled_job_costs_nothing(classifier: VideoClassifier) -> None:
    v = classifier.views(AVI)[:2]
    batcher, batches = _batcher(classifier.model, max_batch_views=24, max_wait_ms=0)
    a, gone, b = batcher.submit(v), batcher.submit(v), batcher.submit(v, "double")
    gone.cancel()
    batcher.start()
    try:
        out_a, out_b = a.result(60), b.result(60)
    finally:
        batcher.close()
    assert torch.allclose(out_b, 2 * out_a, atol=1e-5)
    assert [bt.views for bt in batches] == [2, 2]


def test_a_failing_forward_fails_its_jobs_and_the_thread_goes_on() -> None:
    calls = []

    def flaky(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("out of memory, say")
        return x.flatten(1).sum(1, keepdim=True)

    batcher = DynamicBatcher({"logits": flaky}, max_batch_views=4, max_wait_ms=0)
    first = batcher.submit(torch.zeros(2, 3, 1, 2, 2, dtype=torch.uint8))
    batcher.start()
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            first.result(30)
        second = batcher.submit(torch.zeros(3, 3, 1, 2, 2, dtype=torch.uint8))
        assert second.result(30).shape == (3, 1)
    finally:
        batcher.close()
    with pytest.raises(RuntimeError, match="shutting down"):
        batcher.submit(torch.zeros(1, 3, 1, 2, 2, dtype=torch.uint8))


def test_a_partial_batch_waits_only_while_uploads_are_being_decoded() -> None:
    batcher = DynamicBatcher({"logits": lambda x: x.flatten(1)[:, :1]}, max_batch_views=8, max_wait_ms=300)
    batcher.start()
    try:
        t0 = time.perf_counter()
        batcher.submit(torch.zeros(1, 3, 1, 2, 2, dtype=torch.uint8)).result(10)
        assert time.perf_counter() - t0 < 0.25  # nothing else coming: no wait
        with batcher.incoming():
            t0 = time.perf_counter()
            batcher.submit(torch.zeros(1, 3, 1, 2, 2, dtype=torch.uint8)).result(10)
            assert time.perf_counter() - t0 >= 0.25  # another upload on its way: it waited for it
    finally:
        batcher.close()
