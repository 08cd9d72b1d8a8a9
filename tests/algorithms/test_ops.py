"""Shared tensor math: hand-computed values, gradients on each side of the clip, and the
aggregation invariances (micro-batching, padding)."""

import math

import pytest
import torch

from algorithms import ops
from algorithms.ops import KLEstimator, LossAgg, LossNorm, RatioLevel


def ratios(*values):
    return torch.log(torch.tensor([values], dtype=torch.float64))


# --- clipped surrogate ------------------------------------------------------------------------


def test_surrogate_values_positive_and_negative_advantage():
    # ratios 0.5 .. 1.5, clip 0.2 / 0.2: clip(r) = [0.8, 0.9, 1.0, 1.1, 1.2]
    lr = ratios(0.5, 0.9, 1.0, 1.1, 1.5)
    pos = ops.clipped_surrogate(lr, torch.ones(1, 1, dtype=torch.float64), 0.2, 0.2, None)
    # A = +1: loss = -min(r, clip(r)) = [-0.5, -0.9, -1.0, -1.1, -1.2]
    assert pos.loss_bt.flatten().tolist() == pytest.approx([-0.5, -0.9, -1.0, -1.1, -1.2])
    assert pos.clipped_high_bt.flatten().tolist() == [0, 0, 0, 0, 1]
    assert pos.clipped_low_bt.sum() == 0
    neg = ops.clipped_surrogate(lr, -torch.ones(1, 1, dtype=torch.float64), 0.2, 0.2, None)
    # A = -1: loss = max(r, clip(r)) = [0.8, 0.9, 1.0, 1.1, 1.5]
    assert neg.loss_bt.flatten().tolist() == pytest.approx([0.8, 0.9, 1.0, 1.1, 1.5])
    assert neg.clipped_low_bt.flatten().tolist() == [1, 0, 0, 0, 0]


def test_clip_higher_uses_separate_bounds():
    # DAPO 0.2 / 0.28 with A = +1: ratio 1.25 is inside, 1.3 is clipped to 1.28
    s = ops.clipped_surrogate(ratios(1.25, 1.3), torch.ones(1, 1, dtype=torch.float64), 0.2, 0.28, None)
    assert s.loss_bt.flatten().tolist() == pytest.approx([-1.25, -1.28])


def test_dual_clip_bounds_negative_advantage():
    # A = -2, ratio 5, c = 3: max(10, 2 * 1.2) = 10, bounded by -c A = 6
    s = ops.clipped_surrogate(ratios(5.0, 2.0), torch.full((1, 1), -2.0, dtype=torch.float64), 0.2, 0.2, 3.0)
    assert s.loss_bt.flatten().tolist() == pytest.approx([6.0, 4.0])
    assert s.clipped_dual_bt.flatten().tolist() == [1, 0]
    # positive advantages are untouched by the dual clip
    p = ops.clipped_surrogate(ratios(5.0), torch.full((1, 1), 2.0, dtype=torch.float64), 0.2, 0.2, 3.0)
    assert p.loss_bt.item() == pytest.approx(-2.4)


@pytest.mark.parametrize(
    "ratio, adv, dual, zero_grad",
    [
        (1.5, +1.0, None, True),  # A > 0, above 1 + eps: clipped, no gradient
        (0.5, +1.0, None, False),  # A > 0, below 1 - eps: unclipped side, gradient flows
        (0.5, -1.0, None, True),  # A < 0, below 1 - eps: clipped
        (1.5, -1.0, None, False),  # A < 0, above 1 + eps: gradient flows (pessimistic bound)
        (5.0, -1.0, 3.0, True),  # A < 0 past the dual-clip bound: no gradient
        (2.0, -1.0, 3.0, False),  # A < 0 below the dual-clip bound: gradient flows
    ],
)
def test_clip_gradient_is_zero_on_the_right_side(ratio, adv, dual, zero_grad):
    logp = torch.tensor([[math.log(ratio)]], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, 1, dtype=torch.float64)
    loss = ops.clipped_surrogate(logp - old, torch.full((1, 1), adv, dtype=torch.float64), 0.2, 0.2, dual)
    loss.loss_bt.sum().backward()
    if zero_grad:
        assert logp.grad.item() == 0.0
    else:  # d(-A r)/d log r = -A r
        assert logp.grad.item() == pytest.approx(-adv * ratio)


# --- ratios -------------------------------------------------------------------------------------


def test_sequence_ratio_matches_the_sequence_level_objective():
    """GSPO-token: value and gradient equal -min(s A, clip(s) A) with s = exp(mean log ratio)."""
    torch.manual_seed(0)
    logp = (torch.randn(3, 5, dtype=torch.float64) * 0.01 - 1).requires_grad_()
    old = logp.detach() + torch.randn(3, 5, dtype=torch.float64) * 0.01
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.float64)
    adv = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    lr = ops.log_ratio(logp, old, mask, RatioLevel.sequence)
    token_form = ops.clipped_surrogate(lr, adv[:, None], 3e-3, 4e-3, None).loss_bt
    loss_token = ops.aggregate(token_form, mask, LossAgg.seq_mean_token_mean, LossNorm.of(mask, 5))
    (grad_token,) = torch.autograd.grad(loss_token, logp)

    s = torch.exp(((logp - old) * mask).sum(1) / mask.sum(1))
    direct = torch.maximum(-adv * s, -adv * s.clamp(1 - 3e-3, 1 + 4e-3)).mean()
    (grad_direct,) = torch.autograd.grad(direct, logp)
    assert loss_token.item() == pytest.approx(direct.item(), rel=1e-12)
    assert torch.allclose(grad_token * mask, grad_direct * mask, atol=1e-12)


def test_token_ratio_is_the_per_token_log_ratio():
    logp, old = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -1.0]])
    assert ops.log_ratio(logp, old, torch.ones(1, 2), RatioLevel.token).tolist() == [[0.5, -1.0]]


# --- KL -----------------------------------------------------------------------------------------


def test_truncated_importance_weight_by_hand():
    # log(pi_old / pi_engine) = [0.5, -1.0, 0.0, 30.0]; cap 1.5: [min(e^0.5 = 1.649, 1.5), e^-1, 1, 1.5]
    old = torch.tensor([[-1.0, -2.0, -0.5, -0.1]], dtype=torch.float64, requires_grad=True)
    engine = torch.tensor([[-1.5, -1.0, -0.5, -30.1]], dtype=torch.float64)
    w = ops.truncated_is_weight(old, engine, cap=1.5)
    assert w.flatten().tolist() == pytest.approx([1.5, math.exp(-1.0), 1.0, 1.5])
    assert not w.requires_grad  # a weight, never a path for the gradient
    assert ops.truncated_is_weight(old, engine, cap=10.0).flatten()[0].item() == pytest.approx(math.exp(0.5))


def test_kl_estimators_by_hand():
    # pi = 0.5, pi_ref = 0.25: d = log 2; k1 = d, k2 = d^2 / 2, k3 = 1/2 + d - 1
    logp, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])
    d = math.log(2)
    assert ops.kl(logp, ref, KLEstimator.k1).item() == pytest.approx(d)
    assert ops.kl(logp, ref, KLEstimator.k2).item() == pytest.approx(d * d / 2)
    assert ops.kl(logp, ref, KLEstimator.k3).item() == pytest.approx(0.5 + d - 1)


def test_kl_is_zero_at_the_reference_and_k3_is_nonnegative():
    torch.manual_seed(1)
    logp, ref = torch.randn(4, 7), torch.randn(4, 7)
    for est in KLEstimator:
        assert torch.all(ops.kl(logp, logp, est) == 0)
    assert torch.all(ops.kl(logp, ref, KLEstimator.k3) >= 0)


# --- aggregation --------------------------------------------------------------------------------

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    "mode, expected",
    [
        (LossAgg.token_mean, 10 / 4),  # all tokens / 4 tokens
        (LossAgg.seq_mean_token_mean, (6 / 3 + 4 / 1) / 2),
        (LossAgg.seq_mean_token_sum, (6 + 4) / 2),
        (LossAgg.seq_mean_token_sum_norm, 10 / (2 * 4)),  # norm_length 4
    ],
)
def test_aggregate_by_hand(mode, expected):
    assert ops.aggregate(LOSS, MASK, mode, LossNorm.of(MASK, 4)).item() == pytest.approx(expected)


def random_batch(seed, b=7, t=9):
    g = torch.Generator().manual_seed(seed)
    loss = torch.randn(b, t, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).double()
    return loss, mask


@pytest.mark.parametrize("mode", list(LossAgg))
@pytest.mark.parametrize("seed", range(5))
def test_micro_batches_add_up_to_the_full_batch(mode, seed):
    loss, mask = random_batch(seed)
    loss.requires_grad_()
    norm = LossNorm.of(mask, norm_length=12)
    full = ops.aggregate(loss, mask, mode, norm)
    (grad_full,) = torch.autograd.grad(full, loss)
    parts = [ops.aggregate(loss[i : i + 2], mask[i : i + 2], mode, norm) for i in range(0, 7, 2)]
    (grad_parts,) = torch.autograd.grad(sum(parts), loss)
    assert sum(parts).item() == pytest.approx(full.item(), rel=1e-12)
    assert torch.allclose(grad_parts, grad_full, atol=1e-14)


@pytest.mark.parametrize("mode", list(LossAgg))
def test_padding_adds_nothing_to_loss_or_gradient(mode):
    loss, mask = random_batch(3)
    garbage = torch.full((7, 4), 1e6, dtype=torch.float64)
    padded = torch.cat([loss, garbage], dim=1).requires_grad_()
    padded_mask = torch.cat([mask, torch.zeros(7, 4, dtype=torch.float64)], dim=1)
    norm = LossNorm.of(mask, norm_length=12)
    base = ops.aggregate(loss, mask, mode, norm)
    out = ops.aggregate(padded, padded_mask, mode, norm)
    out.backward()
    assert out.item() == pytest.approx(base.item(), rel=1e-12)
    assert torch.all(padded.grad[:, 9:] == 0)


# --- group statistics ---------------------------------------------------------------------------


def test_group_stats_match_torch_std_per_group():
    values = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 5.0, 5.0, 7.0])
    group = torch.tensor([0, 0, 0, 0, 2, 1, 1, 1])  # ragged, out of order, one singleton
    stats = ops.group_stats(values, group, 3)
    for g in range(3):
        members = values[group == g].double()
        assert stats.mean_g[g].item() == pytest.approx(members.mean().item())
        expected_std = members.std().item() if members.numel() > 1 else 0.0
        assert stats.std_g[g].item() == pytest.approx(expected_std)
    assert stats.count_g.tolist() == [4, 3, 1]


def test_group_rank_counts_in_batch_order():
    group = torch.tensor([2, 0, 2, 1, 0, 2])
    assert ops.group_rank(group, 3).tolist() == [0, 0, 1, 0, 1, 2]


def test_group_is_constant():
    values = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    group = torch.tensor([0, 0, 1, 1, 2, 2])
    assert ops.group_is_constant(values, group, 3).tolist() == [True, False, True]


# --- overlong shaping ---------------------------------------------------------------------------


def test_overlong_penalty_by_hand():
    # cap 100, buffer 20: 0 up to 80, then -(len - 80) / 20, -1 at 100 (factor 1), -0.5 x factor 0.5
    lengths = torch.tensor([10, 80, 81, 90, 100])
    assert ops.overlong_penalty(lengths, 100, 20, 1.0).tolist() == pytest.approx([0, 0, -0.05, -0.5, -1.0])
    assert ops.overlong_penalty(lengths, 100, 20, 0.5).tolist() == pytest.approx([0, 0, -0.025, -0.25, -0.5])
    assert ops.overlong_penalty(torch.tensor([130]), 100, 20, 1.0).item() == pytest.approx(-1.0)
