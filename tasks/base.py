"""The task contract: what every suite loads, how it prompts, and how it judges.

A suite is one module holding its loader, its prompt templates and its verifier together, so
the instruction a template gives ("put the final answer in \\boxed{}") sits next to the code
that relies on it. Training rewards and evaluation both call ``Task.score``: they cannot
disagree.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Optional

from common import DEFAULT_DATA_DIR, coerce_enums
from tasks.extract import last_boxed_span


@dataclass(frozen=True)
class Problem:
    """One benchmark item, normalised across files whose field names differ."""

    uid: str  # unique within its benchmark and stable across versions
    benchmark: str  # math500, gsm8k, aime24, humaneval, mathvista, arith, ...
    question: str  # the problem text, before any prompt template
    answer: str  # the gold answer as text (math: LaTeX; aime: an integer)
    metadata: Mapping[str, Any] = field(default_factory=dict)  # suite-specific: choices, tests, unit, ...
    image: Optional[str] = None  # path of the item's image (MathVista)


@dataclass(frozen=True)
class Verdict:
    """A verifier's judgement of one completion."""

    reward: float  # what training optimises (before any named shaping transform)
    correct: bool  # what pass@k counts
    extracted: Optional[str]  # the answer read from the completion; None if there was none
    reason: str  # one word or phrase: correct, wrong, no_answer, timeout, error: ..., ...


@dataclass(frozen=True)
class TaskConfig:
    """Settings every suite has; each suite subclasses it (defaults live only there)."""

    name: str = ""
    data_dir: Optional[str] = None  # directory of the benchmark files; None: ../shared/data beside the project
    template: str = ""  # a key of the suite's TEMPLATES
    train: str = ""  # the split or pool training draws from
    eval: tuple[str, ...] = ()  # the benchmarks evaluated during and after training

    def __post_init__(self) -> None:
        coerce_enums(self)  # a suite's mode fields given as strings become members, or fail naming the valid ones
        object.__setattr__(self, "eval", tuple(self.eval))


class Task:
    """Base class of a suite; subclasses set the class attributes and implement the three hooks."""

    config_type: ClassVar[type[TaskConfig]] = TaskConfig
    version: ClassVar[str] = "0"  # bumped whenever loading, prompting or judging changes a result
    templates: ClassVar[Mapping[str, str]] = {}  # name -> text with a {question} placeholder
    benchmarks: ClassVar[tuple[str, ...]] = ()  # what ``load`` accepts besides the training splits
    train_splits: ClassVar[tuple[str, ...]] = ("train",)  # training pools that are no benchmark
    votes: ClassVar[bool] = True  # one right answer, so extracted answers can be voted on (maj@k)
    # extracted answers are normalised strings, so different ones can be counted (answer diversity)
    comparable_answers: ClassVar[bool] = True

    def __init__(self, config: TaskConfig) -> None:
        if not isinstance(config, self.config_type):
            raise TypeError(f"{type(self).__name__} needs a {self.config_type.__name__}, got {type(config).__name__}")
        if config.template not in self.templates:
            raise ValueError(f"task.template={config.template!r} is not one of: {', '.join(self.templates)}")
        splits = (*self.train_splits, *self.benchmarks)
        unknown = [b for b in (config.train, *config.eval) if b not in splits]
        if unknown:
            raise ValueError(f"{config.name}: unknown split {unknown[0]!r}; valid: {', '.join(splits)}")
        self.config = config

    @property
    def data_dir(self) -> Path:
        return Path(self.config.data_dir).expanduser() if self.config.data_dir else DEFAULT_DATA_DIR

    def data_file(self, relative: str) -> Path:
        """The path of a data file, or one clear error saying how to point the config at it."""
        path = self.data_dir / relative
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: the {self.config.name} task reads {relative} under task.data_dir "
                f"(now {self.data_dir}); set task.data_dir=<directory holding {relative}>"
            )
        return path

    def load(self, split: str) -> list[Problem]:
        """The problems of ``split``: "train" or one of ``benchmarks``."""
        raise NotImplementedError

    def prompt(self, problem: Problem) -> list[dict[str, Any]]:
        """Chat messages for the policy: by default one user turn from the configured template."""
        return [{"role": "user", "content": self.templates[self.config.template].format(question=problem.question)}]

    def score(self, problem: Problem, completion: str) -> Verdict:
        """Judge one completion. Runs in the calling process's main thread (see tasks.scoring)."""
        raise NotImplementedError

    def reference(self, problem: Problem, rng: Optional[random.Random] = None) -> str:
        """A completion this task's prompt asks for that carries the gold answer: what a perfect
        policy writes, so ``score`` must judge it correct (tests/tasks/test_contract.py checks it on
        the real files). By default the gold in the \\boxed{} the math-style templates ask for;
        suites whose prompts ask for something else override it. With ``rng``, a task with many
        right answers draws one of them at random (the tiny model's warm start imitates many such
        draws); a task with one right answer ignores it."""
        return f"So the final answer is $\\boxed{{{problem.answer}}}$."

    def answer_spans(self, completion: str) -> list[tuple[int, int]]:
        """Where ``completion`` states its answer (``completion[start:end]`` each): by default the
        last \\boxed{}'s content, as the math-style verifiers read it; suites whose worked format
        states results before the box add those. The trainer splits token entropy by them into
        answer tokens and the rest (``train/entropy_answer``, ``train/entropy_other``); a suite
        whose answer is no span (code) returns []."""
        span = last_boxed_span(completion)
        return [span] if span else []

    def inline_problem(self, row: Mapping[str, Any]) -> Problem:
        """A problem from a gold answer given inline (bench.score rows without an id)."""
        return Problem(uid="inline", benchmark="inline", question=str(row.get("question", "")), answer=str(row["answer"]))


def read_jsonl(path: Path) -> Iterator[dict]:
    """Rows of a JSON-lines file (gzip-compressed when the name ends in .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        for number, raw in enumerate(lines, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{number}: not UTF-8 (byte {err.start + 1} of the line)") from None
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not JSON ({err.msg}, column {err.colno})") from None


def load_hf_rows(name: str, split: str, config_name: Optional[str] = None) -> list[dict]:
    """Rows of a Hugging Face dataset; offline and not cached -> one clear error, at once.

    With HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set (the tests set both) ``datasets`` does not
    retry the hub; whatever it raises is turned into a message saying what to do.
    """
    import datasets  # heavy; only needed for this path

    try:
        return list(datasets.load_dataset(name, config_name, split=split))
    except Exception as err:  # datasets raises many types for "not reachable / not cached"
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        where = "the hub is offline (HF_HUB_OFFLINE=1)" if offline else "the hub could not be reached"
        raise FileNotFoundError(
            f"Hugging Face dataset {name!r} (split {split!r}) is not in the local cache and {where}: "
            f"download it on a connected machine or point task.data_dir at local files ({type(err).__name__})"
        ) from err
