"""A model knows its classes, input size and protocol: class names by name, other input sizes, and
Hugging Face-style directories."""

from __future__ import annotations

import json

import pytest
import torch

import uniformerv2
from helpers import SHARED, randomised, tiny_config
from uniformerv2 import save_checkpoint
from uniformerv2.cli import main
from uniformerv2.conversions import resample_pos_embed
from uniformerv2.data import read_label_map
from uniformerv2.errors import AnnotationError, ConfigError
from uniformerv2.model import UniFormerV2

DEMO = SHARED / "data" / "videos" / "demo.mp4"


def _named_model(tmp_path, names, **arch):
    model = randomised(UniFormerV2(tiny_config(num_classes=len(names), **arch)))
    model.pretrained_cfg = model.pretrained_cfg.replace(class_names=tuple(names))
    return model, save_checkpoint(model, tmp_path / "named.safetensors")


def test_a_shuffled_subset_of_the_classes_scores_exactly_those_logits_in_the_files_order(tmp_path, video):
    k400 = read_label_map("k400")
    full, path = _named_model(tmp_path, k400)
    wanted = [k400[i] for i in torch.randperm(400, generator=torch.Generator().manual_seed(0))[:12].tolist()]
    (tmp_path / "mine.txt").write_text("\n".join(wanted) + "\n")
    subset = uniformerv2.create_model(path, labels=tmp_path / "mine.txt")
    assert subset.num_classes == 12 and list(subset.pretrained_cfg.class_names) == wanted
    with torch.no_grad():
        expected = full(video)[:, [k400.index(n) for n in wanted]].softmax(-1)
        torch.testing.assert_close(subset(video).softmax(-1), expected)


def test_a_same_length_list_in_another_order_is_applied_by_name(tmp_path, video):
    names = ["run", "jump", "swim", "climb", "dance"]
    full, path = _named_model(tmp_path, names)
    reordered = ["Dance", "climb", "RUN", "swim", "jump"]  # case does not matter
    model = uniformerv2.create_model(path, labels=reordered)
    with torch.no_grad():
        torch.testing.assert_close(model(video), full(video)[:, [4, 3, 0, 2, 1]])


def test_unknown_class_names_are_one_error_with_suggestions(tmp_path):
    _, path = _named_model(tmp_path, ["run", "jump", "swim", "climb", "dance"])
    with pytest.raises(
        AnnotationError,
        match=r"2 of 3 class names are not classes of the model: 'jumping' "
        r"\(closest: 'jump'\); 'fly'",
    ):
        uniformerv2.create_model(path, labels=["jumping", "swim", "fly"])


def test_kinetics400_names_on_a_kinetics710_head_take_the_channel_maps_rows(tmp_path):
    k710 = read_label_map("k710")
    _, path = _named_model(tmp_path, k710)
    model = uniformerv2.create_model(path, labels="k400")
    rows = json.loads((SHARED / "data" / "labels" / "k710_channel_map_k400.json").read_text())
    full = uniformerv2.create_model(path)
    assert torch.equal(model.cls_head.fc_cls.weight, full.cls_head.fc_cls.weight[rows])


def test_resampling_the_position_embedding_to_its_own_size_is_the_identity():
    pe = torch.randn(1 + 14 * 14, 8)
    assert resample_pos_embed(pe, 14) is pe


def test_resampling_224_to_336_is_bicubic_on_the_patch_grid_with_the_class_token_kept():
    pe = torch.randn(1 + 14 * 14, 8, generator=torch.Generator().manual_seed(0))
    out = resample_pos_embed(pe, 21)
    grid = pe[1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(21, 21), mode="bicubic", align_corners=False)
    assert torch.equal(out[0], pe[0])
    torch.testing.assert_close(out[1:], expected.permute(0, 2, 3, 1).reshape(21 * 21, 8))


def test_a_checkpoint_runs_at_another_size_through_predict(tmp_path, capsys):
    path = save_checkpoint(randomised(UniFormerV2(tiny_config())), tmp_path / "tiny32.safetensors")  # 32 px
    assert main(["predict", str(DEMO), "--checkpoint", str(path), "--size", "48", "--json", "--dtype", "float32"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "at 48px" in out["protocol"] and len(out["results"][0]["predictions"]) == 5


def test_a_size_that_is_not_a_multiple_of_the_patch_is_one_error(tmp_path, capsys):
    path = save_checkpoint(randomised(UniFormerV2(tiny_config())), tmp_path / "tiny32.safetensors")
    with pytest.raises(ConfigError, match="input_resolution=40 is not a multiple of patch_size=16"):
        uniformerv2.create_model(path, input_resolution=40)
    assert main(["predict", str(DEMO), "--checkpoint", str(path), "--size", "40"]) == 1
    assert "not a multiple of patch_size=16" in capsys.readouterr().err


def test_save_pretrained_and_from_pretrained_round_trip(tmp_path, video):
    model, _ = _named_model(tmp_path, ["run", "jump", "swim", "climb", "dance"])
    model.pretrained_cfg = model.pretrained_cfg.replace(
        protocol=model.pretrained_cfg.protocol.replace(clips=2, crops=1)
    )
    folder = model.save_pretrained(str(tmp_path / "mine"), metrics={"top1": 0.8125})
    loaded = uniformerv2.from_pretrained(folder)
    with torch.no_grad():
        torch.testing.assert_close(loaded(video), model.eval()(video), rtol=0, atol=0)
    assert loaded.pretrained_cfg.class_names == model.pretrained_cfg.class_names
    assert loaded.pretrained_cfg.protocol == model.pretrained_cfg.protocol
    config = json.loads((tmp_path / "mine" / "config.json").read_text())
    assert config["id2label"]["1"] == "jump" and config["protocol"]["clips"] == 2
    assert config["normalization"]["mean"] == [114.75] * 3
    card = (tmp_path / "mine" / "README.md").read_text()
    assert "run, jump, swim, climb, dance" in card and "| top1 | 0.8125 |" in card and "2 clips x 1 crops" in card


def test_convert_states_measured_metrics_in_the_folders_model_card_only(tmp_path, capsys):
    _, path = _named_model(tmp_path, ["run", "jump", "swim", "climb", "dance"])
    metrics = tmp_path / "test_metrics.json"
    metrics.write_text(json.dumps({"metrics": {"top1": 0.75}}))
    assert main(["convert", str(path), str(tmp_path / "card"), "--metrics", str(metrics)]) == 0
    assert "| top1 | 0.7500 |" in (tmp_path / "card" / "README.md").read_text()
    with pytest.raises(uniformerv2.UniFormerV2Error, match="model card"):
        uniformerv2.convert(path, tmp_path / "m.pth", metrics={"top1": 0.75})


def test_a_pretrained_directory_works_wherever_a_model_is_named(tmp_path, capsys):
    model, _ = _named_model(tmp_path, ["run", "jump", "swim", "climb", "dance"])
    folder = model.save_pretrained(str(tmp_path / "mine"))
    assert main(["predict", str(DEMO), "--model", folder, "--json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["results"][0]["predictions"][0]["label"] in model.pretrained_cfg.class_names
    )


def test_convert_destination_a_trailing_slash_is_a_folder_and_an_unknown_suffix_an_error(tmp_path, capsys):
    from uniformerv2.factory import destination_format

    assert destination_format(f"{tmp_path}/name.v1/") == "pretrained"
    assert destination_format(tmp_path / "plain") == "pretrained"
    assert destination_format(tmp_path / "m.safetensors") == "uniformerv2"
    assert destination_format(tmp_path / "m.pth") == "mmaction2"
    with pytest.raises(uniformerv2.UniFormerV2Error, match=r"unknown suffix '\.v1'.*\.safetensors.*folder"):
        destination_format(tmp_path / "name.v1")
    _, path = _named_model(tmp_path, ["run", "jump", "swim", "climb", "dance"])
    assert main(["convert", str(path), f"{tmp_path}/name.v1/"]) == 0
    assert (tmp_path / "name.v1" / "config.json").is_file()
    assert main(["predict", str(DEMO), "--model", f"{tmp_path}/name.v1/"]) == 0
    assert main(["convert", str(path), str(tmp_path / "x.v2")]) == 1
    assert "unknown suffix '.v2'" in capsys.readouterr().err and not (tmp_path / "x.v2").exists()


def test_convert_metrics_read_tests_json_the_demos_metrics_and_a_plain_mapping(tmp_path, capsys):
    from uniformerv2.hf_folder import read_metrics

    files = {
        "test": {"metrics": {"top1": 0.75, "top5": 1.0, "mean1": 0.7}, "num_videos": 8},
        "demo": {"top1": 1.0, "mean_class_accuracy": 1.0, "chance": 0.167, "test_videos": 60, "seconds": {"a": 1}},
        "plain": {"top1": 0.81},
    }
    for name, content in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    assert read_metrics(tmp_path / "test.json") == {"top1": 0.75, "top5": 1.0, "mean1": 0.7}
    assert read_metrics(tmp_path / "demo.json") == {"top1": 1.0, "mean_class_accuracy": 1.0}
    assert read_metrics(tmp_path / "plain.json") == {"top1": 0.81}
    for bad, says in (("[1, 2]", "got a list"), ('{"loss": 2.3}', "no accuracy metrics"), ("{", "not a readable")):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(uniformerv2.UniFormerV2Error, match=says):
            read_metrics(tmp_path / "bad.json")
    _, path = _named_model(tmp_path, ["run", "jump", "swim", "climb", "dance"])
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["convert", str(path), str(tmp_path / "card"), "--metrics", str(tmp_path / "bad.json")]) == 1
    err = capsys.readouterr().err
    assert "got a list" in err and "internal error" not in err
    assert main(["convert", str(path), str(tmp_path / "card"), "--metrics", str(tmp_path / "demo.json")]) == 0
    assert "stating top1 1.0000, mean_class_accuracy 1.0000" in capsys.readouterr().out
