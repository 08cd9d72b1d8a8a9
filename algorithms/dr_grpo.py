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
  (max_new_tokens), as TRL's ``dr_grpo`` loss does; the loss is the token sum / (responses x
  that constant). verl's ``seq-mean-token-sum-norm`` (``core_algos.agg_loss``) differs by version:
  - up to v0.7.0, and main before PR #5417 (commit b8d91ef, 26 Feb 2026; e.g. 0.8.0.dev at
    b178a3c): the token sum of the micro-batch divided by ``loss_scale_factor`` only (settable
    since PR #4360, default the padded response length), not by the number of responses; the
    RiskPO fork (65ec40c, core_algos.py:1214-1216) always divides by the padded length. The actor's
    scaling of each micro-batch (1 / gradient-accumulation steps) does not divide by it either;
  - v0.7.1, v0.8.0 and v0.9.0 (PR #5417): the mean over non-empty responses (their number in
    the global batch when given, else in the micro-batch) of their token sums, then divided by
    ``loss_scale_factor`` (default the padded length): this module's form, with a constant length.
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
