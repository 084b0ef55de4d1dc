"""`uniformerv2 extract` and the feature API: kinds, MMAction2 parity, windows, resume after a kill, torchrun."""

from __future__ import annotations

import ast
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import FIXTURES, SHARED, randomised, tiny_config, write_frames
from uniformerv2 import Protocol, VideoClassifier, create_model, save_checkpoint
from uniformerv2.cli import main
from uniformerv2.data import normalize, read_frames, views_from_frames
from uniformerv2.duration import Duration
from uniformerv2.features import VideoJob, WindowSpec, assign_outputs, collect_videos, plan_windows, read_journal
from uniformerv2.model import FEATURE_KINDS, UniFormerV2

GOLDEN = FIXTURES / "extract"
VIDEOS = SHARED / "data" / "videos"
SRC = str(Path(__file__).resolve().parents[1] / "src")
# the architecture of the golden checkpoint (tests/fixtures/extract/README.md), as --set overrides
GOLDEN_SET = [
    "width=32",
    "layers=3",
    "heads=2",
    "n_dim=32",
    "n_head=2",
    "return_list=[1,2]",
    "n_layers=2",
    "mlp_dropout=[0.5,0.5]",
    "input_resolution=64",
    "patch_size=16",
    "t_size=8",
    "no_lmhra=False",
    "double_lmhra=True",
]
GOLDEN_PRESET = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb"


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))


def _journal_done(out: Path) -> list[dict]:
    return [r for r in read_journal(out)[1] if r.get("event") == "done"]


# ---------------------------------------------------------------------------------------------- shared data


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """8 small H.264 videos in two folders (frame i has brightness 6 i, plus texture), a corrupt and an empty
    file, an annotation list of them all, and a tiny randomised model's .safetensors."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(8):
        n = 12 + 3 * i
        frames = np.clip(rng.integers(0, 80, (n, 40, 56, 3)) + 6 * np.arange(n)[:, None, None, None], 0, 255)
        rel = f"{'ab'[i % 2]}/clip{i}.mp4"
        write_frames(root / rel, frames.astype(np.uint8), fps=10)
        lines.append(rel)
    (root / "a" / "corrupt.mp4").write_bytes(np.random.default_rng(9).bytes(3000))
    (root / "b" / "empty.mp4").write_bytes(b"")
    lines[3:3] = ["a/corrupt.mp4"]
    lines.append("b/empty.mp4")
    (root / "list.txt").write_text("\n".join(f"{line} 0" for line in lines) + "\n")
    model = randomised(UniFormerV2(tiny_config()), seed=4)
    ckpt = save_checkpoint(model, root / "tiny.safetensors")
    return dict(root=root, ann=root / "list.txt", lines=lines, ckpt=ckpt)


def _cli_args(corpus: dict, out: Path, *extra: str) -> list[str]:
    return [
        "extract",
        "--ann-file",
        str(corpus["ann"]),
        "--data-root",
        str(corpus["root"]),
        "--out-dir",
        str(out),
        "--checkpoint",
        str(corpus["ckpt"]),
        "--dtype",
        "float32",
        "--workers",
        "0",
        "--no-progress",
        "--views",
        "2x3",
        *extra,
    ]


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """One uninterrupted single-process run over the corpus (video mode, 2x3 views)."""
    out = tmp_path_factory.mktemp("reference")
    assert main(_cli_args(corpus, out, "--batch-views", "6")) == 3  # two bad videos
    return out


# ------------------------------------------------------------------------------------------------- the model


def test_feature_kinds_shapes_and_how_they_make_the_pooled_feature(tiny_model, video):
    with torch.no_grad():
        pooled = tiny_model.forward_features(video)
        assert torch.equal(pooled, tiny_model.forward_features(video, kind="pooled"))
        out = {k: tiny_model.forward_features(video, kind=k) for k in FEATURE_KINDS}
        logits = tiny_model(video)
    n, t, c = video.shape[0], video.shape[2], tiny_model.cfg.n_dim
    assert out["video-token"].shape == (n, c) and out["frame-cls"].shape == (n, t, c)
    assert out["patch-mean"].shape == (n, t, c) and out["logits"].shape == (n, 5)
    torch.testing.assert_close(out["logits"], logits)
    torch.testing.assert_close(out["probs"], logits.softmax(-1))
    # the head's feature is the fusion of the video token with the frames' class tokens
    tr = tiny_model.backbone.transformer
    w = torch.sigmoid(tr.balance)
    torch.testing.assert_close(pooled, tr.norm((1 - w) * out["video-token"] + w * out["frame-cls"].mean(1)))
    assert not torch.allclose(out["patch-mean"], out["frame-cls"])
    with pytest.raises(ValueError, match="unknown feature kind"):
        tiny_model.forward_features(video, kind="cls")


def test_frame_kinds_count_temporal_tokens_after_temporal_downsampling():
    model = randomised(UniFormerV2(tiny_config(temporal_downsample=True, t_size=8)))
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        assert model.forward_features(x, kind="frame-cls").shape == (1, 4, 32)
        assert model.forward_features(x, kind="patch-mean").shape == (1, 4, 32)


def test_video_classifier_features_average_the_test_views(tiny_model):
    tiny_model.pretrained_cfg = tiny_model.pretrained_cfg.replace(protocol=Protocol(4, 32, clips=2, crops=3))
    clf = VideoClassifier(tiny_model, batch_views=4)
    frames = np.random.default_rng(1).integers(0, 255, (20, 40, 48, 3)).astype(np.uint8)
    per_view = clf.features(frames, kind="frame-cls", average=False)
    assert per_view.shape == (6, 4, 32)
    torch.testing.assert_close(clf.features(frames, kind="frame-cls"), per_view.mean(0))
    with torch.no_grad():
        expected = tiny_model.forward_features(normalize(clf.views(frames))).mean(0)
    torch.testing.assert_close(clf.features(frames), expected)
    torch.testing.assert_close(clf.features(frames, kind="probs"), clf.scores(frames))


# ------------------------------------------------------------------------------------- parity with MMAction2


def test_video_mode_equals_mmaction2_clip_feature_extraction(tmp_path, capsys):
    """The golden vectors are MMAction2 1.2.0's tools/misc/clip_feature_extraction.py output (fixture README)."""
    names = (GOLDEN / "videos.txt").read_text().split()
    out = tmp_path / "feats"
    code = main(
        [
            "extract",
            "--ann-file",
            str(GOLDEN / "videos.txt"),
            "--data-root",
            str(VIDEOS),
            "--out-dir",
            str(out),
            "--model",
            GOLDEN_PRESET,
            "--checkpoint",
            str(GOLDEN / "checkpoint.pth"),
            "--set",
            *GOLDEN_SET,
            "--dtype",
            "float32",
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["protocol"] == Protocol(8, 64, clips=4, crops=3).to_dict()  # the config's 4x3
    for name in names:
        golden = np.load(GOLDEN / f"{name}.npy")
        ours = np.load(out / Path(name).with_suffix(".npy"))
        assert ours.shape == golden.shape == (32,) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, golden, rtol=0, atol=1e-4)
    # the tolerance is far below what a wrong view set would change: one centre clip moves the vector by > 1e-2
    model = create_model(
        GOLDEN_PRESET,
        checkpoint=GOLDEN / "checkpoint.pth",
        **{k: ast.literal_eval(v) for k, v in (s.split("=") for s in GOLDEN_SET)},
    )
    one = VideoClassifier(model, Protocol(8, 64, clips=1, crops=1)).features(VIDEOS / names[0]).numpy()
    assert np.abs(one - np.load(GOLDEN / f"{names[0]}.npy")).max() > 1e-2


# -------------------------------------------------------------------------------------------------- windows


def test_windows_in_frames_are_exactly_as_documented():
    times = np.arange(40) / 10  # 40 frames at 10 fps
    plan = plan_windows(times, 10.0, WindowSpec(window="16f", stride="4f"), frames=8)
    assert len(plan) == 7  # starts 0, 4, ..., 24: the last whole window ends at frame 40
    assert plan.start_frame.tolist() == [0, 4, 8, 12, 16, 20, 24] and (plan.end_frame - plan.start_frame == 16).all()
    np.testing.assert_allclose(plan.starts_s, 0.4 * np.arange(7))
    np.testing.assert_allclose(plan.ends_s, 0.4 * np.arange(7) + 1.6)
    assert plan.indices.tolist() == [[4 * i + k for k in (1, 3, 5, 7, 9, 11, 13, 15)] for i in range(7)]
    assert (plan.window_frames, plan.stride_frames, plan.window_s, plan.stride_s) == (16, 4, 1.6, 0.4)
    # seconds on a constant-rate video cut the same windows
    by_time = plan_windows(times, 10.0, WindowSpec(window="1.6s", stride="0.4s"), frames=8)
    assert by_time.indices.tolist() == plan.indices.tolist()
    np.testing.assert_allclose(by_time.starts_s, plan.starts_s)
    np.testing.assert_allclose(by_time.ends_s, plan.ends_s)
    # align_end adds one window that ends with the video; a short video is one window over all of it
    tail = plan_windows(np.arange(42) / 10, 10.0, WindowSpec(window="16f", stride="4f", align_end=True), frames=8)
    assert tail.start_frame.tolist()[-2:] == [24, 26] and tail.end_frame[-1] == 42
    short = plan_windows(np.arange(10) / 10, 10.0, WindowSpec(window="16f", stride="4f"), frames=4)
    assert len(short) == 1 and short.end_frame.tolist() == [10] and short.indices.tolist() == [[1, 3, 6, 8]]


def test_fps_resamples_time_before_cutting_windows():
    times = np.arange(40) / 10  # 4 s at 10 fps, resampled to 5 fps: 20 frames, frame k is video frame 2 k
    plan = plan_windows(times, 10.0, WindowSpec(window="8f", stride="4f", fps=5), frames=4)
    assert plan.start_frame.tolist() == [0, 4, 8, 12] and plan.fps == 5
    assert plan.indices.tolist() == [[2 * (s + k) for k in (1, 3, 5, 7)] for s in (0, 4, 8, 12)]
    np.testing.assert_allclose(plan.starts_s, [0, 0.8, 1.6, 2.4])
    np.testing.assert_allclose(plan.ends_s, plan.starts_s + 1.6)
    # seconds are whole frames of the resampled line: 1.6 s = 8 frames, 0.8 s = 4 at 5 fps
    same = plan_windows(times, 10.0, WindowSpec(window="1.6s", stride="0.8s", fps=5), frames=4)
    assert same.indices.tolist() == plan.indices.tolist()
    up = plan_windows(times, 10.0, WindowSpec(window="16f", stride="16f", fps=20), frames=4)  # 80 frames at 20 fps
    assert up.indices.tolist() == [[k // 2 for k in range(s + 2, s + 16, 4)] for s in (0, 16, 32, 48, 64)]


def test_window_lengths_are_durations():
    spec = WindowSpec(window="16f", stride="2s")
    assert spec.window == Duration(16, "f") and spec.stride == Duration(2, "s")
    assert WindowSpec(window="16").window == Duration(16, "s")  # a bare number is seconds, as everywhere
    assert str(WindowSpec(window="0.5s").window) == "0.5s" and WindowSpec() == WindowSpec(window="16f", stride="4f")
    assert WindowSpec().to_dict() == {"window": "16f", "stride": "4f", "fps": None, "crops": 1, "align_end": True}
    for bad in ("0", "-2s", "1.5f", "abc"):
        with pytest.raises(ValueError):
            WindowSpec(window=bad)


def test_windows_cli_writes_one_row_per_window_from_the_documented_frames(corpus, tmp_path):
    video = corpus["root"] / "b" / "clip7.mp4"  # 33 frames at 10 fps
    out = tmp_path / "win"
    assert (
        main(
            [
                "extract",
                str(video),
                "--out-dir",
                str(out),
                "--checkpoint",
                str(corpus["ckpt"]),
                "--mode",
                "windows",
                "--window",
                "16f",
                "--stride",
                "4f",
                "--crops",
                "3",
                "--no-align-end",  # the strictly regular grid the help documents
                "--dtype",
                "float32",
                "--workers",
                "1",
                "--no-progress",
                "--batch-views",
                "7",
            ]
        )
        == 0
    )
    feats = np.load(out / "clip7.npy")
    rows = list(csv.DictReader(open(out / "clip7.windows.csv")))
    assert feats.shape == (5, 32) and len(rows) == 5  # starts 0, 4, 8, 12, 16 (16 + 16 <= 33)
    assert [int(r["start_frame"]) for r in rows] == [0, 4, 8, 12, 16]
    assert [float(r["start_s"]) for r in rows] == pytest.approx([0, 0.4, 0.8, 1.2, 1.6])
    assert [float(r["end_s"]) for r in rows] == pytest.approx([1.6, 2.0, 2.4, 2.8, 3.2])
    indices = [[int(v) for v in r["frames"].split()] for r in rows]
    assert indices == [[s + 2, s + 6, s + 10, s + 14] for s in (0, 4, 8, 12, 16)]  # 4 frames per window
    # each row is the mean over the three crops of the window's frames, computed here independently
    model = create_model(str(corpus["ckpt"]))
    with torch.no_grad():
        for w, idx in enumerate(indices):
            views = views_from_frames(read_frames(video, idx), Protocol(4, 32, clips=1, crops=3))
            np.testing.assert_allclose(feats[w], model.forward_features(normalize(views)).mean(0).numpy(), atol=2e-6)
    row = json.loads((out / "manifest.json").read_text())["videos"][0]
    assert (row["num_windows"], row["window_frames"], row["stride_frames"], row["fps"], row["frames"]) == (
        5,
        16,
        4,
        10,
        33,
    )
    assert (row["feat_stride"], row["num_frames"], row["default_fps"]) == (4, 16, 10)
    assert row["window_s"] == pytest.approx(1.6) and row["duration_s"] == pytest.approx(3.3)


def test_safetensors_output_carries_the_windows(corpus, tmp_path):
    from safetensors.numpy import load_file

    video = corpus["root"] / "a" / "clip2.mp4"  # 18 frames
    out = tmp_path / "st"
    assert (
        main(
            [
                "extract",
                str(video),
                "--out-dir",
                str(out),
                "--checkpoint",
                str(corpus["ckpt"]),
                "--mode",
                "windows",
                "--window",
                "8f",
                "--stride",
                "2f",
                "--fps",
                "5",
                "--kind",
                "frame-cls",
                "--format",
                "safetensors",
                "--no-align-end",
                "--dtype",
                "float32",
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    data = load_file(out / "clip2.safetensors")
    assert data["features"].shape == (1, 4, 32)  # 9 frames at 5 fps: one window of 8; [windows, T, C]
    assert data["start_s"].tolist() == [0.0] and data["end_s"].tolist() == pytest.approx([1.6])
    assert data["frame_indices"].tolist() == [[2, 6, 10, 14]]


def test_a_bare_window_is_seconds_with_a_note_and_the_manifest_records_the_unit(corpus, tmp_path, capsys):
    video = corpus["root"] / "a" / "clip2.mp4"  # 18 frames at 10 fps
    args = [
        "extract",
        str(video),
        "--checkpoint",
        str(corpus["ckpt"]),
        "--mode",
        "windows",
        "--dtype",
        "float32",
        "--workers",
        "0",
        "--no-progress",
    ]
    assert main([*args, "--out-dir", str(tmp_path / "s"), "--window", "0.8", "--stride", "0.4", "--cover-end"]) == 0
    err = capsys.readouterr().err
    assert (
        "note: --window 0.8 is 0.8 seconds (a bare number is seconds in every command); write a whole number "
        "of frames with f (16f) for frames"
        in err
        and "note: --stride 0.4 is 0.4 seconds" in err
    )
    assert main([*args, "--out-dir", str(tmp_path / "f"), "--window", "8f", "--stride", "4f", "--align-end"]) == 0
    assert "note:" not in capsys.readouterr().err
    seconds, frames = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("s", "f"))
    assert seconds["settings"]["windows"] == {
        "window": "0.8s",
        "stride": "0.4s",
        "fps": None,
        "crops": 1,
        "align_end": True,
    }
    assert frames["settings"]["windows"] == {"window": "8f", "stride": "4f", "fps": None, "crops": 1, "align_end": True}
    # 0.8 s and 0.4 s at 10 fps are 8 and 4 frames: the same windows, the last one ending with the video
    rows = [list(csv.DictReader(open(tmp_path / d / "clip2.windows.csv"))) for d in ("s", "f")]
    assert [r["frames"] for r in rows[0]] == [r["frames"] for r in rows[1]]
    assert [int(r["end_frame"]) for r in rows[1]] == [8, 12, 16, 18]
    assert seconds["videos"][0]["duration_s"] == frames["videos"][0]["duration_s"] == pytest.approx(1.8)
    with pytest.raises(SystemExit) as exit:
        main([*args, "--out-dir", str(tmp_path / "x"), "--window", "1.5f"])
    assert exit.value.code == 2
    assert "argument --window: '1.5f': a length in frames is a whole number" in capsys.readouterr().err


def test_a_journal_written_before_align_end_and_16f_still_resumes(corpus, tmp_path, capsys):
    video = corpus["root"] / "a" / "clip2.mp4"
    args = [
        "extract",
        str(video),
        "--out-dir",
        str(tmp_path),
        "--checkpoint",
        str(corpus["ckpt"]),
        "--mode",
        "windows",
        "--window",
        "8f",
        "--no-align-end",  # what cover_end=False, the old default, meant
        "--dtype",
        "float32",
        "--workers",
        "0",
        "--no-progress",
    ]
    assert main([*args, "--stride", "4f"]) == 0
    log = tmp_path / "manifest.log.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    for entry in entries:  # as the releases before the duration vocabulary wrote them
        if entry["event"] == "start":
            entry["settings"]["windows"] = {"window": "8", "stride": "4", "fps": None, "crops": 1, "cover_end": False}
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    capsys.readouterr()
    assert main([*args, "--stride", "4f"]) == 0
    assert "extracted 0 of 1 videos, 1 already done" in capsys.readouterr().out
    assert main([*args, "--stride", "2f"]) == 1
    assert "other settings (windows: {'window': '8f', 'stride': '4f'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- manifest and failures


def test_manifest_lists_every_video_and_the_failures_with_their_reason(corpus, reference, capsys):
    manifest = json.loads((reference / "manifest.json").read_text())
    rows = manifest["videos"]
    assert [r["video"] for r in rows] == corpus["lines"]  # input order
    assert manifest["counts"] == {"ok": 8, "failed": 2, "pending": 0}
    failed = {r["video"]: r["reason"] for r in rows if r["status"] == "failed"}
    assert set(failed) == {"a/corrupt.mp4", "b/empty.mp4"} and failed["b/empty.mp4"] == "empty file (0 bytes)"
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:
        assert np.load(reference / r["output"]).shape == (32,) and r["feature_dim"] == 32 and r["views"] == 6
        assert r["checkpoint"] == "tiny.safetensors" and len(r["checkpoint_sha256"]) == 64
    assert ok[0]["output"] == "a/clip0.npy" and ok[0]["frames"] == 12 and ok[0]["fps"] == 10
    with open(reference / "manifest.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == [r["status"] for r in rows]


def test_rerun_skips_finished_videos_retries_failures_and_refuses_other_settings(corpus, reference, tmp_path, capsys):
    out = tmp_path / "again"
    assert main(_cli_args(corpus, out)) == 3
    err = capsys.readouterr().err
    assert sum(line.startswith("failed: ") for line in err.splitlines()) == 2
    assert main(_cli_args(corpus, out)) == 3  # the two bad videos are tried again, the others skipped
    captured = capsys.readouterr()
    assert "extracted 0 of 10 videos, 8 already done, 2 failed" in captured.out
    assert len(_journal_done(out)) == 8
    for rel in corpus["lines"][:3]:
        np.testing.assert_allclose(
            np.load(out / Path(rel).with_suffix(".npy")), np.load(reference / Path(rel).with_suffix(".npy")), atol=1e-6
        )
    assert main(_cli_args(corpus, out, "--kind", "video-token")) == 1
    assert "other settings (kind: 'pooled' there, 'video-token' now)" in capsys.readouterr().err
    assert main(_cli_args(corpus, out, "--kind", "video-token", "--overwrite")) == 3
    assert len(_journal_done(out)) == 8  # the journal starts afresh
    # a feature file changed behind the manifest's back is redone
    (out / "a" / "clip0.npy").write_bytes(b"garbage")
    assert main(_cli_args(corpus, out, "--kind", "video-token")) == 3
    assert "extracted 1 of 10 videos, 7 already done" in capsys.readouterr().out


def test_output_names_follow_relative_paths_and_keep_the_extension_only_on_a_clash(tmp_path):
    jobs = assign_outputs(
        [VideoJob(0, "/v/x/a.mp4", "x/a.mp4"), VideoJob(1, "/v/x/a.avi", "x/a.avi"), VideoJob(2, "/v/b.mkv", "b.mkv")],
        "npy",
    )
    assert [j.output for j in jobs] == ["x/a.mp4.npy", "x/a.avi.npy", "b.npy"]
    for name in ("x/one.mp4", "x/deep/two.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [j.rel for j in collect_videos([str(tmp_path / "x")])] == ["deep/two.mp4", "one.mp4"]
    assert [j.rel for j in collect_videos([str(tmp_path / "x" / "*.mp4")])] == ["one.mp4"]
    with pytest.raises(ValueError, match="relative path of two videos"):
        assign_outputs([VideoJob(0, "/a/v.mp4", "v.mp4"), VideoJob(1, "/b/v.mp4", "v.mp4")], "npy")


def test_find_videos_names_each_video_relative_to_what_named_it(tmp_path):
    from uniformerv2.data import InputVideo, expand_inputs, find_videos

    for name in ("x/one.mp4", "x/deep/two.mp4", "x/notes.txt", "solo.avi"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.txt").write_text("x/one.mp4 0\nsolo.avi 1\n")
    items = [
        str(tmp_path / "x"),
        str(tmp_path / "x" / "**" / "*.mp4"),
        str(tmp_path / "solo.avi"),
        str(tmp_path / "empty"),
        str(tmp_path / "none*.mp4"),
    ]
    found = find_videos(items, ann_file=tmp_path / "list.txt", data_root=tmp_path)
    assert [v.rel for v in found] == [
        "x/one.mp4",
        "solo.avi",
        "deep/two.mp4",
        "one.mp4",
        "deep/two.mp4",
        "one.mp4",
        "solo.avi",
        str(tmp_path / "empty"),
        "none*.mp4",
    ]
    assert found[0] == InputVideo(str(tmp_path / "x/one.mp4"), "x/one.mp4")
    assert found[-2].path == str(tmp_path / "empty") and found[-1].path == str(tmp_path / "none*.mp4")  # reported
    assert expand_inputs(items) == [v.path for v in found[2:]]


# ---------------------------------------------------------------------------------------- kill and resume


def test_a_run_killed_part_way_resumes_without_redoing_finished_videos(corpus, reference, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "uniformerv2.cli", *_cli_args(corpus, out, "--batch-views", "6")]
    env = {k: v for k, v in _env().items() if k != "OMP_NUM_THREADS"}  # the threads of the reference run
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "manifest.log.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and '"event": "done"' in log.read_text():
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = {r["video"] for r in _journal_done(out)}
    assert 1 <= len(before) < 8, "the run was not killed part-way"

    assert main(_cli_args(corpus, out, "--batch-views", "6")) == 3
    done = [r["video"] for r in _journal_done(out)]
    # every good video was extracted exactly once over the two runs: none of the first run's is redone
    assert len(done) == len(set(done)) == 8 and before <= set(done)
    assert len({r["run"] for r in _journal_done(out)}) == 2
    for rel in corpus["lines"]:
        if "clip" in rel:
            name = Path(rel).with_suffix(".npy")
            assert np.array_equal(np.load(out / name), np.load(reference / name)), rel
    assert not list(out.rglob("*.tmp"))
    assert json.loads((out / "manifest.json").read_text())["counts"] == {"ok": 8, "failed": 2, "pending": 0}


# ------------------------------------------------------------------------------------------------- torchrun


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_main_process_first_is_a_plain_block_in_one_process():
    from uniformerv2.engine.distributed import main_process_first

    ran = []
    with main_process_first():
        ran.append(1)
    assert ran == [1]
    with pytest.raises(KeyError), main_process_first():
        raise KeyError("the block's error is the caller's")


def test_torchrun_processes_take_disjoint_shares_and_give_the_single_process_files(corpus, reference, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "uniformerv2.cli",
        *_cli_args(corpus, out),
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]  # under torchrun a partial result exits 0
    assert proc.stdout.count("extracted 8 of 10 videos, 2 failed") == 1  # rank 0 reports, once
    assert sum(line.startswith("failed: ") for line in proc.stderr.splitlines()) == 2
    records = [r for r in read_journal(out)[1] if r.get("event") in ("done", "failed")]
    assert {r["rank"] for r in records} == {0, 1}
    assert sorted(r["video"] for r in records) == sorted(corpus["lines"])  # each video once, by one process
    ours = json.loads((out / "manifest.json").read_text())["videos"]
    single = json.loads((reference / "manifest.json").read_text())["videos"]
    assert [(r["video"], r["status"], r["output"]) for r in ours] == [
        (r["video"], r["status"], r["output"]) for r in single
    ]
    for r in single:
        if r["status"] == "ok":
            np.testing.assert_allclose(np.load(out / r["output"]), np.load(reference / r["output"]), rtol=0, atol=1e-6)
