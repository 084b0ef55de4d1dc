"""Training options: accumulation, AMP, gradient checkpointing, frozen backbone, config files and CLI overrides."""

import json

import pytest
import torch

from helpers import PRESET, TINY_TRAIN, train_config, write_lamp_dataset
from uniformerv2.cli import build_parser
from uniformerv2.cli.train import config_from_args
from uniformerv2.engine.config import TrainConfig
from uniformerv2.engine.train import Trainer


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return write_lamp_dataset(
        tmp_path_factory.mktemp("opt_videos"), classes=2, per_class=4, frames=8, height=16, width=16
    )


def _cfg(videos, work_dir, **kw):
    return train_config(videos, work_dir, **{"num_classes": 2, "batch_size": 8, "seed": 1, **kw})


def test_accumulation_equals_the_large_batch(tmp_path, videos):
    a = Trainer(_cfg(videos, tmp_path / "a")).fit()
    b = Trainer(_cfg(videos, tmp_path / "b", batch_size=4, accum_steps=2)).fit()
    assert a.steps == b.steps == 2
    cfg = json.loads((tmp_path / "b" / "train_config.json").read_text())
    assert cfg["total_batch"] == 8 and cfg["steps_per_epoch"] == 1
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5, msg=k)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_grad_checkpointing_and_frozen_backbone(tmp_path, videos, amp):
    cfg = _cfg(videos, tmp_path / amp, dtype=amp, grad_checkpoint_blocks=2, frozen_backbone=True, epochs=1)
    trainer = Trainer(cfg)
    result = trainer.fit()
    model = result.model
    assert model.grad_checkpointing == 2
    assert not model.backbone.conv1.weight.requires_grad
    assert model.cls_head.fc_cls.weight.requires_grad
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    assert result.steps == 1 and result.model_path.is_file()


def test_recipe_defaults():
    cfg = TrainConfig()
    assert (cfg.base_lr, cfg.base_batch_size, cfg.weight_decay, cfg.betas) == (2e-6, 256, 0.05, (0.9, 0.999))
    assert (cfg.warmup_epochs, cfg.warmup_start_factor, cfg.eta_min_ratio, cfg.epochs) == (1.0, 0.5, 0.5, 5)
    assert (cfg.clip_grad, cfg.dropout_ratio, cfg.flip_ratio, cfg.short_side) == (20.0, 0.5, 0.5, 256)
    assert (cfg.randaug, cfg.randaug_magnitude, cfg.randaug_num_layers) == (True, 7.0, 4)
    assert (cfg.area_range, cfg.aspect_ratio_range) == ((0.08, 1.0), (3 / 4, 4 / 3))
    assert (cfg.norm_decay_mult, cfg.bias_decay_mult) == (0.0, 0.0)
    assert (cfg.val_clips, cfg.val_crops) == (1, 1)


def test_cli_options_and_config_file(tmp_path):
    parser = build_parser()
    (tmp_path / "cfg.py").write_text("config = TrainConfig(epochs=3, batch_size=4, amp='bf16')\n")
    args = parser.parse_args(
        [
            "train",
            "mymodel",
            "--config",
            str(tmp_path / "cfg.py"),
            "--batch-size",
            "2",
            "--area-range",
            "(0.5, 1.0)",
            "--no-randaug",
            "--resume",
            "--clip-grad",
            "none",
            "--set",
            "drop_path_rate=0.1",
            "--ann-file",
            "a.txt",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.model == "mymodel" and cfg.epochs == 3 and cfg.dtype == "bf16"  # 'amp' is the old name, still read
    assert cfg.batch_size == 2 and cfg.area_range == (0.5, 1.0) and cfg.randaug is False
    assert cfg.resume == "auto" and cfg.clip_grad is None and cfg.ann_file == "a.txt"
    assert cfg.model_overrides == {"drop_path_rate": 0.1}
    (tmp_path / "cfg.json").write_text(json.dumps(TrainConfig(lr=0.1).to_dict()))
    cfg = config_from_args(parser.parse_args(["train", "--config", str(tmp_path / "cfg.json")]))
    assert cfg.lr == 0.1 and cfg.betas == (0.9, 0.999)


@pytest.mark.parametrize("option", ["--clip", "--init"])
def test_the_offline_hint_names_trains_own_options(tmp_path, videos, server, cache, capsys, option):
    from uniformerv2.cli import main

    server.mode = "fail"
    url = server.url("weights_20230313-abcdef12.pth")
    extra = ["--init", "clip", "--clip", url] if option == "--clip" else ["--init", url]
    rc = main(
        [
            "train",
            "--model",
            PRESET,
            "--num-classes",
            "2",
            "--ann-file",
            str(videos / "train.txt"),
            "--data-root",
            str(videos),
            "--work-dir",
            str(tmp_path / "w"),
            "--device",
            "cpu",
            "--no-progress",
            "--workers",
            "0",
            "--set",
            *(f"{k}={list(v) if isinstance(v, tuple) else v}".replace(" ", "") for k, v in TINY_TRAIN.items()),
            *extra,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and f"{option} /path/to/weights_20230313-abcdef12.pth" in err and "--checkpoint" not in err


def test_fine_tuning_on_class_folders_names_the_classes_for_predict(tmp_path, videos, capsys):
    from uniformerv2.cli import main

    rc = main(
        [
            "train",
            "--model",
            PRESET,
            "--init",
            "none",
            "--folder",
            str(videos),
            "--val-split",
            "0.25",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--lr",
            "1e-3",
            "--frames",
            "4",
            "--size",
            "16",
            "--short-side",
            "16",
            "--workers",
            "0",
            "--work-dir",
            str(tmp_path / "w"),
            "--device",
            "cpu",
            "--no-progress",
            "--set",
            *(f"{k}={list(v) if isinstance(v, tuple) else v}".replace(" ", "") for k, v in TINY_TRAIN.items()),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "w" / "train_config.json").read_text())
    assert saved["train_videos"] == 6 and saved["val_videos"] == 2  # 4 per class, a quarter of each held out
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                str(videos / "c1" / "0.mp4"),
                "--checkpoint",
                str(tmp_path / "w" / "model.safetensors"),
                "--json",
            ]
        )
        == 0
    )
    labels = {p["label"] for p in json.loads(capsys.readouterr().out)["results"][0]["predictions"]}
    assert labels == {"c0", "c1"}


def test_the_stratified_split_keeps_every_class_and_is_seeded():
    from uniformerv2.data import VideoSample
    from uniformerv2.engine.build import stratified_split

    samples = [VideoSample(f"{c}/{i}.mp4", c) for c in range(3) for i in range(10)]
    train, val = stratified_split(samples, 0.2, seed=5)
    assert sorted(s.label for s in val) == [0, 0, 1, 1, 2, 2] and len(train) == 24
    assert stratified_split(samples, 0.2, seed=5) == (train, val) != stratified_split(samples, 0.2, seed=6)
