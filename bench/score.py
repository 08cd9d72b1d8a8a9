"""``python -m bench.score``: judge a file of generations with a task's verifier.

    python -m bench.score task=math input=generations.jsonl output=verdicts.jsonl

Each input line is a JSON object with ``completion`` and either an id of the task's data
(``uid``; MathVista's ``pid`` and HumanEval's ``task_id`` work too; add ``benchmark`` when an id
is in more than one benchmark) or an inline gold ``answer``. Each output line is the input
object plus ``reward``, ``correct``, ``extracted`` and ``reason``, in input order.

The output is checked before anything is scored (its directory exists and takes a new file; it
is not a directory): a hidden temporary file is created beside it at once, written when scoring
is done and renamed into place, so a crash never leaves half a file; it is removed whatever
happens (an error, Ctrl-C).

Rows that cannot be used (not UTF-8, bad JSON, no completion, unknown id) are listed with their
line numbers on stderr, never dropped silently, and the other rows are scored; the exit status is
1 if there were any, unless ``skip_bad=true``. A failure that stops the run (a bad setting, a
missing input, a task's data file it cannot read, which it names with the row) is one line on
stderr and exit status 2; Ctrl-C is exit status 130.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

import tasks
from bench.compose import ConfigError, compose, one_line
from tasks.base import Problem, Task
from tasks.scoring import Scorer

ID_FIELDS = ("uid", "pid", "task_id")


def read_rows(path: Path, task: Task) -> tuple[list[tuple[int, dict, Problem]], list[str]]:
    """(usable rows as (line number, row, problem), problems as 'line N: why', in line order)."""
    rows, bad = read_lines(path)
    index = task_index(task) if any(f in row for _, row in rows for f in ID_FIELDS) else {}
    usable = []
    for number, row in rows:
        try:
            usable.append((number, row, find_problem(row, task, index)))
        except (KeyError, ValueError) as err:
            bad.append((number, one_line(err)))
    return usable, [f"line {number}: {why}" for number, why in sorted(bad)]


def read_lines(path: Path) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """The input's JSON objects with a completion, by line number, and the lines that are not.

    Lines are split at "\\n" only (a raw U+2028 inside a JSON string is no line break) and decoded
    one by one, so a line that is not UTF-8 costs only that line."""
    rows, bad = [], []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            bad.append((number, f"not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                                "write the file as UTF-8"))
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append((number, f"not JSON ({err.msg})"))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("completion"), str):
            bad.append((number, "no 'completion' string"))
            continue
        rows.append((number, row))
    return rows, bad


def task_index(task: Task) -> dict[str, list[Problem]]:
    """Every problem of the task's benchmarks by id. A data file that cannot be read stops the run
    with the file's own error (its path and row), not as the fault of an input line."""
    index: dict[str, list[Problem]] = {}
    for benchmark in task.benchmarks:
        try:
            problems = task.load(benchmark)
        except (KeyError, ValueError, TypeError) as err:
            raise ValueError(f"the {task.config.name} task's data for {benchmark} under task.data_dir={task.data_dir} "
                             f"cannot be read: {one_line(err)}; fix or replace the file") from err
        for problem in problems:
            index.setdefault(str(problem.uid), []).append(problem)
    return index


def find_problem(row: dict, task: Task, index: dict[str, list[Problem]]) -> Problem:
    """The problem a row answers: looked up by id in ``index`` (task_index's), or built from its
    inline ``answer``."""
    id_field = next((f for f in ID_FIELDS if f in row), None)
    if id_field is None:
        if "answer" not in row:
            raise ValueError(f"needs an id ({' / '.join(ID_FIELDS)}) or an inline 'answer'")
        return task.inline_problem(row)
    found = [p for p in index.get(str(row[id_field]), []) if p.benchmark == row.get("benchmark", p.benchmark)]
    if not found:
        raise KeyError(f"{id_field} {row[id_field]!r} is not in the {task.config.name} task's data")
    if len(found) > 1:
        raise ValueError(f"{id_field} {row[id_field]!r} is in {len(found)} benchmarks; add a 'benchmark' field")
    return found[0]


@contextmanager
def reserved(path: Path) -> Iterator[Path]:
    """A new hidden file beside ``path``, created now, so that an output that cannot be written
    fails before any work; moved to ``path`` if the block ends normally, removed in every case."""
    if path.is_dir():
        raise ConfigError(f"output={path} is a directory; give a file name, e.g. output={path / 'verdicts.jsonl'}")
    if not path.parent.is_dir():
        raise ConfigError(f"output={path}: the directory {path.parent} does not exist; create it or fix the path")
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.touch(exist_ok=False)
    except OSError as err:
        raise ConfigError(f"output={path}: cannot create a file in {path.parent} ({err.strerror}); "
                          f"choose a writable directory") from err
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def score_file(cfg: DictConfig) -> int:
    missing = [key for key in ("input", "output") if OmegaConf.is_missing(cfg, key)]
    if missing:
        raise ConfigError(f"bench.score needs {' and '.join(f'{key}=<path>' for key in missing)}, e.g. "
                          f"python -m bench.score task=math input=generations.jsonl output=verdicts.jsonl")
    task = tasks.build(OmegaConf.to_object(cfg.task))
    source = Path(cfg.input)
    if not source.is_file():
        why = "is a directory" if source.is_dir() else "not found"
        raise FileNotFoundError(f"input={source} {why}; give the JSON-lines file of generations")
    with reserved(Path(cfg.output)) as tmp:
        usable, bad = read_rows(source, task)
        with Scorer(task, workers=cfg.workers) as scorer:
            verdicts = scorer.score([p for _, _, p in usable], [row["completion"] for _, row, _ in usable])
        tmp.write_text("".join(json.dumps({**row, **asdict(v)}) + "\n" for (_, row, _), v in zip(usable, verdicts)),
                       encoding="utf-8")
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
    except (ConfigError, ValueError, KeyError, OSError) as err:
        print(f"bench.score: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench.score: interrupted; no output written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
