"""A run killed with SIGKILL mid-epoch and resumed ends with exactly the weights of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from helpers import train_config, write_lamp_dataset

RUNNER = textwrap.dedent("""
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    from uniformerv2.engine.config import TrainConfig
    from uniformerv2.engine.train import Trainer
    cfg = TrainConfig.from_dict(json.loads(open(sys.argv[1]).read()))
    kill_at = int(sys.argv[2])
    def kill(trainer, event, info):
        if event == "step" and trainer.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    Trainer(cfg, callbacks=[kill] if kill_at else []).fit()
""")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return write_lamp_dataset(tmp_path_factory.mktemp("videos"), classes=3, per_class=4, frames=10, height=20, width=24)


def _config(videos, work_dir, **kw):
    # dropout, drop path and the local MHRA's BatchNorm on: resume must restore every random stream
    arch = dict(mlp_dropout=(0.5,), no_lmhra=False, double_lmhra=False, backbone_drop_path_rate=0.1)
    cfg = train_config(
        videos,
        work_dir,
        arch=arch,
        num_classes=3,
        dropout_ratio=0.5,
        val_ann_file=str(videos / "val.txt"),
        area_range=(0.3, 1.0),
        epochs=3,
        batch_size=4,
        checkpoint_interval_steps=2,
        keep_last=2,
        log_interval=1,
        val_batch_views=8,
        seed=7,
    )
    return cfg.replace(**kw)


def _run(tmp_path, cfg, kill_at=0):
    cfg_file = tmp_path / f"cfg_{os.path.basename(cfg.work_dir)}_{kill_at}.json"
    cfg_file.write_text(json.dumps(cfg.to_dict()))
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(script), str(cfg_file), str(kill_at)], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("num_workers", [0, 1])
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path, videos, num_workers):
    # 12 videos, batch 4: 3 steps per epoch, 9 in all; checkpoints every 2 steps (mid-epoch) and per epoch
    full = _config(videos, tmp_path / "full", workers=num_workers)
    r = _run(tmp_path, full)
    assert r.returncode == 0, r.stderr[-3000:]

    killed = _config(videos, tmp_path / "killed", workers=num_workers)
    r = _run(tmp_path, killed, kill_at=5)  # step 4 was checkpointed mid-epoch 2; killed after step 5
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    ckpt_dir = tmp_path / "killed" / "checkpoints"
    assert (ckpt_dir / "last_checkpoint").read_text().strip() == "epoch_1_step_4.pt"
    state = torch.load(ckpt_dir / "epoch_1_step_4.pt", weights_only=True)
    assert state["epoch"] == 1 and state["batches_done"] == 1  # one batch into the second epoch
    assert not (tmp_path / "killed" / "model.safetensors").exists()

    r = _run(tmp_path, killed.replace(resume="auto"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stderr

    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # optimiser moments too
    sa = torch.load(tmp_path / "full" / "checkpoints" / "epoch_3_step_9.pt", weights_only=True)
    sb = torch.load(ckpt_dir / "epoch_3_step_9.pt", weights_only=True)
    for i, st in sa["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg_sq"], sb["optimizer"]["state"][i]["exp_avg_sq"])
    # the log has each step once, as the uninterrupted run's
    steps = [
        json.loads(line)["global_step"]
        for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()
        if json.loads(line)["type"] == "train"
    ]
    assert steps == list(range(1, 10))
    hist_a = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    hist_b = [json.loads(x) for x in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert [h.get("loss") for h in hist_a] == [h.get("loss") for h in hist_b]
    assert (tmp_path / "killed" / "curves.png").stat().st_size > 1000
