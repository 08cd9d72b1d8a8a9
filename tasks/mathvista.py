"""MathVista: mathematical reasoning over images (testmini, 1000 items).

Sources: Lu et al., "MathVista: Evaluating Mathematical Reasoning of Foundation Models in Visual
Contexts", ICLR 2024 (arXiv 2310.02255), and github.com/lupantech/MathVista: data/testmini.json
(../shared/data/mathvista; the images are not there, ``task.image_dir`` names them),
evaluation/build_query.py (question, "(A) choice" lines, the answer-type hints below),
extract_answer.py and calculate_score.py (the judging rules).

Prompt: "Question: q (Unit: u)", "Choices:" lettered (A), (B), ..., the official zero-shot hint
for the answer type, then the template's \\boxed{} instruction. With an image the user turn is
the transformers multimodal content list: {"type": "image", "image": <PIL image>}, then the text.

Judging (``judge``):
1. Extraction: the whole response when it already is an answer (a choice's text, a number, a
   list: extract_answer.py's first rules); else the last \\boxed{} (tasks/extract.py, the math
   suite's rules: also \\fbox{} and \\boxed 5); else the text after the last "answer is" /
   "Answer:"; else the last option letter (multi_choice; "A cat", "I think" are words) or the
   response if it names a choice by rule 2, the last [list] (list) or the last number
   (free_form; tasks/extract.py's ``NUMBER``: the "-" of "5-3" is no sign).
2. multi_choice: a choice's text (case and spacing ignored), else an option letter ("B", "(B)",
   "B.", "(B) text": the letter wins over the text after it), else the one choice that is the
   same number ("6" for "6cm", "4/3" for "\\frac{4}{3}"), else the most similar choice
   (difflib); correct when that choice is the gold.
   integer: the number equals the gold ("3.0" counts). float: both rounded half up to the
   item's ``precision``. list: same length, equal element by element (as numbers where both are).

Deviations:
- Rule-based extraction instead of the official GPT-4 extractor (extract_answer.py hands the
  response to an LLM); the rules read the \\boxed{} the templates ask for. A training reward
  has to be cheap, deterministic and offline.
- The prompt ends with the template's \\boxed{} instruction instead of build_query.py's "Solution: ".
- Nearest choice: difflib ratio >= 0.6 with a unique best, and never for a bare number (which
  names a choice only by value); the official code always takes the
  smallest Levenshtein distance, so any text at all picks some option.
- Integers: the official int(float(x)) truncates ("3.7" counts for 3); here it is wrong.
- Floats: decimal rounding half up and numeric equality; the official str(round(float(x), p)) ==
  answer rounds in binary (2.675 -> 2.67) and compares strings.
- Lists: element-wise instead of str(list) == answer, so spacing inside the brackets is free.
- Units, "$", "%" and thousands separators around a number are dropped (GPT does that there).
"""

from __future__ import annotations

import difflib
import json
import logging
import random
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any, Optional, Sequence

from tasks.base import Problem, Task, TaskConfig, Verdict
from tasks.extract import NUMBER, last_boxed, last_number

log = logging.getLogger(__name__)

FILE = "mathvista/testmini.json"
TEMPLATES = {
    "boxed_cot": "{question}\nThink step by step, then put the final answer within \\boxed{{}}.",
    "boxed": "{question}\nPut the final answer within \\boxed{{}}.",
}
_VALUE = "Please answer the question requiring {} and provide the final value, e.g., {}, at the end."
HINTS = {  # build_query.py, shot_type "solution"
    "multi_choice": "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
    "integer": _VALUE.format("an integer answer", "1, 2, 3"),
    "float": _VALUE.format("a floating-point number", "1.2, 1.23, 1.234"),  # ours: testmini has precision 1 or 2 only
    "float1": _VALUE.format("a floating-point number with one decimal place", "1.2, 1.3, 1.4"),
    "float2": _VALUE.format("a floating-point number with two decimal places", "1.23, 1.34, 1.45"),
    "list": "Please answer the question requiring a Python list as an answer and provide the final list, "
            "e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}
SIMILARITY = 0.6  # difflib ratio below which no choice is "nearest"

_NUM = NUMBER.pattern  # tasks/extract.py: -1,234.5, not the - of 5-3
# a whole answer that is one number: "$1,200", "3.5 cm^2", "45%", "\frac{4}{3}", "4/3", "30^\circ"
_UNIT = r"\^\{?\\circ\}?|\*?\\degree|[°%]|[a-zA-Z][\w^{}]*"  # ^\circ, *\degree, °, %, cm, m^2, years
ONE_NUMBER = re.compile(rf"\$?(?:\\[dt]?frac\{{(?P<n1>{_NUM})\}}\{{(?P<d1>{_NUM})\}}"
                        rf"|(?P<n2>{_NUM})\s*/\s*(?P<d2>{_NUM})|(?P<x>{_NUM}))\s*(?:{_UNIT})?\.?")
ANSWER_IS = re.compile(r"\banswer\s*(?:is\s*:?|:)\s*([^\n]+)", re.IGNORECASE)
# "(b)", "B", "B.", "B) text", "B, text", "Option B"; a lower-case letter only alone (see match_choice)
LETTER = re.compile(r"(?:[Oo]ption|[Cc]hoice)?\s*(?:\(([A-Za-z])\)|([A-Z])(?:[.:),](?:\s|$)|$))")
LETTER_IN_TEXT = re.compile(r"\(([A-Z])\)|\b(?![AI]\s+[a-z])([A-Z])\b")  # "(C)", "C"; not "A cat", "I think"
LIST = re.compile(r"\[[^\[\]]*\]")


class MissingImage(str, Enum):
    error = "error"  # load() raises, naming the first missing file
    skip = "skip"  # load() leaves the item out; the count is ``task.skipped`` and a log line


@dataclass(frozen=True)
class MathVistaConfig(TaskConfig):
    name: str = "mathvista"
    template: str = "boxed_cot"
    train: str = "mathvista"  # testmini is the only split here; it doubles as the training pool
    eval: tuple[str, ...] = ("mathvista",)
    image_dir: Optional[str] = None  # holds images/<pid>.jpg (or <pid>.jpg); None: text-only prompts
    missing_image: MissingImage = MissingImage.error


class MathVistaTask(Task):
    config_type = MathVistaConfig
    version = "2"  # 2: the math suite's box and number readers (tasks/extract.py)
    templates = TEMPLATES
    benchmarks = ("mathvista",)
    config: MathVistaConfig
    skipped: int = 0  # items the last load() left out for want of an image

    def load(self, split: str) -> list[Problem]:
        name = self.config.train if split == "train" else split
        if name not in self.benchmarks:
            raise ValueError(f"mathvista: unknown split {split!r}; valid: train, {', '.join(self.benchmarks)}")
        rows = json.loads(self.data_file(FILE).read_text(encoding="utf-8"))
        problems, missing = [], []
        for pid, row in rows.items():
            image = self.image_path(row["image"]) if self.config.image_dir else None
            if self.config.image_dir and image is None:
                missing.append(row["image"])
                continue
            metadata = {"choices": tuple(row["choices"]) if row["choices"] else None, "unit": row["unit"],
                        "precision": row["precision"], "question_type": row["question_type"],
                        "answer_type": row["answer_type"]}
            problems.append(Problem(uid=pid, benchmark=name, question=row["question"], answer=row["answer"],
                                    metadata=metadata, image=image))
        self.skipped = len(missing)
        if missing and self.config.missing_image is MissingImage.error:
            raise FileNotFoundError(
                f"MathVista image {missing[0]} not found under task.image_dir={self.config.image_dir} "
                f"({len(missing)} of {len(rows)} missing): point task.image_dir at the directory holding "
                f"images/<pid>.jpg from the MathVista release, or set task.missing_image=skip")
        if missing:
            log.warning("mathvista: skipped %d of %d items whose image is missing under %s (task.missing_image=skip)",
                        len(missing), len(rows), self.config.image_dir)
        return problems

    def image_path(self, relative: str) -> Optional[str]:
        """The image's file: image_dir/images/1.jpg, or image_dir/1.jpg; None when neither exists."""
        root = Path(self.config.image_dir or "").expanduser()
        found = [p for p in (root / relative, root / Path(relative).name) if p.is_file()]
        return str(found[0]) if found else None

    def prompt(self, problem: Problem) -> list[dict[str, Any]]:
        text = self.templates[self.config.template].format(question=query(problem))
        if problem.image is None:
            return [{"role": "user", "content": text}]
        return [{"role": "user", "content": [{"type": "image", "image": open_image(problem.image)},
                                             {"type": "text", "text": text}]}]

    def score(self, problem: Problem, completion: str) -> Verdict:
        return judge(completion, problem)

    def reference(self, problem: Problem, rng: Optional[random.Random] = None) -> str:
        """The gold in the template's \\boxed{}; with choices, its option letter, as the hint asks."""
        choices = problem.metadata["choices"]
        gold = chr(ord("A") + [norm(c) for c in choices].index(norm(problem.answer))) if choices else problem.answer
        return f"So the final answer is \\boxed{{{gold}}}."


def query(problem: Problem) -> str:
    """build_query.py's zero-shot question block: question (unit), lettered choices, hint."""
    meta = problem.metadata
    lines = [f"Question: {problem.question}" + (f" (Unit: {meta['unit']})" if meta["unit"] else "")]
    if meta["choices"]:
        lines += ["Choices:"] + [f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(meta["choices"])]
    kind = "multi_choice" if meta["question_type"] == "multi_choice" else meta["answer_type"]
    if kind == "float":
        kind = {1: "float1", 2: "float2"}.get(meta["precision"], "float")
    return "\n".join(lines + [f"Hint: {HINTS[kind]}"])


def open_image(path: str) -> Any:
    from PIL import Image  # only prompts with images need it

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"MathVista image {path} not found; check task.image_dir") from err


def judge(completion: str, problem: Problem) -> Verdict:
    meta = problem.metadata
    choices, answer_type = meta["choices"], meta["answer_type"]
    extracted = extract(completion, choices, answer_type)
    if extracted is None:
        return Verdict(0.0, False, None, "no_answer")
    if choices:
        index = match_choice(extracted, choices)
        if index is None:
            return Verdict(0.0, False, extracted, "no_choice")
        ok = norm(choices[index]) == norm(problem.answer)
    elif answer_type == "list":
        ok = same_list(extracted, problem.answer)
    else:
        value = to_number(extracted, anywhere=True)
        if value is None:
            return Verdict(0.0, False, extracted, "not_a_number")
        ok = same_number(value, Decimal(problem.answer), answer_type, meta["precision"])
    return Verdict(float(ok), ok, extracted, "correct" if ok else "wrong")


def extract(response: str, choices: Optional[Sequence[str]], answer_type: str) -> Optional[str]:
    """The answer part of a response (see the module docstring, rule 1); None when there is none."""
    text = response.strip()
    if not text:
        return None
    whole = clean(text)
    if (any(norm(whole) == norm(c) for c in choices) if choices
            else LIST.fullmatch(whole) if answer_type == "list" else to_number(whole) is not None):
        return whole
    said = [found.split(". ")[0] for found in ANSWER_IS.findall(text)[-1:]]  # "is 5. Because ..." -> "5"
    for found in (last_boxed(text), *said):
        if found is not None and clean(found):
            return clean(found)
    if choices:
        letters = [a or b for a, b in LETTER_IN_TEXT.findall(text) if ord((a or b)) - ord("A") < len(choices)]
        return letters[-1] if letters else whole if match_choice(whole, choices) is not None else None
    found = LIST.findall(text) if answer_type == "list" else NUMBER.findall(text)
    return found[-1] if found else None


def clean(answer: str) -> str:
    """Drop the wrapping an answer often comes in: \\text{}, $...$, **bold**, quotes, a final period."""
    answer = re.sub(r"\\(?:text|textbf|mathrm)\{([^{}]*)\}", r"\1", answer)
    return answer.strip().strip("*$ ").rstrip(".").strip().strip("\"'“”").strip()


def norm(text: str) -> str:
    """Choice-text comparison key: case, spaces, $ and \\left/\\right ignored; \\dfrac is \\frac."""
    text = re.sub(r"\\[dt]frac", r"\\frac", text.casefold()).replace("\\left", "").replace("\\right", "")
    return re.sub(r"[\s$]", "", text).rstrip(".")


def match_choice(extracted: str, choices: Sequence[str]) -> Optional[int]:
    """Index of the choice an extracted answer names (module docstring, rule 2); None: none does."""
    keys = [norm(c) for c in choices]
    if norm(extracted) in keys:
        return keys.index(norm(extracted))
    letter = LETTER.match(extracted.upper() if len(extracted) == 1 else extracted)  # a lone "c" is option C
    if letter and ord((letter[1] or letter[2]).upper()) - ord("A") < len(choices):
        return ord((letter[1] or letter[2]).upper()) - ord("A")
    value = to_number(extracted)
    same = [i for i, c in enumerate(choices) if value is not None and to_number(c) == value]
    if len(set(keys[i] for i in same)) == 1:
        return same[0]
    if value is not None:  # a number is not "near" a choice by spelling: 20 is not 2, 11 is not 115°
        return None
    ratios = sorted((similarity(norm(extracted), k), -i) for i, k in enumerate(keys))
    best, runner_up = ratios[-1], ratios[-2] if len(ratios) > 1 else (0.0, 0)
    return -best[1] if best[0] >= SIMILARITY and best[0] > runner_up[0] else None


def similarity(text: str, key: str) -> float:
    """difflib's ratio, or 0 when its cheap upper bounds already rule out SIMILARITY (long responses)."""
    matcher = difflib.SequenceMatcher(None, text, key)
    bounded = matcher.real_quick_ratio() >= SIMILARITY and matcher.quick_ratio() >= SIMILARITY
    return matcher.ratio() if bounded else 0.0


def to_number(text: str, anywhere: bool = False) -> Optional[Decimal]:
    """The number a text is ("1,200", "45%", "3 cm", "\\frac{4}{3}"); with ``anywhere``, else its last number."""
    text = text.strip().replace("\u2212", "-")
    whole = ONE_NUMBER.fullmatch(text)
    try:
        if whole and whole["x"] is not None:
            return Decimal(whole["x"].replace(",", ""))
        if whole:
            numerator, denominator = (whole["n1"], whole["d1"]) if whole["n1"] else (whole["n2"], whole["d2"])
            return Decimal(numerator.replace(",", "")) / Decimal(denominator.replace(",", ""))
        found = last_number(text) if anywhere else None
        return Decimal(found) if found is not None else None
    except (InvalidOperation, ZeroDivisionError):
        return None


def same_number(value: Decimal, gold: Decimal, answer_type: str, precision: Optional[int]) -> bool:
    """integer: equal ("3.0" is 3); float: equal once both are rounded half up to ``precision`` places."""
    if answer_type == "integer":
        return value == gold
    places = precision if precision is not None else max(0, -int(gold.as_tuple().exponent))
    try:
        step = Decimal(1).scaleb(-places)
        return value.quantize(step, rounding=ROUND_HALF_UP) == gold.quantize(step, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the decimal context holds: no float answer looks like that
        return False


def same_list(extracted: str, gold: str) -> bool:
    """Lists equal element by element: numbers as numbers, other items by their choice-text key."""
    def items(text: str) -> list[str]:
        return [item.strip().strip("'\"") for item in text.strip().strip("[]()").split(",")]

    mine, theirs = items(extracted), items(gold)
    return len(mine) == len(theirs) and all(
        to_number(a) == to_number(b) if to_number(b) is not None else norm(a) == norm(b) for a, b in zip(mine, theirs))
