"""The prompt order of a run: seeded, the same for every algorithm at the same seed.

Epoch e is a permutation of the training pool drawn from (seed, e); ``take`` walks through it
and into the next epoch. The position is the sampler's whole state, so a resumed run continues
exactly where it stopped.
"""

from __future__ import annotations

import torch


class PromptSampler:
    def __init__(self, pool_size: int, seed: int, position: int = 0) -> None:
        if pool_size < 1:
            raise ValueError("the training pool is empty")
        self.pool_size, self.seed, self.position = pool_size, seed, position

    def _epoch(self, epoch: int) -> list[int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.pool_size, generator=gen).tolist()

    def take(self, count: int) -> list[int]:
        """The next ``count`` indices into the pool."""
        out: list[int] = []
        while len(out) < count:
            epoch, offset = divmod(self.position, self.pool_size)
            order = self._epoch(epoch)
            grab = order[offset : offset + count - len(out)]
            out += grab
            self.position += len(grab)
        return out
