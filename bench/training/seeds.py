"""Every seed a run derives, in one place, and the process-wide generators.

A run's randomness comes from its one ``seed`` through the named derivations below, each a pure
function of (seed, step, ...), so a resumed run draws exactly what it would have, and every
algorithm at the same seed sees the same prompts in the same order:

- ``prompt_order_seed``: epoch e of the training pool is a permutation drawn from (seed, e)
  (``PromptSampler``; its position is its whole state);
- ``sampling_seed``: the rollout engine's seed for a step's generation round (``EVAL_ROUND``: the
  evaluation after that step);
- ``pairing_seed``: sampling inside an advantage (RiskPO's random pairing, ``RewardBatch.seed``);
- ``shuffle_seed``: the mini-batch order of a step's PPO epochs.

The process-wide random generators (Python's, NumPy's, torch's) are saved with a checkpoint
(``rng_state``) and kept across code that reseeds them (``preserved_rng``: vLLM's start-up).
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

EVAL_ROUND = 10_000  # the generation "round" of an evaluation: never one a training step reaches


def prompt_order_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def sampling_seed(seed: int, step: int, round_: int = 0) -> int:
    return seed * 1_000_003 + step * 101 + round_


def pairing_seed(seed: int, step: int) -> int:
    return seed * 7919 + step


def shuffle_seed(seed: int, step: int) -> int:
    return seed * 31 + step


class PromptSampler:
    """Indices into the training pool, epoch after epoch, each epoch a seeded permutation."""

    def __init__(self, pool_size: int, seed: int, position: int = 0) -> None:
        if pool_size < 1:
            raise ValueError("the training pool is empty")
        self.pool_size, self.seed, self.position = pool_size, seed, position

    def _epoch(self, epoch: int) -> list[int]:
        gen = torch.Generator().manual_seed(prompt_order_seed(self.seed, epoch))
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
