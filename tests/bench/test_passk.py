"""bench.evaluation.passk: pass@k against hand cases, subset enumeration and exact integers; maj@k against a
loop over every k-subset; the bootstrap interval and the per-k summary."""

import itertools
import math
import warnings
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.evaluation.passk import bootstrap_ci, majority_at_k, mean_at_n, pass_at_k, pass_at_k_array, summarize

# --- pass@k ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, c, k, expected", [
    (4, 1, 4, 1.0),  # every 4-subset of 4 samples holds the correct one
    (5, 2, 2, 0.7),  # 1 - C(3, 2) / C(5, 2) = 1 - 3/10
    (5, 2, 1, 0.4),  # 1 - C(3, 1) / C(5, 1) = c / n
    (4, 2, 2, 5 / 6),  # 1 - C(2, 2) / C(4, 2) = 1 - 1/6
    (5, 2, 4, 1.0),  # n - c = 3 < k: no 4-subset avoids both correct samples
    (10, 1, 5, 0.5),  # 1 - C(9, 5) / C(10, 5) = 1 - 126/252
])
def test_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-15)
    assert pass_at_k_array(n, [c], k)[0] == pytest.approx(expected, abs=1e-15)


def test_without_replacement_differs_from_the_biased_with_replacement_formula():
    with_replacement = 1 - (1 - 1 / 4) ** 4
    assert with_replacement == pytest.approx(0.68, abs=0.01)
    assert pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(4, 1, 4) - with_replacement > 0.3


@pytest.mark.parametrize("k", range(1, 11))
def test_no_correct_sample_gives_zero_and_all_correct_give_one(k):
    assert pass_at_k(10, 0, k) == 0.0
    assert pass_at_k(10, 10, k) == 1.0
    assert pass_at_k_array(10, [0, 10], k).tolist() == [0.0, 1.0]


def enumerated_pass_at_k(n, c, k):
    """The fraction of k-subsets of n samples (the first c correct) holding a correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_agrees_with_enumerating_every_subset():
    for n in range(1, 9):
        for k in range(1, n + 1):
            expected = [enumerated_pass_at_k(n, c, k) for c in range(n + 1)]
            assert [pass_at_k(n, c, k) for c in range(n + 1)] == pytest.approx(expected, abs=1e-14)
            assert pass_at_k_array(n, np.arange(n + 1), k) == pytest.approx(expected, abs=1e-14)


@pytest.mark.parametrize("n, c_step", [(200, 1), (1024, 11)])
def test_agrees_with_exact_binomials_for_large_n(n, c_step):
    cs = np.arange(0, n + 1, c_step)
    for k in (1, 2, 7, 50, n // 2, n - 1, n):
        exact = [float(1 - Fraction(math.comb(n - c, k), math.comb(n, k))) for c in cs]
        assert pass_at_k_array(n, cs, k) == pytest.approx(exact, abs=1e-12, rel=0)
        assert [pass_at_k(n, int(c), k) for c in cs[::10]] == pytest.approx(exact[::10], abs=1e-12, rel=0)


def test_array_takes_per_problem_n_and_keeps_the_shape():
    values = pass_at_k_array([4, 5, 10], [1, 2, 1], 2)
    assert values.dtype == np.float64
    assert values.tolist() == pytest.approx([pass_at_k(4, 1, 2), pass_at_k(5, 2, 2), pass_at_k(10, 1, 2)])
    assert pass_at_k_array(8, np.array([[0, 1], [2, 8]]), 3).shape == (2, 2)
    assert pass_at_k_array(8, [], 3).shape == (0,)


@pytest.mark.parametrize("n, c, k, message", [
    (4, 5, 1, "got n=4 c=5 k=1"),
    (4, -1, 1, "got n=4 c=-1 k=1"),
    (4, 1, 5, "got n=4 c=1 k=5"),
    (4, 1, 0, "got n=4 c=1 k=0"),
    (0, 0, 1, "got n=0 c=0 k=1"),
    (4.0, 1, 1, "n must be integers"),
    (4, 1, 1.5, "k must be an integer"),
])
def test_invalid_counts_raise_one_line(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)
    with pytest.raises(ValueError, match=message):
        pass_at_k_array([n], [c], k)


def test_array_errors_name_the_problem_and_mismatched_lengths():
    with pytest.raises(ValueError, match=r"got n=4 c=5 k=2 \(problem 1\)"):
        pass_at_k_array([4, 4], [1, 5], 2)
    with pytest.raises(ValueError, match="same length"):
        pass_at_k_array([4, 4, 4], [1, 2], 2)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_monotone_in_k_and_c_and_within_unit_interval(n, data):
    c = data.draw(st.integers(0, n))
    by_k = np.array([pass_at_k_array(n, [c], k)[0] for k in range(1, n + 1)])
    by_c = pass_at_k_array(n, np.arange(n + 1), data.draw(st.integers(1, n)))
    for values in (by_k, by_c):
        assert np.all((values >= 0) & (values <= 1))
        assert np.all(np.diff(values) >= -1e-15)


def test_mean_at_n_is_the_mean_of_unbiased_pass_at_1():
    n, c = [4, 8, 16, 3], [1, 8, 5, 0]
    assert mean_at_n(n, c) == pytest.approx((1 / 4 + 1 + 5 / 16 + 0) / 4, abs=1e-15)
    assert mean_at_n(n, c) == pytest.approx(float(np.mean(pass_at_k_array(n, c, 1))), abs=1e-15)
    assert mean_at_n(n, c) == pytest.approx(np.mean([pass_at_k(ni, ci, 1) for ni, ci in zip(n, c)]), abs=1e-15)
    with pytest.raises(ValueError):
        mean_at_n(4, [])


# --- maj@k ----------------------------------------------------------------------------------------

GOLD = object()  # the correct class's key in the loop below: equal to no answer string


def enumerated_majority_at_k(answers, correct, k):
    """maj@k by a vote in every k-subset: the correct class scores 1 / (number of classes tied
    for the most votes) when it is among them; no votes at all is incorrect."""
    subsets = list(itertools.combinations(range(len(answers)), k))
    score = 0.0
    for subset in subsets:
        votes = Counter(GOLD if correct[i] else answers[i] for i in subset if correct[i] or answers[i] is not None)
        if votes[GOLD] and votes[GOLD] == max(votes.values()):
            score += 1 / sum(v == votes[GOLD] for v in votes.values())
    return score / len(subsets)


@pytest.mark.parametrize("answers, correct, k, expected", [
    (["A", "B", "B"], [True, False, False], 3, 0.0),  # B outvotes A
    (["A", "B", "B"], [True, False, False], 1, 1 / 3),  # one sample: right 1 time in 3
    # subsets {A, B} twice: a tie, 1/2 each; {B, B}: 0 -> (1/2 + 1/2 + 0) / 3
    (["A", "B", "B"], [True, False, False], 2, 1 / 3),
    (["A", "B", "C"], [True, False, False], 3, 1 / 3),  # a three-way tie
    (["A", None, None], [True, False, False], 2, 2 / 3),  # {A, -} twice wins; {-, -} has no votes
    (["A", None, None], [True, False, False], 3, 1.0),  # no answer does not vote
    (["A", "A2", "B"], [True, True, False], 3, 1.0),  # different correct answers share one class
    (["B", "B", "C"], [False, False, False], 2, 0.0),
    ([None, None], [False, False], 2, 0.0),
])
def test_majority_hand_cases(answers, correct, k, expected):
    assert majority_at_k(answers, correct, k) == pytest.approx(expected, abs=1e-15)


samples = st.lists(st.one_of(st.just("correct"), st.sampled_from(["A", "B", "C", None])), min_size=1, max_size=8)


def split(drawn):
    """(answers, correct): a correct sample answers the gold "G"; the others answer their key."""
    return ["G" if s == "correct" else s for s in drawn], [s == "correct" for s in drawn]


@settings(max_examples=150, deadline=None)
@given(drawn=samples, data=st.data())
def test_majority_agrees_with_voting_in_every_subset(drawn, data):
    answers, correct = split(drawn)
    k = data.draw(st.integers(1, len(drawn)))
    assert majority_at_k(answers, correct, k) == pytest.approx(enumerated_majority_at_k(answers, correct, k), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(drawn=st.lists(st.one_of(st.just("correct"), st.sampled_from([f"x{i}" for i in range(20)] + [None])),
                      min_size=2, max_size=64))
def test_majority_for_large_n_where_few_subsets_exist(drawn):
    """k = n - 1 and k = n have n subsets and one: enumerable even for n = 64."""
    answers, correct = split(drawn)
    n = len(drawn)
    assert majority_at_k(answers, correct, 1) == pytest.approx(sum(correct) / n, abs=1e-12)
    for k in (n - 1, n):
        expected = enumerated_majority_at_k(answers, correct, k)
        assert majority_at_k(answers, correct, k) == pytest.approx(expected, abs=1e-12)


def test_majority_rejects_bad_input():
    with pytest.raises(ValueError, match="one entry per sample"):
        majority_at_k(["A", "B"], [True], 1)
    with pytest.raises(ValueError, match="k=3 n=2"):
        majority_at_k(["A", "B"], [True, False], 3)


# --- the bootstrap and the summary ----------------------------------------------------------------


def bernoulli(p, problems, seed):
    return (np.random.default_rng(seed).random(problems) < p).astype(float)


def test_bootstrap_contains_the_mean_and_is_deterministic():
    values = np.random.default_rng(0).random(50)
    low, high = bootstrap_ci(values, seed=3)
    assert low < values.mean() < high
    assert bootstrap_ci(values, seed=3) == (low, high)
    assert bootstrap_ci(values, seed=4) != (low, high)


def test_bootstrap_narrows_with_more_problems():
    widths = [np.subtract(*bootstrap_ci(bernoulli(0.3, problems, 0))[::-1]) for problems in (25, 100, 400)]
    assert widths[0] > widths[1] > widths[2] > 0


def test_bootstrap_of_constant_values_is_a_point_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bootstrap_ci([0.25]) == (0.25, 0.25)
        assert bootstrap_ci([1.0] * 30) == (1.0, 1.0)


def test_percentile_bootstrap_stays_within_the_values():
    """A percentile interval is made of resampled means, so pass@k intervals stay in [0, 1] (a basic
    or normal interval around a mean of 0.1 from ten problems would reach below 0)."""
    low, high = bootstrap_ci([1.0] + [0.0] * 9)
    assert 0.0 <= low < 0.1 < high <= 1.0


def test_bootstrap_covers_the_true_mean_most_of_the_time():
    covered = [low <= 0.3 <= high
               for low, high in (bootstrap_ci(bernoulli(0.3, 400, seed), resamples=1000, seed=seed)
                                 for seed in range(50))]
    assert sum(covered) >= 0.85 * len(covered)


def test_bootstrap_of_paired_differences_separates_a_real_gain():
    rng = np.random.default_rng(1)
    a, b = rng.random(300) < 0.6, rng.random(300) < 0.4
    low, high = bootstrap_ci(a.astype(float) - b.astype(float))
    assert 0 < low < 0.2 < high


@pytest.mark.parametrize("values", [[], [0.1, float("nan")], [[0.1, 0.2]]])
def test_bootstrap_rejects_empty_or_non_finite_values(values):
    with pytest.raises(ValueError, match="non-empty 1-d array of finite values"):
        bootstrap_ci(values)


def test_summary_has_every_k_monotone_and_pass_at_1_equal_to_mean_at_n():
    c = [0, 1, 3, 8, 2, 5]
    rows = summarize(8, c)
    assert [r["k"] for r in rows] == list(range(1, 9))
    assert set(rows[0]) == {"k", "pass_at_k", "n", "stderr", "ci_low", "ci_high"}
    assert all(r["n"] == 8 for r in rows)
    assert np.all(np.diff([r["pass_at_k"] for r in rows]) >= 0)
    assert rows[0]["pass_at_k"] == pytest.approx(mean_at_n(8, c), abs=1e-15)
    assert all(r["ci_low"] <= r["pass_at_k"] <= r["ci_high"] for r in rows)


def test_summary_standard_error_by_hand():
    # pass@1 values 0 and 1: sample std sqrt(1/2), over sqrt(2) problems -> 1/2
    (row,) = summarize(4, [0, 4], ks=[1])
    assert row["stderr"] == pytest.approx(0.5)
    (row,) = summarize([4], [1], ks=[2])
    assert row["stderr"] == 0.0 and row["ci_low"] == row["ci_high"] == row["pass_at_k"] == 0.5


def test_summary_with_uneven_n_stops_at_the_smallest():
    rows = summarize([4, 8], [1, 2])
    assert [r["k"] for r in rows] == [1, 2, 3, 4] and rows[0]["n"] == 4
    with pytest.raises(ValueError, match="k=5 exceeds n=4"):
        summarize([4, 8], [1, 2], ks=[1, 5])


def test_summary_rejects_no_problems():
    with pytest.raises(ValueError, match="no problems"):
        summarize(4, [])

