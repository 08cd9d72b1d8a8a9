"""GRPO: Group Relative Policy Optimization.

Paper: Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
Models", arXiv 2402.03300, section 4.1.

Equations implemented:
- outcome advantage (sec. 4.1.2): A_i = (r_i - mean(r_group)) / (std(r_group) + 1e-6) for every
  token of response i; std is the unbiased (n - 1) estimate, as verl and TRL compute it;
- loss (eq. 3): the token-level clipped surrogate with clip 0.2, averaged over each response's
  tokens, then over the responses (``seq_mean_token_mean``), plus kl_coef * k3 KL to a reference.

Deviations:
- ``kl_coef`` defaults to 0 (no reference model): the paper used 0.04, but verl's and TRL's
  current defaults and the DAPO / Dr.GRPO / RiskPO recipes train without it. Set
  ``algorithm.kl_coef=0.04`` for the paper's setting.
- A group of one response gets advantage 0 (nothing to compare with). verl gives it r - 0 with
  std 1; TRL gives NaN.
- ``loss_agg`` defaults to the paper's per-response mean; verl's default is ``token_mean``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from algorithms import ops
from algorithms.base import Advantages, Algorithm, AlgorithmConfig, Groups, RewardBatch

EPS = 1e-6  # verl's and TRL's epsilon in the std division


@dataclass(frozen=True)
class GRPOConfig(AlgorithmConfig):
    name: str = "grpo"
    scale_by_std: bool = True  # divide by the group's reward std (Dr.GRPO turns it off)


class GRPO(Algorithm):
    config_type = GRPOConfig
    config: GRPOConfig

    def advantages(self, batch: RewardBatch, groups: Groups, state: Any) -> Advantages:
        return group_advantages(batch.rewards_b, batch.prompt_b, groups.num_prompts, self.config.scale_by_std)


def group_advantages(rewards_b: Tensor, prompt_b: Tensor, num_prompts: int, scale_by_std: bool) -> Advantages:
    """Group-relative advantages; shared by GRPO, Dr.GRPO, DAPO and GSPO."""
    stats = ops.group_stats(rewards_b, prompt_b, num_prompts)
    adv_b = rewards_b.double() - stats.mean_g[prompt_b]
    if scale_by_std:
        adv_b = adv_b / (stats.std_g[prompt_b] + EPS)
    # A group whose rewards are all equal gets exactly 0: the rounding error of its mean
    # (0.37 * 3 / 3 != 0.37) divided by 1e-6 would otherwise leave a small gradient.
    constant_g = ops.group_is_constant(rewards_b, prompt_b, num_prompts)
    adv_b = torch.where(constant_g[prompt_b], torch.zeros_like(adv_b), adv_b)
    present_g = stats.count_g > 0
    metrics = {"zero_std_frac": (constant_g & present_g).sum().item() / max(present_g.sum().item(), 1)}
    return Advantages(adv_b=adv_b.to(rewards_b.dtype), metrics=metrics)
