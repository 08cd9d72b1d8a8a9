"""RiskPO's vectorised advantage against the slow loop version (loop_riskpo.py), on random
batches and configs, and on the worked example of ../shared/RISKPO.md."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from loop_riskpo import loop_advantages

from algorithms.base import RewardBatch
from algorithms.riskpo import Credit, Formulation, Pairing, QuantileSource, QuantileTracker, RiskPO, RiskPOConfig

# Reward values. The real-valued ones sit on a 1/16 grid: sums and means of a few of them are
# exact, so the spec's thresholds (a paper's sum of deviations within 1e-6 of 0, a question's
# std <= 1e-3, a score below the tracked quantile) fall the same way in both implementations.
BINARY = st.sampled_from([0.0, 1.0])
SIGNED = st.sampled_from([-1.0, 1.0])  # the DAPO-Math data of the reference code
GRID = st.integers(-16, 16).map(lambda i: i / 16)


@st.composite
def reward_rows(draw: st.DrawFn) -> list[list[float]]:
    num_prompts, g = draw(st.integers(1, 13)), draw(st.integers(1, 6))
    value = draw(st.sampled_from([BINARY, SIGNED, GRID]))
    return [[draw(value) for _ in range(g)] for _ in range(num_prompts)]


@st.composite
def configs(draw: st.DrawFn) -> RiskPOConfig:
    weight = st.floats(0.0, 3.0)
    alpha = draw(st.floats(0.05, 0.85))
    return RiskPOConfig(
        bundle_size=draw(st.integers(1, 6)),
        pairing=draw(st.sampled_from(list(Pairing))),
        alpha=alpha,
        beta=draw(st.floats(alpha + 0.05, 0.95)),
        quantile_source=draw(st.sampled_from(list(QuantileSource))),
        tracker_lr=draw(st.sampled_from([0.0, 0.1, 0.5])),
        formulation=draw(st.sampled_from(list(Formulation))),
        omega=draw(weight),
        w_mix=draw(weight),
        natural_baseline=draw(st.booleans()),
        normalize_std=draw(st.booleans()),
        credit=draw(st.sampled_from(list(Credit))),
        risk_seeking=draw(st.booleans()),
        upper_weight=draw(weight),
    )


@st.composite
def trackers(draw: st.DrawFn) -> QuantileTracker:
    """Before the first batch, or some ordered (a, b) in units of a full bundle's score."""
    if draw(st.booleans()):
        return QuantileTracker()
    ends = sorted(draw(st.lists(st.floats(-7.0, 7.0), min_size=2, max_size=2)))
    return QuantileTracker(a=ends[0], b=ends[1], updates=draw(st.integers(0, 50)))


def batch_order(draw: st.DrawFn, num_prompts: int, g: int) -> list[tuple[int, int]]:
    """The (prompt, response) of each batch position: prompt-major, or the prompts interleaved
    with each prompt's own responses kept in order (the r-th in the batch is response r)."""
    labels = [p for p in range(num_prompts) for _ in range(g)]
    if draw(st.booleans()):
        labels = draw(st.permutations(labels))
    seen = [0] * num_prompts
    order = []
    for p in labels:
        order.append((p, seen[p]))
        seen[p] += 1
    return order


def vectorised(rewards, config, state, seed, order=None):
    """Production's advantages, back in the nesting of ``rewards``, and its new state."""
    num_prompts, g = len(rewards), len(rewards[0])
    order = order or [(p, r) for p in range(num_prompts) for r in range(g)]
    batch = RewardBatch(rewards_b=torch.tensor([rewards[p][r] for p, r in order], dtype=torch.float64),
                        prompt_b=torch.tensor([p for p, _ in order]), seed=seed)
    algo = RiskPO(config)
    out = algo.advantages(batch, algo.group(num_prompts), state)
    adv = [[math.nan] * g for _ in range(num_prompts)]
    for (p, r), value in zip(order, out.adv_b.tolist()):
        adv[p][r] = value
    return adv, out.state


def close(x: float, y: float) -> bool:
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)


def assert_same(got_adv, got_state, want_adv, want_state) -> None:
    for p, (got_row, want_row) in enumerate(zip(got_adv, want_adv)):
        assert all(close(x, y) for x, y in zip(got_row, want_row)), f"prompt {p}: {got_row} != {want_row}"
    assert got_state.updates == want_state.updates
    assert close(got_state.a, want_state.a) and close(got_state.b, want_state.b), f"{got_state} != {want_state}"


@settings(max_examples=150, deadline=None)
@given(data=st.data(), rewards=reward_rows(), config=configs(), state=trackers(), seed=st.integers(0, 2**31 - 1))
def test_vectorised_matches_loop(data, rewards, config, state, seed):
    order = batch_order(data.draw, len(rewards), len(rewards[0]))
    got_adv, got_state = vectorised(rewards, config, state, seed, order)
    want_adv, want_state = loop_advantages(rewards, config, state, seed)
    assert_same(got_adv, got_state, want_adv, want_state)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(reward_rows(), min_size=2, max_size=4), config=configs())
def test_tracker_carried_over_steps_matches_loop(steps, config):
    """Each implementation feeds its own returned state into its next step."""
    got_state = want_state = QuantileTracker()
    for seed, rewards in enumerate(steps):
        got_adv, got_state = vectorised(rewards, config, got_state, seed)
        want_adv, want_state = loop_advantages(rewards, config, want_state, seed)
        assert_same(got_adv, got_state, want_adv, want_state)


def test_worked_example_of_riskpo_md():
    """B = 5, G = 5, ordered papers with scores [0, 1, 2, 3, 5]: paper j takes response j of
    each question and question p got reward 1 from it when p < score_j. RISKPO.md gives
    a = 0.8, b = 3.4 and the advantages below (to 3 decimals)."""
    paper_scores = [0, 1, 2, 3, 5]
    rewards = [[1.0 if p < s else 0.0 for s in paper_scores] for p in range(5)]
    reference = RiskPOConfig(bundle_size=5, pairing="ordered", quantile_source="batch", formulation="reference",
                             w_mix=1.5, natural_baseline=True, normalize_std=True)
    paper = RiskPOConfig(bundle_size=5, pairing="ordered", quantile_source="batch", formulation="paper", omega=0.5)
    expected = [(reference, [-2.149, -0.832, -0.485, -0.139, 0.0]), (paper, [-3.8, -2.4, -1.4, -0.4, 0.0])]
    for config, want in expected:
        got_adv, got_state = vectorised(rewards, config, QuantileTracker(), seed=0)
        loop_adv, loop_state = loop_advantages(rewards, config, QuantileTracker(), seed=0)
        assert_same(got_adv, got_state, loop_adv, loop_state)
        for row in got_adv:  # every question's response j carries paper j's advantage
            assert [round(x, 3) for x in row] == want
        assert math.isclose(got_state.a, 0.8) and math.isclose(got_state.b, 3.4)
