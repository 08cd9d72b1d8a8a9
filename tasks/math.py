"""Math word problems with a final answer in \\boxed{}: MATH500, MATH, GSM8K, Minerva, OlympiadBench.

Sources:
- Data: ../shared/data (see its README). The training pool ``train`` is MATH-4500 (MATH test
  minus the MATH500 problems, matched by problem text, as PRM800K trains) plus GSM8K train.
  ``math_train`` is the released RiskPO code's pool (github RTkenny/RiskPO at 65ec40c,
  data_processing/download_easymath.py): the MATH train split (7,500 problems, none in MATH
  test) plus GSM8K train. The MATH train split is not in ../shared/data: it is read from
  ``math/train.jsonl`` under task.data_dir when there (rows with ``problem`` and ``solution``),
  else from the hub (``DigitalLearningGmbH/MATH-lighteval``, the reference's source), failing at
  once with a message naming both when offline and not cached.
- Golds: MATH, MATH500 and Minerva: the last \\boxed{} of the solution (MATH500's ``answer``
  field is that same text); GSM8K: the number after ``####``, thousands commas removed;
  OlympiadBench: ``final_answer`` with its ``$`` removed (items joined by ", ").
- Extraction: the content of the LAST ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces, or
  ``\\boxed 5`` (tasks/extract.py ``last_boxed``, where the rules are; Hendrycks et al., PRM800K).
- Equivalence: tasks/math_equivalence.py ``equivalent`` (identical text, the same plain number,
  else math-verify 0.9 on normalised forms; its docstring lists what it adds and its limits).
- Prompt: ``boxed_cot``, the RiskPO paper's instruction.

Deviations and known limits:
- Only the last box counts (tasks/extract.py): a question with several answers (OlympiadBench
  ``is_multiple_answer``) needs them in one box.
- MATH golds keep that convention too: about a dozen MATH test solutions (none in MATH500) box
  several answers and the gold is the last one (math-414, math-2656, ...); math-4060 uses
  \\boxed{} as notation and its last box is not the answer. Left as the dataset has them.
- OlympiadBench's per-item tolerance (``error``, one item) is not applied.
- Time limit: the math-verify calls of one judgement share ``timeout_s`` (whole seconds, so up
  to one more), enforced by math-verify's SIGALRM: ``judge`` must run in a main thread
  (tasks.scoring runs it in worker processes). Work that never returns to the interpreter (one
  huge C-level integer operation) is not interrupted by it, only by tasks.scoring's chunk limit.
  So that a loaded machine does not decide a verdict, tasks.scoring judges a ``timeout`` once
  more, alone, with RETRY_FACTOR times ``timeout_s`` (20 s by default) before it stands.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Callable, Iterable

from math_verify.errors import TimeoutException

from tasks.base import Problem, Task, TaskConfig, Verdict, load_hf_rows, read_jsonl
from tasks.extract import last_boxed, last_number
from tasks.math_equivalence import TIMEOUT_S, asked_about, equivalent

TEMPLATES = {
    # RiskPO paper's prompt; {{}} is format()'s escape for the literal \boxed{}.
    "boxed_cot": "{question} Let's think step by step and output the final answer within \\boxed{{}}.",
}

FILES = {
    "math500": "math500/test.jsonl",
    "math": "math/test.jsonl",
    "gsm8k": "gsm8k/test.jsonl",
    "minerva_math": "minerva_math/test.jsonl",
    "olympiadbench": "olympiadbench/test.jsonl",
}
GSM8K_TRAIN = "gsm8k/train.jsonl"
MATH_TRAIN = "math/train.jsonl"  # the MATH train split, when a data_dir has it
MATH_TRAIN_HUB = "DigitalLearningGmbH/MATH-lighteval"  # otherwise from the hub, as the reference loads it


class Fallback(str, Enum):
    none = "none"  # no box: no answer
    last_number = "last_number"  # no box: the completion's last number (GSM8K-style outputs)


@dataclass(frozen=True)
class MathConfig(TaskConfig):
    name: str = "math"
    template: str = "boxed_cot"
    train: str = "train"  # train: MATH-4500 + GSM8K train (local); math_train: MATH train + GSM8K train
    eval: tuple[str, ...] = ("math500",)
    fallback: Fallback = Fallback.none  # what answers when a completion has no \boxed{}
    timeout_s: int = TIMEOUT_S  # per judgement, shared by its math-verify calls; whole seconds (SIGALRM)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.timeout_s < 1:
            raise ValueError(f"timeout_s={self.timeout_s} must be a whole number of seconds >= 1")


class MathTask(Task):
    config_type = MathConfig
    version = "2"  # 2: only real units dropped, scale words scale, Unicode digits read (issue 12)
    templates = TEMPLATES
    benchmarks = tuple(FILES)
    train_splits = ("train", "math_train")
    config: MathConfig

    def load(self, split: str) -> list[Problem]:
        if split == "train":
            return self._math4500() + self._read(GSM8K_TRAIN, partial(gsm8k_problem, "train"))
        if split == "math_train":
            return self._math_train() + self._read(GSM8K_TRAIN, partial(gsm8k_problem, "train"))
        if split not in FILES:
            raise ValueError(f"math: unknown split {split!r}; valid: train, math_train, {', '.join(self.benchmarks)}")
        if split == "gsm8k":
            return self._read(FILES[split], partial(gsm8k_problem, "test"))
        if split == "olympiadbench":
            return self._read(FILES[split], lambda _, row: olympiad_problem(row))
        return self._read(FILES[split], lambda _, row: boxed_problem(split, row))

    def score(self, problem: Problem, completion: str) -> Verdict:
        return judge(completion, problem.answer, fallback=self.config.fallback, timeout_s=self.config.timeout_s,
                     question=problem.question)

    def _read(self, relative: str, build: Callable[[int, dict], Problem]) -> list[Problem]:
        path = self.data_file(relative)
        return problems_from(str(path), read_jsonl(path), build)

    def _math_train(self) -> list[Problem]:
        local = self.data_dir / MATH_TRAIN
        try:
            rows = list(read_jsonl(local)) if local.is_file() else load_hf_rows(MATH_TRAIN_HUB, "train")
        except FileNotFoundError as err:
            raise FileNotFoundError(f"math: task.train=math_train needs the MATH train split (7,500 problems) from "
                                    f"{local} (JSON lines: problem, solution) or the hub; task.train=train needs "
                                    f"neither: {err}") from err
        source = str(local) if local.is_file() else MATH_TRAIN_HUB
        return problems_from(source, rows, lambda index, row: boxed_problem("math_train", {**row, "idx": index}))

    def _math4500(self) -> list[Problem]:
        held_out = {p.question for p in self._read(FILES["math500"], lambda _, row: boxed_problem("math500", row))}
        pool = self._read(FILES["math"], lambda _, row: boxed_problem("math", row))
        kept = [p for p in pool if p.question not in held_out]
        if len(pool) - len(kept) != len(held_out):  # a MATH500 problem left in the pool would leak
            raise ValueError(f"math: {len(pool) - len(kept)} problems of {FILES['math']} match the {len(held_out)} of "
                             f"{FILES['math500']} under {self.data_dir}; expected one each")
        return kept


def problems_from(source: str, rows: Iterable[dict], build: Callable[[int, dict], Problem]) -> list[Problem]:
    """``build(index, row)`` for each row of a data file (or hub dataset) ``source``; a row that
    cannot be read fails naming ``source`` and the row (from 1), whatever asked for the data."""
    problems = []
    for index, row in enumerate(rows):
        try:
            if not isinstance(row, dict):
                raise ValueError(f"not a JSON object but {type(row).__name__}")
            problems.append(build(index, row))
        except KeyError as err:
            raise ValueError(f"{source} row {index + 1}: no {err} field") from err
        except (TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{source} row {index + 1}: {' '.join(str(err).split())}") from err
    return problems


def boxed_problem(benchmark: str, row: dict) -> Problem:
    """A MATH / MATH500 / Minerva row: the gold is the solution's last box."""
    gold = last_boxed(row["solution"])
    uid = row["unique_id"] if "unique_id" in row else f"{benchmark}-{row['idx']}"
    if gold is None:
        raise ValueError(f"{benchmark} {uid}: the solution has no \\boxed{{}} answer")
    keep = ("solution", "subject", "level", "type")
    return Problem(uid=uid, benchmark=benchmark, question=row["problem"], answer=gold,
                   metadata={k: row[k] for k in keep if k in row})


def gsm8k_problem(part: str, index: int, row: dict) -> Problem:
    return Problem(uid=f"gsm8k-{part}-{index}", benchmark="gsm8k", question=row["question"],
                   answer=gsm8k_gold(row["answer"]), metadata={"solution": row["answer"]})


def gsm8k_gold(answer: str) -> str:
    """'...\\n#### 1,450,000' -> '1450000'."""
    if "####" not in answer:
        raise ValueError(f"GSM8K answer without '####': {answer[-80:]!r}")
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def olympiad_problem(row: dict) -> Problem:
    gold = ", ".join(item.replace("$", "").strip() for item in row["final_answer"])
    keep = ("final_answer", "is_multiple_answer", "unit", "answer_type", "error", "subfield", "solution")
    meta = {k: row[k] for k in keep}
    return Problem(uid=f"olympiadbench-{row['id']}", benchmark="olympiadbench", question=row["question"],
                   answer=gold, metadata=meta)


def judge(
    completion: str, gold: str, *, fallback: Fallback | str = MathConfig.fallback, timeout_s: int = MathConfig.timeout_s,
    question: str = "",
) -> Verdict:
    """Read the completion's last boxed answer (or the fallback's) and compare it with the gold.

    The options and their defaults are MathConfig's; the aime and arith suites call it bare.
    ``question``: what a "how many" question counts may follow the number (``asked_about``).
    """
    if threading.current_thread() is not threading.main_thread():  # else every verdict would be an error
        raise RuntimeError("tasks.math.judge needs a main thread (math-verify's time limit is SIGALRM); "
                           "score through tasks.scoring.Scorer")
    answer = last_boxed(completion)
    if answer is None and Fallback(fallback) is Fallback.last_number:
        answer = last_number(completion)
    if not answer:
        return Verdict(0.0, False, answer, "no_answer")
    try:
        same = equivalent(answer, gold, timeout_s, asked=asked_about(question))
    except TimeoutException:
        return Verdict(0.0, False, answer, "timeout")
    except Exception as err:  # a verifier bug or unparseable input: judged wrong, and said so
        return Verdict(0.0, False, answer, f"error: {type(err).__name__}: {' '.join(str(err).split())[:200]}")
    return Verdict(1.0, True, answer, "correct") if same else Verdict(0.0, False, answer, "wrong")
