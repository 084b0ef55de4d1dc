"""Two CPU processes (torchrun, gloo, DDP) reach the weights of one process with the same total batch."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from helpers import TINY_TRAIN, train_config, write_lamp_dataset
from uniformerv2.engine.sampler import ResumableSampler
from uniformerv2.engine.train import build_model

RUNNER = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    from uniformerv2.engine.config import TrainConfig
    from uniformerv2.engine.train import Trainer
    Trainer(TrainConfig.from_dict(json.loads(open(sys.argv[1]).read()))).fit()
""")


def test_sampler_shards_each_global_batch():
    one = ResumableSampler(16, seed=3)
    two = [ResumableSampler(16, rank=r, world_size=2, seed=3) for r in range(2)]
    for s in [one, *two]:
        s.set_epoch(1)
    full = [i for _, i in one]
    halves = [[i for _, i in s] for s in two]
    for b in range(2):  # global batch b of 8 = rank 0's 4 + rank 1's 4
        assert sorted(full[8 * b : 8 * b + 8]) == sorted(halves[0][4 * b : 4 * b + 4] + halves[1][4 * b : 4 * b + 4])
    two[0].set_epoch(1, start=2)
    assert [i for _, i in two[0]] == halves[0][2:]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return write_lamp_dataset(
        tmp_path_factory.mktemp("ddp_videos"), classes=2, per_class=8, frames=8, height=16, width=20, seed=9
    )


def _cfg(videos, work_dir, batch_size, **extra):
    # no dropout and no BatchNorm (the local MHRA's): those are per-process by design
    return train_config(
        videos,
        work_dir,
        num_classes=2,
        val_ann_file=str(videos / "val.txt"),
        batch_size=batch_size,
        base_lr=0.032,
        lr=None,
        seed=11,
        log_interval=1,
        **extra,
    )


def _run(tmp_path, cfg, nproc):
    cfg_file = tmp_path / f"cfg{nproc}.json"
    cfg_file.write_text(json.dumps(cfg.to_dict()))
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if nproc == 1:
        cmd = [sys.executable, str(script), str(cfg_file)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            str(script),
            str(cfg_file),
        ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return r


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_two_gloo_processes_equal_one_process(tmp_path, videos, sharding):
    _run(tmp_path, _cfg(videos, tmp_path / "one", batch_size=8), 1)
    _run(tmp_path, _cfg(videos, tmp_path / "two", batch_size=4, fsdp=sharding == "fsdp"), 2)
    one = json.loads((tmp_path / "one" / "train_config.json").read_text())
    two = json.loads((tmp_path / "two" / "train_config.json").read_text())
    assert two["world_size"] == 2 and one["total_batch"] == two["total_batch"] == 8
    assert one["lr"] == two["lr"] == pytest.approx(0.032 * 8 / 256)  # scaled by the total batch
    a = load_file(tmp_path / "one" / "model.safetensors")
    b = load_file(tmp_path / "two" / "model.safetensors")
    torch.manual_seed(11)  # the runs' initial weights
    init = build_model(_cfg(videos, tmp_path / "x", 8)).state_dict()
    c = TINY_TRAIN["width"]
    for k in a:
        x, y, w0 = a[k], b[k], init[k]
        if k.endswith("attn.in_proj_bias"):
            # the key bias has an identically zero gradient (softmax ignores it): AdamW turns the rounding noise
            # of the two summation orders into lr-sized steps, so only the query and value biases are compared
            x, y, w0 = (torch.cat([t[:c], t[2 * c :]]) for t in (x, y, w0))
        moved = (x - w0).abs().max()
        assert moved > 0, k
        # equal up to float summation order: within 0.2% of how far the weights moved in the 4 steps
        assert (x - y).abs().max() <= 2e-3 * moved + 1e-8, (k, float((x - y).abs().max()), float(moved))
    logs = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [h["global_step"] for h in logs if h["type"] == "train"] == [1, 2, 3, 4]
    loss_one = [
        json.loads(x)["loss"]
        for x in (tmp_path / "one" / "log.jsonl").read_text().splitlines()
        if json.loads(x)["type"] == "train"
    ]
    loss_two = [h["loss"] for h in logs if h["type"] == "train"]
    assert loss_one == pytest.approx(loss_two, rel=1e-6)
