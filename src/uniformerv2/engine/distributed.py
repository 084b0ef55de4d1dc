"""Small, generic helpers for running under ``torchrun`` (evaluation and training).

* ``get_rank`` / ``get_world_size`` / ``get_local_rank``: from an initialised process group, else from the
  environment ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), else a single process (0, 1, 0).
* ``init_distributed(device)``: joins the process group when ``WORLD_SIZE > 1`` (``nccl`` for CUDA, ``gloo``
  otherwise; the CUDA device is ``cuda:LOCAL_RANK``) and returns the device this process should use.
* ``shard_indices(n)``: this rank's indices, strided (``rank, rank + world_size, ...``): every item goes to exactly
  one rank, nothing is padded or repeated, also when ``n`` is not a multiple of the world size.
* ``all_gather_objects(obj)`` / ``barrier()``: picklable Python objects across ranks; no-ops returning the obvious
  value in a single process.
* ``with main_process_first(): ...``: rank 0 runs the block first (a download into the cache happens once), then
  the other ranks; a plain block in a single process.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from ..errors import UsageError

__all__ = [
    "get_rank",
    "get_world_size",
    "get_local_rank",
    "is_distributed",
    "is_main_process",
    "init_distributed",
    "destroy_distributed",
    "shard_indices",
    "all_gather_objects",
    "barrier",
    "main_process_first",
]


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if _initialized() else _env_int("RANK", 0)


def get_world_size() -> int:
    return dist.get_world_size() if _initialized() else _env_int("WORLD_SIZE", 1)


def get_local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def is_distributed() -> bool:
    """True when this process is one of several (an initialised group, or torchrun's WORLD_SIZE > 1)."""
    return get_world_size() > 1


def is_main_process() -> bool:
    return get_rank() == 0


def init_distributed(
    device: str | torch.device | None = None, *, backend: str | None = None, timeout_s: float = 1800.0
) -> torch.device:
    """Join the default process group when launched by torchrun with ``WORLD_SIZE > 1``; return this rank's device.

    ``device`` is 'cpu', 'cuda' (each rank takes ``cuda:LOCAL_RANK``), 'cuda:N' or None (CUDA when available).
    The backend is ``nccl`` on CUDA and ``gloo`` on CPU unless ``backend`` says otherwise. Calling it again, or in a
    single process, only resolves the device.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available")
        if device.index is None:
            index = get_local_rank() if is_distributed() else torch.cuda.current_device()
            device = torch.device("cuda", index % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(device)
    if _env_int("WORLD_SIZE", 1) > 1 and dist.is_available() and not dist.is_initialized():
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        kwargs: dict[str, Any] = dict(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
        if device.type == "cuda":
            try:
                dist.init_process_group(device_id=device, **kwargs)
            except TypeError:  # older torch without device_id
                dist.init_process_group(**kwargs)
        else:
            dist.init_process_group(**kwargs)
    return device


def destroy_distributed() -> None:
    if _initialized():
        dist.destroy_process_group()


def shard_indices(n: int, rank: int | None = None, world_size: int | None = None) -> list[int]:
    """Indices of ``range(n)`` for ``rank``: ``rank, rank + world, ...`` -- disjoint, covering, unpadded."""
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return list(range(rank, n, world_size))


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order, on every rank."""
    if not _initialized() or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if _initialized() and dist.get_world_size() > 1:
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the ``with`` block while the other ranks wait at a barrier; then they run it (reading what rank
    0 left in a cache, e.g. a downloaded checkpoint). A plain block in a single process.

    Rank 0 reaches the barrier also when its block raises, so the others are not left waiting for it; its error is
    raised after the barrier.
    """
    if not is_distributed():
        yield
        return
    if is_main_process():
        try:
            yield
        finally:
            barrier()
    else:
        barrier()
        yield
