"""sums: write N as a sum of two numbers in a range, a CPU task with many right answers.

Why it exists: every arith problem has one right answer, so a policy cannot lose answer diversity
there, only accuracy. Here each problem has at least ``min_answers`` right answers, so an RL
algorithm can reach full accuracy while concentrating its probability on a few of them: the
testbed for the claim that GRPO collapses diversity (entropy collapse) where others keep it.

- A problem is "Write N as a sum of two numbers from L to H.": integers 10 <= L < H <= 99 and N
  with at least ``min_answers`` ordered pairs (a, b), a + b = N, L <= a, b <= H (N's count is
  (H - L + 1) - |N - (L + H)|). Drawn from a seed: (L, H) uniformly among the ranges wide enough,
  then N uniformly among the totals with enough answers; about 194,000 questions at the default.
- Splits are disjoint by construction, as in tasks/arith.py (its ``in_eval_split``): a question
  belongs to the held-out region when a hash of its text falls in the first ``eval_fraction``
  of the hash range, to train otherwise, whatever the seed or sizes. The eval split "sums" and
  the validation split "sums_val" (``eval_size`` each) are drawn from the held-out region, the
  validation split skipping every eval question.
- The answer is the last ``\\boxed{a+b}``: two non-negative integers of at most 9 digits joined by
  one "+", spaces allowed around them. Leading zeros are read as a number ("058+79" is 58+79).
  ``Problem.answer`` is the pair with the smallest a, a gold for display only; metadata holds
  total N, low L and high H.
- ``demonstration(problem, rng)`` is a worked solution with a uniformly random right a: the
  supervised warm start of the tiny model imitates many of them, so its base policy spreads
  over the right answers. ``reference`` is one of them, seeded by the problem's uid.
- The verifier reads the box with ``tasks.extract.last_boxed``. Reasons: "correct"; "no_answer"
  (no box, or not two numbers joined by "+": "58+79+0", "-1+138", non-ASCII digits, a number of
  10 digits or more); "wrong_sum" (a + b != N); "out_of_range" (right sum, a number outside
  [L, H]). ``extracted`` is the pair normalised to "a+b", so the evaluator's distinct-correct
  count and answer entropy count answers, not spellings; the raw box text when unparsable.

Deviations: none (this task is the project's own).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Optional, Union

from tasks.arith import in_eval_split
from tasks.base import Problem, Task, TaskConfig, Verdict
from tasks.extract import last_boxed

LOW, HIGH = 10, 99  # the two-digit numbers: every L and H lies here
STATED = re.compile(r"(?:Take|=) ([0-9]+)\.")  # the worked format's numbers (``demonstration``)
PAIR = re.compile(r"\s*([0-9]{1,9})\s*\+\s*([0-9]{1,9})\s*")  # ASCII digits only; the cap keeps int() cheap

TEMPLATES = {
    "plain": "{question}",  # the tiny model learns the answer format from demonstrations
    "boxed": "{question} Put the final answer in \\boxed{{}} as a+b.",
}


@dataclass(frozen=True)
class SumsConfig(TaskConfig):
    name: str = "sums"
    template: str = "plain"
    train: str = "train"
    eval: tuple[str, ...] = ("sums",)
    train_size: int = 9000
    eval_size: int = 500
    eval_fraction: float = 0.1  # share of the problem space (by hash) reserved for eval
    seed: int = 0  # seeds the problem set, not the run
    min_answers: int = 8  # the fewest right (a, b) pairs a problem may have

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.min_answers <= HIGH - LOW + 1:
            raise ValueError(f"sums min_answers={self.min_answers} must be in 1..{HIGH - LOW + 1} "
                             f"(the widest range, {LOW}..{HIGH}, has {HIGH - LOW + 1} answers)")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction={self.eval_fraction} must be in (0, 1)")


class SumsTask(Task):
    config_type = SumsConfig
    version = "1"
    templates = TEMPLATES
    benchmarks = ("sums", "sums_val")
    # many right answers: maj@k's one-gold vote is undefined here (the correct class would pool
    # different answers); their diversity is what the task is for
    votes = False
    config: SumsConfig

    def load(self, split: str) -> list[Problem]:
        c = self.config
        if split not in ("train", *self.benchmarks):
            raise ValueError(f"sums: unknown split {split!r}; valid: train, {', '.join(self.benchmarks)}")
        held_out = split != "train"
        size = c.eval_size if held_out else c.train_size
        if size * (2 if split == "sums_val" else 1) > \
                space(c.min_answers) * (c.eval_fraction if held_out else 1 - c.eval_fraction) / 2:
            raise ValueError(f"sums: {size} {split} problems is too many for min_answers={c.min_answers}; "
                             f"lower the size or min_answers")
        taken = {p.question for p in self.load("sums")} if split == "sums_val" else set()
        rng = random.Random(f"{c.seed}-{split}")
        seen: dict[str, Problem] = {}
        while len(seen) < size:
            total, low, high = generate(rng, c.min_answers)
            text = f"Write {total} as a sum of two numbers from {low} to {high}."
            if text not in seen and text not in taken and in_eval_split(text, c.eval_fraction) == held_out:
                first = answers(total, low, high)[0]
                seen[text] = Problem(uid=f"sums-{total}-{low}-{high}", benchmark=split, question=text,
                                     answer=f"{first}+{total - first}",
                                     metadata={"total": total, "low": low, "high": high})
        return list(seen.values())

    def score(self, problem: Problem, completion: str) -> Verdict:
        total, low, high = (problem.metadata[k] for k in ("total", "low", "high"))
        boxed = last_boxed(completion)
        match = PAIR.fullmatch(boxed) if boxed else None
        if match is None:
            return Verdict(0.0, False, boxed or None, "no_answer")
        a, b = int(match.group(1)), int(match.group(2))
        pair = f"{a}+{b}"
        if a + b != total:
            return Verdict(0.0, False, pair, "wrong_sum")
        if not (low <= a <= high and low <= b <= high):
            return Verdict(0.0, False, pair, "out_of_range")
        return Verdict(1.0, True, pair, "correct")

    def reference(self, problem: Problem, rng: Optional[random.Random] = None) -> str:
        return demonstration(problem, problem.uid if rng is None else rng)  # without rng: one draw per problem

    def answer_spans(self, completion: str) -> list[tuple[int, int]]:
        """The chosen number ("Take 23."), the other one ("57-23 = 34.") and the box: where the
        choice among the right answers is made, and where it is copied."""
        return [m.span(1) for m in STATED.finditer(completion)] + super().answer_spans(completion)


def answers(total: int, low: int, high: int) -> range:
    """The right first numbers a (b = total - a), smallest first; empty when there is none."""
    return range(max(low, total - high), min(high, total - low) + 1)


def generate(rng: random.Random, min_answers: int) -> tuple[int, int, int]:
    """(N, L, H): a range at least min_answers wide, then a total with at least min_answers answers."""
    while True:
        low, high = sorted(rng.sample(range(LOW, HIGH + 1), 2))
        if high - low + 1 >= min_answers:
            # |N - (L + H)| <= (H - L + 1) - min_answers, so N's count is at least min_answers
            return rng.randint(2 * low + min_answers - 1, 2 * high - min_answers + 1), low, high


def space(min_answers: int) -> int:
    """How many distinct questions there are, both splits together."""
    widths = (high - low + 1 for low in range(LOW, HIGH + 1) for high in range(low + 1, HIGH + 1))
    return sum(2 * (w - min_answers) + 1 for w in widths if w >= min_answers)


def demonstration(problem: Problem, rng: Union[random.Random, int, str]) -> str:
    """A worked solution with a uniformly random right a: "Take 58. 137-58 = 79. The answer is
    \\boxed{58+79}.". ``rng`` is a random.Random (the warm start passes its own) or a seed."""
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)
    total = problem.metadata["total"]
    a = rng.choice(answers(total, problem.metadata["low"], problem.metadata["high"]))
    return f"Take {a}. {total}-{a} = {total - a}. The answer is \\boxed{{{a}+{total - a}}}."
