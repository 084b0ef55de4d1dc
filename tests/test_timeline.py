"""`timeline`: sliding windows over a long video, their plot, tables and an annotated copy."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from helpers import SHARED, portrait_frames, randomised, set_display_rotation, tiny_config, write_frames
from uniformerv2 import save_checkpoint
from uniformerv2.cli import main
from uniformerv2.data import probe_num_frames
from uniformerv2.model import UniFormerV2
from uniformerv2.timeline import window_indices

DEMO = SHARED / "data" / "videos" / "demo.mp4"


def test_windows_step_by_the_stride_and_the_last_one_reaches_the_end():
    starts, ends, idx = window_indices(np.arange(95) / 10, window_s=2, stride_s=1, frames=4)  # 10 fps
    assert starts.tolist()[:3] == [0, 1, 2] and starts[-1] == pytest.approx(9.5 - 2)
    assert ends[-1] == pytest.approx(9.5) and idx.shape == (len(starts), 4)
    assert all(10 * s - 1e-9 <= i.min() and i.max() < 10 * s + 20 for s, i in zip(starts, idx))
    assert idx[1].tolist() == [12, 17, 22, 27]  # the centres of 4 segments of 20 frames from frame 10
    assert (np.diff(idx, axis=1) > 0).all()


def test_a_video_shorter_than_the_window_is_one_window():
    starts, ends, idx = window_indices(np.arange(7) / 10, window_s=2, stride_s=1, frames=4)
    assert starts.tolist() == [0] and idx.max() < 7


def test_windows_follow_the_frames_timestamps_on_variable_frame_rate_video():
    # 2 s at 30 fps, then 2 s at 5 fps: the second window holds 10 frames, not 30 * 2 / 2
    times = np.concatenate([np.arange(60) / 30, 2 + np.arange(10) / 5])
    starts, ends, idx = window_indices(times, window_s=2, stride_s=2, frames=4)
    assert starts.tolist() == [0, 2] and ends.tolist() == pytest.approx([2, 4])
    assert (times[idx[0]] < 2).all() and (times[idx[1]] >= 2).all()
    assert idx[1].tolist() == [61, 63, 66, 68]


@pytest.fixture(scope="module")
def timeline_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("timeline")
    ckpt = save_checkpoint(randomised(UniFormerV2(tiny_config())), tmp / "tiny.safetensors")
    code = main(
        [
            "timeline",
            str(DEMO),
            "--checkpoint",
            str(ckpt),
            "--window",
            "2s",
            "--stride",
            "1s",
            "--out-dir",
            str(tmp / "out"),
            "--annotate",
            str(tmp / "annotated.mp4"),
            "--no-progress",
        ]
    )
    return code, tmp


def test_timeline_writes_plot_csv_and_json_with_one_row_per_window(timeline_run):
    code, tmp = timeline_run
    assert code == 0
    rows = list(csv.DictReader(open(tmp / "out" / "demo_timeline.csv")))
    data = json.loads((tmp / "out" / "demo_timeline.json").read_text())
    assert len(rows) == len(data["windows"]) == len(data["scores"]) > 1
    assert float(rows[1]["start_s"]) - float(rows[0]["start_s"]) == pytest.approx(1.0, abs=0.05)
    assert (tmp / "out" / "demo_timeline.png").stat().st_size > 10_000


def test_annotated_copy_has_every_frame_of_the_video(timeline_run):
    _, tmp = timeline_run
    assert probe_num_frames(tmp / "annotated.mp4") == probe_num_frames(DEMO)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: (_write_wav(p), p)[1], "no video stream"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty file (0 bytes)"),
    ],
)
def test_a_file_that_is_not_a_video_is_one_error_line(tmp_path, capsys, make, reason):
    ckpt = save_checkpoint(randomised(UniFormerV2(tiny_config())), tmp_path / "tiny.safetensors")
    bad = make(tmp_path / "bad.mp4")
    code = main(["timeline", str(bad), "--checkpoint", str(ckpt), "--out-dir", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"uniformerv2 timeline: error: {bad}: {reason}"]


def _write_wav(path):
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)


def test_timeline_times_come_from_the_frames_timestamps(tmp_path):
    # 1 s at 30 fps, then 2 s at 5 fps: 40 frames in 3 s, an average of 13.3 fps
    times = np.concatenate([np.arange(30) / 30, 1 + np.arange(10) / 5])
    video = write_frames(tmp_path / "vfr.mp4", portrait_frames(frames=40), times=times)
    ckpt = save_checkpoint(randomised(UniFormerV2(tiny_config())), tmp_path / "tiny.safetensors")
    assert (
        main(
            [
                "timeline",
                str(video),
                "--checkpoint",
                str(ckpt),
                "--window",
                "1s",
                "--stride",
                "1s",
                "--out-dir",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
        == 0
    )
    windows = json.loads((tmp_path / "out" / "vfr_timeline.json").read_text())["windows"]
    assert [(w["start_s"], w["end_s"]) for w in windows] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]


def test_the_annotated_copy_of_a_phone_video_is_upright(tmp_path):
    sideways = np.ascontiguousarray(np.rot90(portrait_frames(frames=12), 1, axes=(1, 2)))
    video = set_display_rotation(write_frames(tmp_path / "phone.mp4", sideways), 90)
    ckpt = save_checkpoint(randomised(UniFormerV2(tiny_config())), tmp_path / "tiny.safetensors")
    assert (
        main(
            [
                "timeline",
                str(video),
                "--checkpoint",
                str(ckpt),
                "--out-dir",
                str(tmp_path / "out"),
                "--annotate",
                str(tmp_path / "annotated.mp4"),
                "--no-progress",
            ]
        )
        == 0
    )
    from uniformerv2.data import read_frames

    height, width = read_frames(tmp_path / "annotated.mp4", [0]).shape[1:3]
    assert (height, width) == (48, 32)


def test_window_and_stride_in_frames_are_counted_at_the_videos_rate_and_top_k_names_the_classes(tmp_path):
    video = write_frames(tmp_path / "ten_fps.mp4", portrait_frames(frames=40), fps=10)  # 4 s
    ckpt = save_checkpoint(randomised(UniFormerV2(tiny_config())), tmp_path / "tiny.safetensors")
    runs = {}
    for name, argv in (
        ("seconds", ["--window", "2s", "--stride", "1", "--top-k", "2"]),
        ("frames", ["--window", "20f", "--stride", "10f", "--top", "2"]),
    ):  # --top: the old spelling
        assert (
            main(
                [
                    "timeline",
                    str(video),
                    "--checkpoint",
                    str(ckpt),
                    "--out-dir",
                    str(tmp_path / name),
                    "--no-progress",
                    *argv,
                ]
            )
            == 0
        )
        runs[name] = json.loads((tmp_path / name / "ten_fps_timeline.json").read_text())
    windows = [(w["start_s"], w["end_s"]) for w in runs["frames"]["windows"]]
    assert windows == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)]
    assert windows == [(w["start_s"], w["end_s"]) for w in runs["seconds"]["windows"]]
    assert runs["frames"]["scores"] == runs["seconds"]["scores"]
    for window in runs["frames"]["windows"]:
        assert len(window["top"]) == 2
        assert all(t["probability"] == t["score"] for t in window["top"])  # the old name, kept for one release


def test_scan_reads_an_open_video_and_refuses_too_many_windows(tmp_path):
    from uniformerv2 import VideoClassifier
    from uniformerv2.data import open_video
    from uniformerv2.errors import UsageError
    from uniformerv2.timeline import scan

    ckpt = save_checkpoint(randomised(UniFormerV2(tiny_config())), tmp_path / "tiny.safetensors")
    clf = VideoClassifier.from_pretrained(ckpt, views=(1, 1))
    with open_video(DEMO) as reader:
        tl = scan(clf, reader, window="2s", stride=2.0, progress=False)
        assert tl.video == str(DEMO) and len(tl.starts) == 5 and tl.scores.shape == (5, 5)
        with pytest.raises(UsageError, match=r"^17 windows \(10.0 s at a stride of 0.5 s\); the limit is 10"):
            scan(clf, reader, stride="0.5s", max_windows=10, progress=False)
        assert reader.read([0]).shape[0] == 1  # still open
    assert tl.to_dict(top_k=1)["windows"][0]["top"][0]["label"] == tl.top1()[0][0]
