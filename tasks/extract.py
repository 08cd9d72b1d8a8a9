"""Reading an answer out of a completion: the helpers several suites share.

Sources: Hendrycks et al.'s MATH ``last_boxed_only_string`` / ``remove_boxed`` (as PRM800K uses
them) for the box. Used by tasks/math.py (and through its ``judge`` by aime and arith) and by
tasks/mathvista.py; each suite's docstring says what it does with the text read here.

Rules of ``last_boxed``:
- The content of the LAST ``\\boxed{...}`` or ``\\fbox{...}``, braces balanced (``\\{`` counts as
  a brace too), spaces around it stripped; ``\\boxed {4}`` allows a space before the brace.
- ``\\boxed 5``: without a brace, the one token after the command, up to a space or ``$``.
- Only the last box counts: "\\boxed{2} and \\boxed{3}" answers 3, and a last box left open (a
  truncated completion) or a bare ``\\boxed`` at the end is no answer (None), even if an earlier
  box closed. An empty box is "" (the suites judge it no answer).
- ``\\boxedx`` (another command) is no box.

Rules of ``last_number``: the last number written, thousands commas removed ("1,234.5" ->
"1234.5"); a "-" counts as a sign unless it follows a letter, digit, "_" or ")" ("5-3" -> 3,
"it is -3" -> -3). ``NUMBER.pattern`` is that number, for suites that read one inside a longer rule.
"""

from __future__ import annotations

import re
from typing import Optional

BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
TOKEN = re.compile(r"[^\s$]+")  # the answer of \boxed 5: one token, up to a space or $
NUMBER = re.compile(r"(?:(?<![\w)])-)?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.?\d+)")  # -1,234.5; not the - of 5-3


def last_boxed(text: str) -> Optional[str]:
    """The content of the last \\boxed{...} or \\fbox{...} (braces balanced), or of \\boxed 5.

    None when there is no box or the last one never closes; "" for an empty box.
    """
    span = last_boxed_span(text)
    return None if span is None else text[span[0] : span[1]].strip()


def last_boxed_span(text: str) -> Optional[tuple[int, int]]:
    """Where ``last_boxed`` reads its answer: ``text[start:end]`` is the box's content (spaces
    around it included), or None. The trainer splits token entropy into answer tokens and the rest by it."""
    starts = list(BOX.finditer(text))
    if not starts:
        return None
    after = starts[-1].end()
    open_at = len(text) - len(text[after:].lstrip())  # the brace (or token) after the command and spaces
    if text[open_at : open_at + 1] != "{":
        match = TOKEN.match(text, open_at)
        return match.span() if match else None
    depth = 0
    for index in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return open_at + 1, index
    return None


def last_number(text: str) -> Optional[str]:
    """The last number written in ``text`` ('1,234.5' -> '1234.5'), or None."""
    numbers = NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None
