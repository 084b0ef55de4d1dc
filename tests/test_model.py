"""The network: shapes, configuration checks, and the original code's extras."""

from __future__ import annotations

import pytest
import torch

from helpers import randomised, tiny_config
from uniformerv2.model import ConfigError, UniFormerV2, UniFormerV2Config


def test_logits_have_one_row_per_video_and_one_column_per_class(tiny_model, video):
    with torch.no_grad():
        assert tiny_model(video).shape == (2, 5)


@pytest.mark.parametrize("frames", [1, 3, 8])
def test_any_number_of_frames_is_accepted(frames):
    model = UniFormerV2(tiny_config(no_lmhra=False)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, frames, 32, 32)).shape == (1, 5)


def test_temporal_downsampling_halves_the_frames_seen_by_the_blocks():
    model = UniFormerV2(tiny_config(temporal_downsample=True, no_lmhra=False)).eval()
    with torch.no_grad():
        assert model.backbone.conv1(torch.randn(1, 3, 8, 32, 32)).shape[2] == 4


@pytest.mark.parametrize(
    "shape,message",
    [
        ((2, 3, 4, 64, 64), "32x32"),
        ((2, 4, 4, 32, 32), r"\[N, 3, T, 32, 32\]"),
        ((3, 4, 32, 32), r"\[N, 3, T, 32, 32\]"),
    ],
)
def test_a_wrong_input_shape_says_what_was_expected(tiny_model, shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(torch.randn(*shape))


def test_integer_frames_are_refused_with_a_hint_to_normalise(tiny_model):
    with pytest.raises(ValueError, match="normalised float video"):
        tiny_model(torch.zeros(1, 3, 4, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(return_list=(0, 1, 2)), "return_list has 3 entries but n_layers=2"),
        (dict(return_list=(1, 7)), r"return_list entries \[7\]"),
        (dict(n_dim=48), "n_dim=48 must equal width=32"),
        (dict(input_resolution=33), "not a multiple of patch_size"),
        (dict(mlp_dropout=(0.5,)), "mlp_dropout has 1 entries"),
    ],
)
def test_inconsistent_configurations_are_refused_with_the_reason(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(**overrides)


def test_unknown_arguments_are_refused_by_name():
    with pytest.raises(ConfigError, match="unknown UniFormerV2 arguments: widht"):
        UniFormerV2Config().replace(widht=3)


def test_config_round_trips_through_a_dict():
    cfg = tiny_config(no_lmhra=False, frozen=True)
    assert UniFormerV2Config.from_dict(cfg.to_dict()) == cfg


def test_drop_path_rates_rise_linearly_over_the_local_blocks():
    model = UniFormerV2(tiny_config(layers=3, backbone_drop_path_rate=0.2, return_list=(1, 2)))
    rates = [getattr(b.drop_path, "p", 0.0) for b in model.backbone.transformer.resblocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2])


def test_gradient_checkpointing_changes_neither_outputs_nor_gradients(video):
    plain = randomised(UniFormerV2(tiny_config(no_lmhra=False, double_lmhra=True, dropout_ratio=0.0)))
    ckpt = UniFormerV2(plain.cfg)
    ckpt.set_grad_checkpointing(True, blocks=2)
    ckpt.load_state_dict(plain.state_dict())
    ckpt.eval()
    grads = []
    for model in (plain, ckpt):
        model.zero_grad()
        model(video).square().sum().backward()
        grads.append(model.backbone.transformer.resblocks[0].attn.in_proj_weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_frozen_models_train_only_the_global_blocks_and_head():
    model = UniFormerV2(tiny_config(frozen=True))
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "backbone.conv1.weight" in frozen and "backbone.transformer.resblocks.0.attn.in_proj_weight" in frozen
    assert not any(n.startswith("cls_head.") or ".dec." in n for n in frozen)


def test_fusion_weight_mixes_the_video_token_with_the_mean_frame_class_token(video):
    """With balance -> +inf the feature is the norm of the frames' mean class token alone."""
    model = randomised(UniFormerV2(tiny_config()))
    with torch.no_grad():
        model.backbone.transformer.balance.fill_(60.0)
        seen = {}
        model.backbone.transformer.resblocks[-1].register_forward_hook(lambda m, i, o: seen.update(out=o))
        feat = model.forward_features(video)
        mean_cls = seen["out"][:, 0].reshape(2, 4, -1).mean(1)
        torch.testing.assert_close(feat, model.backbone.transformer.norm(mean_cls))
