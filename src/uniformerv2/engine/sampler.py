"""The training data order: DistributedSampler's, resumable at any position of an epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

__all__ = ["ResumableSampler"]


class ResumableSampler(torch.utils.data.Sampler):
    """DistributedSampler's order (a permutation seeded by ``seed + epoch``, padded to a multiple of the world
    size, rank ``r`` taking positions ``r, r + world, ...``), yielding ``(epoch, index)`` and able to start at any
    position of an epoch, so a resumed run sees exactly the items the uninterrupted one would have."""

    def __init__(self, n: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True) -> None:
        if n < 1:
            raise ValueError("no training samples")
        self.n, self.rank, self.world_size, self.seed, self.shuffle = n, rank, world_size, seed, shuffle
        self.num_samples = math.ceil(n / world_size)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.num_samples * self.world_size
        while len(order) < total:
            order += order[: total - len(order)]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.indices(self.epoch)[self.start :]:
            yield (self.epoch, i)

    def __len__(self) -> int:
        return self.num_samples - self.start
