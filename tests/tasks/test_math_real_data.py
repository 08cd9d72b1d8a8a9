"""Acceptance of the math verifier on the real benchmark files (../shared/data).

- Each benchmark's own gold solution, written the way a model answers the boxed_cot prompt, is
  judged correct: >= 99.5% of MATH500, MATH, Minerva and OlympiadBench, 100% of GSM8K test;
  the exceptions are exactly those in fixtures/math_exceptions.json, each with its reason.
- Another problem's gold (the next problem in the file, skipped when the two golds are the same
  text) is judged correct for < 0.5%.

Run all of it, figures printed: pytest tests/tasks/test_math_real_data.py -m "not gpu" -s
(the full MATH test set is marked slow: about 20 s on two workers).
"""

import json
import re
import time
from pathlib import Path

import pytest

from tasks.base import DEFAULT_DATA_DIR, Problem
from tasks.math import MathConfig, MathTask
from tasks.scoring import Scorer

pytestmark = pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason=f"benchmark data not at {DEFAULT_DATA_DIR}")

EXCEPTIONS = json.loads((Path(__file__).parent / "fixtures" / "math_exceptions.json").read_text())
BENCHMARKS = ["math500", "gsm8k", "minerva_math", "olympiadbench", pytest.param("math", marks=pytest.mark.slow)]
MIN_CORRECT = {"math500": 0.995, "math": 0.995, "minerva_math": 0.995, "olympiadbench": 0.995, "gsm8k": 1.0}
CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations: 9*2=<<9*2=18>>18


@pytest.fixture(scope="module")
def scorer():
    with Scorer(MathTask(MathConfig()), workers=2) as scorer:
        yield scorer


def model_completion(problem: Problem) -> str:
    """The gold solution as a model would write it in answer to the boxed_cot prompt."""
    if problem.benchmark == "gsm8k":  # the reasoning, then its final number (commas kept) boxed
        reasoning, final = problem.metadata["solution"].rsplit("####", 1)
        return f"{CALCULATOR.sub('', reasoning).strip()}\nThe answer is $\\boxed{{{final.strip()}}}$."
    if problem.benchmark == "olympiadbench":  # the solution, then the final answer(s) in one box
        return "\n\n".join(problem.metadata["solution"]) + f"\n\nSo the answer is $\\boxed{{{problem.answer}}}$."
    return problem.metadata["solution"]  # MATH, MATH500, Minerva: the solution as it stands


def same_text(a: str, b: str) -> bool:
    return re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b)


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_gold_solutions_are_judged_correct(benchmark, scorer):
    problems = scorer.task.load(benchmark)
    start = time.monotonic()
    verdicts = scorer.score(problems, [model_completion(p) for p in problems])
    failures = {p.uid: v.reason for p, v in zip(problems, verdicts) if not v.correct}
    print(f"{benchmark} gold {len(problems) - len(failures)}/{len(problems)} ({time.monotonic() - start:.1f} s)")
    assert failures.keys() == EXCEPTIONS[benchmark].keys(), failures
    assert len(problems) - len(failures) >= MIN_CORRECT[benchmark] * len(problems)


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_another_problems_gold_is_judged_wrong(benchmark, scorer):
    problems = scorer.task.load(benchmark)
    pairs = [(p, q) for p, q in zip(problems, problems[1:] + problems[:1]) if not same_text(p.answer, q.answer)]
    start = time.monotonic()
    verdicts = scorer.score([p for p, _ in pairs], [f"The answer is $\\boxed{{{q.answer}}}$." for _, q in pairs])
    accepted = [(p.uid, p.answer, q.answer) for (p, q), v in zip(pairs, verdicts) if v.correct]
    print(f"{benchmark} wrong {len(accepted)}/{len(pairs)} ({time.monotonic() - start:.1f} s): {accepted}")
    assert len(accepted) < 0.005 * len(pairs)


def test_gsm8k_answer_field_through_last_number_fallback():
    """GSM8K's own answer text, unboxed ('... #### 1,450,000'), read by the last_number fallback."""
    task = MathTask(MathConfig(fallback="last_number"))
    problems = task.load("gsm8k")
    with Scorer(task, workers=2) as scorer:
        verdicts = scorer.score(problems, [p.metadata["solution"] for p in problems])
    failures = {p.uid: v.reason for p, v in zip(problems, verdicts) if not v.correct}
    print(f"gsm8k answer field, last_number fallback: {len(problems) - len(failures)}/{len(problems)}")
    assert not failures


def test_the_noun_a_gsm8k_question_counts_may_follow_the_answer():
    """On the first 300 GSM8K test questions that ask "how many / how much": "<gold> <what it
    counts>" is right, and the same word after "or" (where math-verify's own word list does not
    take it) or "not", or after a wrong number, is not."""
    from tasks.math import judge
    from tasks.math_equivalence import asked_about

    asked = [(p, sorted(asked_about(p.question))) for p in MathTask(MathConfig()).load("gsm8k")]
    asked = [(p, words) for p, words in asked if words][:300]
    assert len(asked) == 300
    right = sum(judge(f"\\boxed{{{p.answer} {words[-1]}}}", p.answer, question=p.question).correct for p, words in asked)
    assert right >= 295  # math-verify may read a few nouns as units of its own
    for problem, words in asked[:40]:
        own = judge(f"\\boxed{{{problem.answer} {words[-1]}}}", problem.answer).correct  # math-verify's list
        for wrong in ([] if own else [f"{problem.answer} or {words[-1]}"]) + [
                f"{problem.answer} not {words[-1]}", f"{int(float(problem.answer.replace(',', ''))) + 1} {words[-1]}"]:
            assert not judge(f"\\boxed{{{wrong}}}", problem.answer, question=problem.question).correct, wrong
