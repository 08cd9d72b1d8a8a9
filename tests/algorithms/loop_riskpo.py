"""A slow, obviously correct RiskPO advantage: plain Python loops over bundles, papers and
responses, written from the spec in the docstring of algorithms/riskpo.py.

It shares no code with the vectorised version (no make_papers, paper_advantage,
credit_weights, track or ops.*): only the config and tracker types, and one data contract, the
random pairing's permutations (see ``paper_of``). tests/algorithms/test_riskpo_loop.py checks
the two against each other; scripts/bench_advantages.py --loop times it, as a stand-in for the
reference code, which also loops in Python per response.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from algorithms.riskpo import QuantileTracker, RiskPOConfig

EPS = 1e-6  # the spec's epsilon in the std divisions


def loop_advantages(
    rewards: list[list[float]], config: RiskPOConfig, state: Optional[QuantileTracker], seed: int
) -> tuple[list[list[float]], QuantileTracker]:
    """Per-response advantages (same nesting as ``rewards``: one list per prompt, G each) and
    the tracker after this step. ``state`` None or with ``a`` None means "before the first batch"."""
    c = config
    num_prompts, g = len(rewards), len(rewards[0])
    if any(len(row) != g for row in rewards) or g == 0:
        raise ValueError("every prompt needs the same number (>= 1) of responses")
    full = c.bundle_size

    # Bundles: B consecutive prompts; the last one may be smaller.
    bundles = [list(range(start, min(start + full, num_prompts))) for start in range(0, num_prompts, full)]

    # Papers: paper j of a bundle takes one response of each of its questions.
    paper = paper_of(num_prompts, g, c.pairing.value, seed)
    scores = []  # scores[k][j]: the sum of the rewards of paper j of bundle k
    members = []  # members[k][j]: the (prompt, response) pairs in that paper
    for prompts in bundles:
        score = [0.0] * g
        member: list[list[tuple[int, int]]] = [[] for _ in range(g)]
        for p in prompts:
            for r in range(g):
                j = paper[p][r]
                score[j] += rewards[p][r]
                member[j].append((p, r))
        scores.append(score)
        members.append(member)

    # The tracker lives in units of a full bundle: bundle k's scores count B / B_k times more.
    scale = [len(prompts) / full for prompts in bundles]  # B_k / B
    pooled = [scores[k][j] / scale[k] for k in range(len(bundles)) for j in range(g)]
    if state is None or state.a is None:  # first batch: start at the pooled empirical quantiles
        a_used, b_used = quantile(pooled, c.alpha), quantile(pooled, c.beta)
        new_state = QuantileTracker(a=a_used, b=b_used, updates=0)
    else:  # the advantage uses the incoming state; this batch moves it for the next step
        a_used, b_used = state.a, state.b
        below_a = sum(1 for x in pooled if x < a_used) / len(pooled)
        below_b = sum(1 for x in pooled if x < b_used) / len(pooled)
        a_next = a_used + c.tracker_lr * (c.alpha - below_a)
        b_next = b_used + c.tracker_lr * (c.beta - below_b)
        new_state = QuantileTracker(a=min(a_next, b_next), b=max(a_next, b_next), updates=state.updates + 1)

    adv = [[0.0] * g for _ in range(num_prompts)]
    for k in range(len(bundles)):
        a, b = bundle_quantiles(scores[k], a_used * scale[k], b_used * scale[k], c)
        spread = unbiased_std(scores[k]) if g > 1 else 1.0  # 1 for a single paper
        spread = spread if spread > 1e-3 else 1.0  # a deviation: the question-std rule, see Deviations
        for j in range(g):
            a_j = paper_advantage(scores[k][j], a, b, c)
            if c.normalize_std:
                a_j = a_j / (spread + EPS)
            for p, r in members[k][j]:
                adv[p][r] = a_j * credit(rewards, members[k][j], p, r, c.credit.value)
    return adv, new_state


def paper_of(num_prompts: int, g: int, pairing: str, seed: int) -> list[list[int]]:
    """paper_of[p][r]: the paper (0..G-1) of the r-th response of prompt p.

    ``random``: the production data contract, one permutation per prompt from this exact call.
    ``ordered``: the r-th response goes to paper r (the reference code).
    """
    if pairing == "random":
        gen = torch.Generator().manual_seed(seed)
        return torch.argsort(torch.rand(num_prompts, g, generator=gen), dim=1).tolist()
    return [list(range(g)) for _ in range(num_prompts)]


def bundle_quantiles(score: list[float], tracked_a: float, tracked_b: float, c: RiskPOConfig) -> tuple[float, float]:
    """The (a, b) one bundle uses: the (scaled) tracker, its own papers' quantiles, or their mean."""
    source = c.quantile_source.value
    if source == "tracked":
        return tracked_a, tracked_b
    batch_a, batch_b = quantile(score, c.alpha), quantile(score, c.beta)
    if source == "batch":
        return batch_a, batch_b
    return (batch_a + tracked_a) / 2, (batch_b + tracked_b) / 2


def paper_advantage(score: float, a: float, b: float, c: RiskPOConfig) -> float:
    """The MVaR advantage of one paper with score R = ``score``."""
    # g(R, a, b) = (R-a)^+ - (R-b)^+ + a - b, written as the spec's identity clamp(R, a, b) - b
    # (for a <= b): the same number without the rounding of adding and removing a and b.
    clamped = min(max(score, a), b)
    g = clamped - b if c.natural_baseline else clamped - a  # without the natural baseline "+a-b"
    lower = max(a - score, 0.0)  # (a - R)^+
    upper = max(score - b, 0.0)  # (R - b)^+
    if c.formulation.value == "paper":
        if c.risk_seeking:
            return c.upper_weight * upper + g
        return -(1.0 + c.omega) * lower + g
    rvar = g / (c.beta - c.alpha)
    if c.risk_seeking:
        upper_tail = upper / (1.0 - c.beta)
        return (c.upper_weight * upper_tail + rvar) / (c.upper_weight + 1.0)
    cvar = -lower / c.alpha
    return (c.w_mix * cvar + rvar) / (c.w_mix + 1.0)


def credit(rewards: list[list[float]], paper: list[tuple[int, int]], p: int, r: int, mode: str) -> float:
    """The factor on the paper's advantage for response r of prompt p, a member of ``paper``."""
    if mode == "uniform":
        return 1.0
    if mode == "score":
        return 0.5 if rewards[p][r] > 0 else 1.5
    if mode == "std":
        std = unbiased_std(rewards[p])
        return 1.0 / ((std if std > 1e-3 else 1.0) + EPS)
    # sum_mean: (r_i - mean_q) over the paper's sum of (r - mean_q); an even share when that is ~0
    total = sum(rewards[q][s] - mean(rewards[q]) for q, s in paper)
    if abs(total) > 1e-6:
        return (rewards[p][r] - mean(rewards[p])) / total
    # An even share over the paper's responses: B_k, the bundle's questions (the spec's "A_j / B";
    # the reference code divides by the paper's length, which is B_k in a smaller last bundle).
    return 1.0 / len(paper)


def quantile(values: list[float], level: float) -> float:
    """Linear-interpolation quantile (torch.quantile's default): position level * (n - 1) of
    the sorted values."""
    xs = sorted(values)
    pos = level * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def unbiased_std(values: list[float]) -> float:
    """sqrt(sum (x - mean)^2 / (n - 1)); 0 for a single value (nothing to spread)."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((x - m) ** 2 for x in values) / (len(values) - 1))
