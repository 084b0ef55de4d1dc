"""Training-state checkpoints: atomic writes (also under SIGKILL), keep-last-N, best marker, RNG capture."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from uniformerv2.engine.state import (
    CheckpointManager,
    TrainingStateError,
    atomic_write,
    capture_rng_state,
    find_resume_checkpoint,
    load_training_state,
    restore_rng_state,
)


def _state(value, n=10):
    return {"model": {"w": torch.full((n,), float(value))}, "epoch": int(value), "optimizer": {}}


def test_keep_last_and_pointer(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3, 4):
        m.save(_state(step), epoch=0, step=step)
    names = [p.name for p in m.list()]
    assert names == ["epoch_0_step_3.pt", "epoch_0_step_4.pt"]
    assert (tmp_path / "checkpoints" / "last_checkpoint").read_text().strip() == "epoch_0_step_4.pt"
    assert find_resume_checkpoint(tmp_path).name == "epoch_0_step_4.pt"


def test_best_marker(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=1)
    m.save(_state(1), epoch=1, step=10, top1=0.5, is_best=True)
    m.save(_state(2), epoch=2, step=20, top1=0.4, is_best=False)
    m.save(_state(3), epoch=3, step=30, top1=0.3, is_best=False)
    info = m.best_info()
    assert info == {"checkpoint": "epoch_1_step_10.pt", "epoch": 1, "step": 10, "top1": 0.5}
    assert load_training_state(m.best_path)["epoch"] == 1  # survives pruning of epoch_1
    assert [p.name for p in m.list()] == ["epoch_3_step_30.pt"]


def test_exception_during_write_keeps_previous(tmp_path):
    m = CheckpointManager(tmp_path)
    m.save(_state(1), epoch=1, step=1)

    class Boom(Exception):
        pass

    def bad_write(tmp):
        with open(tmp, "wb") as f:
            f.write(b"PK\x03\x04 half a checkpoint")
        raise Boom()

    with pytest.raises(Boom):
        atomic_write(tmp_path / "checkpoints" / "epoch_1_step_1.pt", bad_write)
    assert load_training_state(tmp_path / "checkpoints" / "epoch_1_step_1.pt")["epoch"] == 1
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))


SLOW_WRITER = textwrap.dedent("""
    import sys, time, torch
    from pathlib import Path
    import uniformerv2.engine.state as S
    m = S.CheckpointManager(sys.argv[1])
    m.save({"model": {"w": torch.zeros(4)}, "epoch": 1}, epoch=1, step=5)
    real_save = torch.save
    def slow_save(obj, f):
        real_save(obj, f)  # a complete file, then keep writing garbage slowly, as a huge checkpoint would
        with open(f, "ab") as fh:
            for _ in range(10000):
                fh.write(b"x" * 4096)
                fh.flush()
                Path(sys.argv[1], "writing").touch()
                time.sleep(0.01)
    S.torch.save = slow_save
    m.save({"model": {"w": torch.ones(4)}, "epoch": 2}, epoch=2, step=10)
""")


def test_sigkill_during_checkpoint_write_keeps_last_good(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(SLOW_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    deadline = time.time() + 60
    while not (tmp_path / "writing").exists():
        assert proc.poll() is None and time.time() < deadline, "the writer never started its second checkpoint"
        time.sleep(0.01)
    time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ckpt = tmp_path / "checkpoints"
    assert list(ckpt.glob(".*.tmp")), "the kill should have left the partial temporary file"
    assert not (ckpt / "epoch_2_step_10.pt").exists()
    assert (ckpt / "last_checkpoint").read_text().strip() == "epoch_1_step_5.pt"
    path = find_resume_checkpoint(tmp_path)
    assert path == ckpt / "epoch_1_step_5.pt"
    assert torch.equal(load_training_state(path)["model"]["w"], torch.zeros(4))
    # the next save clears the partial file
    CheckpointManager(tmp_path).save(_state(3), epoch=3, step=15)
    assert not list(ckpt.glob(".*.tmp"))


def test_resume_skips_damaged_files(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=5)
    m.save(_state(1), epoch=1, step=1)
    m.save(_state(2), epoch=2, step=2)
    (tmp_path / "checkpoints" / "epoch_2_step_2.pt").write_bytes(b"truncated")
    assert find_resume_checkpoint(tmp_path).name == "epoch_1_step_1.pt"
    with pytest.raises(TrainingStateError, match="epoch_2_step_2.pt"):
        load_training_state(tmp_path / "checkpoints" / "epoch_2_step_2.pt")


def test_rng_capture_restore_roundtrip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = capture_rng_state()
    path = tmp_path / "rng.pt"
    torch.save(state, path)
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_state(torch.load(path, weights_only=True))
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
    json.dumps(state["python"][-2:])  # plain values
