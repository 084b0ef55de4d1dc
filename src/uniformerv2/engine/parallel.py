"""Data parallelism behind one object: a single process, DDP, or FSDP2 (``fully_shard``; CPU/gloo and CUDA)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

import torch
from torch import nn

from . import distributed as D

__all__ = ["Parallel"]


class Parallel:
    """How a training run spreads its model over processes; ``wrap`` once, then ask it.

    ``mode`` is 'single' (one process), 'ddp' (every rank holds the model, gradients are all-reduced) or 'fsdp'
    (parameters, gradients and optimiser state sharded across ranks).
    """

    def __init__(self, world_size: int, *, fsdp: bool = False, find_unused_parameters: bool = False) -> None:
        self.world_size = world_size
        self.mode = "single" if world_size == 1 else ("fsdp" if fsdp else "ddp")
        self.find_unused_parameters = find_unused_parameters

    @property
    def sharded(self) -> bool:
        return self.mode == "fsdp"

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module to train: ``model`` itself, a DDP wrapper, or ``model`` sharded in place."""
        if self.mode == "ddp":
            from torch.nn.parallel import DistributedDataParallel as DDP

            return DDP(
                model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=self.find_unused_parameters,
            )
        if self.mode == "fsdp":
            from torch.distributed.fsdp import fully_shard

            from ..model import GlobalUniBlock, LocalUniBlock

            for module in model.modules():  # every UniBlock is a unit, then the rest
                if isinstance(module, (LocalUniBlock, GlobalUniBlock)):
                    fully_shard(module)
            fully_shard(model)
        return model

    def no_sync(self, wrapped: nn.Module, last_micro_batch: bool) -> AbstractContextManager[Any]:
        """DDP's ``no_sync`` for the micro-batches of gradient accumulation before the last one."""
        if self.mode == "ddp" and not last_micro_batch:
            from torch.nn.parallel import DistributedDataParallel as DDP

            assert isinstance(wrapped, DDP)  # what wrap() returns in ddp mode
            return wrapped.no_sync()
        return nullcontext()

    def evaluation(self, wrapped: nn.Module, module: nn.Module) -> tuple[nn.Module, bool]:
        """The module to validate with and whether the videos are split across ranks (sharded parameters need
        every rank in every forward, so under FSDP each rank scores all of them)."""
        if self.mode == "fsdp":
            return wrapped, False
        return module, self.mode == "ddp"

    def full_state(
        self, wrapped: nn.Module, module: nn.Module, optimizer: torch.optim.Optimizer | None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Full (unsharded) model and optimiser state on the CPU; under FSDP on rank 0 only (collective)."""
        if self.mode == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
                get_optimizer_state_dict,
            )

            options = StateDictOptions(full_state_dict=True, cpu_offload=True)
            # full_state_dict=True gathers every entry into a plain (CPU) tensor: no ShardedTensor or DTensor left
            sd = cast(dict[str, torch.Tensor], get_model_state_dict(wrapped, options=options))
            osd = get_optimizer_state_dict(wrapped, optimizer, options=options) if optimizer is not None else {}
            return sd, osd
        sd = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        return sd, optimizer.state_dict() if optimizer is not None else {}

    def load_state(
        self,
        wrapped: nn.Module,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        model_state: dict[str, Any],
        optimizer_state: dict[str, Any],
    ) -> None:
        """Load full model and optimiser state (every rank read the same checkpoint)."""
        if self.mode == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            options = StateDictOptions(full_state_dict=True)
            set_model_state_dict(wrapped, model_state, options=options)
            set_optimizer_state_dict(wrapped, optimizer, optimizer_state, options=options)
        else:
            module.load_state_dict(model_state)
            optimizer.load_state_dict(optimizer_state)


def reduce_sums(values: list[float], device: torch.device) -> list[float]:
    """Sum ``values`` over every rank (a no-op in one process)."""
    if D.get_world_size() == 1 or not torch.distributed.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()
