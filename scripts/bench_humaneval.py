"""Wall time of judging HumanEval's 164 canonical solutions through ``tasks.scoring.Scorer``.

    python scripts/bench_humaneval.py               # one worker per core
    python scripts/bench_humaneval.py --workers 4   # or any pool size; 0 scores in this process

Every solution runs in its own sandbox (tasks/sandbox.py: a program process and a test process,
namespaces, rlimits, plain data between them), so this times the whole path a training step
takes: pool start, sandbox start-up, the tests.
It prints the pool's start-up, the scoring time, the pass count (all 164 should pass), the
reasons of any failures, and the mean sandbox round trip measured on a few serial runs.
The goal is under 20 s for the 164 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

from tasks.humaneval import HumanEvalConfig, HumanEvalTask
from tasks.scoring import Scorer

GOAL_SECONDS = 20.0  # 164 canonical solutions, 2 cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="scoring processes (default: one per core)")
    parser.add_argument("--data-dir", default=None, help="directory holding humaneval/HumanEval.jsonl.gz")
    args = parser.parse_args()

    task = HumanEvalTask(HumanEvalConfig(data_dir=args.data_dir))
    problems = task.load("humaneval")
    solutions = [p.answer for p in problems]

    start = time.monotonic()
    serial = [task.score(p, s) for p, s in zip(problems[:10], solutions[:10])]
    per_run = (time.monotonic() - start) / len(serial)

    start = time.monotonic()
    with Scorer(task, workers=args.workers) as scorer:
        scorer.score(problems[:1], solutions[:1])  # start the pool
        warm = time.monotonic()
        verdicts = scorer.score(problems, solutions)
        done = time.monotonic()
    passed = sum(v.correct for v in verdicts)
    total = done - start

    print(f"cores {os.cpu_count()}, workers {scorer.workers}")
    print(f"sandbox round trip (serial, 10 runs): {per_run * 1000:.0f} ms")
    print(f"pool start-up: {warm - start:.2f} s; scoring 164: {done - warm:.2f} s; total {total:.2f} s")
    failures = Counter(v.reason for v in verdicts if not v.correct)
    print(f"passed {passed}/{len(problems)}" + (f"; failures: {dict(failures)}" if failures else ""))
    print(f"goal: under {GOAL_SECONDS:.0f} s on 2 cores: {'met' if total < GOAL_SECONDS else 'NOT met'}")
    assert all(v.correct for v in serial)


if __name__ == "__main__":
    main()
