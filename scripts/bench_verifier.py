"""Milliseconds per verdict of the math verifier, with its plain-number shortcut and gold cache
(``tasks.math_equivalence.equivalent``) against math-verify on every pair (what it did before), on the same
completions, in this process's main thread (math-verify's time limits need it).

    python scripts/bench_verifier.py              # arith and math500, 3 rounds each
    python scripts/bench_verifier.py --rounds 5

The completions are fixed: arith, the first 200 held-out problems x 8 boxed integers, the gold
or the gold moved by 1, -1, 2 or 10 (about 45% right); math500, each of the 500 problems x 4: the
gold, "17", "\\frac{1}{2}" and the gold followed by "+1". Both paths must give the same number of
right verdicts; the median over rounds is printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from math_verify import parse, verify  # noqa: E402

import tasks  # noqa: E402
from tasks import math_equivalence as verifier  # noqa: E402
from tasks.arith import ArithConfig  # noqa: E402
from tasks.extract import last_boxed  # noqa: E402
from tasks.math import MathConfig  # noqa: E402


def math_verify_only(answer: str, gold: str) -> bool:
    """math-verify on every pair, both sides parsed each time (no shortcut, no cache)."""
    answer, gold = verifier.ascii_form(answer), verifier.ascii_form(gold)
    if answer.replace(" ", "") == gold.replace(" ", ""):
        return True
    golds = [r for text in verifier.forms(gold) for r in parse(f"${text}$")]
    answers = [r for text in verifier.forms(answer) for r in parse(f"${text}$")]
    return any(verify(g, a) and verifier._close(g, a, 5) for g in golds for a in answers)


def items() -> dict[str, list[tuple[str, str]]]:
    """(completion's boxed answer, gold) pairs per benchmark."""
    rng = random.Random(0)
    arith = tasks.build(ArithConfig()).load("arith")[:200]
    math500 = tasks.build(MathConfig()).load("math500")
    return {
        "arith": [(str(int(p.answer) + rng.choice([0, 0, 0, 1, -1, 10, 2])), p.answer) for p in arith for _ in range(8)],
        "math500": [(last_boxed(f"\\boxed{{{c}}}"), p.answer) for p in math500
                    for c in (p.answer, "17", "\\frac{1}{2}", p.answer + "+1")],
    }


def timed(judge: Callable[[str, str], bool], pairs: list[tuple[str, str]], rounds: int) -> tuple[float, int]:
    """(median ms per verdict, right verdicts); the gold cache is emptied before each round."""
    times, right = [], 0
    for _ in range(rounds):
        verifier._gold_readings.cache_clear()
        start = time.perf_counter()
        right = sum(judge(answer, gold) for answer, gold in pairs)
        times.append((time.perf_counter() - start) / len(pairs) * 1000)
    return statistics.median(times), right


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name, pairs in items().items():
        fast, right = timed(verifier.equivalent, pairs, args.rounds)
        slow, right_slow = timed(math_verify_only, pairs, args.rounds)
        same = "same verdicts" if right == right_slow else f"DIFFERENT verdicts ({right_slow} right)"
        print(f"{name:8s} {len(pairs):5d} pairs: {fast:.3f} ms per verdict, math-verify on every pair "
              f"{slow:.3f} ms ({slow / fast:.0f}x); {right} right, {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
