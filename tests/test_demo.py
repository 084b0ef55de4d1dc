"""The offline demo: its videos, the frame-shuffling control, and a shortened end-to-end run (seconds)."""

import json

import numpy as np
import pytest
import torch

from uniformerv2.cli import main
from uniformerv2.demo import CLASS_NAMES, ORDERS, DemoConfig, ShuffleFrames, make_lamp_video, run_demo


def _lit_row(frame):
    """The vertical third (0 top, 1 middle, 2 bottom) holding the brightest pixels of a frame."""
    rows = frame.astype(float).sum(axis=(1, 2))
    h = len(rows)
    return int(np.argmax([rows[: h // 3].max(), rows[h // 3 : 2 * h // 3].max(), rows[2 * h // 3 :].max()]))


@pytest.mark.parametrize("label", range(6))
def test_lamps_light_in_the_class_order(label):
    video = make_lamp_video(label, np.random.default_rng(label), frames=24, height=48, width=48)
    assert video.shape == (24, 48, 48, 3) and video.dtype == np.uint8
    seq = [_lit_row(f) for f in video]
    phases = [k for i, k in enumerate(seq) if i == 0 or k != seq[i - 1]]
    assert tuple(phases) == ORDERS[label]
    assert min(seq.count(k) for k in range(3)) >= 24 // 5  # every phase is long enough to be sampled


def test_classes_differ_only_in_order():
    # the same random draws give the same frames in another order
    a = make_lamp_video(0, np.random.default_rng(5), frames=12, height=24, width=24)
    b = make_lamp_video(5, np.random.default_rng(5), frames=12, height=24, width=24)  # bottom-middle-top
    assert len(CLASS_NAMES) == 6 and CLASS_NAMES[0] == "top-middle-bottom" and CLASS_NAMES[5] == "bottom-middle-top"
    # phases have the same lengths in both; class 5's lamps are class 0's in reverse
    seq_a = [_lit_row(f) for f in a]
    seq_b = [_lit_row(f) for f in b]
    assert [2 - k for k in seq_a] == seq_b


def test_shuffle_frames_permutes_time_only():
    class Probe(torch.nn.Module):
        cfg = type("C", (), {"num_classes": 2})()

        def forward(self, x):
            self.seen = x
            return torch.zeros(x.shape[0], 2)

    probe = Probe()
    x = torch.arange(2 * 3 * 8 * 2 * 2, dtype=torch.float32).view(2, 3, 8, 2, 2)
    ShuffleFrames(probe, seed=0)(x)
    seen = probe.seen
    assert not torch.equal(seen, x)
    for n in range(2):
        order = [int(seen[n, 0, t, 0, 0] - x[n, 0, 0, 0, 0]) // 4 for t in range(8)]
        assert sorted(order) == list(range(8))  # a permutation of the frames
        for t, src in enumerate(order):
            assert torch.equal(seen[n, :, t], x[n, :, src])  # whole frames, all channels alike


def test_short_demo_end_to_end(tmp_path, capsys):
    cfg = DemoConfig(
        train_per_class=2,
        val_per_class=1,
        test_per_class=1,
        video_frames=10,
        height=24,
        width=32,
        epochs=1,
        batch_size=4,
        workers=0,
        clips=1,
        crops=3,
    )
    m = run_demo(tmp_path / "run", cfg, progress=False)
    for key in ("top1", "chance", "top1_frames_shuffled", "seconds", "curves", "val_top1_per_epoch"):
        assert key in m
    assert m["chance"] == pytest.approx(1 / 6)
    assert 0 <= m["top1"] <= 1 and 0 <= m["top1_frames_shuffled"] <= 1
    assert m["test_videos"] == 6 and m["train_steps"] == 3
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["top1"] == m["top1"]
    assert (tmp_path / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "run" / "train" / "model.safetensors").is_file()
    assert len((tmp_path / "run" / "data" / "test_list.txt").read_text().splitlines()) == 6


def test_demo_command(tmp_path, capsys, monkeypatch):
    import dataclasses

    import uniformerv2.demo as demo

    @dataclasses.dataclass
    class Small(DemoConfig):
        train_per_class: int = 1
        val_per_class: int = 1
        test_per_class: int = 1
        video_frames: int = 10
        height: int = 24
        width: int = 32
        epochs: float = 1
        batch_size: int = 6
        workers: int = 0
        clips: int = 1
        crops: int = 1

    monkeypatch.setattr(demo, "DemoConfig", Small)
    assert main(["demo", "--work-dir", str(tmp_path / "cli"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "metrics.json" in out and "curves.png" in out and "shuffled" in out and "chance 0.167" in out
