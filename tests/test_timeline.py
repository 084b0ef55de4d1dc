"""`timeline`: sliding windows over a long video, their plot, tables and an annotated copy."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from uniformerv2 import save_checkpoint
from uniformerv2.cli import main
from uniformerv2.data import probe_num_frames
from uniformerv2.model import UniFormerV2
from uniformerv2.timeline import window_indices

from helpers import SHARED, randomised, tiny_config

DEMO = SHARED / "data" / "videos" / "demo.mp4"


def test_windows_step_by_the_stride_and_the_last_one_reaches_the_end():
    starts, idx = window_indices(num_frames=95, fps=10, window_s=2, stride_s=1, frames=4)
    assert starts.tolist()[:3] == [0, 10, 20] and starts[-1] == 95 - 20
    assert idx.shape == (len(starts), 4)
    assert all(s <= i.min() and i.max() < s + 20 for s, i in zip(starts, idx))
    assert (np.diff(idx, axis=1) > 0).all()


def test_a_video_shorter_than_the_window_is_one_window():
    starts, idx = window_indices(num_frames=7, fps=10, window_s=2, stride_s=1, frames=4)
    assert starts.tolist() == [0] and idx.max() < 7


@pytest.fixture(scope="module")
def timeline_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("timeline")
    ckpt = save_checkpoint(randomised(UniFormerV2(tiny_config())), tmp / "tiny.safetensors")
    code = main(["timeline", str(DEMO), "--checkpoint", str(ckpt), "--window", "2s", "--stride", "1s",
                 "--out-dir", str(tmp / "out"), "--annotate", str(tmp / "annotated.mp4"), "--no-progress"])
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
