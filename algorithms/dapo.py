"""DAPO: Decoupled Clip and Dynamic sAmpling Policy Optimization.

Paper: Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
arXiv 2503.14476, eqs. 8-13.

Equations implemented:
- clip-higher (sec. 3.1): separate bounds, eps_low = ``clip_low`` 0.2, eps_high = ``clip_high`` 0.28;
- dynamic sampling (sec. 3.2, eq. 11): ``select`` drops the prompts whose rewards are all equal
  (all right or all wrong: zero advantage, no gradient); the trainer samples more prompts until
  the batch is full, up to its ``max_resample`` bound;
- token-level policy-gradient loss (sec. 3.3, eq. 12): ``token_mean`` over the whole batch;
- overlong reward shaping (sec. 3.4, eq. 13): R_length = 0 for |y| <= L_max - L_cache, then
  linear down to -1 at L_max (times ``overlong_penalty``), added to the verifier's reward before
  the group-normalised advantage (eq. 9).

Deviations:
- Dynamic sampling filters on the verifier's reward, before the overlong penalty (the paper's
  accuracy filter and the DAPO recipe's ``acc`` metric).
- L_max is the generation cap the trainer passes (``RewardBatch.max_length``) and the buffer
  L_cache is a fraction of it, ``overlong_buffer_frac`` (0.2: the paper's 4096 of 20480), so one
  setting serves a 64-token CPU run and a 20k-token GPU run; rounded to whole tokens, at least 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from algorithms import ops
from algorithms.base import Advantages, Groups, LossAgg, RewardBatch
from algorithms.grpo import GRPO, GRPOConfig, group_advantages


@dataclass(frozen=True)
class DAPOConfig(GRPOConfig):
    name: str = "dapo"
    clip_high: float = 0.28
    loss_agg: LossAgg = LossAgg.token_mean
    dynamic_sampling: bool = True
    overlong_shaping: bool = True
    overlong_buffer_frac: float = 0.2  # L_cache / L_max: the paper's 4096 of 20480, the last fifth of the cap
    overlong_penalty: float = 1.0  # the penalty at the cap

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.overlong_buffer_frac < 1.0:
            raise ValueError(f"overlong_buffer_frac={self.overlong_buffer_frac} must be in (0, 1)")
        if self.overlong_penalty < 0:
            raise ValueError(f"overlong_penalty={self.overlong_penalty} must be >= 0")


class DAPO(GRPO):
    config_type = DAPOConfig
    config: DAPOConfig

    def select(self, batch: RewardBatch, num_prompts: int) -> Tensor:
        if not self.config.dynamic_sampling:
            return super().select(batch, num_prompts)
        return ~ops.group_is_constant(batch.rewards_b, batch.prompt_b, num_prompts)

    def advantages(self, batch: RewardBatch, groups: Groups, state: Any) -> Advantages:
        c = self.config
        rewards_b = batch.rewards_b
        if c.overlong_shaping:
            if batch.lengths_b is None or batch.max_length is None:
                raise ValueError("dapo: overlong shaping needs response lengths and max_length "
                                 "(or set algorithm.overlong_shaping=false)")
            buffer = max(1, round(c.overlong_buffer_frac * batch.max_length))
            penalty_b = ops.overlong_penalty(batch.lengths_b, batch.max_length, buffer, c.overlong_penalty)
            rewards_b = rewards_b + penalty_b.to(rewards_b.dtype)
        out = group_advantages(rewards_b, batch.prompt_b, groups.num_prompts, c.scale_by_std)
        metrics = {**out.metrics, "shaped_reward_mean": rewards_b.double().mean().item()}
        return Advantages(adv_b=out.adv_b, metrics=metrics, details={"shaped_rewards_b": rewards_b})
