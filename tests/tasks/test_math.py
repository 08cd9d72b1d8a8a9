"""The math suite: answer extraction, the verifier's adversarial table, gold extraction per file
format, loading every benchmark, and the errors a user sees."""

import json
import threading
import time

import pytest

from tasks.base import DEFAULT_DATA_DIR, Problem
from tasks.math import (
    Fallback,
    MathConfig,
    MathTask,
    boxed_problem,
    gsm8k_gold,
    judge,
    olympiad_problem,
)
from tasks.math_equivalence import equivalent
from tasks.scoring import Scorer

needs_data = pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason=f"benchmark data not at {DEFAULT_DATA_DIR}")

# the box and number readers themselves: tests/tasks/test_extract.py


# (boxed answer, gold, judged correct)
VERDICTS = [
    # percent: MATH's convention (the sign may be dropped) and the value / 100
    pytest.param(r"50\%", "50", True, id="percent-sign-dropped-gold"),
    pytest.param("50", r"50\%", True, id="percent-sign-dropped-answer"),
    pytest.param("0.5", r"50\%", True, id="percent-as-fraction"),
    pytest.param(r"50\%", "0.5", True, id="fraction-as-percent"),
    pytest.param(r"\frac12\%", "0.005", True, id="percent-of-fraction"),
    pytest.param(r"5\%", r"50\%", False, id="percent-wrong"),
    pytest.param("0.5", "50", False, id="no-percent-no-scaling"),
    # units and \text
    pytest.param(r"10\text{ cm}", "10", True, id="text-unit"),
    pytest.param(r"10\text{ cm}^2", "10", True, id="text-unit-squared"),
    pytest.param(r"10 \mbox{ inches}", "10", True, id="mbox-unit"),
    pytest.param("18 dollars", "18", True, id="plain-unit-words"),
    pytest.param("5 cm^2", "5", True, id="plain-unit-squared"),
    pytest.param("5 cm", "5", True, id="plain-unit-cm"),
    pytest.param("12 inches", "12", True, id="plain-unit-inches"),
    pytest.param("30 degrees", "30", True, id="plain-unit-degrees"),
    pytest.param("3.5 hours", "3.5", True, id="plain-unit-hours"),
    pytest.param("60 km/h", "60", True, id="plain-unit-per"),
    pytest.param("60 miles per hour", "60", True, id="plain-unit-per-word"),
    pytest.param("20 square feet", "20", True, id="plain-unit-square"),
    pytest.param("25 degrees Celsius", "25", True, id="plain-unit-two-words"),
    pytest.param(r"\$18 dollars", "18", True, id="plain-unit-and-dollar-sign"),
    pytest.param("19 dollars", "18", False, id="plain-unit-wrong-number"),
    # words that are no unit are not dropped (math-verify reads them as a product of letters)
    pytest.param("3 or four", "3", False, id="words-or"),
    pytest.param("3 is not the answer", "3", False, id="words-negation"),
    pytest.param("7 plus two", "7", False, id="words-plus"),
    pytest.param("10 minus three", "10", False, id="words-minus"),
    pytest.param("12 cookies", "12", False, id="words-count-noun"),  # unless the question counts cookies (below)
    # number words that scale: the value, never the bare number
    pytest.param("5 thousand", "5", False, id="scale-not-dropped"),
    pytest.param("5 thousand", "5000", True, id="scale-thousand"),
    pytest.param("2 million", "2", False, id="scale-million-not-dropped"),
    pytest.param("2 million", "2000000", True, id="scale-million"),
    pytest.param("1.5 billion dollars", "1500000000", True, id="scale-and-unit"),
    pytest.param("3 dozen", "36", True, id="scale-dozen"),
    pytest.param(r"5\text{ thousand}", "5", False, id="scale-in-text-not-dropped"),
    pytest.param(r"5\text{ thousand}", "5000", True, id="scale-in-text"),
    pytest.param("50 percent", "0.5", True, id="percent-word"),
    pytest.param("50 percent", r"50\%", True, id="percent-word-and-sign"),
    # Unicode digits and look-alike letters (NFKC, and every Unicode decimal digit)
    pytest.param("\uff15", "5", True, id="fullwidth-digit"),
    pytest.param("\U0001d7d3", "5", True, id="mathematical-bold-digit"),
    pytest.param("\u0665", "5", True, id="arabic-indic-digit"),
    pytest.param("\u06f5\u06f0", "50", True, id="extended-arabic-indic-digits"),
    pytest.param("\uff14", "5", False, id="fullwidth-digit-wrong"),
    pytest.param("\U0001d465+1", "x+1", True, id="mathematical-italic-letter"),
    pytest.param("x\u00b2", "x^2", True, id="superscript-power"),
    pytest.param("x\u2082", "2x", False, id="subscript-is-no-factor"),
    pytest.param("\u00bd", r"\frac12", True, id="vulgar-fraction"),
    pytest.param("\u0663\u0660 degrees", "30", True, id="arabic-indic-with-unit"),
    pytest.param(r"\$18.00", "18", True, id="dollar-sign"),
    pytest.param(r"11\text{ cm}", "10", False, id="unit-wrong-number"),
    pytest.param("3 pi", "3", False, id="pi-is-not-a-unit"),
    pytest.param(r"\text{(C)}", "C", True, id="choice-text"),
    pytest.param("C", r"\text{(C)}", True, id="choice-bare"),
    pytest.param(r"\text{(D)}", r"\text{(C)}", False, id="choice-wrong"),
    pytest.param("Evelyn", r"\text{Evelyn}", True, id="word"),
    pytest.param(r"\text{Evnely}", r"\text{Evelyn}", False, id="word-anagram"),
    # degrees
    pytest.param(r"30^\circ", "30", True, id="degrees-answer"),
    pytest.param("30", r"30^{\circ}", True, id="degrees-gold"),
    pytest.param("30°", r"30^\circ", True, id="degree-sign"),
    pytest.param(r"31^\circ", r"30^\circ", False, id="degrees-wrong"),
    pytest.param(r"5\text{ cm}", r"5\text{ m}", True, id="units-dropped-not-compared"),  # a documented limit
    # thousands separators
    pytest.param("1,000", "1000", True, id="comma-thousands"),
    pytest.param("1{,}000", "1000", True, id="braced-comma-thousands"),
    pytest.param(r"1\,000\,000", "1000000", True, id="thin-space-thousands"),
    pytest.param(r"\$1,450,000", "1450000", True, id="dollars-thousands"),
    pytest.param("1.000", "1000", False, id="decimal-point-not-separator"),
    pytest.param("1,001", "1000", False, id="thousands-wrong"),
    # fractions
    pytest.param(r"\dfrac{1}{2}", r"\frac12", True, id="dfrac"),
    pytest.param(r"\tfrac{1}{2}", r"\frac{1}{2}", True, id="tfrac"),
    pytest.param("1/2", r"\frac12", True, id="slash"),
    pytest.param(r"1\frac{12}{13}", r"\frac{25}{13}", True, id="mixed-number"),
    pytest.param(r"\dfrac{1}{3}", r"\frac12", False, id="dfrac-wrong"),
    # assignments
    pytest.param("x = 3", "3", True, id="assignment-answer"),
    pytest.param("3", "x=3", True, id="assignment-gold"),
    pytest.param("y = 2x + 1", "2x+1", True, id="assignment-expression"),
    pytest.param("x = 4", "3", False, id="assignment-wrong"),
    pytest.param("2 + 1 = 3", "3", True, id="equation-last-side"),
    pytest.param("3 = 4", "3", False, id="equation-first-side"),
    # tuples, sets, intervals
    pytest.param(r"\left( 3, \frac{\pi}{2} \right)", r"\left(3,\frac{\pi}{2}\right)", True, id="tuple-left-right"),
    pytest.param("(2,1)", "(1,2)", False, id="tuple-order-matters"),
    pytest.param(r"\{2,1\}", r"\{1,2\}", True, id="set-order-free"),
    pytest.param("2, 1", "1,2", True, id="list-order-free"),
    pytest.param("(3,4),(1,2)", "(1,2),(3,4)", True, id="list-of-tuples"),
    pytest.param("[1,2)", "[1,2)", True, id="interval"),
    pytest.param("(1,2]", "[1,2)", False, id="interval-ends"),
    pytest.param("[1,2]", "(1,2)", False, id="interval-closed-vs-open"),
    pytest.param(r"\{1,2\}", "(1,2)", True, id="set-equals-open-interval"),  # a documented limit
    pytest.param(r"(-\infty, 3) \cup (3, \infty)", r"(-\infty,3)\cup(3,\infty)", True, id="union"),
    pytest.param(r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", True, id="vector"),
    pytest.param(r"\begin{pmatrix}2\\1\end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", False, id="vector-swap"),
    # plus-minus
    pytest.param(r"\pm 3", "3,-3", True, id="pm-answer"),
    pytest.param("-3, 3", r"\pm 3", True, id="pm-gold"),
    pytest.param(r"1\pm\sqrt2", r"1+\sqrt{2},1-\sqrt{2}", True, id="pm-radical"),
    pytest.param("3", r"\pm 3", False, id="pm-half"),
    # symbolic and numeric
    pytest.param(r"2\sqrt2", r"\sqrt8", True, id="radical"),
    pytest.param("x^2+2x+1", "(x+1)^2", True, id="polynomial"),
    pytest.param("x^2+2x", "(x+1)^2", False, id="polynomial-wrong"),
    pytest.param("0.3333333", r"\frac13", True, id="decimal-6-places"),
    pytest.param("0.333", r"\frac13", False, id="decimal-too-short"),
    pytest.param("-5", "5", False, id="sign"),
    pytest.param(r"-\infty", r"\infty", False, id="infinity-sign"),
    pytest.param("11", "11_2", True, id="base-subscript-dropped"),
    # scientific notation: Minerva's golds, and small numbers math-verify alone calls equal
    pytest.param("4.5e33", r"4.5\times 10^{33}", True, id="e-notation-answer"),
    pytest.param(r"4.5\times10^{33}", "4.5e33", True, id="e-notation-gold"),
    pytest.param(r"2.88\times 10^{-19}", "1.3e-27", False, id="tiny-numbers-differ"),
    pytest.param("0.0000011", "0.0000012", False, id="tiny-decimals-differ"),
    pytest.param("0.0000001", "0", False, id="tiny-is-not-zero"),
]


@pytest.mark.parametrize("answer, gold, correct", VERDICTS)
def test_verdicts(answer, gold, correct):
    verdict = judge(f"Thus the answer is $\\boxed{{{answer}}}$.", gold)
    assert verdict.correct is correct, verdict
    assert verdict.reward == (1.0 if correct else 0.0)
    assert verdict.reason == ("correct" if correct else "wrong")
    assert verdict.extracted == answer


@pytest.mark.parametrize("answer, question, correct", [
    ("12 cookies", "Ann bakes 3 trays. How many cookies did she bake?", True),
    ("12 cookie", "How many cookies did she bake?", True),  # singular or plural
    (r"12 \text{ boxes}", "How many more boxes does Tom need than Sam?", True),
    ("12 red apples", "How many red apples are left?", True),
    ("12 cookies", "How many muffins did she bake?", False),  # not what is counted
    ("12 cookies", "Ann bakes 12 cookies. What is 6 + 6?", False),  # no how-many question
    ("12 or cookies", "How many cookies did she bake?", False),
    ("12 not cookies", "How many not cookies are there?", False),  # function words never count
    ("12 she", "How many cookies did she bake?", False),  # only the words before the next function word
    ("13 cookies", "How many cookies did she bake?", False),
])
def test_the_noun_a_question_counts_may_follow_the_number(answer, question, correct):
    assert judge(f"\\boxed{{{answer}}}", "12", question=question).correct is correct


def test_last_box_decides():
    assert judge(r"I first thought \boxed{4}, but it is \boxed{5}.", "5").correct
    assert not judge(r"It is \boxed{5}. No wait: \boxed{4}.", "5").correct


def test_no_box_is_no_answer():
    assert judge("The answer is 5.", "5") == judge("The answer is 5.", "5", fallback="none")
    verdict = judge("The answer is 5.", "5")
    assert (verdict.reward, verdict.correct, verdict.extracted, verdict.reason) == (0.0, False, None, "no_answer")


def test_empty_box_is_no_answer():
    verdict = judge(r"\boxed{}", "5")
    assert (verdict.correct, verdict.extracted, verdict.reason) == (False, "", "no_answer")


def test_last_number_fallback():
    assert judge("He makes 9 * 2 = $18 every day.", "18", fallback=Fallback.last_number).correct
    assert judge("So the profit is 70,000", "70000", fallback="last_number").extracted == "70000"
    assert judge(r"\boxed{17}, not 18", "18", fallback="last_number").reason == "wrong"  # a box still wins


@pytest.fixture(scope="module")
def strict_scorer():
    """One warm worker judging with a 1 s verifier limit and a 6 s watchdog per item (4 s and 24 s
    when a timed-out item is judged again, alone): how a training step meets pathological answers
    (an alarm cannot stop a long C-level sympy call; the watchdog's kill can)."""
    task = MathTask(MathConfig(timeout_s=1))
    problem = Problem(uid="p", benchmark="inline", question="", answer="2")
    with Scorer(task, workers=1, seconds_per_item=6.0) as scorer:
        scorer.score([problem], [r"\boxed{2}"])  # start the worker outside the timed part
        yield lambda completion: scorer.score([problem], [completion])[0]


@pytest.mark.parametrize("answer, reason", [
    pytest.param("\\frac{1}{" * 3000 + "2" + "}" * 3000, "timeout", id="nested-fractions"),  # ~20 s with no limit
    pytest.param("9^{9^{9^{9}}}", "timeout", id="power-tower"),
    pytest.param("(10^{6})!", "timeout", id="huge-factorial"),
    pytest.param(",".join(["1"] * 100000), "timeout", id="long-list"),  # ~10 s per 20000 with no limit
    pytest.param("1" * 100000, "wrong", id="too-many-digits"),  # two integers: compared without math-verify
])
def test_pathological_answer_returns_quickly(answer, reason, strict_scorer):
    start = time.monotonic()
    verdict = strict_scorer(f"\\boxed{{{answer}}}")
    assert time.monotonic() - start < 15  # 1 s, then 4 s alone (tasks.scoring's second try)
    assert verdict.reason.startswith(reason), verdict.reason
    assert "\n" not in verdict.reason and len(verdict.reason) < 300
    assert not verdict.correct


@pytest.mark.parametrize("answer", ["\u03b1=\u0665", "1" * 5000, "1" * 100000, "\\frac{1}{" * 50, "x\n=\n\u2603"])
def test_reasons_are_one_line(answer):
    """A verdict's reason is one line, whatever the exception said (sympify's messages span lines)."""
    reason = judge(f"\\boxed{{{answer}}}", "5").reason
    assert "\n" not in reason and len(reason) < 300, reason


def test_huge_completion():
    completion = "Let me think about this again. " * 40000 + r"\boxed{42}"  # 1.2 MB
    start = time.monotonic()
    assert judge(completion, "42").correct
    assert judge("{" * 200000 + r"\boxed{" + "{" * 200000, "42").reason == "no_answer"
    assert time.monotonic() - start < 2


def test_judge_refuses_a_thread():
    errors = []

    def run():
        try:
            judge(r"\boxed{1}", "2")
        except RuntimeError as err:
            errors.append(str(err))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors and "main thread" in errors[0]


def test_config_defaults_and_checks():
    config = MathConfig()
    assert (config.name, config.template, config.train, config.eval) == ("math", "boxed_cot", "train", ("math500",))
    assert config.fallback is Fallback.none
    assert MathConfig(fallback="last_number").fallback is Fallback.last_number
    with pytest.raises(ValueError, match="fallback='first'.*none, last_number"):
        MathConfig(fallback="first")
    with pytest.raises(ValueError, match="timeout_s=0"):
        MathConfig(timeout_s=0)
    with pytest.raises(ValueError, match="unknown split 'aime24'"):
        MathTask(MathConfig(eval=("aime24",)))


def test_prompt_asks_for_the_box():
    task = MathTask(MathConfig())
    problem = Problem(uid="u", benchmark="math500", question="What is $1+1$?", answer="2")
    assert task.prompt(problem) == [{"role": "user", "content": (
        "What is $1+1$? Let's think step by step and output the final answer within \\boxed{}.")}]


def test_score_uses_the_configured_fallback():
    problem = Problem(uid="u", benchmark="gsm8k", question="q", answer="18")
    assert MathTask(MathConfig()).score(problem, "so 18").reason == "no_answer"
    assert MathTask(MathConfig(fallback="last_number")).score(problem, "so 18").correct


# Gold extraction, one case per file format (rows shaped like ../shared/data's)


def test_gold_gsm8k():
    assert gsm8k_gold("He makes 2 * 9 = <<2*9=18>>18.\n#### 18") == "18"
    assert gsm8k_gold("so 1,450,000\n#### 1,450,000") == "1450000"
    assert gsm8k_gold("lost 10\n#### -10") == "-10"
    with pytest.raises(ValueError, match="without '####'"):
        gsm8k_gold("the answer is 18")


def test_gold_math_and_math500():
    row = {"problem": "p", "solution": r"Either $\boxed{x+11}$ or $\boxed{11+x}$.", "level": "Level 2",
           "type": "Algebra", "idx": 7}
    problem = boxed_problem("math", row)
    assert (problem.uid, problem.answer, problem.metadata["level"]) == ("math-7", "11+x", "Level 2")
    row500 = {"problem": "p", "solution": r"so $\boxed{\left( 3, \frac{\pi}{2} \right)}.$", "answer": "ignored",
              "subject": "Precalculus", "level": 2, "unique_id": "test/precalculus/807.json"}
    problem = boxed_problem("math500", row500)
    assert (problem.uid, problem.answer) == ("test/precalculus/807.json", r"\left( 3, \frac{\pi}{2} \right)")
    with pytest.raises(ValueError, match="no \\\\boxed"):
        boxed_problem("math", {"problem": "p", "solution": "42", "idx": 3})


def test_gold_minerva():
    row = {"problem": "p", "solution": r"L \simeq \boxed{4.5e33} \mathrm{ergs}", "type": "Astronomy", "idx": 1}
    problem = boxed_problem("minerva_math", row)
    assert (problem.uid, problem.answer) == ("minerva_math-1", "4.5e33")
    assert judge(r"So $L \approx \boxed{4.5 \times 10^{33}}$ erg/s.", problem.answer).correct


def test_gold_olympiadbench():
    row = {"id": 1664, "question": "q", "final_answer": ["$69$,$84$"], "is_multiple_answer": True, "unit": None,
           "answer_type": "Numerical", "error": None, "subfield": "Algebra", "solution": ["..."], "context": None}
    problem = olympiad_problem(row)
    assert (problem.uid, problem.answer) == ("olympiadbench-1664", "69,84")
    assert problem.metadata["is_multiple_answer"] is True and problem.metadata["unit"] is None
    assert judge(r"\boxed{84, 69}", problem.answer).correct
    assert not judge(r"\boxed{84}", problem.answer).correct
    row = dict(row, id=2253, final_answer=["45"], is_multiple_answer=False, unit="minute")
    assert judge(r"\boxed{45 \text{ minutes}}", olympiad_problem(row).answer).correct


# Loading the real files (../shared/data)

COUNTS = {"math500": 500, "math": 5000, "gsm8k": 1319, "minerva_math": 272, "olympiadbench": 675}


@needs_data
@pytest.mark.parametrize("benchmark", list(COUNTS))
def test_load_benchmark(benchmark):
    problems = MathTask(MathConfig()).load(benchmark)
    assert len(problems) == COUNTS[benchmark]
    assert len({p.uid for p in problems}) == len(problems)
    assert all(p.benchmark == benchmark and p.question and p.answer for p in problems)


@needs_data
def test_load_train_pool():
    task = MathTask(MathConfig())
    pool = task.load("train")
    sources = [p.benchmark for p in pool]
    assert (sources.count("math"), sources.count("gsm8k"), len(pool)) == (4500, 7473, 11973)
    assert len({p.uid for p in pool}) == len(pool)
    assert not {p.question for p in pool} & {p.question for p in task.load("math500")}
    assert pool[-1].uid == "gsm8k-train-7472"


@needs_data
def test_known_golds():
    task = MathTask(MathConfig())
    gold = {(b, p.uid): p.answer for b in ("math500", "gsm8k", "olympiadbench", "minerva_math") for p in task.load(b)}
    assert gold["math500", "test/precalculus/807.json"] == r"\left( 3, \frac{\pi}{2} \right)"
    assert gold["gsm8k", "gsm8k-test-2"] == "70000"
    assert gold["olympiadbench", "olympiadbench-1610"] == r"\frac{1}{2 n+2}"
    assert gold["minerva_math", "minerva_math-0"] == "1.6"


@pytest.mark.parametrize("benchmark, rows, message", [
    pytest.param("math500", [{"problem": "p", "solution": "\\boxed{1}", "unique_id": "a"}, {"problem": "q", "unique_id": "b"}],
                 "math500/test.jsonl row 2: no 'solution' field", id="missing-field"),
    pytest.param("math500", [["p", "\\boxed{1}"]], "math500/test.jsonl row 1: not a JSON object but list", id="not-an-object"),
    pytest.param("minerva_math", [{"problem": "p", "solution": "42", "idx": 0}],
                 "minerva_math/test.jsonl row 1: minerva_math minerva_math-0: the solution has no \\boxed{} answer",
                 id="no-box"),
    pytest.param("gsm8k", [{"question": "q", "answer": "#### 1"}, {"question": "q", "answer": "1"}],
                 "gsm8k/test.jsonl row 2: GSM8K answer without '####': '1'", id="no-gold"),
])
def test_a_bad_data_row_is_named_by_file_and_row(tmp_path, benchmark, rows, message):
    (tmp_path / benchmark).mkdir()
    (tmp_path / benchmark / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ValueError) as err:
        MathTask(MathConfig(data_dir=str(tmp_path))).load(benchmark)
    assert str(err.value).startswith(f"{tmp_path}/") and str(err.value).endswith(message), err.value


def test_missing_file_names_path_and_setting(tmp_path):
    task = MathTask(MathConfig(data_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError) as err:
        task.load("math500")
    message = str(err.value)
    assert str(tmp_path / "math500" / "test.jsonl") in message and "task.data_dir" in message


def test_train_pool_needs_matching_math500(tmp_path):
    (tmp_path / "math").mkdir()
    (tmp_path / "math500").mkdir()
    (tmp_path / "gsm8k").mkdir()
    math_row = {"problem": "1+1?", "solution": r"\boxed{2}", "level": "Level 1", "type": "Algebra", "idx": 0}
    (tmp_path / "math" / "test.jsonl").write_text(json.dumps(math_row) + "\n")
    (tmp_path / "gsm8k" / "train.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n")
    held_out = dict(math_row, problem="2+2?", unique_id="test/algebra/1.json")
    (tmp_path / "math500" / "test.jsonl").write_text(json.dumps(held_out) + "\n")
    with pytest.raises(ValueError, match="0 problems of math/test.jsonl match the 1 of math500/test.jsonl"):
        MathTask(MathConfig(data_dir=str(tmp_path))).load("train")


def test_math_train_offline_fails_fast_naming_what_is_missing(tmp_path):
    """The reference's pool needs the MATH train split, which is not in ../shared/data: offline
    (tests/conftest.py sets HF_HUB_OFFLINE=1) it fails at once, naming the split, the file that
    would do and the hub dataset, and the local pool that needs neither."""
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n")
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        MathTask(MathConfig(data_dir=str(tmp_path), train="math_train")).load("math_train")
    assert time.monotonic() - start < 15
    message = str(err.value)
    assert "\n" not in message
    for part in ("task.train=math_train", "MATH train split", str(tmp_path / "math" / "train.jsonl"),
                 "DigitalLearningGmbH/MATH-lighteval", "hub is offline (HF_HUB_OFFLINE=1)", "task.train=train"):
        assert part in message, part


def test_math_train_reads_a_local_copy_first(tmp_path):
    (tmp_path / "math").mkdir()
    (tmp_path / "gsm8k").mkdir()
    rows = [{"problem": "1+1?", "solution": r"So \boxed{2}.", "level": "Level 1", "type": "Algebra"},
            {"problem": "2+3?", "solution": r"\boxed{4} no, \boxed{5}", "level": "Level 1", "type": "Algebra"}]
    (tmp_path / "math" / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "gsm8k" / "train.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 1,000"}) + "\n")
    pool = MathTask(MathConfig(data_dir=str(tmp_path), train="math_train")).load("math_train")
    assert [(p.uid, p.benchmark, p.question, p.answer) for p in pool] == [
        ("math_train-0", "math_train", "1+1?", "2"), ("math_train-1", "math_train", "2+3?", "5"),
        ("gsm8k-train-0", "gsm8k", "q", "1000")]


@pytest.mark.parametrize("answer, gold", [
    ("7", "7"), ("007", "7"), ("-0", "0"), ("12", "13"), ("-3", "3"), ("1000000", "1000001"),
    ("12345678901234567890", "12345678901234567891"), ("3.50", "3.5"), ("3", "3.0"), ("0.5", "0.25"),
    ("3", "3.0000001"), ("0.1234567", "0.1234568"), ("2.5", "5/2"), ("1 3", "3"), (" 4 ", "4"),
])
def test_plain_numbers_get_the_verdict_math_verify_gives(answer, gold):
    """The plain-number shortcut decides only what math-verify (with the rest of ``equivalent``)
    would decide the same way; the oracle is math-verify on the same strings."""
    from math_verify import parse, verify

    expected = verify(parse(f"${gold}$"), parse(f"${answer}$")) or answer.strip() == gold.strip()
    assert equivalent(answer, gold) == expected
