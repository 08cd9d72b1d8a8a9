"""The prompt order of a run: seeded, the same for every algorithm at the same seed.

Epoch e is a permutation of the training pool drawn from (seed, e); ``take`` walks through it
and into the next epoch. The position is the sampler's whole state, so a resumed run continues
exactly where it stopped.

The process-wide random generators (Python's, NumPy's, torch's) are saved with a checkpoint
(``rng_state``) and kept across code that reseeds them (``preserved_rng``: vLLM's start-up).
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the body, then put every process-wide generator back as it was (the body may reseed them)."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
