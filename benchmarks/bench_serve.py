"""Benchmark `uniformerv2 serve` under load, on loopback only: concurrent clients, good and bad uploads mixed.

    .venv/bin/python benchmarks/bench_serve.py [--requests 200] [--clients 16] [--batch-views 12,24] [--json OUT]

For each ``--max-batch-views`` value the server runs as its own process (``python -m uniformerv2.cli serve``,
127.0.0.1, a free port) with a small random-weight UniFormerV2 (see ``SMALL``: width 128, 4 layers, 96 px, 8 frames,
400 classes, the 4 clips x 3 crops protocol, so 12 views a video; ``--views`` asks for others) in float32.
``--clients`` threads send ``--requests`` uploads between them, the same deterministic mix for every run: three
quarters good videos (the shared demo videos and three generated ones) and a quarter bad (empty, not a video,
truncated, the wrong form field, over the size limit). Checked, and the run fails otherwise: no 5xx; every bad
upload answered with its 4xx; every good one answered with its own video's top-5 classes and scores (as
``VideoClassifier.predict`` computes them unbatched in this process, within 1e-4). Reported: p50/p99 latency of the
good requests, videos per second over the whole run, the mean views per forward pass (from /metrics), and the
server's resident memory after warm-up and at the end (VmRSS; VmHWM for the peak). A ``--max-batch-views`` equal to
one video's views (12) is the unbatched baseline: each forward pass holds one request's views.

Everything is bounded: every request has a timeout, the server is stopped whatever happens.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from _measure import cpu_description

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UNIFORMERV2_SHARED", ROOT.parent / "shared"))
if not (SHARED / "data").is_dir():
    SHARED = Path("/work/shared")
SMALL = dict(
    width=128,
    layers=4,
    heads=2,
    n_dim=128,
    n_head=2,
    return_list=(2, 3),
    n_layers=2,
    mlp_dropout=(0.5, 0.5),
    input_resolution=96,
    patch_size=16,
    t_size=8,
    num_classes=400,
)
MAX_UPLOAD_MB = 2
TIMEOUT_S = 300


# ---------------------------------------------------------------------------------------------- fixtures


def make_model(folder: Path) -> Path:
    """The small random-weight checkpoint the server loads."""
    import torch

    from uniformerv2 import UniFormerV2, UniFormerV2Config, save_checkpoint

    torch.manual_seed(0)
    model = UniFormerV2(UniFormerV2Config(**SMALL)).eval()
    with torch.no_grad():  # random head and fusion weights too, so videos get distinct answers
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_checkpoint(model, folder / "small.safetensors")


def make_videos(folder: Path) -> dict[str, Path]:
    """The good videos: the shared demo videos and three generated lamp videos."""
    from uniformerv2.demo import make_lamp_video, write_video

    videos = {p.name: p for p in sorted((SHARED / "data" / "videos").iterdir()) if p.suffix in (".mp4", ".avi")}
    for label in range(3):
        frames = make_lamp_video(label, np.random.default_rng(label), frames=48, height=120, width=160)
        videos[f"lamp{label}.mp4"] = write_video(folder / f"lamp{label}.mp4", frames)
    return videos


def bad_uploads(folder: Path, videos: dict[str, Path]) -> dict[str, tuple[str, str, bytes, int]]:
    """name -> (form field, file name, bytes, the status it must get)."""
    demo = videos["demo.mp4"].read_bytes()
    return {
        "empty": ("video", "empty.mp4", b"", 400),
        "text": ("video", "notes.mp4", b"not a video\n" * 200, 422),
        "truncated": ("video", "cut.mp4", demo[:20_000], 422),
        "wrong-field": ("file", "demo.mp4", demo, 400),
        "too-large": ("video", "big.mp4", os.urandom(MAX_UPLOAD_MB * 2**20 + 500_000), 413),
    }


def plan(n: int, good: list[str], bad: list[str]) -> list[tuple[str, str]]:
    """The same mix for every run: ("good"|"bad", name), three quarters good."""
    rng = np.random.default_rng(0)
    out = [("bad", bad[i % len(bad)]) if i % 4 == 3 else ("good", good[i % len(good)]) for i in range(n)]
    rng.shuffle(out)
    return [tuple(x) for x in out]


# ------------------------------------------------------------------------------------------------ client


def multipart(field: str, filename: str, data: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body with one file and some fields, and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post(port: int, field: str, filename: str, data: bytes, views: str | None = None) -> tuple[int, Any, float]:
    """(status, parsed answer, seconds) of one upload to /v1/predict on a fresh connection."""
    body, ctype = multipart(field, filename, data, {"top_k": "5", **({"views": views} if views else {})})
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": ctype})
        res = conn.getresponse()
        raw = res.read()
        status = res.status
    except (ConnectionError, http.client.HTTPException) as e:  # a reset counts as a failure, with its reason
        return 0, {"error": f"{type(e).__name__}: {e}"}, time.perf_counter() - t0
    finally:
        conn.close()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw[:200].decode("utf-8", "replace")
    return status, parsed, time.perf_counter() - t0


def get(port: int, path: str) -> tuple[int, str]:
    """(status, text) of one GET."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, res.read().decode()
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------ server


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mib(pid: int, field: str) -> float:
    """A /proc/PID/status memory field (VmRSS, VmHWM) in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def metric(text: str, name: str) -> float:
    """A sample's value from Prometheus text (NaN if absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def matches(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> bool:
    """The same classes in the same order, the same scores within 1e-4."""
    return [g[0] for g in got] == [w[0] for w in want] and bool(
        np.allclose([g[1] for g in got], [w[1] for w in want], rtol=0, atol=1e-4)
    )


def run_config(
    ckpt: Path,
    max_batch_views: int,
    videos: dict[str, Path],
    bad: dict[str, tuple[str, str, bytes, int]],
    expected: dict[str, list[tuple[str, float]]],
    requests: list[tuple[str, str]],
    clients: int,
    views: str | None,
) -> dict[str, Any]:
    """One server with ``max_batch_views`` under the whole request mix: figures and problems."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uniformerv2.cli",
        "serve",
        "--checkpoint",
        str(ckpt),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-batch-views",
        str(max_batch_views),
        "--max-upload-mb",
        str(MAX_UPLOAD_MB),
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.2)
        data = {name: path.read_bytes() for name, path in videos.items()}
        for name in videos:  # warm-up: every video once, one at a time
            status, body, _ = post(port, "video", name, data[name], views)
            assert status == 200, (name, body)
        rss_warm = memory_mib(server.pid, "VmRSS")
        todo: queue.Queue = queue.Queue()
        for i, item in enumerate(requests):
            todo.put((i, item))
        results: list[Any] = [None] * len(requests)

        def client() -> None:
            """One client: take requests off the queue until none is left."""
            while True:
                try:
                    i, (kind, name) = todo.get_nowait()
                except queue.Empty:
                    return
                if kind == "good":
                    results[i] = post(port, "video", name, data[name], views)
                else:
                    field, filename, payload, _ = bad[name]
                    results[i] = post(port, field, filename, payload)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT_S * len(requests) / clients)
        wall = time.perf_counter() - t0
        _, metrics = get(port, "/metrics")
        rss_end, rss_peak = memory_mib(server.pid, "VmRSS"), memory_mib(server.pid, "VmHWM")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    problems, latencies = [], []
    for (kind, name), result in zip(requests, results):
        if result is None:
            problems.append(f"{name}: no answer")
            continue
        status, body, seconds = result
        if status >= 500 or status == 0:
            problems.append(f"{name}: {status} {body}")
        elif kind == "bad":
            if status != bad[name][3] or not isinstance(body, dict) or "error" not in body:
                problems.append(f"bad upload {name}: {status} {body}")
        else:
            got = [(p["label"], p["score"]) for p in body.get("predictions", [])] if status == 200 else []
            if not matches(got, expected[name]):
                problems.append(f"{name}: answer is not its own ({status} {str(body)[:200]})")
            latencies.append(seconds)
    n_good = sum(kind == "good" for kind, _ in requests)
    return {
        "max_batch_views": max_batch_views,
        "requests": len(requests),
        "good": n_good,
        "bad": len(requests) - n_good,
        "problems": problems,
        "wall_s": wall,
        "videos_per_s": n_good / wall,
        "requests_per_s": len(requests) / wall,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)) if latencies else float("nan"),
        "views_per_forward": metric(metrics, "uniformerv2_batch_views_sum")
        / max(1.0, metric(metrics, "uniformerv2_batch_views_count")),
        "forwards": metric(metrics, "uniformerv2_batch_views_count"),
        "rss_after_warmup_mib": rss_warm,
        "rss_end_mib": rss_end,
        "rss_peak_mib": rss_peak,
    }


def main() -> int:
    """Run every configuration and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per run (default 200)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument(
        "--batch-views",
        default="12,24",
        help="--max-batch-views of each run, comma-separated (default 12,24: one video's views, "
        "then the server's default)",
    )
    parser.add_argument("--views", help="CLIPSxCROPS the clients ask for, e.g. 1x3 (default: the protocol's 4x3)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    import torch

    from uniformerv2 import VideoClassifier
    from uniformerv2.protocol import parse_views

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp)
        ckpt = make_model(folder)
        videos = make_videos(folder)
        bad = bad_uploads(folder, videos)
        clf = VideoClassifier.from_pretrained(ckpt, dtype="float32")
        if args.views:
            clips, crops = parse_views(args.views)
            clf = VideoClassifier(clf.model, clf.protocol.replace(clips=clips, crops=crops), dtype="float32")
        expected = {name: clf.predict(path, top_k=5) for name, path in videos.items()}
        answers = list(expected.values())
        assert not any(matches(a, b) for i, a in enumerate(answers) for b in answers[i + 1 :]), (
            "the benchmark's videos must get distinguishable answers, or a mixed-up one would go unseen"
        )
        requests = plan(args.requests, list(videos), list(bad))
        runs = []
        for n in [int(x) for x in args.batch_views.split(",")]:
            print(f"--max-batch-views {n}: {args.requests} requests from {args.clients} clients ...", flush=True)
            runs.append(run_config(ckpt, n, videos, bad, expected, requests, args.clients, args.views))
    info = {
        "cpu": cpu_description(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "model": SMALL,
        "protocol": clf.protocol.describe(),
        "dtype": "float32",
        "clients": args.clients,
        "videos": sorted(videos),
        "bad_uploads": sorted(bad),
        "runs": runs,
    }
    print(
        f"\n{info['cpu']} ({info['cpus']} CPUs), torch {info['torch']}; {info['protocol']}; "
        f"{args.clients} clients, {args.requests} requests ({runs[0]['good']} good, {runs[0]['bad']} bad)"
    )
    print(
        f"{'max-batch-views':>15} {'views/forward':>13} {'p50 ms':>8} {'p99 ms':>8} {'videos/s':>9} "
        f"{'RSS warm MiB':>12} {'RSS end MiB':>11} {'peak MiB':>8}  problems"
    )
    for r in runs:
        print(
            f"{r['max_batch_views']:>15} {r['views_per_forward']:>13.1f} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} "
            f"{r['videos_per_s']:>9.2f} {r['rss_after_warmup_mib']:>12.0f} {r['rss_end_mib']:>11.0f} "
            f"{r['rss_peak_mib']:>8.0f}  {len(r['problems'])}"
        )
        for p in r["problems"][:10]:
            print(f"    {p}")
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=1))
    return 1 if any(r["problems"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
