"""When two math answers are equal: the math suite's verifier (tasks/math.py ``judge`` reads the
answer; ``equivalent`` decides). Used by every suite with a final math answer (math, aime,
arith, geo3k).

Identical text (spaces ignored), else the same plain number, else math-verify 0.9 ``parse`` +
``verify`` (Hugging Face, MIT) on ``$answer$`` and ``$gold$``: LaTeX to sympy, then string,
symbolic, numeric (6 decimals), set / interval / tuple and relation comparison.

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

Known limits:
- math-verify reads ``(1,2)`` as an open interval, which it lets equal the set ``\\{1,2\\}``.
- Units are dropped, not compared or converted: ``5\\text{ cm}`` equals ``5\\text{ m}``; degrees
  and radians likewise (``30^\\circ`` is not ``\\pi/6``).
- math-verify itself drops any trailing ``\\text{...}`` (``3\\text{ or four}`` equals 3) and a
  trailing word of its own list, which holds count nouns as well as units (``3 apples``,
  ``3 more``; ``3 or profit`` too: one number, so no hedge). Other words after a number count
  only when they are what the question's "how many / how much" counts (``12 cookies`` for "How many cookies ...", ``asked_about``; function,
  comparison and number words never): 1019 of GSM8K's 1023 such test questions accept
  "<gold> <that noun>".
- An equation counts by its last side (math-verify): ``2 + 3 = 5`` answers 5, and so does ``6 = 5``.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from decimal import Decimal
from functools import lru_cache

import sympy
from math_verify import parse, verify
from math_verify.errors import TimeoutException
from math_verify.utils import timeout

TIMEOUT_S = 5  # per judgement, shared by its math-verify calls; whole seconds (SIGALRM)

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


def equivalent(answer: str, gold: str, timeout_s: int = TIMEOUT_S, asked: frozenset[str] = frozenset()) -> bool:
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
