"""Tensor math shared by the algorithms, written once: masked reductions, statistics per group
by scatter, the clipped surrogate, importance ratios, KL estimators and loss aggregation.

Everything is vectorised over the batch: no Python loop runs per response or per group.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

import torch
from torch import Tensor

# exp() of a log-ratio past this overflows float32 long before it means anything; verl clamps
# its log-ratio to the same range.
MAX_LOG_RATIO = 20.0


class LossAgg(str, Enum):
    """How per-token losses become one scalar (verl's ``loss_agg_mode``, with _ for -)."""

    token_mean = "token_mean"  # sum over all tokens / tokens in the batch (DAPO)
    seq_mean_token_mean = "seq_mean_token_mean"  # mean over responses of each one's token mean (GRPO paper)
    seq_mean_token_sum = "seq_mean_token_sum"  # mean over responses of each one's token sum
    seq_mean_token_sum_norm = "seq_mean_token_sum_norm"  # token sum / (responses * constant length) (Dr.GRPO)


class KLEstimator(str, Enum):
    """Schulman's estimators of KL(pi || pi_ref) from tokens sampled by pi (joschu.net/blog/kl-approx)."""

    k1 = "k1"  # log pi - log pi_ref
    k2 = "k2"  # (log pi - log pi_ref)^2 / 2
    k3 = "k3"  # exp(log pi_ref - log pi) - (log pi_ref - log pi) - 1   (GRPO's choice; >= 0)


class RatioLevel(str, Enum):
    """Where the importance ratio lives."""

    token = "token"  # pi(y_t) / pi_old(y_t) per token (PPO, GRPO, DAPO, the RiskPO code)
    sequence = "sequence"  # (pi(y) / pi_old(y))^(1/|y|) per response (GSPO, the RiskPO paper)


@dataclass(frozen=True)
class LossNorm:
    """Loss denominators, fixed once over the whole batch of one optimizer step.

    Computing them per micro-batch is the gradient-accumulation bug: a micro-batch with fewer
    tokens would weigh more. With these, the micro-batch losses add up to the full-batch loss.
    """

    num_tokens: int  # response tokens in the batch
    num_seqs: int  # responses in the batch
    norm_length: int  # Dr.GRPO's constant length (the generation budget)

    @classmethod
    def of(cls, mask_bt: Tensor, norm_length: int) -> LossNorm:
        return cls(num_tokens=max(int(mask_bt.sum().item()), 1), num_seqs=max(mask_bt.shape[0], 1),
                   norm_length=max(int(norm_length), 1))


# --- masked reductions -------------------------------------------------------------------


def masked_sum(x: Tensor, mask: Tensor, dim: Optional[int] = None) -> Tensor:
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: Optional[int] = None) -> Tensor:
    """Mean over the positions where mask is 1; 0 where there are none."""
    return masked_sum(x, mask, dim) / (mask.sum() if dim is None else mask.sum(dim)).clamp(min=1)


# --- statistics per group, by scatter --------------------------------------------------------


@dataclass(frozen=True)
class GroupStats:
    count_g: Tensor  # [G] responses in the group
    mean_g: Tensor  # [G]
    std_g: Tensor  # [G] unbiased (n - 1) as torch.std, verl and TRL; 0 for a group of one


def group_stats(values_b: Tensor, group_b: Tensor, num_groups: int) -> GroupStats:
    """Mean and unbiased std of ``values_b`` within each group (groups may differ in size)."""
    values_b = values_b.to(torch.float64)  # sums of many rewards: keep the variance exact
    count_g = torch.zeros(num_groups, dtype=torch.float64, device=values_b.device)
    count_g.index_add_(0, group_b, torch.ones_like(values_b))
    mean_g = torch.zeros_like(count_g).index_add_(0, group_b, values_b) / count_g.clamp(min=1)
    sq_g = torch.zeros_like(count_g).index_add_(0, group_b, (values_b - mean_g[group_b]) ** 2)
    std_g = (sq_g / (count_g - 1).clamp(min=1)).sqrt()
    return GroupStats(count_g=count_g, mean_g=mean_g, std_g=std_g)


def group_rank(group_b: Tensor, num_groups: int) -> Tensor:
    """[N] position of each response within its group, counting in batch order from 0."""
    order = torch.sort(group_b, stable=True).indices
    count_g = torch.bincount(group_b, minlength=num_groups)
    start_g = torch.cumsum(count_g, 0) - count_g
    rank_sorted = torch.arange(group_b.numel(), device=group_b.device) - start_g[group_b[order]]
    return torch.empty_like(rank_sorted).scatter_(0, order, rank_sorted)


def group_is_constant(values_b: Tensor, group_b: Tensor, num_groups: int) -> Tensor:
    """[G] bool: every value in the group is the same (empty groups count as constant)."""
    lo = torch.full((num_groups,), float("inf"), dtype=values_b.dtype, device=values_b.device)
    hi = torch.full((num_groups,), float("-inf"), dtype=values_b.dtype, device=values_b.device)
    lo = lo.scatter_reduce(0, group_b, values_b, reduce="amin")
    hi = hi.scatter_reduce(0, group_b, values_b, reduce="amax")
    return ~(hi > lo)


# --- ratios, surrogate, KL --------------------------------------------------------------------


def log_ratio(logp_bt: Tensor, old_logp_bt: Tensor, mask_bt: Tensor, level: RatioLevel) -> Tensor:
    """[b, T] log importance ratio per token.

    ``sequence`` (GSPO, Zheng et al. 2025, eq. 7 and its token form GSPO-token): every token
    carries the value log s_i = mean_t (log pi - log pi_old) over its response, with a gradient
    that is grad log pi(y_t); averaged over the response's tokens that gives grad log s_i.
    """
    token_bt = logp_bt - old_logp_bt
    if level is RatioLevel.token:
        return token_bt.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    seq_b = masked_mean(token_bt, mask_bt, dim=-1).detach()
    return seq_b[:, None].clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO) + logp_bt - logp_bt.detach()


@dataclass(frozen=True)
class Surrogate:
    loss_bt: Tensor  # [b, T]
    clipped_low_bt: Tensor  # [b, T] float 0/1: A < 0 and ratio < 1 - clip_low (no gradient)
    clipped_high_bt: Tensor  # [b, T] float 0/1: A > 0 and ratio > 1 + clip_high (no gradient)
    clipped_dual_bt: Tensor  # [b, T] float 0/1: A < 0 and ratio > dual_clip (no gradient)


def clipped_surrogate(
    log_ratio_bt: Tensor, adv_bt: Tensor, clip_low: float, clip_high: float, dual_clip: Optional[float]
) -> Surrogate:
    """PPO's loss -min(r A, clip(r, 1 - clip_low, 1 + clip_high) A) with DAPO's separate bounds
    (Yu et al. 2025, eq. 10); with ``dual_clip`` = c, negative advantages are further bounded by
    -c A (Ye et al. 2020, "dual-clip PPO"), so a huge ratio cannot push a bad response forever.
    """
    ratio_bt = torch.exp(log_ratio_bt)
    unclipped_bt = -adv_bt * ratio_bt
    clipped_bt = -adv_bt * torch.clamp(ratio_bt, 1.0 - clip_low, 1.0 + clip_high)
    loss_bt = torch.maximum(unclipped_bt, clipped_bt)
    ratio_d, adv_d = ratio_bt.detach(), adv_bt.detach().expand_as(ratio_bt)
    dual_bt = torch.zeros_like(ratio_d)
    if dual_clip is not None:
        bounded_bt = torch.minimum(loss_bt, -adv_bt * dual_clip)
        loss_bt = torch.where(adv_bt < 0, bounded_bt, loss_bt)
        dual_bt = ((adv_d < 0) & (ratio_d > dual_clip)).float()
    return Surrogate(
        loss_bt=loss_bt,
        clipped_low_bt=((adv_d < 0) & (ratio_d < 1.0 - clip_low)).float(),
        clipped_high_bt=((adv_d > 0) & (ratio_d > 1.0 + clip_high)).float(),
        clipped_dual_bt=dual_bt,
    )


def kl(logp_bt: Tensor, ref_logp_bt: Tensor, estimator: KLEstimator) -> Tensor:
    """[b, T] per-token estimate of KL(pi || pi_ref) for tokens sampled from pi."""
    diff_bt = (logp_bt - ref_logp_bt).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    if estimator is KLEstimator.k1:
        return diff_bt
    if estimator is KLEstimator.k2:
        return 0.5 * diff_bt**2
    return torch.exp(-diff_bt) + diff_bt - 1.0


def truncated_is_weight(old_logp_bt: Tensor, engine_logp_bt: Tensor, cap: float) -> Tensor:
    """[b, T] truncated importance weight min(pi_old / pi_engine, C) per token, no gradient.

    The engine that sampled (vLLM) computes a slightly different distribution from the trainer's
    recomputation of the same weights (other kernels, precision, batch shapes), so its samples
    are off-policy for pi_old. Weighting each token's policy-gradient term by this ratio,
    truncated at C to bound the variance, corrects for it (Yao et al. 2025, "Your efficient RL
    framework secretly brings you off-policy RL training"; verl's ``tis_imp_ratio_cap``).
    """
    log_w_bt = (old_logp_bt - engine_logp_bt).detach().clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    return torch.exp(log_w_bt).clamp(max=cap)


# --- aggregation ------------------------------------------------------------------------------


def aggregate(loss_bt: Tensor, mask_bt: Tensor, mode: LossAgg, norm: LossNorm) -> Tensor:
    """One scalar from per-token losses, with denominators from the whole batch (``norm``), so
    the losses of the micro-batches of a batch add up to the loss of the batch."""
    tokens_b = masked_sum(loss_bt, mask_bt, dim=-1)
    if mode is LossAgg.token_mean:
        return tokens_b.sum() / norm.num_tokens
    if mode is LossAgg.seq_mean_token_mean:
        return (tokens_b / mask_bt.sum(-1).clamp(min=1)).sum() / norm.num_seqs
    if mode is LossAgg.seq_mean_token_sum:
        return tokens_b.sum() / norm.num_seqs
    if mode is LossAgg.seq_mean_token_sum_norm:
        return tokens_b.sum() / (norm.num_seqs * norm.norm_length)
    raise ValueError(f"unknown loss aggregation {mode!r}; valid: {', '.join(LossAgg.__members__)}")


# --- reward shaping ---------------------------------------------------------------------------


def overlong_penalty(lengths_b: Tensor, max_length: int, buffer: int, factor: float) -> Tensor:
    """[N] DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), added to the reward:
    0 up to max_length - buffer, then falling linearly to -factor at max_length, and -factor
    beyond it (a response cannot be longer than the generation cap, so verl's unbounded line
    and the paper's step agree on every length that occurs)."""
    expected = max_length - buffer
    return (-(lengths_b.to(torch.float32) - expected) / buffer * factor).clamp(min=-factor, max=0.0)
