"""What the trainer measures besides the loss: the wall time of each stage, which tokens state
the answer (for the entropy split) and how far the policy has moved from its start (the KL the
evaluation reports)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch

from bench.engines import Rollouts
from bench.engines.base import span_tokens
from bench.models.policy import token_kl
from tasks.base import Task

STAGES = ("generate", "score", "advantages", "old_logprobs", "update", "sync", "eval", "checkpoint")


class StageClock:
    """Wall seconds per stage, read (and reset) once per metrics row as ``time/<stage>``."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def lap(self) -> dict[str, float]:
        """Seconds per stage since the last lap; the clock starts again from zero."""
        out = {f"time/{stage}": seconds for stage, seconds in self.seconds.items()}
        self.seconds = dict.fromkeys(STAGES, 0.0)
        return out


def answer_tokens(task: Task, tokenizer: Any, r: Rollouts,
                  device: torch.device) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """(answer_bt, other_bt) [N, T] bool on ``device``: the tokens of each response inside its
    task's answer spans, and its other response tokens; rows whose tokens do not map to their text
    are in neither. (None, None) when the task marks no answer in any response (code)."""
    spans = [task.answer_spans(text) for text in r.texts]
    if not any(spans):
        return None, None
    answer_bt, mapped_b = span_tokens(tokenizer, r, spans)
    other_bt = (r.response_mask > 0) & mapped_b[:, None] & ~answer_bt
    return answer_bt.to(device), other_bt.to(device)


def kl_from(initial: Any, model: Any, r: Rollouts, *, rows: int, chunk: int, temperature: float) -> torch.Tensor:
    """[N] each response's KL of ``model`` from ``initial`` (``token_kl`` summed over its tokens),
    at the sampling temperature, ``rows`` responses per forward pass."""
    device = next(model.parameters()).device
    out = []
    for part in torch.arange(len(r)).split(rows):
        ids, attention = r.input_ids[part].to(device), r.attention_mask[part].to(device)
        kl_bt = token_kl(model, initial, ids, attention, chunk, temperature=temperature, images=r.images_of(part))
        out.append((kl_bt * r.response_mask[part].to(device)).sum(-1).double().cpu())
    return torch.cat(out)
