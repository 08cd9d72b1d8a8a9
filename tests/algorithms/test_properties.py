"""Properties every algorithm must have (STYLE.md, "Tests"), over many random batches."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import algorithms
from algorithms.base import LossNorm, PolicyBatch, RewardBatch, advantage_step
from algorithms.riskpo import QuantileTracker, RiskPO, RiskPOConfig

# every registered algorithm; all but RiskPO (and its subclasses) centre advantages within each prompt's group
ALL = list(algorithms.ALGORITHMS)
GROUP_RELATIVE = [name for name, cls in algorithms.ALGORITHMS.items() if not issubclass(cls, RiskPO)]


def make_batch(rows, lengths=None, max_length=None, seed=0):
    rewards_b = torch.tensor([r for row in rows for r in row], dtype=torch.float64)
    prompt_b = torch.tensor([p for p, row in enumerate(rows) for _ in row])
    return RewardBatch(rewards_b=rewards_b, prompt_b=prompt_b, lengths_b=lengths, max_length=max_length, seed=seed)


def build(name, **fields):
    cls = algorithms.get_algorithm(name)
    return cls(cls.config_type(**fields))


def unshaped(name):
    """``name`` with any reward shaping off (DAPO's overlong penalty needs lengths these batches lack)."""
    config_type = algorithms.get_algorithm(name).config_type
    return build(name, overlong_shaping=False) if "overlong_shaping" in config_type.__dataclass_fields__ else build(name)


def run(algo, rows, state=None, **batch_fields):
    batch = make_batch(rows, **batch_fields)
    return algo.advantages(batch, algo.group(len(rows)), algo.init_state() if state is None else state)


binary_rows = st.integers(1, 8).flatmap(
    lambda g: st.lists(st.lists(st.sampled_from([0.0, 1.0]), min_size=g, max_size=g), min_size=1, max_size=12)
)
real_rows = st.integers(1, 6).flatmap(
    lambda g: st.lists(
        st.lists(st.floats(-3, 3, allow_nan=False), min_size=g, max_size=g), min_size=1, max_size=10
    )
)


@settings(max_examples=100, deadline=None)
@given(rows=st.one_of(binary_rows, real_rows), name=st.sampled_from(GROUP_RELATIVE))
def test_group_advantages_sum_to_zero(rows, name):
    algo = unshaped(name)
    adv = run(algo, rows).adv_b.view(len(rows), -1)
    assert torch.allclose(adv.sum(1), torch.zeros(len(rows), dtype=adv.dtype), atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    value=st.sampled_from([0.0, 1.0, -1.0, 0.37]),
    shape=st.tuples(st.integers(1, 11), st.integers(1, 6)),
    name=st.sampled_from(ALL),
    variant=st.sampled_from([{}, {"formulation": "reference", "normalize_std": True}, {"risk_seeking": True},
                             {"quantile_source": "batch", "credit": "sum_mean"}]),
)
def test_constant_rewards_give_zero_advantage_and_zero_gradient(value, shape, name, variant):
    prompts, g = shape
    algo = build(name, **variant) if issubclass(algorithms.get_algorithm(name), RiskPO) else unshaped(name)
    adv = run(algo, [[value] * g for _ in range(prompts)]).adv_b
    assert torch.all(adv.abs() < 1e-9)

    torch.manual_seed(0)
    n, t = adv.numel(), 6
    logp = (torch.randn(n, t, dtype=torch.float64) * 0.1 - 1).requires_grad_()
    mask = torch.ones(n, t, dtype=torch.float64)
    pb = PolicyBatch(logp_bt=logp, old_logp_bt=logp.detach() + 0.05, adv_b=adv, mask_bt=mask)
    algo.aggregate(algo.token_loss(pb).loss_bt, mask, LossNorm.of(mask, t)).backward()
    # exact for group-relative algorithms; RiskPO's rescaled partial bundle may round at 1e-16
    assert torch.all(logp.grad.abs() < 1e-12)


@pytest.mark.parametrize("name", ALL)
def test_padding_with_garbage_log_probs_changes_nothing(name):
    algo = build(name)
    torch.manual_seed(2)
    n, t = 4, 5
    adv = torch.tensor([1.0, -0.5, 0.25, -2.0], dtype=torch.float64)
    logp = torch.randn(n, t, dtype=torch.float64) * 0.1 - 1
    old = logp + torch.randn(n, t, dtype=torch.float64) * 0.05
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.float64)

    def loss_and_grad(logp, old, mask):
        logp = logp.clone().requires_grad_()
        loss = algo.aggregate(algo.token_loss(PolicyBatch(logp, old, adv, mask)).loss_bt, mask, LossNorm.of(mask, 8))
        loss.backward()
        return loss.item(), logp.grad[:, :t]

    pad_logp = torch.cat([logp, torch.full((n, 3), -50.0, dtype=torch.float64)], 1)
    pad_old = torch.cat([old, torch.full((n, 3), 7.0, dtype=torch.float64)], 1)
    pad_mask = torch.cat([mask, torch.zeros(n, 3, dtype=torch.float64)], 1)
    loss, grad = loss_and_grad(logp, old, mask)
    pad_loss, pad_grad = loss_and_grad(pad_logp, pad_old, pad_mask)
    assert pad_loss == pytest.approx(loss, rel=1e-12)
    assert torch.allclose(pad_grad, grad, atol=1e-14)


def test_kl_penalty_adds_coef_times_estimate():
    algo = build("grpo", kl_coef=0.5, kl_estimator="k1")
    logp = torch.tensor([[-1.0, -2.0]], dtype=torch.float64)
    ref = torch.tensor([[-1.5, -1.0]], dtype=torch.float64)
    adv = torch.zeros(1, dtype=torch.float64)  # the surrogate is 0; only the KL is left
    out = algo.token_loss(PolicyBatch(logp, logp, adv, torch.ones(1, 2, dtype=torch.float64), ref_logp_bt=ref))
    assert out.loss_bt.flatten().tolist() == pytest.approx([0.25, -0.5])  # 0.5 * (logp - ref)
    with pytest.raises(ValueError, match="reference log-probs"):
        algo.token_loss(PolicyBatch(logp, logp, adv, torch.ones(1, 2, dtype=torch.float64)))


def test_importance_weight_scales_the_policy_gradient_term_and_not_the_kl():
    algo = build("grpo", kl_coef=0.5, kl_estimator="k1")
    logp = torch.tensor([[-1.0, -2.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0]], dtype=torch.float64)
    adv = torch.tensor([2.0], dtype=torch.float64)
    weight = torch.tensor([[0.5, 3.0]], dtype=torch.float64)
    mask = torch.ones(1, 2, dtype=torch.float64)
    out = algo.token_loss(PolicyBatch(logp, logp.detach(), adv, mask, ref_logp_bt=ref, is_weight_bt=weight))
    # ratio 1: surrogate -A = -2 per token, times the weight, plus 0.5 * (logp - ref) unweighted
    assert out.loss_bt.flatten().tolist() == pytest.approx([-2.0 * 0.5 + 0.25, -2.0 * 3.0 - 0.5])
    out.loss_bt.sum().backward()
    # d/dlogp: -A * w * ratio (the ratio's gradient is itself) + kl_coef
    assert logp.grad.flatten().tolist() == pytest.approx([-2.0 * 0.5 + 0.5, -2.0 * 3.0 + 0.5])
    unweighted = algo.token_loss(PolicyBatch(logp, logp.detach(), adv, mask, ref_logp_bt=ref))
    assert unweighted.loss_bt.flatten().tolist() == pytest.approx([-2.0 + 0.25, -2.0 - 0.5])


# --- RiskPO -----------------------------------------------------------------------------------

riskpo_configs = st.builds(
    RiskPOConfig,
    bundle_size=st.integers(1, 6),
    pairing=st.sampled_from(["random", "ordered"]),
    formulation=st.sampled_from(["paper", "reference"]),
    quantile_source=st.sampled_from(["tracked", "batch", "mix"]),
    credit=st.sampled_from(["uniform", "std", "score"]),
    normalize_std=st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(rows=binary_rows, config=riskpo_configs, seed=st.integers(0, 2**31))
def test_each_response_lands_in_exactly_one_paper(rows, config, seed):
    algo = RiskPO(config)
    batch = make_batch(rows, seed=seed)
    groups = algo.group(len(rows))
    out = algo.advantages(batch, groups, algo.init_state())
    g = len(rows[0])
    paper_b = out.details["paper_b"]
    bundle_b = groups.bundle_p[batch.prompt_b]
    assert torch.equal(paper_b // g, bundle_b)  # a paper never crosses a bundle
    for paper in paper_b.unique():
        members = batch.prompt_b[paper_b == paper]
        bundle_prompts = (groups.bundle_p == bundle_b[paper_b == paper][0]).nonzero().flatten()
        assert sorted(members.tolist()) == bundle_prompts.tolist()  # one response of each question
    assert paper_b.unique().numel() == groups.num_bundles * g  # G papers per bundle, none empty
    scores = out.details["paper_score_kg"].flatten()
    assert torch.allclose(scores, torch.zeros_like(scores).index_add_(0, paper_b, batch.rewards_b))


@settings(max_examples=100, deadline=None)
@given(rows=st.one_of(binary_rows, real_rows), config=riskpo_configs)
def test_risk_averse_advantages_are_never_positive(rows, config):
    """With the natural baseline every lower-tail and band term is <= 0 (RISKPO.md)."""
    state = QuantileTracker(a=0.5, b=2.0) if config.quantile_source is not config.quantile_source.batch else None
    out = run(RiskPO(config), rows, state=state)
    assert torch.all(out.adv_b <= 1e-12)
    adv_kg, score_kg, ab_k2 = out.details["paper_adv_kg"], out.details["paper_score_kg"], out.details["quantiles_k2"]
    above_b = score_kg >= ab_k2[:, 1:]
    assert torch.all(adv_kg[above_b] == 0)  # papers above b get nothing


def test_tracker_converges_on_a_stationary_stream():
    """Paper scores = sums of 5 Uniform(0,1) rewards (Irwin-Hall, n=5); its 0.2 and 0.8
    quantiles by symmetry are 2.5 -+ d; d from a 2e6-sample estimate."""
    gen = torch.Generator().manual_seed(0)
    true_a, true_b = torch.quantile(torch.rand(2_000_000, 5, generator=gen, dtype=torch.float64).sum(1)[:1_000_000],
                                    torch.tensor([0.2, 0.8], dtype=torch.float64)).tolist()
    algo = RiskPO(RiskPOConfig(bundle_size=5, tracker_lr=0.05))
    state = QuantileTracker(a=0.0, b=5.0, updates=0)  # start far away on purpose
    groups = algo.group(40)
    history = []
    for step in range(3000):
        rows = torch.rand(40, 8, generator=gen, dtype=torch.float64).tolist()
        state = algo.advantages(make_batch(rows, seed=step), groups, state).state
        history.append((state.a, state.b))
    tail = torch.tensor(history[-500:])
    assert tail[:, 0].mean().item() == pytest.approx(true_a, abs=0.05)
    assert tail[:, 1].mean().item() == pytest.approx(true_b, abs=0.05)
    assert state.updates == 3000


def test_tracked_quantiles_feed_the_next_step():
    algo = RiskPO(RiskPOConfig(bundle_size=2, pairing="ordered"))
    groups = algo.group(4)
    first = algo.advantages(make_batch([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 1]]), groups, algo.init_state())
    second = algo.advantages(make_batch([[0, 0, 1], [0, 1, 0], [1, 0, 1], [0, 0, 0]]), groups, first.state)
    used = second.details["quantiles_k2"]
    assert torch.allclose(used, torch.tensor([[first.state.a, first.state.b]] * 2, dtype=torch.float64))
    assert second.state.updates == first.state.updates + 1


def test_mix_is_the_average_of_tracked_and_batch():
    rows = [[1, 0, 0, 1], [1, 1, 0, 1], [0, 0, 0, 1]]
    state = QuantileTracker(a=0.5, b=2.5, updates=3)
    quantiles = {
        source: run(RiskPO(RiskPOConfig(bundle_size=3, quantile_source=source)), rows, state=state).details["quantiles_k2"]
        for source in ("tracked", "batch", "mix")
    }
    assert torch.allclose(quantiles["mix"], (quantiles["tracked"] + quantiles["batch"]) / 2)


def test_random_pairing_is_seeded():
    algo = RiskPO(RiskPOConfig(bundle_size=3))
    rows = [[1, 0, 0, 1, 0], [1, 1, 0, 1, 0], [0, 0, 0, 1, 1]]
    papers = [run(algo, rows, seed=s).details["paper_b"] for s in (7, 7, 8)]
    assert torch.equal(papers[0], papers[1])
    assert not torch.equal(papers[0], papers[2])


def test_riskpo_rejects_ragged_groups():
    with pytest.raises(ValueError, match="same number of responses"):
        run(RiskPO(RiskPOConfig()), [[1, 0], [1]])


def test_state_round_trips_through_a_dict():
    import dataclasses

    algo = RiskPO(RiskPOConfig())
    state = run(algo, [[1, 0, 1], [0, 0, 1]]).state
    assert algo.restore_state(dataclasses.asdict(state)) == state
    assert algo.restore_state(None) == QuantileTracker()
    assert math.isfinite(state.a) and state.a <= state.b


@settings(max_examples=60, deadline=None)
@given(rows=binary_rows, name=st.sampled_from(ALL))
def test_select_keeps_all_of_a_batch_it_kept(rows, name):
    """The trainer filters each generation round with ``select``, then runs ``advantage_step`` on
    the kept prompts, which selects again: that second pass must keep everything."""
    algo = unshaped(name)
    batch = make_batch(rows)
    keep_p = algo.select(batch, len(rows))
    assert bool(algo.select(batch.subset(keep_p), int(keep_p.sum())).all())


def test_advantage_step_zeroes_dropped_prompts_and_renumbers_the_kept():
    algo = build("dapo", overlong_shaping=False)
    rows = [[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    step = advantage_step(algo, make_batch(rows), len(rows), algo.init_state())
    assert step.keep_p.tolist() == [False, True, False, True]
    assert step.batch.prompt_b.tolist() == [0, 0, 1, 1] and step.groups.num_prompts == 2
    kept = run(algo, [[1.0, 0.0], [0.0, 1.0]]).adv_b.tolist()  # the kept prompts alone
    assert step.adv_b.tolist() == [0.0, 0.0, *kept[:2], 0.0, 0.0, *kept[2:]] and kept[0] > 0
    none = advantage_step(algo, make_batch([[1.0, 1.0]]), 1, "state")
    assert none.adv_b.tolist() == [0.0, 0.0] and none.out.state == "state"
