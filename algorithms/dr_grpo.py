"""Dr.GRPO: GRPO "done right".

Paper: Liu et al., "Understanding R1-Zero-Like Training: A Critical Perspective",
arXiv 2503.20783, section 3.1 and eq. 3.

Equations implemented: GRPO with its two biases removed:
- no std division: A_i = r_i - mean(r_group) (the question-level difficulty bias);
- no per-response length normalisation: token losses are summed per response and divided by a
  constant, responses x the generation budget (``seq_mean_token_sum_norm``), so longer wrong
  answers are not penalised less per token (the response-level length bias).

Deviations:
- The constant is ``LossNorm.norm_length``, which the trainer sets to the generation cap
  (max_new_tokens), as TRL's ``dr_grpo`` loss does. verl's ``seq-mean-token-sum-norm`` (checked
  at 0.8.0.dev, commit b178a3c, ``core_algos.agg_loss``) divides the token sum by
  ``loss_scale_factor`` (default: the padded length) only, without the number of responses.
"""

from __future__ import annotations

from dataclasses import dataclass

from algorithms.base import LossAgg
from algorithms.grpo import GRPO, GRPOConfig


@dataclass(frozen=True)
class DrGRPOConfig(GRPOConfig):
    name: str = "dr_grpo"
    scale_by_std: bool = False
    loss_agg: LossAgg = LossAgg.seq_mean_token_sum_norm


class DrGRPO(GRPO):
    config_type = DrGRPOConfig
