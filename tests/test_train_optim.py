"""The recipe's optimiser and learning-rate schedule (MMAction2 1.2.0 / mmengine semantics)."""

import math

import pytest
import torch

from helpers import tiny_config
from uniformerv2.engine.optim import RecipeSchedule, build_optimizer, param_groups, scaled_lr
from uniformerv2.model import UniFormerV2

TINY = tiny_config(
    input_resolution=16,
    patch_size=8,
    layers=2,
    return_list=(0, 1),
    mlp_dropout=(0.0, 0.0),
    no_lmhra=False,
    double_lmhra=True,
)


def mmengine_reference(epoch_length, base_lr=2e-6, start_factor=0.5, warmup=1, epochs=5, eta_min_ratio=0.5):
    """mmengine's LinearLR + CosineAnnealingLR (convert_to_iter_based), re-implemented in their chained form.

    LinearLR: begin=0, end=warmup*L, total_iters = end - begin - 1; factor multiplied step by step.
    CosineAnnealingLR: begin=warmup*L, end=epochs*L, T_max=(epochs-warmup)*L, eta_min = base * ratio; its first
    step keeps the current value. Both step after every iteration; returns the lr used by each iteration.
    """
    lin_begin, lin_end = 0, warmup * epoch_length
    total_iters = lin_end - lin_begin - 1
    cos_begin, cos_end = warmup * epoch_length, epochs * epoch_length
    t_max = (epochs - warmup) * epoch_length
    eta_min = base_lr * eta_min_ratio
    lr = base_lr
    lin_last = cos_last = -1
    out = []
    for global_step in range(0, epochs * epoch_length):
        # scheduler.step() for global_step (the initial step at construction is global step 0)
        if lin_begin <= global_step < lin_end:
            lin_last += 1
            if lin_last == 0:
                lr = lr * start_factor
            else:
                lr = lr * (
                    1.0 + (1.0 - start_factor) / (total_iters * start_factor + (lin_last - 1) * (1.0 - start_factor))
                )
        if cos_begin <= global_step < cos_end:
            cos_last += 1
            if cos_last > 0:
                lr = (1 + math.cos(math.pi * cos_last / t_max)) / (1 + math.cos(math.pi * (cos_last - 1) / t_max)) * (
                    lr - eta_min
                ) + eta_min
        out.append(lr)
    return out


@pytest.mark.parametrize("epoch_length", [1, 2, 3, 10, 39])
def test_schedule_equals_the_recipe_per_step(epoch_length):
    ref = mmengine_reference(epoch_length)
    ours = RecipeSchedule(epoch_length, base_lr=2e-6).lrs()
    assert len(ours) == len(ref) == 5 * epoch_length
    for step, (a, b) in enumerate(zip(ours, ref)):
        assert a == pytest.approx(b, rel=1e-12, abs=0), step


def test_schedule_shape():
    s = RecipeSchedule(10, base_lr=1.0)
    assert s.lr(0) == pytest.approx(0.5)  # warm-up from 0.5x
    assert s.lr(9) == pytest.approx(1.0)  # reaches the base at the warm-up's last step
    assert s.lr(10) == pytest.approx(1.0)  # cosine starts at the base
    assert s.lr(30) == pytest.approx(0.75)  # half-way through the cosine: (1 + 0.5) / 2
    lrs = s.lrs(range(10, 50))
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] > 0.5 and lrs[-1] == pytest.approx(0.5, abs=1e-3)  # towards 0.5x


def test_schedule_applies_to_optimizer():
    model = UniFormerV2(TINY)
    opt = build_optimizer(model, 3e-4)
    s = RecipeSchedule(4, base_lr=3e-4)
    for step in range(20):
        s.apply(opt, step)
        assert all(g["lr"] == pytest.approx(s.lr(step)) for g in opt.param_groups)


def test_lr_scales_linearly_with_total_batch():
    assert scaled_lr(2e-6, 256) == pytest.approx(2e-6)
    assert scaled_lr(2e-6, 64) == pytest.approx(5e-7)
    assert scaled_lr(1e-5, 512) == pytest.approx(2e-5)


def test_no_weight_decay_on_norms_and_biases():
    model = UniFormerV2(TINY)
    opt = build_optimizer(model, 1e-3, weight_decay=0.05)
    wd = {}
    for g in opt.param_groups:
        for name in g["param_names"]:
            wd[name] = g["weight_decay"]
    names = dict(model.named_parameters())
    assert set(wd) == set(names)  # every parameter exactly once
    norm_params = {
        f"{m}.{p}"
        for m, mod in model.named_modules()
        for p, _ in mod.named_parameters(recurse=False)
        if isinstance(mod, (torch.nn.LayerNorm, torch.nn.BatchNorm3d))
    }
    assert norm_params and any("lmhra1.pos_embed.0" in n for n in norm_params)  # LayerNorms and MHRA BatchNorms
    for name, decay in wd.items():
        if name in norm_params or name.endswith("bias"):
            assert decay == 0.0, name
        else:
            assert decay == 0.05, name
    assert wd["backbone.transformer.resblocks.0.attn.in_proj_bias"] == 0.0
    assert wd["backbone.transformer.resblocks.0.attn.in_proj_weight"] == 0.05
    assert wd["cls_head.fc_cls.weight"] == 0.05
    assert wd["backbone.positional_embedding"] == 0.05  # decayed in the recipe (paramwise_cfg has no embed rule)


def test_mmengine_bias_rule_and_embedding_option():
    model = UniFormerV2(TINY)
    groups = param_groups(model, 0.05, bias_rule="mmengine", embed_decay_mult=0.0)
    wd = {n: g["weight_decay"] for g in groups for n in g["param_names"]}
    # mmengine only knows attributes named 'bias': nn.MultiheadAttention's in_proj_bias is decayed there
    assert wd["backbone.transformer.resblocks.0.attn.in_proj_bias"] == 0.05
    assert wd["backbone.transformer.resblocks.0.attn.out_proj.bias"] == 0.0
    assert wd["backbone.class_embedding"] == 0.0
    assert wd["backbone.transformer.temporal_cls_token"] == 0.0


def test_frozen_parameters_are_left_out():
    model = UniFormerV2(TINY)
    model.freeze_backbone()
    opt = build_optimizer(model, 1e-3)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in in_opt) == p.requires_grad, name
    assert opt.defaults["betas"] == (0.9, 0.999)
