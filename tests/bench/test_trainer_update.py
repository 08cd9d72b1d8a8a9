"""The trainer's own update path: its loss and gradients do not depend on how the batch is cut
into micro-batches, for every aggregation mode (ops-level: tests/algorithms/test_ops.py), and
each stage's wall time is a metric."""

import pytest
import torch

import tasks
from algorithms.base import LossAgg, RewardBatch, advantage_step
from bench.compose import load_run_config
from bench.models.policy import token_logprobs
from bench.training import measures
from bench.training.distributed import World
from bench.training.measures import STAGES, StageClock
from bench.training.trainer import Trainer
from bench.training.update import UpdateBatch, by_token_budget
from tasks.scoring import Scorer

# float32: these tests compare micro-batched sums with one whole-batch pass to 1e-4, which bf16 autocast (what
# model.dtype=auto picks on a CPU with avx512_bf16 or amx_bf16) does not hold to
SMALL = ["trainer.prompts_per_step=5", "rollout.n=4", "rollout.max_new_tokens=24", "eval.problems=2", "eval.n=1",
         "logger=none", "model.dtype=float32"]


def loss_and_grads(tmp_path, overrides, micro_batch_size, rollouts=None, tokens=0):
    config = load_run_config([*SMALL, *overrides, f"trainer.micro_batch_size={micro_batch_size}",
                              f"trainer.micro_batch_tokens={tokens}"])
    with Scorer(tasks.build(config.task), workers=0) as scorer:
        trainer = Trainer(config, tmp_path / f"micro{micro_batch_size}-{tokens}", scorer=scorer)
        try:
            collected = trainer.collect(0)
            rollouts = rollouts or collected.rollouts
            rewards_b = torch.tensor([v.reward for v in collected.verdicts])
            reward_batch = RewardBatch(rewards_b=rewards_b, prompt_b=rollouts.prompt_b, lengths_b=rollouts.lengths_b,
                                       max_length=config.rollout.max_new_tokens)
            adv_b = advantage_step(trainer.algo, reward_batch, 5, trainer.state).adv_b.float()
            stats = trainer.updater.backward(UpdateBatch(rollouts, adv_b), torch.arange(len(rollouts)))
            grads = [p.grad.clone() for p in trainer.model.parameters()]
        finally:
            trainer.close()
    return sum(s.loss for s in stats), grads, rollouts, len(stats)


def positions(micro: torch.Tensor, prompt_b: torch.Tensor, response_b: torch.Tensor) -> int:
    return len(micro) * (int(prompt_b[micro].max()) + int(response_b[micro].max()))


def test_a_token_budget_packs_rows_longest_first_within_the_budget():
    # rows 0..5: prompt 10 each, responses 30, 5, 20, 50, 5, 10 -> lengths 40, 15, 30, 60, 15, 20
    prompt_b, response_b = torch.full((6,), 10), torch.tensor([30, 5, 20, 50, 5, 10])
    micros = by_token_budget(torch.arange(6), prompt_b, response_b, budget=80)
    # by hand: 3 (60) alone (2 x 60 > 80); 0 (40) + 2 (30): 2 x 40 = 80; 5 (20) + 1 + 4 (15): 3 x 20 = 60
    assert [m.tolist() for m in micros] == [[3], [0, 2], [5, 1, 4]]
    micros = by_token_budget(torch.tensor([4, 1, 3]), prompt_b, response_b, budget=10)  # every row over budget
    assert [m.tolist() for m in micros] == [[3], [4], [1]]  # alone, longest first, ties in the given order


def test_a_token_budget_property_every_row_once_and_no_micro_batch_over_budget():
    gen = torch.Generator().manual_seed(0)
    for budget in (50, 200, 1000, 5000):
        prompt_b = torch.randint(5, 40, (64,), generator=gen)
        response_b = torch.randint(1, 300, (64,), generator=gen)
        rows = torch.randperm(64, generator=gen)[:50]
        micros = by_token_budget(rows, prompt_b, response_b, budget)
        assert sorted(torch.cat(micros).tolist()) == sorted(rows.tolist())
        assert all(positions(m, prompt_b, response_b) <= budget or len(m) == 1 for m in micros)
        lengths = [(prompt_b[m] + response_b[m]).tolist() for m in micros]
        assert all(a >= b for a, b in zip(sum(lengths, [])[:-1], sum(lengths, [])[1:]))  # longest first


def test_every_rank_runs_as_many_micro_batches_as_the_rank_with_most():
    prompt_b, response_b = torch.full((8,), 4), torch.tensor([60, 60, 60, 60, 1, 1, 1, 1])

    def cut(part):
        return by_token_budget(part, prompt_b, response_b, budget=70)

    cuts = [World(rank=rank, size=2).micro_batches(torch.arange(8), cut) for rank in (0, 1)]
    assert [[m.tolist() for m in c] for c in cuts] == [[[0], [1], [2], [3]], [[4, 5, 6, 7], [], [], []]]
    assert [m.tolist() for m in World().micro_batches(torch.arange(8), cut)] == [[0], [1], [2], [3], [4, 5, 6, 7]]


@pytest.mark.parametrize("mode", [m.value for m in LossAgg])
def test_token_budget_micro_batches_give_the_whole_batch_loss_and_gradient(tmp_path, mode):
    overrides = ["algorithm=grpo", f"algorithm.loss_agg={mode}"]
    whole, whole_grads, rollouts, calls = loss_and_grads(tmp_path, overrides, micro_batch_size=20)
    budget, budget_grads, _, budget_calls = loss_and_grads(tmp_path, overrides, 20, rollouts, tokens=120)
    assert calls == 1 and budget_calls > 3  # the budget, not micro_batch_size, cut the batch
    assert budget == pytest.approx(whole, rel=1e-5, abs=1e-7)
    for a, b in zip(whole_grads, budget_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", [m.value for m in LossAgg])
def test_micro_batches_of_one_give_the_whole_batch_loss_and_gradient(tmp_path, mode):
    overrides = ["algorithm=grpo", f"algorithm.loss_agg={mode}"]
    whole, whole_grads, rollouts, calls = loss_and_grads(tmp_path, overrides, micro_batch_size=20)
    single, single_grads, _, single_calls = loss_and_grads(tmp_path, overrides, 1, rollouts)
    assert (calls, single_calls) == (1, 20)
    assert single == pytest.approx(whole, rel=1e-5, abs=1e-7)
    assert any(g.abs().sum() > 0 for g in whole_grads)
    for a, b in zip(whole_grads, single_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_token_budget_log_probs_and_padding_share(tmp_path):
    """The no-gradient log-probs (old policy, reference) cut by a token budget are the whole batch's;
    the budget's passes compute fewer positions than one untrimmed pass, and padding_share says so."""
    config = load_run_config([*SMALL, "algorithm=grpo", "trainer.micro_batch_tokens=100"])
    with Scorer(tasks.build(config.task), workers=0) as scorer:
        trainer = Trainer(config, tmp_path, scorer=scorer)
        try:
            r = trainer.collect(0).rollouts
            cut = trainer.updater.logprobs(trainer.model, r)
            whole, _ = token_logprobs(trainer.model, r.input_ids, r.attention_mask, 64, with_entropy=False)
            adv_b = torch.randn(len(r))
            stats = trainer.updater.backward(UpdateBatch(r, adv_b), torch.arange(len(r)))
            share = trainer.updater.reduce(stats, [1.0], r.response_mask.sum().item(), adv_b)["train/padding_share"]
        finally:
            trainer.close()
    assert torch.allclose(cut, whole, atol=1e-5) and cut.abs().sum() > 0
    computed, real = sum(s.positions for s in stats), sum(s.real for s in stats)
    assert real == r.attention_mask.sum() and computed < r.input_ids.numel()
    assert share == pytest.approx(1 - real / computed) and 0 <= share < 1 - real / r.input_ids.numel()


def test_the_covariance_of_log_prob_and_advantage(tmp_path):
    """train/cov_logp_adv from the micro-steps' statistics equals the covariance computed from one
    whole-batch forward pass; and it is not zero on a real batch."""
    config = load_run_config([*SMALL, "algorithm=grpo", "trainer.micro_batch_size=3"])
    with Scorer(tasks.build(config.task), workers=0) as scorer:
        trainer = Trainer(config, tmp_path, scorer=scorer)
        try:
            collected = trainer.collect(0)
            r = collected.rollouts
            rewards_b = torch.tensor([v.reward for v in collected.verdicts])
            adv_b = advantage_step(trainer.algo, RewardBatch(rewards_b=rewards_b, prompt_b=r.prompt_b), 5,
                                   trainer.state).adv_b.float()
            stats = trainer.updater.backward(UpdateBatch(r, adv_b), torch.randperm(len(r)))  # any row order
            cov = trainer.updater.reduce(stats, [1.0], tokens=1.0, adv_b=adv_b)["train/cov_logp_adv"]
            seq_b = (trainer.updater.logprobs(trainer.model, r) * r.response_mask).sum(-1).double()
        finally:
            trainer.close()
    a_b = adv_b.double()
    expected = ((seq_b - seq_b.mean()) * (a_b - a_b.mean())).mean().item()
    assert cov == pytest.approx(expected, rel=1e-4, abs=1e-6) and abs(expected) > 1e-4


def test_the_entropy_of_answer_tokens_and_of_the_rest(tmp_path):
    """train/entropy_answer and train/entropy_other from the micro-steps equal the token means of
    one whole-batch forward pass over the tokens inside and outside each response's answer spans
    (sums: the chosen number, the other one, the box)."""
    config = load_run_config([*SMALL, "task=sums", "model=tiny_sums", "rollout.max_new_tokens=40",
                              "trainer.micro_batch_size=3"])
    with Scorer(tasks.build(config.task), workers=0) as scorer:
        trainer = Trainer(config, tmp_path, scorer=scorer)
        try:
            r = trainer.collect(0).rollouts
            answer_bt, other_bt = measures.answer_tokens(trainer.task, trainer.tokenizer, r, trainer.device)
            adv_b = torch.zeros(len(r))
            batch = UpdateBatch(r, adv_b, answer_bt=answer_bt, other_bt=other_bt)
            stats = trainer.updater.backward(batch, torch.arange(len(r)))
            split = {"train/entropy_answer": answer_bt.sum().item(), "train/entropy_other": other_bt.sum().item()}
            out = trainer.updater.reduce(stats, [1.0], r.response_mask.sum().item(), adv_b, split)
            _, ent_bt = token_logprobs(trainer.model, r.input_ids, r.attention_mask, 64, with_entropy=True)
        finally:
            trainer.close()
    assert answer_bt.any() and other_bt.any() and not (answer_bt & other_bt).any()
    assert out["train/entropy_answer"] == pytest.approx(ent_bt[answer_bt].mean().item(), rel=1e-4)
    assert out["train/entropy_other"] == pytest.approx(ent_bt[other_bt].mean().item(), rel=1e-4)
    spans = [trainer.task.answer_spans(t) for t in r.texts]
    assert any(len(s) == 3 for s in spans)  # the worked format: Take a. N-a = b. \boxed{a+b}
    assert all(trainer.tokenizer.decode(r.input_ids[b][answer_bt[b]]) == "".join(r.texts[b][i:j] for i, j in s)
               for b, s in enumerate(spans))


def test_the_stage_clock_laps():
    clock = StageClock()
    with clock("generate"):
        sum(range(10_000))
    with clock("generate"):
        pass
    lap = clock.lap()
    assert set(lap) == {f"time/{s}" for s in STAGES} and lap["time/generate"] > 0 and lap["time/update"] == 0
    assert clock.lap()["time/generate"] == 0.0
