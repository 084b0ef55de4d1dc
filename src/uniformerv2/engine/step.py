"""One optimiser step of training: its micro-batches forward under autocast and backward through the grad scaler
(gradients synchronised on the last one only), then unscale, clip and step; and the running sums a log line
averages. What every step does lives here: the loss, what is measured, the gradient's treatment."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..precision import autocast
from .parallel import Parallel, reduce_sums

__all__ = ["collate", "StepSums", "TrainStep"]


def collate(batch: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
    """Training items ``(clip [3, T, H, W], label)`` -> ``(clips [B, 3, T, H, W], labels [B])``."""
    return torch.stack([b[0] for b in batch]), torch.tensor([b[1] for b in batch], dtype=torch.long)


class StepSums:
    """Loss and accuracy summed over the micro-batches since the last log line (of this rank)."""

    def __init__(self) -> None:
        self.loss, self.correct, self.n = 0.0, 0, 0

    def add(self, loss_value: float, logits: Tensor, y: Tensor) -> None:
        self.loss += loss_value * len(y)
        self.correct += int((logits.argmax(1) == y).sum())
        self.n += len(y)

    def reduce(self, device: torch.device) -> tuple[float, float]:
        """(mean loss, accuracy) over every rank's items; collective under torchrun."""
        totals = reduce_sums([self.loss, self.correct, self.n], device)
        return totals[0] / max(1, totals[2]), totals[1] / max(1, totals[2])


class TrainStep:
    """Forward and backward of micro-batches, then the optimiser step, for a (possibly wrapped) model.

    ``loss(logits, y)`` is computed in float32 whatever the autocast dtype; cross-entropy by default.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        parallel: Parallel,
        *,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        clip_grad: float | None,
        loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    ) -> None:
        self.model, self.optimizer, self.scaler, self.parallel = model, optimizer, scaler, parallel
        self.device, self.amp_dtype, self.clip_grad, self.loss = device, amp_dtype, clip_grad, loss

    def backward(self, x: Tensor, y: Tensor, *, n_micro: int, last_micro: bool) -> tuple[Tensor, Tensor]:
        """One micro-batch of ``n_micro`` (on the device): (loss, logits); the gradient accumulates, synchronised
        on the last."""
        with self.parallel.no_sync(self.model, last_micro):
            with autocast(self.device, self.amp_dtype):
                logits = self.model(x)
            loss = self.loss(logits.float(), y)
            self.scaler.scale(loss / n_micro).backward()
        return loss.detach(), logits

    def step(self) -> float:
        """Unscale, clip (``clip_grad``), step and zero the gradients; returns the gradient's norm before clipping."""
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        # clipping at infinity measures the norm without changing the gradients; FSDP2 returns a DTensor
        norm: Any = torch.nn.utils.clip_grad_norm_(params, self.clip_grad or math.inf)
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)
