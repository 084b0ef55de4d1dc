"""create_model as a user calls it: presets, overrides, pretrained downloads, checkpoints; FLOPs per view."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import uniformerv2
from helpers import openmmlab_name, randomised, tiny_config
from uniformerv2 import factory, zoo
from uniformerv2.checkpoint import save_checkpoint
from uniformerv2.hub import DownloadError

B16 = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb"


@pytest.fixture
def tiny_preset(monkeypatch, tmp_path):
    """A real preset shrunk to a tiny architecture, its checkpoint served by a local HTTP server."""
    original = zoo.get_preset(B16)

    def install(url: str | None):
        preset = dataclasses.replace(original, config=tiny_config(num_classes=400), url=url)
        monkeypatch.setattr(factory, "get_preset", lambda name: preset if name == B16 else zoo.get_preset(name))
        return preset

    return install


def test_overrides_use_mmaction2_argument_names():
    with torch.device("meta"):
        model = uniformerv2.create_model(B16, layers=10, return_list=[6, 7, 8, 9], num_classes=3)
    assert len(model.backbone.transformer.resblocks) == 10
    assert model.cfg.return_list == (6, 7, 8, 9) and model.num_classes == 3


def test_an_unknown_preset_names_close_matches():
    with pytest.raises(ValueError, match="uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb"):
        uniformerv2.create_model("uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics40-rgb")


def test_pretrained_downloads_the_presets_checkpoint_and_loads_it(server, cache, tiny_preset, tmp_path):
    published = randomised(uniformerv2.UniFormerV2(tiny_config(num_classes=400)))
    src = save_checkpoint(published, tmp_path / "published.pth", fmt="mmaction2")
    name = openmmlab_name(src.read_bytes(), stem="tiny")
    (server.root / name).write_bytes(src.read_bytes())
    tiny_preset(server.url(name))
    model = uniformerv2.create_model(B16, pretrained=True, progress=False)
    assert (cache / name).exists()
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), published.state_dict().values()))


def test_pretrained_offline_says_how_to_pass_a_local_file(cache, tiny_preset):
    tiny_preset("http://127.0.0.1:9/uniformerv2-tiny_20230313-abcdef01.pth")
    with pytest.raises(DownloadError, match=r"(?s)127\.0\.0\.1:9.*--checkpoint"):
        uniformerv2.create_model(B16, pretrained=True, progress=False)


def test_new_num_classes_keeps_the_backbone_and_starts_a_fresh_head(tmp_path, tiny_preset):
    tiny_preset(None)
    published = randomised(uniformerv2.UniFormerV2(tiny_config(num_classes=400)))
    path = save_checkpoint(published, tmp_path / "p.pth", fmt="mmaction2")
    with pytest.warns(UserWarning, match="400 classes and the model 7"):
        model = uniformerv2.create_model(B16, checkpoint=path, num_classes=7)
    assert model.num_classes == 7
    assert torch.equal(model.backbone.conv1.weight, published.backbone.conv1.weight)


def test_mmaction2_preset_parameter_count_is_reported_by_info():
    info = uniformerv2.model_info(B16)
    with torch.device("meta"):
        assert info["params"] == uniformerv2.count_parameters(uniformerv2.create_model(B16))
    assert info["views"] == 12


def _tera(flops: int) -> str:
    return f"{flops / 2 / 1e12:.1f}T"  # the README counts multiply-adds (fvcore's convention)


@pytest.mark.parametrize("name", [n for n in zoo.list_models(source="mmaction2") if zoo.get_preset(n).flops])
def test_flops_per_view_match_the_mmaction2_readme_in_multiply_adds(name):
    preset = zoo.get_preset(name)
    assert _tera(uniformerv2.count_flops(preset.config, preset.num_frames, preset.resolution)) == preset.flops
