"""The optimiser and learning-rate schedule of MMAction2 1.2.0's UniFormerV2 recipes.

* :func:`param_groups`: mmengine's ``DefaultOptimWrapperConstructor`` with ``paramwise_cfg=dict(norm_decay_mult=0.0,
  bias_decay_mult=0.0)``: every parameter of a normalisation layer (LayerNorm, BatchNorm, GroupNorm, InstanceNorm)
  and every bias gets no weight decay; all others get the base weight decay. mmengine recognises a bias by the
  attribute name ``bias`` only, so the ``in_proj_bias`` of the attention layers (``nn.MultiheadAttention`` in
  MMAction2) *is* decayed there; ``bias_rule="mmengine"`` reproduces that, the default ``"all"`` treats it as the
  bias it is. Embeddings (class/position embeddings, the video token, the fusion balance) are decayed in the recipe;
  ``embed_decay_mult=0`` exempts them as timm/DeiT do. Frozen parameters are left out.
* :class:`RecipeSchedule`: ``LinearLR(start_factor, begin=0, end=warmup)`` then
  ``CosineAnnealingLR(T_max=epochs-warmup, eta_min_ratio, begin=warmup, end=epochs)``, both with
  ``convert_to_iter_based=True``: the learning rate changes after every optimiser step. The values are mmengine's:
  its ``LinearLR`` has ``total_iters = end - begin - 1``, so the warm-up factor of step ``i < W`` is
  ``start + (1 - start) * i / (W - 1)`` and reaches 1 at the warm-up's last step; the cosine of step ``W + t`` is
  ``eta + (1 - eta) * (1 + cos(pi * t / T)) / 2`` with ``T = (epochs - warmup) * steps_per_epoch``.
* :func:`scaled_lr`: ``auto_scale_lr``: the base learning rate is for a total batch of 256 and scales linearly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, cast

import torch
from torch import nn

__all__ = ["param_groups", "build_optimizer", "scaled_lr", "RecipeSchedule", "NORM_LAYERS"]

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
if hasattr(nn, "RMSNorm"):
    NORM_LAYERS = NORM_LAYERS + (nn.RMSNorm,)


def scaled_lr(base_lr: float, total_batch: int, base_batch_size: int = 256) -> float:
    """mmengine's ``auto_scale_lr``: ``base_lr * total_batch / base_batch_size``."""
    return base_lr * total_batch / base_batch_size


def _classify(module: nn.Module, name: str, param: nn.Parameter, embeddings: set[int], bias_rule: str) -> str:
    if isinstance(module, NORM_LAYERS):
        return "norm"
    if name == "bias" or (bias_rule == "all" and name.endswith("bias")):
        return "bias"
    if id(param) in embeddings:
        return "embed"
    return "weight"


def _embedding_ids(model: nn.Module) -> set[int]:
    """The parameters the model names as embeddings or tokens (its ``no_weight_decay()``), through DDP wrappers."""
    base = getattr(model, "module", model)
    # nn.Module types unknown attributes as Tensor | Module; a model that has it defines ``no_weight_decay()``
    # (UniFormerV2's returns set[str])
    names = cast(Callable[[], Iterable[str]], base.no_weight_decay)() if hasattr(base, "no_weight_decay") else set()
    return {id(p) for n, p in base.named_parameters() if n in names}


def param_groups(
    model: nn.Module,
    weight_decay: float,
    *,
    norm_decay_mult: float = 0.0,
    bias_decay_mult: float = 0.0,
    embed_decay_mult: float = 1.0,
    bias_rule: str = "all",
) -> list[dict[str, Any]]:
    """Parameter groups with per-kind weight decay (see the module docstring).

    Each group carries ``weight_decay``, ``params``, ``param_names`` and ``kind`` (norm / bias / embed / weight).
    """
    if bias_rule not in ("all", "mmengine"):
        raise ValueError(f"bias_rule={bias_rule!r}: choose 'all' or 'mmengine'")
    mult = {"norm": norm_decay_mult, "bias": bias_decay_mult, "embed": embed_decay_mult, "weight": 1.0}
    groups: dict[str, dict[str, Any]] = {}
    embeddings = _embedding_ids(model)
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            kind = _classify(module, p_name, p, embeddings, bias_rule)
            g = groups.setdefault(
                kind, {"params": [], "param_names": [], "kind": kind, "weight_decay": weight_decay * mult[kind]}
            )
            g["params"].append(p)
            g["param_names"].append(f"{mod_name}.{p_name}" if mod_name else p_name)
    order = ["weight", "embed", "bias", "norm"]
    return [groups[k] for k in order if k in groups]


def build_optimizer(
    model: nn.Module,
    lr: float,
    *,
    weight_decay: float = 0.05,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    norm_decay_mult: float = 0.0,
    bias_decay_mult: float = 0.0,
    embed_decay_mult: float = 1.0,
    bias_rule: str = "all",
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (the recipe: betas 0.9/0.999, weight decay 0.05)."""
    groups = param_groups(
        model,
        weight_decay,
        norm_decay_mult=norm_decay_mult,
        bias_decay_mult=bias_decay_mult,
        embed_decay_mult=embed_decay_mult,
        bias_rule=bias_rule,
    )
    if not groups:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    for g in opt.param_groups:
        g.setdefault("initial_lr", lr)
    return opt


class RecipeSchedule:
    """Per-optimiser-step learning rate: linear warm-up, then cosine annealing (mmengine's values).

    ``steps_per_epoch`` optimiser steps make an epoch; ``warmup_epochs`` and ``epochs`` may be fractional. The
    schedule is a pure function of the step: :meth:`factor` (relative to the base) and :meth:`lr`; :meth:`apply`
    writes it into an optimiser's groups (``initial_lr`` times the factor). The state is the step count alone.
    """

    def __init__(
        self,
        steps_per_epoch: int,
        *,
        epochs: float = 5,
        warmup_epochs: float = 1,
        warmup_start_factor: float = 0.5,
        eta_min_ratio: float = 0.5,
        base_lr: float = 1.0,
    ) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch={steps_per_epoch} must be positive")
        if not 0 <= warmup_epochs <= epochs:
            raise ValueError(f"warmup_epochs={warmup_epochs} must lie in [0, epochs={epochs}]")
        self.steps_per_epoch = steps_per_epoch
        self.warmup_steps = int(warmup_epochs * steps_per_epoch)  # mmengine: int(begin/end * epoch_length)
        self.total_steps = int(epochs * steps_per_epoch)
        self.cosine_steps = self.total_steps - self.warmup_steps  # T_max = end - begin
        self.start_factor = warmup_start_factor
        self.eta_min_ratio = eta_min_ratio
        self.base_lr = base_lr
        self.last_step = 0

    def _warmup(self, t: int) -> float:
        n = self.warmup_steps - 1  # mmengine's total_iters
        if n <= 0:
            return self.start_factor
        return self.start_factor + (1.0 - self.start_factor) * min(t, n) / n

    def factor(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based) relative to the base."""
        w = self.warmup_steps
        if step < w:
            return self._warmup(step)
        # mmengine's chained cosine starts from the value the warm-up left (1 unless the warm-up is one step)
        start = self._warmup(w - 1) if w > 0 else 1.0
        if self.cosine_steps <= 0:
            return start
        t = min(step - w, self.cosine_steps)
        eta = self.eta_min_ratio
        return eta + (start - eta) * (1 + math.cos(math.pi * t / self.cosine_steps)) / 2

    def lr(self, step: int) -> float:
        return self.base_lr * self.factor(step)

    def lrs(self, steps: Iterable[int] | None = None) -> list[float]:
        return [self.lr(s) for s in (range(self.total_steps) if steps is None else steps)]

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every group's lr for optimiser step ``step``; returns the factor."""
        f = self.factor(step)
        for g in optimizer.param_groups:
            g["lr"] = g.get("initial_lr", g["lr"]) * f
        self.last_step = step
        return f

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_step": self.last_step,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            raise ValueError(
                f"the checkpoint's schedule has {state['steps_per_epoch']} steps per epoch, this run "
                f"{self.steps_per_epoch}: resume with the same data, batch size and world size"
            )
        self.last_step = int(state["last_step"])
