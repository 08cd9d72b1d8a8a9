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
- Equivalence: identical text (spaces ignored), else math-verify 0.9 ``parse`` + ``verify``
  (Hugging Face, MIT) on ``$answer$`` and ``$gold$``: LaTeX to sympy, then string, symbolic,
  numeric (6 decimals), set / interval / tuple and relation comparison.
- Prompt: ``boxed_cot``, the RiskPO paper's instruction.

math-verify already handles ``\\text{}`` / ``\\mbox{}`` units, ``^\\circ``, ``\\dfrac`` / ``\\tfrac``,
``1,000`` and ``1{,}000``, ``x = 3`` against ``3``, unordered sets, intervals, ``\\pm``, ``\\$``,
``50\\%`` against 50. Added here, on both sides: a trailing full stop, ``1\\,000`` (thin-space
thousands), ``4.5e33`` (Minerva's golds), a bare number followed by plain unit words
(``18 dollars``), a percentage also equal to its value / 100 (``50\\%`` = 0.5), and numbers
must agree to a relative 1e-4 (math-verify alone rounds to 6 decimal places: 2.88e-19 = 1.3e-27).

Deviations and known limits:
- Only the last box counts (tasks/extract.py): a question with several answers (OlympiadBench
  ``is_multiple_answer``) needs them in one box.
- MATH golds keep that convention too: about a dozen MATH test solutions (none in MATH500) box
  several answers and the gold is the last one (math-414, math-2656, ...); math-4060 uses
  \\boxed{} as notation and its last box is not the answer. Left as the dataset has them.
- math-verify reads ``(1,2)`` as an open interval, which it lets equal the set ``\\{1,2\\}``.
- Units are dropped, not compared or converted: ``5\\text{ cm}`` equals ``5\\text{ m}``; degrees
  and radians likewise (``30^\\circ`` is not ``\\pi/6``).
- An equation counts by its last side (math-verify): ``2 + 3 = 5`` answers 5, and so does ``6 = 5``.
- OlympiadBench's per-item tolerance (``error``, one item) is not applied.
- Time limit: the math-verify calls of one judgement share ``timeout_s`` (whole seconds, so up
  to one more), enforced by math-verify's SIGALRM: ``judge`` must run in a main thread
  (tasks.scoring runs it in worker processes). Work that never returns to the interpreter (one
  huge C-level integer operation) is not interrupted by it, only by tasks.scoring's chunk limit.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Iterable

import sympy
from math_verify import parse, verify
from math_verify.errors import TimeoutException
from math_verify.utils import timeout

from tasks.base import Problem, Task, TaskConfig, Verdict, load_hf_rows, read_jsonl
from tasks.extract import last_boxed, last_number

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

TRAILING = re.compile(r"(?<!\\)[\s.,;:]+$|^\s+")  # "\frac97." (a sentence's full stop); not "3\;"
THIN_THOUSANDS = re.compile(r"(?<=\d)\\[,;! ](?=\d{3}(?!\d))")  # 1\,000
SCIENTIFIC = re.compile(r"(-?\d+(?:\.\d+)?)[eE]([-+]?\d+)")  # 4.5e33, whole answer only
# "18 dollars", "5 cm^2" (whole answer only); "3 pi" is a number, not a unit
UNIT_WORDS = re.compile(r"(-?[\d.,]+(?:/\d+)?)(?:\s*(?!pi\b)[A-Za-z]{2,}\.?)+(?:\^\{?[23]\}?)?")
PERCENT = re.compile(r"(.+?)\s*\\?%")  # 50\%, whole answer only
REL_TOL = 1e-4  # numbers that math-verify calls equal must also agree this closely (relative)


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
    timeout_s: int = 5  # per judgement, shared by its math-verify calls; whole seconds (SIGALRM)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.timeout_s < 1:
            raise ValueError(f"timeout_s={self.timeout_s} must be a whole number of seconds >= 1")


class MathTask(Task):
    config_type = MathConfig
    version = "1"
    templates = TEMPLATES
    benchmarks = tuple(FILES)
    train_splits = ("train", "math_train")
    config: MathConfig

    def load(self, split: str) -> list[Problem]:
        if split == "train":
            return self._math4500() + gsm8k_problems("train", read_jsonl(self.data_file(GSM8K_TRAIN)))
        if split == "math_train":
            return self._math_train() + gsm8k_problems("train", read_jsonl(self.data_file(GSM8K_TRAIN)))
        if split not in FILES:
            raise ValueError(f"math: unknown split {split!r}; valid: train, math_train, {', '.join(self.benchmarks)}")
        rows = read_jsonl(self.data_file(FILES[split]))
        if split == "gsm8k":
            return gsm8k_problems("test", rows)
        if split == "olympiadbench":
            return [olympiad_problem(row) for row in rows]
        return [boxed_problem(split, row) for row in rows]

    def score(self, problem: Problem, completion: str) -> Verdict:
        return judge(completion, problem.answer, fallback=self.config.fallback, timeout_s=self.config.timeout_s)

    def _math_train(self) -> list[Problem]:
        local = self.data_dir / MATH_TRAIN
        try:
            rows = list(read_jsonl(local)) if local.is_file() else load_hf_rows(MATH_TRAIN_HUB, "train")
        except FileNotFoundError as err:
            raise FileNotFoundError(f"math: task.train=math_train needs the MATH train split (7,500 problems) from "
                                    f"{local} (JSON lines: problem, solution) or the hub; task.train=train needs "
                                    f"neither: {err}") from err
        return [boxed_problem("math_train", {**row, "idx": index}) for index, row in enumerate(rows)]

    def _math4500(self) -> list[Problem]:
        held_out = {row["problem"] for row in read_jsonl(self.data_file(FILES["math500"]))}
        pool = [boxed_problem("math", row) for row in read_jsonl(self.data_file(FILES["math"]))]
        kept = [p for p in pool if p.question not in held_out]
        if len(pool) - len(kept) != len(held_out):  # a MATH500 problem left in the pool would leak
            raise ValueError(f"math: {len(pool) - len(kept)} problems of {FILES['math']} match the {len(held_out)} of "
                             f"{FILES['math500']} under {self.data_dir}; expected one each")
        return kept


def boxed_problem(benchmark: str, row: dict) -> Problem:
    """A MATH / MATH500 / Minerva row: the gold is the solution's last box."""
    gold = last_boxed(row["solution"])
    uid = row["unique_id"] if "unique_id" in row else f"{benchmark}-{row['idx']}"
    if gold is None:
        raise ValueError(f"{benchmark} {uid}: the solution has no \\boxed{{}} answer")
    keep = ("solution", "subject", "level", "type")
    return Problem(uid=uid, benchmark=benchmark, question=row["problem"], answer=gold,
                   metadata={k: row[k] for k in keep if k in row})


def gsm8k_problems(part: str, rows: Iterable[dict]) -> list[Problem]:
    return [
        Problem(uid=f"gsm8k-{part}-{index}", benchmark="gsm8k", question=row["question"],
                answer=gsm8k_gold(row["answer"]), metadata={"solution": row["answer"]})
        for index, row in enumerate(rows)
    ]


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
    completion: str, gold: str, *, fallback: Fallback | str = MathConfig.fallback, timeout_s: int = MathConfig.timeout_s
) -> Verdict:
    """Read the completion's last boxed answer (or the fallback's) and compare it with the gold.

    The options and their defaults are MathConfig's; the aime and arith suites call it bare.
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
        same = equivalent(answer, gold, timeout_s)
    except TimeoutException:
        return Verdict(0.0, False, answer, "timeout")
    except Exception as err:  # a verifier bug or unparseable input: judged wrong, and said so
        return Verdict(0.0, False, answer, f"error: {type(err).__name__}: {str(err)[:200]}")
    return Verdict(1.0, True, answer, "correct") if same else Verdict(0.0, False, answer, "wrong")


def equivalent(answer: str, gold: str, timeout_s: int = MathConfig.timeout_s) -> bool:
    """Whether two LaTeX answers are equal: same text, else math-verify on the normalised forms.

    All math-verify calls together get about ``timeout_s`` seconds; past it, math-verify's
    TimeoutException is raised. Whatever its parser raises on input it cannot handle is raised too.
    """
    if re.sub(r"\s+", "", answer) == re.sub(r"\s+", "", gold):
        return True
    deadline = time.monotonic() + timeout_s
    golds, answers = _readings(gold, deadline), _readings(answer, deadline)
    return any(
        verify(g, a, timeout_seconds=_left(deadline), raise_on_error=True) and _close(g, a, _left(deadline))
        for g in golds
        for a in answers
    )


def forms(answer: str) -> list[str]:
    """The normalised answer; a percentage both without its sign (MATH's convention) and / 100."""
    text = THIN_THOUSANDS.sub("", TRAILING.sub("", answer))
    if match := SCIENTIFIC.fullmatch(text):
        text = f"{match[1]}\\times 10^{{{match[2]}}}"
    elif match := UNIT_WORDS.fullmatch(text):
        text = match[1]
    if match := PERCENT.fullmatch(text):
        return [match[1], f"\\frac{{{match[1]}}}{{100}}"]
    return [text]


def _readings(answer: str, deadline: float) -> list:
    """math-verify's readings of each normalised form: sympy objects, then the text itself."""
    return [
        reading
        for text in forms(answer)
        for reading in parse(f"${text}$", parsing_timeout=_left(deadline), raise_on_error=True)
    ]


def _close(gold: object, answer: object, timeout_s: int) -> bool:
    """Two numbers must also agree to REL_TOL: math-verify rounds to 6 decimal places, so to it
    2.88e-19 equals 1.3e-27 (both 0.000000)."""
    if not (isinstance(gold, sympy.Expr) and isinstance(answer, sympy.Expr) and gold.is_number and answer.is_number):
        return True
    a, b = timeout(timeout_s)(lambda: (complex(sympy.N(gold)), complex(sympy.N(answer))))()
    return a == b or abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def _left(deadline: float) -> int:
    """Whole seconds left before ``deadline`` (math-verify's alarm takes whole seconds)."""
    seconds = math.ceil(deadline - time.monotonic())
    if seconds <= 0:
        raise TimeoutException("the judgement ran past timeout_s")
    return seconds
