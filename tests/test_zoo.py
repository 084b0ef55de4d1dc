"""The model zoo: one preset per MMAction2 config and per original checkpoint, true to its sources.

Expected numbers come from ``fixtures/param_counts/mmaction2_param_counts.json``, made by
``scripts/oracle_param_counts.py`` with MMAction2 1.2.0 itself. Big models are built on the meta device.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from importlib import resources
from pathlib import Path

import pytest
import torch

from uniformerv2.model import UniFormerV2
from uniformerv2.zoo import CLIP_CHECKPOINT_URLS, Preset, UnknownModelError, get_preset, list_models

GOLDEN_FILE = Path(__file__).parent / "fixtures" / "param_counts" / "mmaction2_param_counts.json"
GOLDEN = json.loads(GOLDEN_FILE.read_text())["configs"]
MMACTION2 = sorted(GOLDEN)
ORIGINAL = list_models(source="original")
DATASETS = {
    "kinetics400",
    "kinetics600",
    "kinetics700",
    "kinetics710",
    "mitv1",
    "sthv1",
    "sthv2",
    "activitynet",
    "hacs",
}
PRETRAINS = {"clip", "clip-kinetics710", "clip-kinetics710-kinetics400"}


@cache
def param_counts(name: str) -> tuple[int, int, int]:
    """(total, backbone, head) parameters of a preset's network, built on the meta device."""
    with torch.device("meta"):
        model = UniFormerV2(get_preset(name).config)
    return tuple(sum(p.numel() for p in m.parameters()) for m in (model, model.backbone, model.cls_head))


def golden_total(input_resolution: int, patch_size: int, num_classes: int) -> int:
    """The oracle's total for an MMAction2 config of that CLIP encoder and head size."""
    totals = {
        g["params"]["total"]
        for g in GOLDEN.values()
        if (g["backbone"]["input_resolution"], g["backbone"]["patch_size"], g["head"]["num_classes"])
        == (input_resolution, patch_size, num_classes)
    }
    assert len(totals) == 1, (input_resolution, patch_size, num_classes, totals)
    return totals.pop()


# ---------------------------------------------------------------------------------------------------- MMAction2


def test_there_is_a_preset_for_every_mmaction2_uniformerv2_config():
    assert len(MMACTION2) == 24
    assert list_models(source="mmaction2") == MMACTION2


@pytest.mark.parametrize("name", MMACTION2)
def test_mmaction2_preset_has_the_parameter_count_of_mmaction2(name):
    assert param_counts(name) == (
        GOLDEN[name]["params"]["total"],
        GOLDEN[name]["params"]["backbone"],
        GOLDEN[name]["params"]["cls_head"],
    )


@pytest.mark.parametrize("name", MMACTION2)
def test_mmaction2_preset_has_the_config_files_backbone_and_head(name):
    preset, golden = get_preset(name), GOLDEN[name]
    for field, expected in golden["backbone"].items():
        actual = getattr(preset.config, field)
        actual = list(actual) if isinstance(actual, tuple) else actual
        if field == "t_size" and actual != expected:  # a config whose num_frames contradicts its name and README
            assert f"num_frames={expected}" in preset.notes
            continue
        assert actual == expected, field
    assert preset.config.num_classes == golden["head"]["num_classes"]
    assert preset.config.n_dim == golden["head"]["in_channels"]
    assert preset.config.dropout_ratio == golden["head"]["dropout_ratio"]


@pytest.mark.parametrize("name", MMACTION2)
def test_mmaction2_test_protocol_is_4x3_up_to_16_frames_and_2x3_at_32(name):
    preset = get_preset(name)
    assert preset.num_crops == 3
    assert preset.num_clips == (4 if preset.num_frames in (8, 16) else 2)
    assert preset.num_frames in (8, 16, 32)


@pytest.mark.parametrize("name", [n for n in MMACTION2 if GOLDEN[n]["test_protocol"]])
def test_mmaction2_protocol_agrees_with_the_config_test_pipeline(name):
    preset, protocol = get_preset(name), GOLDEN[name]["test_protocol"]
    assert protocol["clip_len"] == preset.num_frames
    assert protocol["num_crops"] == preset.num_crops
    assert protocol["crop_size"] == preset.resolution
    if protocol["num_clips"] != preset.num_clips:  # the README's protocol wins; the disagreement is documented
        assert "2 clips x 3 crops" in preset.notes


@pytest.mark.parametrize("name", MMACTION2)
def test_mmaction2_preset_names_its_clip_encoder(name):
    preset, pretrained = get_preset(name), GOLDEN[name]["clip_pretrained_name"]
    if pretrained is not None:
        assert preset.clip_model == pretrained
    assert preset.clip_model in CLIP_CHECKPOINT_URLS


@pytest.mark.parametrize("name", MMACTION2)
def test_mmaction2_checkpoint_is_an_openmmlab_pth_named_after_the_config(name):
    preset = get_preset(name)
    assert preset.checkpoint_format == "mmaction2" and preset.sampling == "mmaction2"
    if preset.url is not None:
        assert preset.url.startswith("https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/")
        assert preset.url.endswith(".pth")
        assert f"/{name}_" in preset.url


def test_a_config_without_a_published_checkpoint_still_has_a_preset():
    without = [n for n in MMACTION2 if get_preset(n).url is None]
    assert without == ["uniformerv2-base-p16-res224_clip_u8_kinetics710-rgb"]
    assert get_preset(without[0]).reported_top1 is None


def test_b16_results_without_an_own_top1_report_the_mm_kinetics_number():
    preset = get_preset("uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb")
    assert preset.top1 is None and preset.top5 is None
    assert preset.mm_kinetics_top1 is not None and preset.reference_top1 is not None
    assert preset.reported_top1 == preset.mm_kinetics_top1


# ----------------------------------------------------------------------------------------------------- original


def test_the_original_zoo_has_every_model_zoo_checkpoint():
    assert len(ORIGINAL) == 49
    by_dataset = {d: [n for n in ORIGINAL if get_preset(n).dataset == d] for d in DATASETS}
    assert {d: len(v) for d, v in by_dataset.items()} == {
        "kinetics710": 4,
        "kinetics400": 10,
        "kinetics600": 10,
        "kinetics700": 10,
        "mitv1": 3,
        "sthv1": 4,
        "sthv2": 4,
        "activitynet": 2,
        "hacs": 2,
    }


@pytest.mark.parametrize("name", ORIGINAL)
def test_original_preset_builds_and_has_a_pyth_url(name):
    preset = get_preset(name)
    total, backbone, head = param_counts(name)
    assert total == backbone + head > 0
    assert preset.checkpoint_format == "pyth" and preset.sampling == "original"
    assert preset.url is not None
    assert preset.url.startswith("https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/uniformerv2/")
    assert preset.url.endswith(f"/{name}.pyth")


@pytest.mark.parametrize("name", [n for n in ORIGINAL if get_preset(n).dataset.startswith(("kinetics", "mitv1"))])
def test_original_kinetics_and_mit_presets_match_the_mmaction2_ports(name):
    """MMAction2 converted these checkpoints one to one; frozen models only lack the fusion weights."""
    cfg = get_preset(name).config
    expected = golden_total(cfg.input_resolution, cfg.patch_size, cfg.num_classes)
    assert param_counts(name)[0] == expected - (cfg.n_dim if cfg.frozen else 0)


@pytest.mark.parametrize("name", [n for n in ORIGINAL if get_preset(n).dataset in ("activitynet", "hacs")])
def test_original_untrimmed_presets_are_kinetics_l14_with_a_200_way_head(name):
    cfg = get_preset(name).config
    backbones = {
        g["params"]["backbone"]
        for g in GOLDEN.values()
        if (g["backbone"]["input_resolution"], g["backbone"]["patch_size"]) == (224, 14)
    }
    assert param_counts(name)[1] in backbones
    assert param_counts(name)[2] == (cfg.n_dim + 1) * 200


@pytest.mark.parametrize("name", [n for n in ORIGINAL if get_preset(n).dataset in ("sthv1", "sthv2")])
def test_something_something_presets_use_local_mhra_and_temporal_downsampling(name):
    preset = get_preset(name)
    cfg = preset.config
    assert cfg.temporal_downsample and not cfg.no_lmhra and cfg.double_lmhra
    # global blocks read the last two thirds of the local blocks (8 of 12 for B/16, 16 of 24 for L/14)
    assert 3 * cfg.n_layers == 2 * cfg.layers
    assert cfg.return_list == tuple(range(cfg.layers - cfg.n_layers, cfg.layers))
    assert (preset.num_crops, preset.num_clips) == (3, 1)


def test_frozen_presets_have_no_fusion_and_a_frozen_clip_backbone():
    frozen = [n for n in list_models() if get_preset(n).config.frozen]
    assert frozen and all(n.startswith("frozen_") for n in frozen)
    with torch.device("meta"):
        model = UniFormerV2(get_preset(frozen[0]).config)
    names = {n for n, _ in model.named_parameters()}
    assert "backbone.transformer.balance" not in names
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".resblocks." in n)


# --------------------------------------------------------------------------------------------------------- all


@pytest.mark.parametrize("name", list_models())
def test_preset_fields_are_consistent(name):
    preset = get_preset(name)
    assert preset.name == name
    assert preset.source in ("mmaction2", "original")
    assert preset.dataset in DATASETS
    assert preset.pretrain in PRETRAINS
    assert preset.clip_model in CLIP_CHECKPOINT_URLS
    assert preset.num_frames == preset.config.t_size
    assert preset.resolution == preset.config.input_resolution
    assert preset.num_views == preset.num_clips * preset.num_crops
    expected = next((v for v in (preset.top1, preset.mm_kinetics_top1, preset.reference_top1) if v is not None), None)
    assert preset.reported_top1 == expected


def test_every_label_map_named_is_a_package_file_with_one_line_per_class():
    named = {
        get_preset(n).label_map_file: get_preset(n).config.num_classes
        for n in list_models()
        if get_preset(n).label_map is not None
    }
    assert named
    for path, num_classes in named.items():
        text = resources.files("uniformerv2").joinpath(path).read_text(encoding="utf-8")
        assert len(text.splitlines()) == num_classes, path


def test_clip_checkpoint_urls_are_mmaction2s_visual_encoders():
    assert set(CLIP_CHECKPOINT_URLS) == {"ViT-B/16", "ViT-L/14", "ViT-L/14_336"}
    prefix = "https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/clipVisualEncoder/"
    assert all(url.startswith(prefix) and url.endswith(".pth") for url in CLIP_CHECKPOINT_URLS.values())


def test_presets_are_immutable():
    preset = get_preset(MMACTION2[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.url = "elsewhere"  # type: ignore[misc]
    assert isinstance(preset, Preset)


# ------------------------------------------------------------------------------------------------- list / get


def test_list_models_is_sorted_and_covers_both_sources():
    names = list_models()
    assert names == sorted(names)
    assert set(names) == set(MMACTION2) | set(ORIGINAL)


def test_list_models_filters_by_case_insensitive_glob():
    k400 = list_models("*K400*")
    assert k400 and all("k400" in n.lower() for n in k400)
    assert list_models("*kinetics400*", source="mmaction2") == [n for n in MMACTION2 if "kinetics400" in n]
    assert list_models("frozen_*") == [n for n in ORIGINAL if n.startswith("frozen_")]
    assert list_models("no-such-model*") == []


def test_list_models_rejects_an_unknown_source():
    with pytest.raises(ValueError, match="source"):
        list_models(source="timm")


def test_unknown_name_raises_naming_it_and_suggesting_close_matches():
    with pytest.raises(UnknownModelError) as info:
        get_preset("k400_k710_uniformerv2_l14_8x22")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'k400_k710_uniformerv2_l14_8x22'" in message
    assert "'k400_k710_uniformerv2_l14_8x224'" in message


def test_suggestions_ignore_case():
    with pytest.raises(UnknownModelError, match="'mit_uniformerv2_b16_8x224'"):
        get_preset("MIT_UniFormerV2_B16_8x224")
