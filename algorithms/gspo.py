"""GSPO: Group Sequence Policy Optimization.

Paper: Zheng et al., "Group Sequence Policy Optimization", arXiv 2507.18071, eqs. 5-7 and 10-11.

Equations implemented:
- advantage: GRPO's group-normalised A_i = (r_i - mean) / std (eq. 6);
- importance ratio per response, length-normalised: s_i = (pi(y_i) / pi_old(y_i))^(1/|y_i|)
  = exp(mean_t log ratio) (eq. 7), clipped at the sequence level with the paper's small range
  1 - 3e-4 .. 1 + 4e-4 (sec. 5.1);
- loss: mean over responses of -min(s_i A_i, clip(s_i) A_i) (eq. 5), computed in the token form
  GSPO-token (eqs. 10-11) so one loss path serves every algorithm; its value and gradient equal
  the sequence form's when the per-token advantages are equal, as here.

Deviations: none known. (No KL term by default, as in the paper.)
"""

from __future__ import annotations

from dataclasses import dataclass

from algorithms.base import LossAgg, RatioLevel
from algorithms.grpo import GRPO, GRPOConfig


@dataclass(frozen=True)
class GSPOConfig(GRPOConfig):
    name: str = "gspo"
    ratio: RatioLevel = RatioLevel.sequence
    clip_low: float = 3e-4
    clip_high: float = 4e-4
    loss_agg: LossAgg = LossAgg.seq_mean_token_mean


class GSPO(GRPO):
    config_type = GSPOConfig
