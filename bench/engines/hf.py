"""The ``hf`` engine: transformers ``generate`` on the policy itself (the CPU default; also GPU).

It samples from the weights being trained, so ``sync_weights`` has nothing to do, and its
rollouts carry no sampling log-probs (the trainer's recomputation is exact). Under a policy's
bf16 autocast (bench/models/precision.py) its logits are bf16, as with bf16 weights on a GPU.

A row's response is a function of (sampling seed, prompt index, sample index) alone, whatever
else shares its batch: transformers' own temperature, top-k and top-p warpers, then the row's
Gumbel noise (bench/engines/noise.py), then the argmax, an exact sample of the warped
distribution. Nothing draws from a generator, so the trainer's stays as it was. (The logits
themselves may differ in their last bits with the batch's shape and padding, which changes a
pick only at a near-tie.)

Under torch.distributed with several processes, ``generate`` runs with ``synced_gpus``: every rank
takes as many forward passes as the longest one (a finished rank keeps stepping), which a model
sharded across the data-parallel ranks needs, each of its forward passes being collective.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from bench.config import Sampling
from bench.engines.base import Rollouts, cut_at_stop, encode_prompts, finish_batch, stop_ids
from bench.engines.noise import GumbelNoiseProcessor, row_keys
from bench.models.precision import autocast
from bench.models.vision import Images, forward_kwargs, vision_token_ids

__all__ = ["HFEngine"]


class HFEngine:
    """transformers ``generate`` on the policy itself: batched, left-padded, each row keyed by
    (seed, prompt index, sample index); prompts with images need the policy's ``image_processor``."""

    def __init__(self, model: Any, tokenizer: Any, image_processor: Optional[Any] = None) -> None:
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor

    def generation_config(self, sampling: Sampling) -> Any:
        """Greedy decoding with ``sampling``'s length: the fields generate would otherwise fill from the model's own
        defaults are pinned; a vision-language policy's image tokens are never sampled. No sampling knob is set (transformers warns about any given with greedy decoding):
        sampling is the warpers and noise of ``logits_processors``."""
        from transformers import GenerationConfig

        return GenerationConfig(
            do_sample=False, max_new_tokens=sampling.max_new_tokens,
            eos_token_id=stop_ids(self.model, self.tokenizer), pad_token_id=self.tokenizer.pad_token_id, num_beams=1,
            num_return_sequences=1, min_new_tokens=0, repetition_penalty=1.0, no_repeat_ngram_size=0, use_cache=True,
            suppress_tokens=vision_token_ids(self.model) or None,
        )

    def logits_processors(self, sampling: Sampling, keys_b: torch.Tensor, prompt_width: int) -> Any:
        """Temperature, top-k and top-p (transformers' warpers, in the order its own sampling applies
        them), then each row's Gumbel noise: the argmax of the result samples the warped distribution."""
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        warpers = [TemperatureLogitsWarper(float(sampling.temperature))]
        if sampling.top_k:
            warpers.append(TopKLogitsWarper(top_k=sampling.top_k))
        if sampling.top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p=sampling.top_p))
        return LogitsProcessorList([*warpers, GumbelNoiseProcessor(keys_b, prompt_width)])

    def generate(self, prompts: list[list[dict]], n: int, sampling: Sampling, first: int = 0) -> Rollouts:
        """n responses per prompt; the model is back in its training mode afterwards. ``first``: the
        index of ``prompts[0]`` among the step's (or evaluation's) prompts, so prompt i's rows are
        keyed by first + i."""
        prompt_ids, images = encode_prompts(self.tokenizer, prompts, self.image_processor)
        rows = [ids for ids in prompt_ids for _ in range(n)]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
        device = next(self.model.parameters()).device
        pixels = forward_kwargs(self.model, input_ids.to(device),
                                None if images is None else Images.cat([image for image in images for _ in range(n)]))
        processors = None if sampling.greedy else self.logits_processors(
            sampling, row_keys(sampling.seed, first, len(prompts), n).to(device), width)
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), autocast(self.model):  # bf16 on the CPU with float32 weights (precision.py)
                out = self.model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                          generation_config=self.generation_config(sampling),
                                          logits_processor=processors, **pixels,
                                          synced_gpus=distributed and torch.distributed.get_world_size() > 1)
        finally:
            self.model.train(was_training)
        stops = stop_ids(self.model, self.tokenizer)
        cut = [cut_at_stop(ids, stops) for ids in out[:, width:].tolist()]
        return finish_batch(self.tokenizer, prompt_ids, n, [c[0] for c in cut], [c[1] for c in cut],
                            prompt_images=images)

    def sync_weights(self, model: Any) -> None:
        """Nothing to do: generation runs on the policy's own weights."""
