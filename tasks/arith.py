"""arith: synthetic integer arithmetic, the CPU testbed.

A tiny model trained from scratch on this machine can learn these problems well enough to
have a base accuracy that RL can move, so entropy collapse can be watched within minutes.

- Problems are generated from a seed: ``operands`` integers of up to ``digits`` digits joined
  by operators drawn from ``operators`` ("+-*"), evaluated left to right; parentheses are
  written where precedence would otherwise change that order ("(12+7)*3-5"). Answers are exact
  integers.
- Splits are disjoint by construction: a problem belongs to the held-out region when a hash of
  its text falls in the first ``eval_fraction`` of the hash range, to train otherwise, whatever
  the seed or sizes. The eval split "arith" and the validation split "arith_val" (``eval_size``
  problems each; learning rates are chosen on it, bench/protocol.py) are drawn from the held-out
  region, the validation split skipping every eval problem.
- ``demonstration(problem)`` is a worked solution, one step per operator, ending in
  \\boxed{answer}: the supervised warm start of the tiny model imitates it.
- Judged by the math suite's verifier (``tasks.math.judge``), like every math answer.

Deviations: none (this task is the project's own).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Optional

from tasks.base import Problem, Task, TaskConfig, Verdict
from tasks.math import judge

RESULT = re.compile(r"= (-?[0-9]+)\.")  # a worked step's result, as ``demonstration`` writes it

TEMPLATES = {
    "plain": "{question}",  # the tiny model learns the answer format from demonstrations
    "boxed": "{question} Put the final answer in \\boxed{{}}.",
}


@dataclass(frozen=True)
class ArithConfig(TaskConfig):
    name: str = "arith"
    template: str = "plain"
    train: str = "train"
    eval: tuple[str, ...] = ("arith",)
    digits: int = 2  # operands are drawn from 0 .. 10^digits - 1
    operands: int = 2  # numbers per problem (operands - 1 chained steps)
    operators: str = "+-"  # drawn uniformly per step
    train_size: int = 9000  # half the two-operand train space: generation stays quick
    eval_size: int = 500
    eval_fraction: float = 0.1  # share of the problem space (by hash) reserved for eval
    seed: int = 0  # seeds the problem set, not the run

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.digits < 1 or self.operands < 2:
            raise ValueError(f"arith needs digits >= 1 and operands >= 2, got {self.digits}, {self.operands}")
        if not self.operators or set(self.operators) - set("+-*"):
            raise ValueError(f"arith operators={self.operators!r} must be a non-empty string of + - *")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction={self.eval_fraction} must be in (0, 1)")


class ArithTask(Task):
    config_type = ArithConfig
    version = "1"
    templates = TEMPLATES
    benchmarks = ("arith", "arith_val")
    config: ArithConfig

    def load(self, split: str) -> list[Problem]:
        c = self.config
        if split not in ("train", *self.benchmarks):
            raise ValueError(f"arith: unknown split {split!r}; valid: train, {', '.join(self.benchmarks)}")
        held_out = split != "train"
        size = c.eval_size if held_out else c.train_size
        space = (10**c.digits) ** c.operands * len(c.operators) ** (c.operands - 1)
        if size * (2 if split == "arith_val" else 1) > space * (c.eval_fraction if held_out else 1 - c.eval_fraction) / 2:
            raise ValueError(f"arith: {size} {split} problems is too many for digits={c.digits}, "
                             f"operands={c.operands}; lower the size or raise the difficulty")
        taken = {p.question for p in self.load("arith")} if split == "arith_val" else set()
        rng = random.Random(f"{c.seed}-{split}")
        seen: dict[str, Problem] = {}
        while len(seen) < size:
            text, steps = generate(rng, c.digits, c.operands, c.operators)
            question = f"Compute {text}."
            if text not in seen and question not in taken and in_eval_split(text, c.eval_fraction) == held_out:
                seen[text] = Problem(uid=f"arith-{text}", benchmark=split, question=question,
                                     answer=str(steps[-1][2]), metadata={"steps": steps})
        return list(seen.values())

    def score(self, problem: Problem, completion: str) -> Verdict:
        return judge(completion, problem.answer)

    def reference(self, problem: Problem, rng: Optional[random.Random] = None) -> str:
        return demonstration(problem)  # what the tiny model's warm start imitates

    def answer_spans(self, completion: str) -> list[tuple[int, int]]:
        """Each step's result ("12+7 = 19.": the 19) and the box: the tokens the arithmetic decides."""
        return [m.span(1) for m in RESULT.finditer(completion)] + super().answer_spans(completion)


def generate(rng: random.Random, digits: int, operands: int, operators: str) -> tuple[str, list]:
    """(problem text, steps): each step is (left value, "op right", result), left to right."""
    value = rng.randrange(10**digits)
    text, steps, low_precedence = str(value), [], False
    for _ in range(operands - 1):
        op, right = rng.choice(operators), rng.randrange(10**digits)
        if op == "*" and low_precedence:
            text = f"({text})"
        result = value * right if op == "*" else value + right if op == "+" else value - right
        steps.append((value, f"{op}{right}", result))
        text, value, low_precedence = f"{text}{op}{right}", result, op in "+-" or low_precedence and op != "*"
    return text, steps


def in_eval_split(text: str, eval_fraction: float) -> bool:
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return digest < eval_fraction * 2**64


def demonstration(problem: Problem) -> str:
    """A worked solution: "12+7 = 19. 19*3 = 57. The answer is \\boxed{57}."."""
    steps = problem.metadata["steps"]
    work = " ".join(f"{left}{step} = {result}." for left, step, result in steps)
    return f"{work} The answer is \\boxed{{{problem.answer}}}."
