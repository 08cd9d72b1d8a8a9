"""``python -m bench.score``: judge a file of generations with a task's verifier.

    python -m bench.score task=math input=generations.jsonl output=verdicts.jsonl

Each input line is a JSON object with ``completion`` and either an id of the task's data
(``uid``; MathVista's ``pid`` and HumanEval's ``task_id`` work too; add ``benchmark`` when an id
is in more than one benchmark) or an inline gold ``answer``. Each output line is the input
object plus ``reward``, ``correct``, ``extracted`` and ``reason``, in input order. The output is
written to a temporary file and renamed into place, so a crash never leaves half a file.

Rows that cannot be used (bad JSON, no completion, unknown id) are listed with their line
numbers on stderr, never dropped silently; the exit status is 1 if there were any, unless
``skip_bad=true``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import DictConfig, OmegaConf

import tasks
from bench.compose import ConfigError, compose, one_line
from common import write_atomically
from tasks.base import Problem, Task
from tasks.scoring import Scorer

ID_FIELDS = ("uid", "pid", "task_id")


def read_rows(path: Path, task: Task) -> tuple[list[tuple[int, dict, Problem]], list[str]]:
    """(usable rows as (line number, row, problem), problems as 'line N: why')."""
    index: dict[str, list[Problem]] = {}
    usable, bad = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append(f"line {number}: not JSON ({err.msg})")
            continue
        if not isinstance(row, dict) or not isinstance(row.get("completion"), str):
            bad.append(f"line {number}: no 'completion' string")
            continue
        try:
            usable.append((number, row, find_problem(row, task, index)))
        except (KeyError, ValueError) as err:
            bad.append(f"line {number}: {one_line(err)}")
    return usable, bad


def find_problem(row: dict, task: Task, index: dict[str, list[Problem]]) -> Problem:
    """The problem a row answers: looked up by id, or built from its inline ``answer``."""
    id_field = next((f for f in ID_FIELDS if f in row), None)
    if id_field is None:
        if "answer" not in row:
            raise ValueError(f"needs an id ({' / '.join(ID_FIELDS)}) or an inline 'answer'")
        return task.inline_problem(row)
    if not index:
        for benchmark in task.benchmarks:
            for problem in task.load(benchmark):
                index.setdefault(str(problem.uid), []).append(problem)
    found = [p for p in index.get(str(row[id_field]), []) if p.benchmark == row.get("benchmark", p.benchmark)]
    if not found:
        raise KeyError(f"{id_field} {row[id_field]!r} is not in the {task.config.name} task's data")
    if len(found) > 1:
        raise ValueError(f"{id_field} {row[id_field]!r} is in {len(found)} benchmarks; add a 'benchmark' field")
    return found[0]


def score_file(cfg: DictConfig) -> int:
    task = tasks.build(OmegaConf.to_object(cfg.task))
    source = Path(cfg.input)
    if not source.is_file():
        raise FileNotFoundError(f"input={source} not found")
    usable, bad = read_rows(source, task)
    with Scorer(task, workers=cfg.workers) as scorer:
        verdicts = scorer.score([p for _, _, p in usable], [row["completion"] for _, row, _ in usable])
    lines = [json.dumps({**row, **asdict(v)}) + "\n" for (_, row, _), v in zip(usable, verdicts)]
    write_atomically(Path(cfg.output), lambda tmp: tmp.write_text("".join(lines), encoding="utf-8"))
    correct = sum(v.correct for v in verdicts)
    reasons: dict[str, int] = {}
    for v in verdicts:
        reasons[v.reason] = reasons.get(v.reason, 0) + 1
    accuracy = correct / len(verdicts) if verdicts else 0.0
    print(f"{cfg.task.name}: {correct}/{len(verdicts)} correct ({accuracy:.1%}); "
          + ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())) + f"; unusable rows {len(bad)}; wrote {cfg.output}")
    for line in bad:
        print(f"bench.score: {source}: {line}", file=sys.stderr)
    return 1 if bad and not cfg.skip_bad else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return score_file(compose("score", argv))
    except (ConfigError, ValueError, KeyError, FileNotFoundError) as err:
        print(f"bench.score: {one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
