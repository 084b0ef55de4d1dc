"""`live`: decisions on a stream at real speed that follow the action, with bounded lag, skipping rather than
queueing when the model is slow, and a dropped stream reported, never a hang."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import train_config, write_frames
from uniformerv2 import VideoClassifier
from uniformerv2.cli import main
from uniformerv2.engine.train import Trainer

FPS = 10


def _clip(bright: bool, frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = 190 if bright else 50
    return np.clip(base + rng.normal(0, 12, (frames, 32, 32, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model_and_video(tmp_path_factory):
    """A tiny model trained in the test to tell dark clips (class 'dark') from bright ones ('bright'), and a
    video that is dark for 3 s, then bright for 3 s."""
    root = tmp_path_factory.mktemp("live")
    lines = []
    for k in range(8):
        for label, bright in ((0, False), (1, True)):
            write_frames(root / f"{k}_{label}.mp4", _clip(bright, 8, 100 * k + label), fps=FPS)
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
    result = Trainer(cfg).fit()
    video = write_frames(
        root / "changing.mp4", np.concatenate([_clip(False, 3 * FPS, 1), _clip(True, 3 * FPS, 2)]), fps=FPS
    )
    return result.model_path, video


def test_decisions_follow_the_action_within_one_window_and_the_lag_stays_bounded(model_and_video, capsys):
    model_path, video = model_and_video
    assert (
        main(
            [
                "live",
                str(video),
                "--checkpoint",
                str(model_path),
                "--realtime",
                "--json",
                "--window",
                "1s",
                "--every",
                "0.25s",
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    decisions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(decisions) >= 8  # 24 ticks; a busy machine skips some
    top = [(d["stream_time"], d["top"][0]["label"]) for d in decisions]
    assert all(label == "dark" for t, label in top if t < 2.9)
    assert all(label == "bright" for t, label in top if t > 3.0 + 1.0)  # within one window of the change
    assert max(d["lag"] for d in decisions) < 1.0 + 0.5  # a window plus a forward pass (well under 0.5 s here)


def test_a_model_slower_than_real_time_skips_decisions_and_keeps_the_lag_bounded(model_and_video):
    model_path, video = model_and_video
    clf = VideoClassifier.from_pretrained(model_path)
    started = time.monotonic()
    decisions = list(clf.stream(str(video), window=1.0, every=0.1, realtime=True, slow_down=0.5))
    elapsed = time.monotonic() - started
    assert len(decisions) <= elapsed / 0.5 + 1  # one per forward at most: the 0.1 s ticks were skipped
    assert max(d.lag for d in decisions) < 1.0 + 0.5 + 0.5  # window + forward (+ the slow-down)
    assert elapsed < 6 + 2  # the stream's own length, not its length times the slow-down


def test_a_refused_stream_is_reconnected_then_given_up_with_one_error(model_and_video, capsys):
    model_path, _ = model_and_video
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    started = time.monotonic()
    assert (
        main(
            [
                "live",
                f"http://127.0.0.1:{port}/cam.mp4",
                "--checkpoint",
                str(model_path),
                "--stall",
                "1s",
                "--reconnects",
                "2",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "reconnecting (2 of 2)" in err and "gave up after 2 reconnects" in err and "Traceback" not in err
    assert time.monotonic() - started < 15


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="the ffmpeg command line (apt-get install ffmpeg) serves the live stream"
)
def test_a_udp_stream_is_recognised_and_when_it_stops_the_run_ends_with_one_error(model_and_video):
    model_path, video = model_and_video
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    live = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uniformerv2.cli",
            "live",
            f"udp://127.0.0.1:{port}",
            "--checkpoint",
            str(model_path),
            "--json",
            "--stall",
            "2s",
            "--reconnects",
            "1",
            "--window",
            "1s",
            "--every",
            "0.5s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # the video looped in real time until three decisions came back; then the sender stops and the stream stalls
    sender = subprocess.Popen(
        [
            "ffmpeg",
            "-v",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(video),
            "-c:v",
            "mpeg2video",
            "-f",
            "mpegts",
            f"udp://127.0.0.1:{port}?pkt_size=1316",
        ]
    )
    decisions = []
    try:
        for line in live.stdout:
            decisions.append(json.loads(line))
            if len(decisions) == 3:
                break
    finally:
        sender.kill()
        sender.wait()
    rest, err = live.communicate(timeout=60)
    decisions += [json.loads(line) for line in rest.splitlines()]
    assert len(decisions) >= 3 and {d["top"][0]["label"] for d in decisions} <= {"dark", "bright"}
    assert max(d["lag"] for d in decisions) < 1.0 + 1.0
    assert live.returncode == 1 and "stalled: no data for 2 s" in err
    assert "gave up after 1 reconnects" in err and "Traceback" not in err


def test_window_and_every_in_frames_are_counted_at_the_sources_rate(model_and_video):
    model_path, video = model_and_video
    clf = VideoClassifier.from_pretrained(model_path)
    decisions = list(clf.stream(str(video), window="10f", every="2f", realtime=True, duration=1.5))  # 1 s, 0.2 s
    # every 0.2 s over 1.5 s: at most 8 decisions (2 frames read as anything shorter would give more), and at
    # least 2 (read as 2 s, there would be one); counted, not timed, so a loaded machine cannot fail it
    assert 2 <= len(decisions) <= 1.5 / 0.2 + 1
    assert all(d.window[1] - d.window[0] <= 1.0 + 1e-6 for d in decisions)


def test_frames_are_refused_for_a_source_without_a_frame_rate():
    import threading
    from types import SimpleNamespace

    from uniformerv2.duration import parse_duration
    from uniformerv2.errors import UsageError
    from uniformerv2.live import _seconds

    opened = threading.Event()
    opened.set()
    reader = SimpleNamespace(opened=opened, finished=threading.Event(), fps=None, source="udp://0.0.0.0:5000")
    assert _seconds(parse_duration("1.5s"), reader, "window") == 1.5
    with pytest.raises(
        UsageError,
        match=r"^--window 16f: udp://0.0.0.0:5000 reports no frame rate to count frames "
        r"with; give seconds, e.g. --window 2s$",
    ):
        _seconds(parse_duration("16f"), reader, "window")
    reader.fps = 25.0
    assert _seconds(parse_duration("16f"), reader, "every") == pytest.approx(0.64)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--window", "0"], "argument --window: '0': must be a positive, finite duration"),
        (["--every", "soon"], "argument --every: 'soon': expected a duration, e.g. 2 or 2s (seconds) or 16f (frames)"),
        (["--duration", "30f"], "argument --duration: '30f': a length in frames is not accepted here; give seconds"),
    ],
)
def test_bad_live_options_are_one_usage_line(model_and_video, capsys, argv, message):
    model_path, video = model_and_video
    with pytest.raises(SystemExit) as info:
        main(["live", str(video), "--checkpoint", str(model_path), *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_file_is_one_error_line(model_and_video, tmp_path, capsys):
    model_path, _ = model_and_video
    assert main(["live", str(tmp_path / "gone.mp4"), "--checkpoint", str(model_path), "--reconnects", "0"]) == 1
    assert "gone.mp4: cannot be opened" in capsys.readouterr().err.strip().splitlines()[-1]
