"""Row-keyed sampling: a response is a function of (sampling seed, prompt index, sample index), not
of the batch it was generated in, and the Gumbel-max draw is an exact sample of the warped
distribution (bench/engines/noise.py)."""

import math

import pandas as pd
import pytest
import torch

from bench.config import EvalConfig, ModelConfig, Sampling
from bench.engines.hf import HFEngine
from bench.engines.noise import gumbel_noise, prompt_seeds, row_keys
from bench.evaluation.evaluator import Evaluator, load_benchmarks
from bench.models.policy import load_policy
from tasks.arith import ArithConfig, ArithTask
from tasks.scoring import Scorer

TASK = ArithTask(ArithConfig())
EULER_GAMMA = 0.5772156649015329


# --- the noise ---------------------------------------------------------------------------------


def test_row_keys_are_prompt_major_and_do_not_depend_on_the_slice():
    keys = row_keys(seed=3, first=0, prompts=4, n=3)
    assert keys.dtype == torch.long and keys.shape == (12,)
    assert torch.equal(row_keys(3, first=2, prompts=2, n=3), keys[6:])  # prompts 2 and 3, wherever they start
    assert torch.equal(row_keys(3, first=1, prompts=1, n=3), keys[3:6])
    assert not torch.equal(row_keys(4, 0, 4, 3), keys)
    many = row_keys(0, 0, 5000, 8)
    assert many.unique().numel() == 40000 and (many >= 0).all()
    assert torch.equal(row_keys(2**40 + 7, 0, 2, 2), row_keys(2**40 + 7, 0, 2, 2))  # seeds beyond 32 bits
    assert not torch.equal(row_keys(2**40 + 7, 0, 2, 2), row_keys(7, 0, 2, 2))


def test_noise_is_a_function_of_key_position_and_index():
    keys = row_keys(seed=0, first=0, prompts=3, n=2)
    noise = gumbel_noise(keys, position=5, vocab=50, device="cpu")
    assert noise.shape == (6, 50) and noise.dtype == torch.float32
    assert torch.equal(gumbel_noise(keys, 5, 50, "cpu"), noise)
    assert torch.equal(gumbel_noise(keys[[4, 1]], 5, 50, "cpu"), noise[[4, 1]])  # a row alone: the same noise
    assert torch.equal(gumbel_noise(keys, 5, 20, "cpu"), noise[:, :20])  # index v's noise whatever the width
    assert (gumbel_noise(keys, 6, 50, "cpu") != noise).all()  # another position: other values
    assert noise.unique().numel() == noise.numel()  # every row and index its own value


def test_noise_is_standard_gumbel():
    """400,000 values of 4,000 keys at 100 indices: mean, variance and CDF those of Gumbel(0, 1),
    within about 5 standard errors (the values are fixed by the hash: this cannot flake)."""
    noise = gumbel_noise(row_keys(seed=1, first=0, prompts=4000, n=1), position=3, vocab=100, device="cpu")
    g = noise.double().flatten()
    count = g.numel()
    assert torch.isfinite(g).all() and -3.2 < g.min() and g.max() < 23.0
    variance = math.pi**2 / 6
    assert abs(g.mean().item() - EULER_GAMMA) < 5 * math.sqrt(variance / count)
    # the sample variance's standard error: sqrt((mu4 - sigma^4) / N), mu4 = 5.4 sigma^4 (excess kurtosis 2.4)
    assert abs(g.var().item() - variance) < 5 * variance * math.sqrt(4.4 / count)
    # Kolmogorov-Smirnov against exp(-exp(-x)): 1.95 / sqrt(N) is the 0.1% critical value
    empirical = torch.arange(1, count + 1, dtype=torch.float64) / count
    assert (empirical - torch.exp(-torch.exp(-g.sort().values))).abs().max() < 1.95 / math.sqrt(count)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (BENCH_TEST_CUDA=0)")
def test_noise_is_the_same_on_cuda():
    keys = row_keys(seed=9, first=0, prompts=64, n=4)
    assert torch.equal(gumbel_noise(keys, 17, 5000, "cuda").cpu(), gumbel_noise(keys, 17, 5000, "cpu"))


# --- the draw: Gumbel-max after transformers' warpers --------------------------------------------


# probabilities [0.5, 0.3, 0.15, 0.05] as logits, so every target below is worked out by hand
PROBS = [0.5, 0.3, 0.15, 0.05]
PICKS = 200_000


def picks(sampling: Sampling, position: int = 0) -> torch.Tensor:
    """[PICKS] the token the HF engine's logits processors and the argmax choose for PICKS rows
    with the logits of PROBS, each row its own key."""
    engine = HFEngine(model=None, tokenizer=None)  # the processors need neither
    width = 3
    keys = row_keys(sampling.seed, first=0, prompts=PICKS, n=1)
    processors = engine.logits_processors(sampling, keys, prompt_width=width)
    input_ids = torch.zeros(PICKS, width + position, dtype=torch.long)
    scores = torch.tensor(PROBS).log().expand(PICKS, -1).clone()
    return processors(input_ids, scores).argmax(-1)


def assert_frequencies(chosen: torch.Tensor, expected: list[float]) -> None:
    """Each token's frequency within 5 standard errors of its probability; a token of probability 0 never."""
    frequency = torch.bincount(chosen, minlength=len(expected)).double() / len(chosen)
    for token, (f, p) in enumerate(zip(frequency.tolist(), expected)):
        if p == 0:
            assert f == 0, f"token {token} was masked but picked"
        else:
            assert abs(f - p) < 5 * math.sqrt(p * (1 - p) / len(chosen)), (token, f, p)


@pytest.mark.parametrize("sampling, expected", [
    (Sampling(seed=0), PROBS),
    # temperature 0.5 squares the probabilities: [0.25, 0.09, 0.0225, 0.0025] / 0.365
    (Sampling(temperature=0.5, seed=1), [0.25 / 0.365, 0.09 / 0.365, 0.0225 / 0.365, 0.0025 / 0.365]),
    (Sampling(top_k=3, seed=2), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0]),
    # top-p 0.7: the fewest most likely tokens holding at least 0.7, here 0.5 + 0.3
    (Sampling(top_p=0.7, seed=3), [0.625, 0.375, 0.0, 0.0]),
    # top-k 3 then top-p 0.9 of the renormalised [0.526, 0.316, 0.158]: the first two hold 0.842, so all three
    (Sampling(top_k=3, top_p=0.9, seed=4), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0]),
])
def test_gumbel_max_samples_the_warped_distribution_exactly(sampling, expected):
    assert_frequencies(picks(sampling), expected)


def test_picks_at_successive_positions_are_independent():
    """The joint frequency of (token at position 0, token at position 1) of a row is the product."""
    first, second = picks(Sampling(seed=5), position=0), picks(Sampling(seed=5), position=1)
    assert_frequencies(first * 4 + second, [p * q for p in PROBS for q in PROBS])


# --- the HF engine on the tiny model ----------------------------------------------------------


@pytest.fixture(scope="module")
def policy():
    return load_policy(ModelConfig())


def prompts(count: int) -> list[list[dict]]:
    return [TASK.prompt(p) for p in TASK.load("arith")[:count]]


def responses(r) -> list[list[int]]:
    """Each row's response token ids (the prompt width differs between batches)."""
    return [r.input_ids[row, r.prompt_width : r.prompt_width + int(r.lengths_b[row])].tolist() for row in range(len(r))]


@pytest.mark.parametrize("n", [1, 3])
def test_a_response_does_not_depend_on_the_rest_of_its_batch(policy, n):
    """Prompts C and D alone, told their indices, get the responses they got in [A, B, C, D]."""
    engine = HFEngine(*policy)
    sampling = Sampling(max_new_tokens=20, seed=7)
    whole = engine.generate(prompts(4), n, sampling)
    tail = engine.generate(prompts(4)[2:], n, sampling, first=2)
    assert responses(tail) == responses(whole)[2 * n :] and tail.texts == whole.texts[2 * n :]


def test_rows_are_keyed_by_seed_prompt_index_and_sample_index(policy):
    engine = HFEngine(*policy)
    sampling = Sampling(max_new_tokens=20, seed=7)
    whole = engine.generate(prompts(2), 3, sampling)
    assert len(set(whole.texts)) > 2, "a prompt's n responses are different samples"
    assert engine.generate(prompts(2)[1:], 3, sampling).texts != whole.texts[3:]  # index 0, not 1: other samples
    assert engine.generate(prompts(2), 3, Sampling(max_new_tokens=20, seed=8)).texts != whole.texts


def test_greedy_decoding_ignores_seed_and_index(policy):
    engine = HFEngine(*policy)
    whole = engine.generate(prompts(4), 2, Sampling(temperature=0.0, max_new_tokens=20, seed=7))
    tail = engine.generate(prompts(4)[2:], 2, Sampling(temperature=0.0, max_new_tokens=20, seed=8), first=2)
    assert responses(tail) == responses(whole)[4:]
    assert whole.texts[0] == whole.texts[1] and whole.texts[2] == whole.texts[3]


def test_evaluation_samples_do_not_depend_on_prompts_per_call(policy):
    def problems(per_call: int) -> pd.DataFrame:
        config = EvalConfig(n=3, k=(1, 3), resamples=100, prompts_per_call=per_call)
        bench = load_benchmarks(config, [TASK])
        bench[0].problems = bench[0].problems[:5]
        with Scorer(TASK, workers=0) as scorer:
            evaluator = Evaluator(config, bench, HFEngine(*policy), {"arith": scorer})
            return pd.DataFrame(evaluator.evaluate(0, Sampling(max_new_tokens=24, seed=5)).problems)

    one = problems(1)
    pd.testing.assert_frame_equal(problems(3), one)  # NaN (kl_from_initial, unmeasured) equals NaN
    assert one["answer_entropy"].sum() > 0, "the samples of a problem differ: the comparison means something"


# --- vLLM's per-prompt seeds (the engine itself: tests/bench/test_vllm.py) ------------------------


def test_prompt_seeds_are_a_hash_of_seed_and_prompt_index():
    seeds = prompt_seeds(seed=11, first=0, prompts=6)
    assert seeds.dtype == torch.long and torch.equal(prompt_seeds(11, first=2, prompts=4), seeds[2:])
    assert not torch.equal(prompt_seeds(12, 0, 6), seeds)
    many = prompt_seeds(0, 0, 1000)
    assert (many >= 0).all() and (many < 2**31 - 1).all() and many.unique().numel() == 1000
