"""`predict` and VideoClassifier as a new user runs them, offline, on the shared demo video."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import uniformerv2
from helpers import SHARED, randomised, tiny_config, write_frames
from uniformerv2 import VideoClassifier, save_checkpoint
from uniformerv2.data import probe_num_frames, read_frames
from uniformerv2.model import UniFormerV2

DEMO = SHARED / "data" / "videos" / "demo.mp4"
B16 = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return save_checkpoint(randomised(UniFormerV2(tiny_config(no_lmhra=False))), path)


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("".join(f"action {i}\n" for i in range(5)))
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uniformerv2.cli", "predict", *args], capture_output=True, text=True)


def test_predict_prints_rank_class_and_probability(checkpoint, labels):
    proc = cli(str(DEMO), "--checkpoint", str(checkpoint), "--labels", str(labels), "--top-k", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == str(DEMO)
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3"]
    assert all("action" in line and line.endswith("%") for line in lines[1:])


def test_predict_json_is_parseable_and_ranked(checkpoint, labels):
    proc = cli(str(DEMO), "--checkpoint", str(checkpoint), "--labels", str(labels), "--json")
    out = json.loads(proc.stdout)
    preds = out["results"][0]["predictions"]
    probs = [p["score"] for p in preds]
    assert all(p["probability"] == p["score"] for p in preds)  # the old name, kept for one release
    assert out["failed"] == 0 and len(preds) == 5
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert {p["label"] for p in preds} == {f"action {i}" for i in range(5)}


def test_each_bad_input_gets_one_line_and_the_good_ones_are_still_classified(checkpoint, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("not a video")
    (tmp_path / "truncated.mp4").write_bytes(DEMO.read_bytes()[:2000])
    (tmp_path / "folder").mkdir()
    bad = ["empty.mp4", "notes.mp4", "truncated.mp4", "folder", "missing.mp4"]
    proc = cli(*(str(tmp_path / b) for b in bad), str(DEMO), "--checkpoint", str(checkpoint), "--json")
    assert proc.returncode == 3  # finished: the good video is classified, the bad ones listed
    assert json.loads(proc.stdout)["results"][0]["video"] == str(DEMO)
    err = proc.stderr.strip().splitlines()
    assert len(err) == len(bad) and "Traceback" not in proc.stderr
    for name, line in zip(bad, err):
        assert line.startswith(str(tmp_path / name) + ": ")


def test_a_folder_expands_to_its_videos(checkpoint):
    proc = cli(str(DEMO.parent), "--checkpoint", str(checkpoint), "--json")
    videos = {r["video"] for r in json.loads(proc.stdout)["results"]}
    assert videos == {str(p) for p in DEMO.parent.iterdir() if p.suffix in (".mp4", ".avi")}


def test_classifier_gives_the_same_answer_for_a_file_and_its_decoded_frames(checkpoint):
    clf = VideoClassifier.from_pretrained(checkpoint)
    frames = read_frames(DEMO, range(probe_num_frames(DEMO)))
    assert clf.predict(str(DEMO)) == clf.predict(frames)


def test_classifier_takes_class_names_and_protocol_from_the_preset(tmp_path):
    model = randomised(UniFormerV2(tiny_config(num_classes=400)))
    path = save_checkpoint(model, tmp_path / "k400.pth", fmt="mmaction2")
    tiny = {k: v for k, v in tiny_config().to_dict().items() if k not in ("num_classes",)}
    clf = VideoClassifier.from_pretrained(B16, checkpoint=path, **tiny)
    assert clf.class_names[0] == "abseiling" and len(clf.class_names) == 400
    assert (clf.protocol.clips, clf.protocol.crops, clf.protocol.frames) == (4, 3, 8)
    label, prob = clf.predict(str(DEMO), top_k=1)[0]
    assert label in clf.class_names and 0 < prob <= 1


def test_videos_scored_together_get_the_scores_they_get_alone(checkpoint):
    from uniformerv2.inference import probabilities

    clf = VideoClassifier.from_pretrained(checkpoint, dtype="float32")
    a, b = clf.views(str(DEMO)), clf.views(str(DEMO))[:5]
    together = clf.scores_of_videos([a, b])
    assert together.shape == (2, 5)
    assert torch.allclose(together[0], clf.scores_of_views(a), atol=1e-6)
    assert torch.allclose(together[1], clf.scores_of_views(b), atol=1e-6)
    with torch.inference_mode():  # a subset of the classes: the softmax over those rows alone
        logits = clf.model(uniformerv2.data.normalize(a))
    assert torch.allclose(probabilities(logits, [3, 1]), logits[:, [3, 1]].softmax(-1).mean(0))
    assert clf.top_k(together[0], 2) == clf.predict(str(DEMO), top_k=2)


def test_frames_of_the_wrong_layout_are_refused_with_the_expected_one(checkpoint):
    clf = VideoClassifier.from_pretrained(checkpoint)
    with pytest.raises(ValueError, match=r"uint8 \[frames, height, width, 3\]"):
        clf.predict(np.zeros((8, 3, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        clf.predict(torch.zeros(8, 32, 32, 3))


def test_predict_with_bf16_and_compile_agrees_with_the_fp32_eager_probabilities(checkpoint, labels):
    plain = json.loads(cli(str(DEMO), "--checkpoint", str(checkpoint), "--labels", str(labels), "--json").stdout)
    proc = cli(
        str(DEMO),
        "--checkpoint",
        str(checkpoint),
        "--labels",
        str(labels),
        "--json",
        "--dtype",
        "bfloat16",
        "--compile",
    )
    assert proc.returncode == 0, proc.stderr
    fast = json.loads(proc.stdout)
    expected = {p["label"]: p["score"] for p in plain["results"][0]["predictions"]}
    got = {p["label"]: p["score"] for p in fast["results"][0]["predictions"]}
    assert got.keys() == expected.keys()
    for label, prob in expected.items():
        assert got[label] == pytest.approx(prob, abs=0.02)


def test_classifier_runs_the_network_under_the_requested_autocast_dtype(checkpoint):
    clf = VideoClassifier.from_pretrained(checkpoint, dtype="bf16")
    seen = []
    clf.model.cls_head.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    clf.predict(str(DEMO))
    assert seen and set(seen) == {torch.bfloat16}


def test_when_every_video_fails_the_exit_status_is_1_and_json_lists_them(checkpoint, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    proc = cli(str(tmp_path / "empty.mp4"), str(tmp_path / "missing.mp4"), "--checkpoint", str(checkpoint), "--json")
    assert proc.returncode == 1
    failures = json.loads(proc.stdout)["failures"]
    assert [f["path"] for f in failures] == [str(tmp_path / "empty.mp4"), str(tmp_path / "missing.mp4")]
    assert failures[0]["reason"] == "empty file (0 bytes)"


@pytest.mark.parametrize("option", [["--top-k", "0"], ["--frames", "0"]])
def test_zero_counts_are_usage_errors(checkpoint, option):
    proc = cli(str(DEMO), "--checkpoint", str(checkpoint), *option)
    assert proc.returncode == 2 and f"argument {option[0]}: '0': must be at least 1" in proc.stderr


def test_set_does_not_swallow_the_video_after_it(checkpoint):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "uniformerv2.cli",
            "predict",
            "--set",
            "dropout_ratio=0.0",
            str(DEMO),
            "--checkpoint",
            str(checkpoint),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["video"] == str(DEMO)


def test_a_still_image_named_mp4_is_classified_with_a_warning(checkpoint, tmp_path):
    still = write_frames(tmp_path / "still.mp4", np.full((1, 32, 32, 3), 128, np.uint8))
    proc = cli(str(still), "--checkpoint", str(checkpoint))
    assert proc.returncode == 0, proc.stderr
    assert f"uniformerv2: warning: {still}: a single frame (a still image?)" in proc.stderr


def test_a_checkpoint_without_its_architecture_asks_for_model_preset(tmp_path):
    pth = uniformerv2.save_checkpoint(UniFormerV2(tiny_config()), tmp_path / "m.pth", fmt="mmaction2")
    proc = cli(str(DEMO), "--checkpoint", str(pth))
    assert proc.returncode == 1 and "--model PRESET" in proc.stderr and "Traceback" not in proc.stderr
