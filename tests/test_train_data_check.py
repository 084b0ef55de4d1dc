"""Bad annotation entries are all reported before training starts, or skipped with --skip-bad-samples."""

import numpy as np
import pytest

from helpers import train_config
from uniformerv2.check import PROBLEM_KINDS, BadSamplesError, check_samples
from uniformerv2.cli import main
from uniformerv2.demo import make_lamp_video, write_video
from uniformerv2.engine.train import Trainer


@pytest.fixture()
def bad_list(tmp_path):
    for k in range(3):
        write_video(
            tmp_path / f"good{k}.mp4", make_lamp_video(k, np.random.default_rng(k), frames=8, height=16, width=16)
        )
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    (tmp_path / "empty.mp4").write_bytes(b"")
    lines = [
        "good0.mp4 0",
        "missing.mp4 1",
        "good1.mp4 7",
        "corrupt.mp4 2",
        "good2.mp4 2",
        "empty.mp4 0",
        "gone/also_missing.mp4 9",
    ]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def _cfg(root, **kw):
    return train_config(root, root / "work", dropout_ratio=0.5, num_classes=3, epochs=1, batch_size=2, **kw)


def test_every_problem_is_reported_before_training(bad_list):
    with pytest.raises(BadSamplesError) as info:
        Trainer(_cfg(bad_list)).fit()
    problems = info.value.problems
    by_path = {}
    for p in problems:
        by_path.setdefault(p.path.rsplit("/", 1)[-1], set()).add(p.kind)
    # the kinds of `uniformerv2 check` (PROBLEM_KINDS): corrupt.mp4's second MP4 box runs past its end
    assert by_path == {
        "missing.mp4": {"missing"},
        "good1.mp4": {"label-out-of-range"},
        "corrupt.mp4": {"truncated"},
        "empty.mp4": {"empty"},
        "also_missing.mp4": {"missing", "label-out-of-range"},
    }
    assert {p.kind for p in problems} <= set(PROBLEM_KINDS)  # one vocabulary for train and check
    msg = str(info.value)
    for name in ("missing.mp4", "good1.mp4", "corrupt.mp4", "empty.mp4", "also_missing.mp4", "--skip-bad-samples"):
        assert name in msg
    assert "label 7 out of range [0, 3)" in msg
    assert not (bad_list / "work" / "checkpoints").exists()  # nothing trained
    report = (bad_list / "work" / "bad_samples_train.txt").read_text().splitlines()
    assert len(report) == len(problems) == 6


def test_skip_bad_samples_trains_on_the_rest(bad_list):
    result = Trainer(_cfg(bad_list, skip_bad_samples=True)).fit()
    assert result.steps == 1  # 2 good videos, batch 2
    assert result.model_path.is_file()


def test_check_samples_without_decoding(bad_list):
    from uniformerv2.data import read_annotation_list

    samples = read_annotation_list(bad_list / "train.txt", bad_list)
    kinds = sorted(p.kind for p in check_samples(samples, 3, decode=False))
    assert kinds == ["label-out-of-range", "label-out-of-range", "missing", "missing"]


def test_cli_reports_bad_samples(bad_list, capsys):
    rc = main(
        [
            "train",
            "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb",
            "--init",
            "none",
            "--num-classes",
            "3",
            "--ann-file",
            str(bad_list / "train.txt"),
            "--data-root",
            str(bad_list),
            "--work-dir",
            str(bad_list / "cli"),
            "--device",
            "cpu",
            "--no-progress",
            "--set",
            "input_resolution=16",
            "patch_size=8",
            "width=32",
            "layers=2",
            "heads=2",
            "return_list=[1]",
            "n_layers=1",
            "n_dim=32",
            "n_head=2",
            "mlp_dropout=[0.0]",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "6 bad entries" in err and "corrupt.mp4" in err and "also_missing.mp4" in err
