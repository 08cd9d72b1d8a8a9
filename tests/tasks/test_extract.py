"""tasks/extract.py: the last box and the last number, the readers the math and MathVista suites share.

Hand-written cases; the suites' own tables (test_math.py, test_mathvista.py) check the verdicts
built on them.
"""

import pytest

from tasks.extract import NUMBER, last_boxed, last_boxed_span, last_number


@pytest.mark.parametrize("text, expected", [
    pytest.param(r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}", id="nested-braces"),
    pytest.param(r"\boxed{\left\{ 1, \{2\} \right\}}", r"\left\{ 1, \{2\} \right\}", id="escaped-braces-count"),
    pytest.param(r"\boxed{a{b{c}}d} is it", "a{b{c}}d", id="deeply-nested"),
    pytest.param(r"\fbox{7}", "7", id="fbox"),
    pytest.param(r"\boxed{3} or rather \fbox{4}", "4", id="fbox-after-boxed"),
    pytest.param(r"The answer is $\boxed 5$.", "5", id="boxed-space-token"),
    pytest.param(r"\boxed 12.5 metres", "12.5", id="boxed-space-token-ends-at-space"),
    pytest.param(r"\boxed {4}", "4", id="space-before-brace"),
    pytest.param(r"first \boxed{1}, then \boxed{2}, finally \boxed{3}.", "3", id="several-boxes-last"),
    pytest.param(r"\boxed{\boxed{3}}", "3", id="box-in-box"),
    pytest.param(r"\boxed{  x + 1 }", "x + 1", id="stripped"),
    pytest.param(r"\boxed{}", "", id="empty"),
    pytest.param(r"\boxed{5}\boxed{6}", "6", id="adjacent"),
    pytest.param(r"\boxed{ \text{ A } }", r"\text{ A }", id="stripped-inner-spaces-kept"),
    pytest.param(r"\boxed", None, id="bare-command"),
    pytest.param("no box here, 42", None, id="no-box"),
    pytest.param(r"\boxed{1} and then \boxed{2", None, id="last-unclosed"),
    pytest.param(r"\boxed{\frac{1}{2}", None, id="unclosed-nested"),
    pytest.param(r"\boxed{1} and a bare \boxed", None, id="bare-command-last"),
    pytest.param(r"\boxed{1} then $\boxed$", None, id="bare-command-before-dollar"),
    pytest.param(r"\boxedx{4}", None, id="other-command"),
    pytest.param("", None, id="empty-text"),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected
    span = last_boxed_span(text)  # where the answer was read: the same text, unstripped
    assert (span is None) == (expected is None)
    if span is not None:
        assert text[span[0] : span[1]].strip() == expected


@pytest.mark.parametrize("text, span", [
    (r"so \boxed{ 12+3 }.", (10, 16)),
    (r"\boxed 57$", (7, 9)),
    (r"\boxed{1} \fbox{{2}}", (16, 19)),
])
def test_last_boxed_span_by_hand(text, span):
    assert last_boxed_span(text) == span


@pytest.mark.parametrize("text, expected", [
    ("The total is 1,450,000 dollars, or -3.5; so 12.", "12"),
    ("costs $1,200.50", "1200.50"),
    ("1,2345", "5"),  # not a thousands group: "1,234" then "5"
    ("x = .5", ".5"),
    ("it is -3", "-3"),
    ("so x =-3", "-3"),
    ("(-4)", "-4"),
    ("8 - 3 = 5", "5"),
    ("5-3", "3"),  # subtraction, not a sign
    ("from 2014-2016", "2016"),
    ("f(2)-7", "7"),
    ("x-1", "1"),
    ("no digits", None),
    ("", None),
])
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_number_pattern_reads_whole_numbers():
    """NUMBER.pattern is what MathVista's ONE_NUMBER embeds: it must read a whole number alone."""
    for text in ("-1,234.5", "1234", "0.25", ".5", "-.5", "12,345,678"):
        assert NUMBER.fullmatch(text), text
    for text in ("1,23", "1.", "--3", "1,234,56"):
        assert not NUMBER.fullmatch(text), text
