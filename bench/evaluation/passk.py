"""pass@k, mean@n, maj@k and their uncertainty over problems.

Each problem has n sampled answers, c of them correct.

pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1) is the
probability that at least one of k samples drawn without replacement from the n is correct:

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i),   1 when n - c < k.

This is the unbiased estimator of the pass@k of the model. The product form is the paper's
numerically stable one: no binomial overflows (C(1024, 512) is about 1e306) and no quotient of two
huge numbers. Drawing k of the n samples *with* replacement, 1 - (1 - c/n)^k, is biased low: with
n = 4, c = 1, k = 4 every draw without replacement holds the correct sample, so pass@4 = 1 exactly,
while 1 - (3/4)^4 is about 0.68.

mean@n (also avg@n) is the mean over problems of c / n: the mean of the unbiased pass@1.

maj@k is the accuracy of a majority vote over k samples, in expectation over the k-subsets of the
n samples (drawn uniformly without replacement). Samples judged correct form one vote class (they
all equal the gold answer); incorrect samples vote by their (already normalised) answer key; a
sample without an answer does not vote. The plurality wins; a tie between the correct class and t
other classes counts 1 / (t + 1), a uniform tie-break; a subset with no votes is incorrect.

Answer diversity (the sequence-level diversity the entropy-collapse claim is about), per problem
over its n samples: ``distinct_correct``, the number of different answers among the correct
samples (a policy that collapsed onto one right answer scores 1 where several exist), and
``answer_entropy``, the entropy in nats of the empirical distribution of the answers (a sample
without an answer is one more class): 0 when every sample says the same, log n when all differ.

Uncertainty is over problems: the standard error of the mean (sample std / sqrt(#problems)) and a
percentile bootstrap interval of the mean, resampling problems with replacement (Efron and
Tibshirani 1993, ch. 13). The same interval of the per-problem differences a - b compares two runs
on the same problems (a paired bootstrap).
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from typing import Optional, Sequence

import numpy as np
import scipy.stats


def _checked(n, c, k: int) -> tuple[np.ndarray, np.ndarray]:
    """n and c as integer arrays of c's shape, after checking 0 <= c <= n and 1 <= k <= n."""
    c_p = np.asarray(c)
    n_p = np.asarray(n)
    if n_p.ndim and n_p.shape != c_p.shape:
        raise ValueError(f"n and c need the same length (one per problem), got {n_p.shape} and {c_p.shape}")
    for name, value in (("n", n_p), ("c", c_p)):
        if value.size and not np.issubdtype(value.dtype, np.integer):
            raise ValueError(f"{name} must be integers (sample counts), got dtype {value.dtype}")
    if not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be an integer, got {k!r}")
    n_p = np.broadcast_to(n_p, c_p.shape).astype(np.int64)
    bad = np.flatnonzero((c_p < 0) | (c_p > n_p) | (k < 1) | (k > n_p))
    if bad.size:
        i = bad[0]
        where = f" (problem {i})" if c_p.ndim else ""
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n_p.flat[i]} c={c_p.flat[i]} k={k}{where}")
    return n_p, c_p.astype(np.int64)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n is correct."""
    _checked(n, c, k)
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k_array(n, c, k: int) -> np.ndarray:
    """pass_at_k for every problem: c an array of correct counts, n an array of the same length or
    one count for all; float64."""
    n_p, c_p = _checked(n, c, k)
    if c_p.size == 0:
        return np.zeros(c_p.shape)
    # The product has c terms per problem; computing it once per distinct (n, c) bounds the
    # (pairs x max c) grid by the number of distinct counts, not the number of problems.
    pairs, inverse = np.unique(np.stack([n_p.ravel(), c_p.ravel()]), axis=1, return_inverse=True)
    n_u, c_u = pairs
    j = np.arange(c_u.max())
    i = (n_u - c_u + 1)[:, None] + j  # the product's indices, n-c+1 .. n, padded past c
    used = (j < c_u[:, None]) & (n_u - c_u >= k)[:, None]
    ratio = np.where(used, 1.0 - k / i, 1.0).prod(axis=1)  # C(n-c, k) / C(n, k)
    values = np.where(n_u - c_u < k, 1.0, 1.0 - ratio)
    return values[inverse.reshape(-1)].reshape(c_p.shape)


def mean_at_n(n, c) -> float:
    """mean@n: the mean over problems of c / n, identical to the mean of the unbiased pass@1."""
    n_p, c_p = _checked(n, c, 1)
    if c_p.size == 0:
        raise ValueError("mean@n of no problems")
    return float(np.mean(c_p / n_p))


def majority_at_k(answers: Sequence[Optional[str]], correct: Sequence[bool], k: int) -> float:
    """Expected maj@k of one problem over the k-subsets of its n samples (see the module docstring).

    Exact, by conditioning on a, the number of correct samples in the subset (hypergeometric): the
    other k - a samples are a uniform subset of the incorrect ones, and the vote is won when every
    incorrect answer gets fewer than a votes, tied 1 / (t + 1) when t of them get exactly a. The
    ways to draw them are counted by a dynamic programme over the answers that could reach a votes
    (`_tie_weighted_ways`). a = 0 never wins, so the cost is O(min(c, k) * (n - c)) vector
    operations on arrays of at most (k / a + 1) x (k - a + 1) entries; counts are float64, exact
    in value to rounding for n up to about 1000 (C(n, k) must stay finite).
    """
    n = len(answers)
    if len(correct) != n:
        raise ValueError(f"answers and correct need one entry per sample, got {n} and {len(correct)}")
    if not isinstance(k, numbers.Integral) or not 1 <= k <= n:
        raise ValueError(f"need an integer 1 <= k <= n, got k={k!r} n={n}")
    right = sum(bool(ok) for ok in correct)
    wrong = n - right  # incorrect samples, with or without an answer
    votes = Counter(a for a, ok in zip(answers, correct) if not ok and a is not None)
    total = 0.0
    for a in range(max(1, k - wrong), min(k, right) + 1):
        p_a = math.comb(right, a) * math.comb(wrong, k - a) / math.comb(n, k)
        total += p_a * _win_given(a, k - a, list(votes.values()), wrong)
    return total


def _win_given(a: int, r: int, sizes: list[int], wrong: int) -> float:
    """Expected vote score of a correct votes against r samples drawn uniformly from the `wrong`
    incorrect ones, whose answer classes have `sizes` votes (the rest give no answer)."""
    if a > r:
        return 1.0
    rivals = [m for m in sizes if m >= a]  # the only classes that can reach a votes
    ways_t = _tie_weighted_ways(a, r, rivals) @ _choose_from(wrong - sum(rivals), r)
    return float(ways_t @ (1.0 / np.arange(1, len(ways_t) + 1))) / math.comb(wrong, r)


def _tie_weighted_ways(a: int, r: int, rivals: list[int]) -> np.ndarray:
    """ways[t, s]: the ways to draw s samples from the rival classes with every class under a
    votes except exactly t of them at a (t <= r / a, since s <= r)."""
    ways = np.zeros((min(len(rivals), r // a) + 1, r + 1))
    ways[0, 0] = 1.0
    for m in rivals:
        grown = np.zeros_like(ways)
        for x in range(min(a, r + 1)):
            grown[:, x:] += float(math.comb(m, x)) * ways[:, : r + 1 - x]
        grown[1:, a:] += float(math.comb(m, a)) * ways[:-1, : r + 1 - a]
        ways = grown
    return ways


def _choose_from(free: int, r: int) -> np.ndarray:
    """C(free, r - s) for s = 0..r: the ways to fill the draw up to r from samples that cannot tie."""
    return np.array([float(math.comb(free, r - s)) for s in range(r + 1)])


def bootstrap_ci(values, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of `values` (one per problem; a - b per problem for a
    paired comparison), resampling problems with replacement; deterministic for a seed."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all():
        raise ValueError(f"bootstrap_ci needs a non-empty 1-d array of finite values, got shape {v.shape}")
    if np.all(v == v[0]):  # every resample has this mean (and scipy warns on degenerate data)
        return float(v[0]), float(v[0])
    result = scipy.stats.bootstrap(
        (v,), np.mean, n_resamples=resamples, confidence_level=confidence, method="percentile",
        vectorized=True, batch=max(1, 2**20 // v.size), rng=np.random.default_rng(seed),
    )  # batch: at most about a million resampled values in memory at once
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _mean_stderr(values: np.ndarray) -> tuple[float, float]:
    """The mean and its standard error, sample std (ddof=1) / sqrt(#values); 0 for one value."""
    stderr = float(np.std(values, ddof=1) / math.sqrt(values.size)) if values.size > 1 else 0.0
    return float(np.mean(values)), stderr


def summarize(n, c, ks: Optional[Sequence[int]] = None, confidence: float = 0.95, resamples: int = 2000,
              seed: int = 0) -> list[dict]:
    """One row per k (default every k from 1 to the smallest n): the mean pass@k over problems, n
    (the smallest number of samples of a problem), its standard error and bootstrap interval."""
    n_p, c_p = _checked(n, c, 1)
    if c_p.size == 0:
        raise ValueError("no problems to summarize")
    n_min = int(n_p.min())
    rows = []
    for k in range(1, n_min + 1) if ks is None else ks:
        if k > n_min:
            raise ValueError(f"k={k} exceeds n={n_min}, the number of samples of a problem")
        values = pass_at_k_array(n_p, c_p, k)
        mean, stderr = _mean_stderr(values)
        low, high = bootstrap_ci(values, confidence, resamples, seed)
        rows.append({"k": k, "pass_at_k": mean, "n": n_min, "stderr": stderr, "ci_low": low, "ci_high": high})
    return rows


def distinct_correct(answers: Sequence[Optional[str]], correct: Sequence[bool]) -> int:
    """How many different answers the correct samples of one problem give."""
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} verdicts")
    return len({a for a, ok in zip(answers, correct) if ok})


def answer_entropy(answers: Sequence[Optional[str]]) -> float:
    """Entropy (nats) of the empirical distribution of one problem's sampled answers; None is a class."""
    if not answers:
        raise ValueError("answer_entropy needs at least one answer")
    counts = np.unique(np.array([a if a is not None else "\x00none" for a in answers], dtype=object),
                       return_counts=True)[1]
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())
