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
``50\\%`` against 50. Added here, on both sides: Unicode digits and look-alike letters read as
ASCII (NFKC: fullwidth ``５``, mathematical ``𝟓`` and ``𝑥``; every Unicode decimal digit, such as
Arabic-Indic ``٥``; superscripts and subscripts as ``^{}`` / ``_{}``, ``x²`` = ``x^2``), a
trailing full stop, ``1\\,000`` (thin-space thousands), ``4.5e33`` (Minerva's golds), a bare
number followed by a unit from ``UNITS`` (``18 dollars``, ``5 cm^2``, ``60 km/h``; any other word
is left for math-verify, which reads ``3 or four`` as a product of letters, so wrong), a number
followed by a word of ``SCALES`` taken at its value (``5 thousand`` = 5000, not 5), ``50 percent``
as ``50\\%``, a percentage also equal to its value / 100 (``50\\%`` = 0.5), and numbers must agree
to a relative 1e-4 (math-verify alone rounds to 6 decimal places: 2.88e-19 = 1.3e-27).

Deviations and known limits:
- Only the last box counts (tasks/extract.py): a question with several answers (OlympiadBench
  ``is_multiple_answer``) needs them in one box.
- MATH golds keep that convention too: about a dozen MATH test solutions (none in MATH500) box
  several answers and the gold is the last one (math-414, math-2656, ...); math-4060 uses
  \\boxed{} as notation and its last box is not the answer. Left as the dataset has them.
- math-verify reads ``(1,2)`` as an open interval, which it lets equal the set ``\\{1,2\\}``.
- Units are dropped, not compared or converted: ``5\\text{ cm}`` equals ``5\\text{ m}``; degrees
  and radians likewise (``30^\\circ`` is not ``\\pi/6``).
- math-verify itself drops any trailing ``\\text{...}`` (``3\\text{ or four}`` equals 3) and a
  trailing word of its own list, which holds count nouns as well as units (``3 apples``,
  ``3 more``; ``3 or profit`` too: one number, so no hedge). Other words after a number count only when they are what the question's "how
  many / how much" counts (``12 cookies`` for "How many cookies ...", ``asked_about``; function,
  comparison and number words never): 1019 of GSM8K's 1023 such test questions accept
  "<gold> <that noun>".
- An equation counts by its last side (math-verify): ``2 + 3 = 5`` answers 5, and so does ``6 = 5``.
- OlympiadBench's per-item tolerance (``error``, one item) is not applied.
- Time limit: the math-verify calls of one judgement share ``timeout_s`` (whole seconds, so up
  to one more), enforced by math-verify's SIGALRM: ``judge`` must run in a main thread
  (tasks.scoring runs it in worker processes). Work that never returns to the interpreter (one
  huge C-level integer operation) is not interrupted by it, only by tasks.scoring's chunk limit.
  So that a loaded machine does not decide a verdict, tasks.scoring judges a ``timeout`` once
  more, alone, with RETRY_FACTOR times ``timeout_s`` (20 s by default) before it stands.
"""

from __future__ import annotations

import math
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from functools import lru_cache, partial
from typing import Callable, Iterable

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
PERCENT = re.compile(r"(.+?)\s*\\?%")  # 50\%, whole answer only

# The units a bare number may carry in plain words ("18 dollars", "5 sq ft", "60 km/h"); only these
# are dropped. From the real data (../shared/data): no gold or gold solution boxes plain unit words
# (units there are in \text{}, which math-verify drops); these are the units GSM8K's questions ask
# for ("how many hours / miles / dollars ..."), those of MATH's \text{} units and OlympiadBench's
# ``unit`` field, and the physics units of Minerva's solutions.
UNITS = (
    # money
    "dollar", "dollars", "cent", "cents", "euro", "euros", "pound", "pounds", "yen", "rupee", "rupees",
    # length and area
    "mm", "cm", "km", "in", "ft", "yd", "mi", "inch", "inches", "foot", "feet", "yard", "yards", "mile", "miles",
    "meter", "meters", "metre", "metres", "millimeter", "millimeters", "centimeter", "centimeters", "kilometer",
    "kilometers", "unit", "units", "acre", "acres", "hectare", "hectares",
    # volume
    "ml", "liter", "liters", "litre", "litres", "milliliter", "milliliters", "gallon", "gallons", "quart", "quarts",
    "pint", "pints", "cup", "cups", "cc",
    # mass
    "mg", "kg", "gram", "grams", "kilogram", "kilograms", "lb", "lbs", "oz", "ounce", "ounces", "ton", "tons",
    "tonne", "tonnes",
    # time
    "ms", "sec", "secs", "second", "seconds", "min", "mins", "minute", "minutes", "hr", "hrs", "hour", "hours",
    "day", "days", "week", "weeks", "month", "months", "yr", "yrs", "year", "years",
    # angle, temperature, speed, energy
    "deg", "degree", "degrees", "rad", "radian", "radians", "celsius", "fahrenheit", "kelvin", "mph", "kph", "kmh",
    "calorie", "calories", "kcal",
    # physics (Minerva's golds keep their units outside the box; an answer may put them in)
    "ev", "kev", "mev", "gev", "erg", "ergs", "joule", "joules", "watt", "watts", "volt", "volts", "newton",
    "newtons", "hz", "khz", "mhz", "ghz", "pa", "kpa", "atm", "mol", "au", "pc", "kpc", "mpc",
)
SCALES = {"hundred": "100", "thousand": "1000", "million": "10^{6}", "billion": "10^{9}", "trillion": "10^{12}",
          "dozen": "12"}  # number words that scale the number before them: "5 thousand" is 5000
_UNIT = rf"(?:(?:square|sq|cubic|cu)\.?\s+)?(?:{'|'.join(UNITS)})\b\.?(?:\s*\^\s*\{{?[23]\}}?)?"
_UNITS = rf"{_UNIT}(?:\s*/\s*(?:{_UNIT}|[hsm]\b)|\s+per\s+{_UNIT}|\s+{_UNIT})?"  # km/h, miles per hour
_NUMBER = r"-?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|\.\d+|\\[dt]?frac\{\d+\}\{\d+\})"
# a whole answer of a number (after an optional \$), then a scale, and then "percent" or a unit
# (one, or two as in "degrees celsius", "km/h", "miles per hour"); \text{...} around the words counts too
# ((?=[a-z]) spares trying every unit at each space of a long run of them)
WORDED = re.compile(rf"(?:\\\$)?\s*({_NUMBER})(?:\s*(?=[a-z])({'|'.join(SCALES)})s?\b)?"
                    rf"(?:\s*(?=[a-z])(percent\b|{_UNITS}))?", re.IGNORECASE)
# What a question's "how many / how much" counts ("How many cookies did she bake?": cookies). A
# number followed only by those words ("12 cookies") is that number. Function, comparison and
# number words never count, so "3 or four", "3 is not the answer", "7 plus two" stay text.
ASKED = re.compile(r"\bhow\s+(?:many|much)((?:\s+[a-z][a-z'-]*){1,4})", re.IGNORECASE)
NOT_NOUNS = frozenset("""
    a an the this that these those it its and or nor but not no none is are was were be been being will would
    can could do does did has have had shall should may might must of to in on at by for from with as than if
    then else either neither except without plus minus times over divided multiplied add added subtract
    more less fewer most least many much each every per total answer left remaining approximately about around
    nearly almost exactly only just roughly zero one two three four five six seven eight nine ten eleven twelve
    twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion trillion dozen half
    quarter third percent squared cubed
""".split())
COUNTED = re.compile(rf"(?:\\\$)?\s*({_NUMBER})((?:\s+[a-z][a-z'-]*){{1,3}})", re.IGNORECASE)
TEXT_WORDS = re.compile(r"\\(?:text|mbox|mathrm)\s*\{([^{}]*)\}")  # 5\text{ thousand}: the words of 5 thousand
SUPERSCRIPT = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻]+")  # x² is x^{2}: NFKC alone would make it x2
SUBSCRIPT = re.compile("[₀₁₂₃₄₅₆₇₈₉₊₋]+")
# NFKC's fraction slash (½ is 1⁄2), the minus sign, the Arabic decimal and thousands separators (٥٫٥ is 5.5)
SEPARATORS = str.maketrans({"\u2044": "/", "\u2212": "-", "\u066b": ".", "\u066c": ","})
REL_TOL = 1e-4  # numbers that math-verify calls equal must also agree this closely (relative)
PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # decided without math-verify (``equivalent``)


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


def asked_about(question: str) -> frozenset[str]:
    """The words of what the question's "how many / how much" counts: after the phrase, leading
    NOT_NOUNS skipped, up to the next one ("how many more red apples does" -> red, apples)."""
    words: set[str] = set()
    for match in ASKED.finditer(question):
        phrase = match[1].lower().split()
        while phrase and phrase[0] in NOT_NOUNS:
            phrase.pop(0)
        for word in phrase:
            if word in NOT_NOUNS:
                break
            words.add(word)
    return frozenset(words)


def equivalent(answer: str, gold: str, timeout_s: int = MathConfig.timeout_s, asked: frozenset[str] = frozenset()) -> bool:
    """Whether two LaTeX answers are equal: same text, else the same plain number, else math-verify
    on the normalised forms (``asked``: words that may follow a bare number, ``asked_about``).

    Plain numbers are decided without math-verify where its verdict is known: the same value is
    equal to it too, and two different integers are different to it (it compares integers exactly;
    different decimals still go to it, which rounds to 6 places). A gold's readings are parsed once
    and kept (``_gold_readings``): a gold is judged against many completions.

    The answer's math-verify calls get about ``timeout_s`` seconds together, as does the gold's
    parse; past it, math-verify's TimeoutException is raised. Whatever its parser raises on input
    it cannot handle is raised too.
    """
    answer, gold = ascii_form(answer), ascii_form(gold)
    if re.sub(r"\s+", "", answer) == re.sub(r"\s+", "", gold):
        return True
    plain_answer, plain_gold = PLAIN_NUMBER.fullmatch(answer.strip()), PLAIN_NUMBER.fullmatch(gold.strip())
    if plain_answer and plain_gold:
        if Decimal(plain_answer[0]) == Decimal(plain_gold[0]):
            return True
        if "." not in plain_answer[0] + plain_gold[0]:
            return False
    golds = _gold_readings(gold, asked, timeout_s)
    deadline = time.monotonic() + timeout_s
    answers = _readings(answer, deadline, asked)
    return any(
        verify(g, a, timeout_seconds=_left(deadline), raise_on_error=True) and _close(g, a, _left(deadline))
        for g in golds
        for a in answers
    )


def forms(answer: str, asked: frozenset[str] = frozenset()) -> list[str]:
    """The normalised answer; a percentage both without its sign (MATH's convention) and / 100."""
    text = THIN_THOUSANDS.sub("", TRAILING.sub("", answer))
    if match := SCIENTIFIC.fullmatch(text):
        text = f"{match[1]}\\times 10^{{{match[2]}}}"
    else:
        text = without_words(text, asked)
    if match := PERCENT.fullmatch(text):
        return [match[1], f"\\frac{{{match[1]}}}{{100}}"]
    return [text]


def without_words(text: str, asked: frozenset[str] = frozenset()) -> str:
    """A number with words after it, as a number: "18 dollars" -> "18", "5 thousand" -> "5\\times 1000",
    "50 percent" -> "50\\%", "12 cookies" -> "12" when cookies are ``asked`` about (singular or
    plural). Text that is not a number followed by a scale, a unit of UNITS, "percent" or asked-about
    words (words in \\text{} count as words) is returned as it was."""
    plain = TEXT_WORDS.sub(r" \1 ", text).strip()
    match = WORDED.fullmatch(plain)
    if match is None or not (match[2] or match[3]):
        counted = COUNTED.fullmatch(plain) if asked else None
        if counted and all(_asked(word.lower(), asked) for word in counted[2].split()):
            return counted[1]
        return text
    number, scale, unit = match[1], match[2], match[3] or ""
    if scale:
        number = f"{number.replace(',', '')}\\times {SCALES[scale.lower()]}"
    return f"{number}\\%" if unit.lower() == "percent" else number


def _asked(word: str, asked: frozenset[str]) -> bool:
    return word not in NOT_NOUNS and any(w in asked for w in (word, f"{word}s", f"{word}es", word[:-1], word[:-2]))


def ascii_form(text: str) -> str:
    """Unicode digits and look-alike letters as ASCII: superscripts and subscripts as ^{} and _{},
    then NFKC (fullwidth and mathematical letters and digits: ５, 𝟓, 𝑥; ½ as 1⁄2), then every other
    Unicode decimal digit (Arabic-Indic ٥, Devanagari ५, which NFKC keeps) as its ASCII digit."""
    text = SUPERSCRIPT.sub(lambda m: f"^{{{m[0]}}}", text)
    text = SUBSCRIPT.sub(lambda m: f"_{{{m[0]}}}", text)
    text = unicodedata.normalize("NFKC", text).translate(SEPARATORS)
    return re.sub(r"\d", lambda m: str(unicodedata.decimal(m[0])), text)


def _readings(answer: str, deadline: float, asked: frozenset[str] = frozenset()) -> list:
    """math-verify's readings of each normalised form: sympy objects, then the text itself."""
    return [
        reading
        for text in forms(answer, asked)
        for reading in parse(f"${text}$", parsing_timeout=_left(deadline), raise_on_error=True)
    ]


@lru_cache(maxsize=4096)
def _gold_readings(gold: str, asked: frozenset[str], timeout_s: int) -> tuple:
    """``_readings`` of a gold, within its own ``timeout_s``, kept (sympy objects are immutable)."""
    return tuple(_readings(gold, time.monotonic() + timeout_s, asked))


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
