"""Pass@k evaluation: n samples per problem, judged by the task verifiers, summarised by passk.

The trainer calls ``Evaluator`` every ``trainer.eval_every`` steps on its task's eval sets, and
``python -m bench.evaluate`` calls it on any weights; both write ``eval.parquet`` and
``problems.parquet`` (their columns: bench/evaluate.py). Each benchmark is judged by the task that
owns it (math500 -> math, aime24 -> aime, ...).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

import numpy as np
import torch
from tqdm import tqdm

import tasks
from bench.config import EvalConfig, Sampling
from bench.engines.base import Rollouts
from bench.evaluation import passk
from bench.training.distributed import World, cat_parts
from tasks.base import Problem, Task, Verdict
from tasks.scoring import Scorer

__all__ = ["Benchmark", "Evaluation", "Evaluator", "load_benchmarks", "owner_of"]


@dataclass
class Benchmark:
    name: str
    task: Task
    problems: list[Problem]

    def sample(self, size: int) -> Benchmark:
        """``size`` of the problems, drawn without replacement by a seed of the benchmark's name
        alone (every run, algorithm and step evaluates the same ones), kept in their order; the
        whole benchmark when ``size`` is 0 or covers it."""
        if not size or size >= len(self.problems):
            return self
        gen = np.random.default_rng(zlib.crc32(self.name.encode()))
        picked = np.sort(gen.choice(len(self.problems), size=size, replace=False))
        return replace(self, problems=[self.problems[i] for i in picked])


@dataclass
class Evaluation:
    rows: list[dict[str, Any]]  # eval.parquet
    problems: list[dict[str, Any]]  # problems.parquet
    seconds: float = 0.0

    def pass_at(self, k: int = 1) -> dict[str, float]:
        """pass@k per benchmark (with greedy decoding, k = 1 is the greedy accuracy)."""
        return {r["benchmark"]: r["pass_at_k"] for r in self.rows if r["k"] == k}


def owner_of(benchmark: str) -> str:
    """The task that loads and judges ``benchmark``."""
    owners = [name for name, task in tasks.TASKS.items() if benchmark in task.benchmarks]
    if not owners:
        known = sorted({b for t in tasks.TASKS.values() for b in t.benchmarks})
        raise ValueError(f"eval.benchmarks: unknown benchmark {benchmark!r}; known: {', '.join(known)}")
    return owners[0]


def load_benchmarks(config: EvalConfig, given_tasks: list[Task]) -> list[Benchmark]:
    """Each benchmark with its owner task: the first of ``given_tasks`` of the owner's name, the
    owner with its defaults otherwise. No ``eval.benchmarks``: the first task's eval sets."""
    given: dict[str, Task] = {}
    for task in given_tasks:
        given.setdefault(task.config.name, task)
    names = config.benchmarks or (next(iter(given.values())).config.eval if given else ())
    if not names:
        raise ValueError("no benchmarks to evaluate: set eval.benchmarks=[...] (e.g. [math500,gsm8k])")
    out = []
    for name in names:
        owner = owner_of(name)
        task = given.get(owner) or tasks.build(tasks.get_task(owner).config_type())
        out.append(Benchmark(name, task, task.load(name)[: config.problems or None]))
    return out


def majority(task: Task, groups: list[list[Verdict]], k: int) -> float:
    """maj@k over problems, voting on the extracted answers; NaN where there is no one right answer
    to vote for (code, tasks with many right answers)."""
    if not task.votes:
        return float("nan")
    keys = [answer_keys(g) for g in groups]
    return float(np.mean([passk.majority_at_k(a, [v.correct for v in g], k) for a, g in zip(keys, groups)]))


def answer_keys(group: list[Verdict]) -> list[Optional[str]]:
    """The answers of one problem's samples as maj@k votes on them: extracted, stripped, None if empty."""
    return [(v.extracted or "").strip() or None for v in group]


def diversity(task: Task, groups: list[list[Verdict]]) -> tuple[list[float], list[float]]:
    """Per problem: distinct correct answers and answer entropy (passk); NaN where answers are not
    comparable (code)."""
    if not task.comparable_answers:
        return [float("nan")] * len(groups), [float("nan")] * len(groups)
    keys = [answer_keys(g) for g in groups]
    return ([float(passk.distinct_correct(k, [v.correct for v in g])) for k, g in zip(keys, groups)],
            [passk.answer_entropy(k) for k in keys])


class Evaluator:
    """n samples per problem on each benchmark, judged, summarised; the engine is shared with training.

    ``divergence`` (the trainer's): each sampled response's KL from the initial policy, [N] for the
    N responses of a ``Rollouts``; averaged per problem as ``kl_from_initial`` (NaN without it, and
    with greedy decoding, where no distribution is sampled).

    ``world``: data-parallel ranks (bench/training/distributed.py) each sample and judge an equal,
    contiguous share of every benchmark (the last rank's padded by repeating a problem, whose samples
    are dropped) and gather them, so every rank returns the whole evaluation."""

    def __init__(self, config: EvalConfig, benchmarks: list[Benchmark], engine: Any,
                 scorers: Optional[dict[str, Scorer]] = None,
                 divergence: Optional[Callable[[Rollouts], torch.Tensor]] = None,
                 world: Optional[World] = None) -> None:
        self.config, self.benchmarks, self.engine, self.world = config, benchmarks, engine, world or World()
        self.divergence = None if config.greedy else divergence
        self.scorers = dict(scorers or {})
        needed = {b.task.config.name: b.task for b in benchmarks if b.task.config.name not in self.scorers}
        self.owned = [Scorer(task) for task in needed.values()]  # closed by close(); the others are the caller's
        self.scorers |= {s.task.config.name: s for s in self.owned}

    def evaluate(self, step: int, sampling: Sampling, progress: bool = False, full: bool = True) -> Evaluation:
        """pass@k (or greedy accuracy) of every benchmark; ``sampling`` is the rollout's, seeded.
        ``full=False``: on each benchmark's seeded subset of ``eval.subset`` problems (the trainer's
        evaluations between the first and the last); the rows say which (``problem_set``,
        ``problems``), and the intervals are those of the problems evaluated."""
        start, rows, problem_rows = time.monotonic(), [], []
        sampling = self.config.sampling(sampling)
        for whole in self.benchmarks:
            bench = whole if full else whole.sample(self.config.subset)
            problem_set = "full" if bench is whole else "subset"
            verdicts, kl = self.sample(bench, sampling, progress)
            n = self.config.n
            groups = [verdicts[i * n : (i + 1) * n] for i in range(len(bench.problems))]
            c = np.array([sum(v.correct for v in g) for g in groups])
            distinct, entropy = diversity(bench.task, groups)
            kl_p = kl.reshape(len(bench.problems), n).mean(axis=1)
            problem_rows += [{"benchmark": bench.name, "step": step, "uid": p.uid, "n": n, "c": int(ci),
                              "distinct_correct": d, "answer_entropy": h, "kl_from_initial": float(k)}
                             for p, ci, d, h, k in zip(bench.problems, c, distinct, entropy, kl_p)]
            summary = passk.summarize(n, c, self.config.ks, self.config.confidence, self.config.resamples, seed=step)
            rows += [{"benchmark": bench.name, "step": step, **row, "maj_at_k": majority(bench.task, groups, row["k"]),
                      "distinct_correct": float(np.mean(distinct)), "answer_entropy": float(np.mean(entropy)),
                      "kl_from_initial": float(np.mean(kl_p)), "problems": len(bench.problems),
                      "problem_set": problem_set, "decoding": self.config.decoding, "task_version": bench.task.version} for row in summary]
        return Evaluation(rows, problem_rows, time.monotonic() - start)

    def sample(self, bench: Benchmark, sampling: Sampling, progress: bool) -> tuple[list[Verdict], np.ndarray]:
        """n judged samples per problem, problem by problem in order; and each sample's KL from the
        initial policy (NaN unmeasured). Every call has the same ``sampling``, told the index of its
        first problem, so a problem's samples depend on (seed, its index, sample index) alone, not
        on ``prompts_per_call``."""
        per_call, verdicts, kl = self.config.prompts_per_call, [], []
        index, real = self.world.padded_share(len(bench.problems))
        bar = tqdm(total=len(bench.problems), desc=f"eval {bench.name}", unit="problem",
                   disable=not (progress and self.world.main))
        for start in range(0, len(index), per_call):
            chunk = [bench.problems[i] for i in index[start : start + per_call]]
            rollouts = self.engine.generate([bench.task.prompt(p) for p in chunk], self.config.n, sampling,
                                            first=index[start])
            scorer = self.scorers[bench.task.config.name]
            verdicts += scorer.score([chunk[int(i)] for i in rollouts.prompt_b], rollouts.texts)
            kl.append(np.full(len(rollouts), np.nan) if self.divergence is None else
                      self.divergence(rollouts).double().cpu().numpy())
            bar.update(len(chunk) * self.world.size)
        bar.close()
        own = self.config.n * real
        kl_b = np.concatenate(kl)[:own] if kl else np.zeros(0)
        parts = self.world.gather((verdicts[:own], kl_b))  # [this rank's] without data parallelism
        return cat_parts([part[0] for part in parts]), np.concatenate([part[1] for part in parts])

    def close(self) -> None:
        for scorer in self.owned:
            scorer.close()
