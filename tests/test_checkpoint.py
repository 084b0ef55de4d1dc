"""Checkpoint formats: every format round-trips, and every bad file gets one clear error naming it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import uniformerv2
from helpers import SHARED, randomised, tiny_config
from uniformerv2 import checkpoint as ckpt
from uniformerv2 import conversions
from uniformerv2.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from uniformerv2.model import UniFormerV2


def _same_outputs(a: UniFormerV2, b: UniFormerV2, video: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.equal(a.eval()(video), b.eval()(video))


def test_own_format_records_the_architecture_so_no_preset_name_is_needed(tiny_model, video, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    loaded = uniformerv2.create_model(checkpoint=path)
    assert loaded.cfg == tiny_model.cfg
    assert _same_outputs(tiny_model, loaded, video)


@pytest.mark.parametrize("fmt,suffix", [("mmaction2", ".pth"), ("pyth", ".pyth")])
def test_reference_formats_round_trip(tiny_model, video, tmp_path, fmt, suffix):
    path = save_checkpoint(tiny_model, tmp_path / f"m{suffix}", fmt=fmt)
    fresh = UniFormerV2(tiny_model.cfg)
    report = load_checkpoint(fresh, path)
    assert report["format"] == fmt
    assert _same_outputs(tiny_model, fresh, video)


def test_original_layout_keeps_its_head_in_the_backbone_projection(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.pyth", fmt="pyth")
    keys = set(torch.load(path, weights_only=True)["model_state"])
    assert "backbone.transformer.proj.2.weight" in keys and "backbone.transformer.proj.0.weight" in keys
    assert not any(k.startswith("cls_head.") for k in keys)


def test_bare_backbone_and_head_without_prefixes_load(tiny_model, video, tmp_path):
    sd = tiny_model.state_dict()
    bare = {k.split(".", 1)[1]: v for k, v in sd.items()}  # drops backbone. / cls_head.
    torch.save(bare, tmp_path / "bare.pth")
    fresh = UniFormerV2(tiny_model.cfg)
    load_checkpoint(fresh, tmp_path / "bare.pth")
    assert _same_outputs(tiny_model, fresh, video)


def test_distributed_module_prefix_is_stripped(tiny_model, video, tmp_path):
    torch.save({"state_dict": {"module." + k: v for k, v in tiny_model.state_dict().items()}}, tmp_path / "ddp.pth")
    fresh = UniFormerV2(tiny_model.cfg)
    load_checkpoint(fresh, tmp_path / "ddp.pth")
    assert _same_outputs(tiny_model, fresh, video)


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": {"w": Payload()}}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth.*pickled code"):
        ckpt.read_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()


def test_truncated_checkpoint_is_reported_as_truncated(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.pth", fmt="mmaction2")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="m.pth.*truncated or corrupt"):
        load_checkpoint(UniFormerV2(tiny_model.cfg), path)


def test_truncated_safetensors_is_reported(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="m.safetensors"):
        uniformerv2.create_model(checkpoint=path)


def test_empty_file_is_reported_as_empty(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth.*empty"):
        ckpt.read_checkpoint(tmp_path / "empty.pth")


def test_text_file_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.pth").write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="notes.pth.*not a PyTorch checkpoint"):
        ckpt.read_checkpoint(tmp_path / "notes.pth")


def test_pickle_of_something_other_than_a_state_dict_is_reported(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="list.pth.*not a state dict"):
        ckpt.read_checkpoint(tmp_path / "list.pth")


def test_missing_file_and_directory_are_reported(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth.*no such file"):
        ckpt.read_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="is a directory"):
        ckpt.read_checkpoint(tmp_path)


def test_missing_keys_are_named(tiny_model, tmp_path):
    sd = tiny_model.state_dict()
    del sd["backbone.transformer.dec.1.ln_3.weight"]
    torch.save({"state_dict": sd}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"partial.pth.*missing keys backbone.transformer.dec.1.ln_3.weight"):
        load_checkpoint(UniFormerV2(tiny_model.cfg), tmp_path / "partial.pth")


def test_wrong_architecture_names_the_key_and_both_shapes(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.pth", fmt="mmaction2")
    wider = UniFormerV2(tiny_config(width=64, n_dim=64, no_lmhra=False, double_lmhra=True))
    with pytest.raises(CheckpointError, match=r"m.pth.*backbone\.\S+ \[.*\] \(model: \[.*\]\)"):
        load_checkpoint(wider, path)


def test_a_head_of_another_size_is_skipped_only_when_not_strict(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.pth", fmt="mmaction2")
    other = UniFormerV2(tiny_model.cfg.replace(num_classes=7))
    with pytest.raises(CheckpointError, match="cls_head.fc_cls.weight"):
        load_checkpoint(other, path)
    with pytest.warns(UserWarning, match="5 classes and the model 7"):
        report = load_checkpoint(other, path, strict=False)
    assert report["skipped"] == ["cls_head.fc_cls.weight", "cls_head.fc_cls.bias"]
    assert torch.equal(other.backbone.conv1.weight, tiny_model.backbone.conv1.weight)


def test_create_model_takes_the_head_size_from_the_checkpoint(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model.cfg and tiny_model, tmp_path / "m.safetensors")
    assert uniformerv2.create_model(checkpoint=path).num_classes == tiny_model.num_classes


@pytest.mark.parametrize("target", ["k400", "k600", "k700"])
def test_shipped_channel_maps_equal_mmaction2s(target):
    shared = json.loads((SHARED / "data" / "labels" / f"k710_channel_map_{target}.json").read_text())
    assert conversions.channel_map(target) == shared


def test_kinetics710_head_becomes_a_kinetics400_head_through_the_channel_map(tmp_path):
    k710 = randomised(UniFormerV2(tiny_config(num_classes=710)))
    path = save_checkpoint(k710, tmp_path / "k710.pth", fmt="mmaction2")
    k400 = UniFormerV2(tiny_config(num_classes=400))
    load_checkpoint(k400, path)
    rows = conversions.channel_map("k400")
    assert torch.equal(k400.cls_head.fc_cls.weight, k710.cls_head.fc_cls.weight[rows])
    assert torch.equal(k400.cls_head.fc_cls.bias, k710.cls_head.fc_cls.bias[rows])


def test_interrupted_save_keeps_the_previous_checkpoint(tiny_model, tmp_path, monkeypatch):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    before = path.read_bytes()

    def dies_midway(state, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(randomised(UniFormerV2(tiny_model.cfg), seed=3), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_convert_writes_a_checkpoint_that_loads_without_a_preset_name(tiny_model, video, tmp_path):
    src = save_checkpoint(tiny_model, tmp_path / "src.safetensors")
    out = uniformerv2.convert(src, tmp_path / "out.pyth")
    back = tmp_path / "back.safetensors"
    save_checkpoint(uniformerv2.create_model(checkpoint=src), back)
    fresh = UniFormerV2(tiny_model.cfg)
    load_checkpoint(fresh, out)
    assert _same_outputs(tiny_model, fresh, video)
    assert _same_outputs(tiny_model, uniformerv2.create_model(checkpoint=back), video)


def test_convert_with_a_new_head_still_refuses_missing_keys(tmp_path, capsys):
    from uniformerv2.cli import main

    model = randomised(UniFormerV2(tiny_config()))
    state = {k: v for i, (k, v) in enumerate(model.state_dict().items()) if i % 2 == 0}  # half the keys
    src = tmp_path / "half.pth"
    torch.save({"state_dict": state}, src)
    rc = main(
        [
            "convert",
            str(src),
            str(tmp_path / "out.safetensors"),
            "--model",
            "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb",
            "--num-classes",
            "7",
            "--set",
            *(f"{k}={v!r}".replace(" ", "") for k, v in tiny_config().to_dict().items() if k != "num_classes"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "missing keys" in err and str(src) in err
    assert not (tmp_path / "out.safetensors").exists()


def test_convert_with_a_new_head_replaces_only_the_head(tmp_path):
    model = randomised(UniFormerV2(tiny_config()))
    src = save_checkpoint(model, tmp_path / "src.safetensors")
    out = uniformerv2.convert(src, tmp_path / "out.safetensors", num_classes=7)
    converted = uniformerv2.create_model(out)
    assert converted.num_classes == 7
    for key, value in model.state_dict().items():
        if not key.startswith("cls_head."):
            assert torch.equal(converted.state_dict()[key], value), key
