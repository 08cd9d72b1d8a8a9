"""The ``hf`` engine: transformers ``generate`` on the policy itself (the CPU default; also GPU).

It samples from the weights being trained, so ``sync_weights`` has nothing to do, and its
rollouts carry no sampling log-probs (the trainer's recomputation is exact).
"""

from __future__ import annotations

from typing import Any

import torch

from bench.config import Sampling
from bench.engines.base import Rollouts, cut_at_stop, encode_prompts, finish_batch, stop_ids

__all__ = ["HFEngine"]


class HFEngine:
    """transformers ``generate`` on the policy itself: batched, left-padded, seeded."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def generation_config(self, sampling: Sampling) -> Any:
        """Exactly ``sampling``: the fields generate would otherwise fill from the model's own defaults are pinned
        (greedy decoding sets no sampling knob: transformers warns about any that is given)."""
        from transformers import GenerationConfig

        knobs = {} if sampling.greedy else dict(
            temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k, min_p=0.0, typical_p=1.0,
            epsilon_cutoff=0.0, eta_cutoff=0.0)
        return GenerationConfig(
            do_sample=not sampling.greedy, max_new_tokens=sampling.max_new_tokens,
            eos_token_id=stop_ids(self.model, self.tokenizer), pad_token_id=self.tokenizer.pad_token_id, num_beams=1,
            num_return_sequences=1, min_new_tokens=0, repetition_penalty=1.0, no_repeat_ngram_size=0, use_cache=True,
            **knobs,
        )

    def generate(self, prompts: list[list[dict]], n: int, sampling: Sampling) -> Rollouts:
        """n responses per prompt; the model is back in its training mode afterwards."""
        prompt_ids = encode_prompts(self.tokenizer, prompts)
        rows = [ids for ids in prompt_ids for _ in range(n)]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
        device = next(self.model.parameters()).device
        cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=cuda):  # seeded, the trainer's RNG left as it was
                torch.manual_seed(sampling.seed)
                out = self.model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                          generation_config=self.generation_config(sampling))
        finally:
            self.model.train(was_training)
        stops = stop_ids(self.model, self.tokenizer)
        cut = [cut_at_stop(ids, stops) for ids in out[:, width:].tolist()]
        return finish_batch(self.tokenizer, prompt_ids, n, [c[0] for c in cut], [c[1] for c in cut])

    def sync_weights(self, model: Any) -> None:
        """Nothing to do: generation runs on the policy's own weights."""
