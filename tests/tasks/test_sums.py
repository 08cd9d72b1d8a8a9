"""The synthetic sums task: disjoint deterministic splits, many right answers per problem, random
worked demonstrations that are always right, and a verifier that survives hostile answers."""

import random
import re
from collections import Counter

import pytest

from bench.compose import ConfigError, compose
from tasks.arith import in_eval_split
from tasks.base import Problem
from tasks.sums import SumsConfig, SumsTask, answers, demonstration

SMALL = dict(train_size=300, eval_size=60)
DEMO = re.compile(r"Take (\d+)\. (\d+)-\1 = (\d+)\. The answer is \\boxed\{\1\+\3\}\.")


def problem(total: int, low: int, high: int) -> Problem:
    return Problem(uid=f"sums-{total}-{low}-{high}", benchmark="train", question="", answer="",
                   metadata={"total": total, "low": low, "high": high})


def right_pairs(p: Problem) -> list[str]:
    """Every right answer by brute force over both numbers: the oracle for the generator and ``answers``."""
    total, low, high = (p.metadata[k] for k in ("total", "low", "high"))
    return [f"{a}+{b}" for a in range(low, high + 1) for b in range(low, high + 1) if a + b == total]


def test_default_splits_have_their_sizes_and_are_disjoint():
    task = SumsTask(SumsConfig())
    train, held_out = task.load("train"), task.load("sums")
    assert (len(train), len(held_out)) == (9000, 500)
    assert len({p.question for p in train}) == 9000 and len({p.uid for p in held_out}) == 500
    assert not {p.question for p in train} & {p.question for p in held_out}
    assert all(p.benchmark == "sums" for p in held_out) and all(p.benchmark == "train" for p in train)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_and_eval_are_disjoint_by_construction(seed):
    task = SumsTask(SumsConfig(seed=seed, **SMALL))
    train, held_out = task.load("train"), task.load("sums")
    assert all(in_eval_split(p.question, 0.1) for p in held_out)
    assert not any(in_eval_split(p.question, 0.1) for p in train)
    other_eval = SumsTask(SumsConfig(seed=seed + 10, **SMALL)).load("sums")
    assert not {p.question for p in train} & {p.question for p in other_eval}


@pytest.mark.parametrize("seed", [0, 1])
def test_the_validation_split_is_held_out_and_never_an_eval_question(seed):
    task = SumsTask(SumsConfig(seed=seed, **SMALL))
    train, held_out, validation = task.load("train"), task.load("sums"), task.load("sums_val")
    assert len(validation) == 60 and all(p.benchmark == "sums_val" for p in validation)
    assert all(in_eval_split(p.question, 0.1) for p in validation)
    assert not {p.question for p in validation} & ({p.question for p in held_out} | {p.question for p in train})
    assert validation == task.load("sums_val")


def test_same_seed_same_problems_other_seed_others():
    a = SumsTask(SumsConfig(**SMALL)).load("train")
    b = SumsTask(SumsConfig(**SMALL)).load("train")
    c = SumsTask(SumsConfig(seed=1, **SMALL)).load("train")
    assert a == b
    assert [p.question for p in a] != [p.question for p in c]


@pytest.mark.parametrize("min_answers", [1, 8, 30])
def test_every_problem_has_at_least_min_answers(min_answers):
    task = SumsTask(SumsConfig(min_answers=min_answers, **SMALL))
    for p in task.load("train") + task.load("sums"):
        total, low, high = (p.metadata[k] for k in ("total", "low", "high"))
        assert 10 <= low < high <= 99
        assert p.question == f"Write {total} as a sum of two numbers from {low} to {high}."
        pairs = right_pairs(p)
        assert len(pairs) >= min_answers
        assert [f"{a}+{total - a}" for a in answers(total, low, high)] == pairs
        assert p.answer == pairs[0] and task.score(p, f"\\boxed{{{p.answer}}}").correct


def test_the_problem_space_is_large_and_varied():
    train = SumsTask(SumsConfig()).load("train")
    counts = Counter(len(right_pairs(p)) for p in train[:1000])
    assert min(counts) == 8 and max(counts) > 50
    assert len({p.metadata["total"] for p in train}) > 150 and len({p.metadata["low"] for p in train}) > 80


def test_demonstration_format_and_seeding():
    p = problem(137, 40, 99)
    text = demonstration(p, 5)
    assert DEMO.fullmatch(text) and DEMO.fullmatch(text).group(2) == "137"
    assert demonstration(p, 5) == text == demonstration(p, random.Random(5))
    assert SumsTask(SumsConfig()).reference(p) == demonstration(p, p.uid)


def test_demonstrations_are_always_right_and_spread_over_the_answers():
    task, rng = SumsTask(SumsConfig(**SMALL)), random.Random(0)
    for p in task.load("sums")[:30]:
        verdicts = [task.score(p, demonstration(p, rng)) for _ in range(50)]
        assert all(v.correct for v in verdicts)
        assert len({v.extracted for v in verdicts}) >= min(len(right_pairs(p)), 50) // 3
    narrow = problem(30, 10, 25)  # 11 answers: 10+20 .. 20+10
    drawn = Counter(task.score(narrow, demonstration(narrow, rng)).extracted for _ in range(1100))
    assert set(drawn) == set(right_pairs(narrow)) and min(drawn.values()) > 50  # about 100 each


def test_references_differ_between_problems():
    task = SumsTask(SumsConfig(**SMALL))
    held_out = task.load("sums")
    firsts = [int(task.score(p, task.reference(p)).extracted.split("+")[0]) for p in held_out]
    assert sum(a != answers(p.metadata["total"], p.metadata["low"], p.metadata["high"])[0]
               for a, p in zip(firsts, held_out)) > len(held_out) // 2


# N = 137 from 40 to 99: a in 40..97.
VERDICTS = [
    ("Take 58. 137-58 = 79. The answer is \\boxed{58+79}.", "correct", "58+79"),
    ("\\boxed{ 58 + 79 }", "correct", "58+79"),
    ("$\\boxed{79+58}$", "correct", "79+58"),
    ("\\boxed{40+97}", "correct", "40+97"),
    ("\\boxed{97+40}", "correct", "97+40"),
    ("\\fbox{58+79}", "correct", "58+79"),
    ("\\boxed{058+079}", "correct", "58+79"),  # leading zeros read as the number
    ("\\boxed{000000058+79}", "correct", "58+79"),  # 9 digits, the cap
    ("\\boxed{1+2} then \\boxed{58+79}", "correct", "58+79"),  # the last box counts
    ("\\boxed{\\boxed{58+79}}", "correct", "58+79"),  # nested: the inner box is the last opened
    ("\\boxed{58+79} then \\boxed{1+2}", "wrong_sum", "1+2"),
    ("\\boxed{58+80}", "wrong_sum", "58+80"),
    ("\\boxed{0+0}", "wrong_sum", "0+0"),
    ("\\boxed{999999999+999999999}", "wrong_sum", "999999999+999999999"),
    ("\\boxed{39+98}", "out_of_range", "39+98"),
    ("\\boxed{137+0}", "out_of_range", "137+0"),
    ("\\boxed{100+37}", "out_of_range", "100+37"),
    ("\\boxed{58+79+0}", "no_answer", "58+79+0"),
    ("\\boxed{-1+138}", "no_answer", "-1+138"),
    ("\\boxed{+58+79}", "no_answer", "+58+79"),
    ("\\boxed{58-79}", "no_answer", "58-79"),
    ("\\boxed{58 79}", "no_answer", "58 79"),
    ("\\boxed{137}", "no_answer", "137"),
    ("\\boxed{58.0+79}", "no_answer", "58.0+79"),
    ("\\boxed{58 + 79 = 137}", "no_answer", "58 + 79 = 137"),
    ("\\boxed{\\text{58+79}}", "no_answer", "\\text{58+79}"),
    ("\\boxed{５８+７９}", "no_answer", "５８+７９"),  # fullwidth digits: int() would take them, we do not
    ("\\boxed{٥٨+٧٩}", "no_answer", "٥٨+٧٩"),  # Arabic-Indic digits
    ("\\boxed{58＋79}", "no_answer", "58＋79"),  # fullwidth plus
    ("\\boxed{0000000058+79}", "no_answer", "0000000058+79"),  # 10 digits: past the cap
    ("\\boxed{}", "no_answer", None),
    ("58+79", "no_answer", None),
    ("\\boxed{58+79", "no_answer", None),  # never closes (a truncated completion)
    ("", "no_answer", None),
]


@pytest.mark.parametrize("completion, reason, extracted", VERDICTS)
def test_verifier_table(completion, reason, extracted):
    verdict = SumsTask(SumsConfig()).score(problem(137, 40, 99), completion)
    assert (verdict.reason, verdict.extracted) == (reason, extracted)
    assert (verdict.correct, verdict.reward) == ((True, 1.0) if reason == "correct" else (False, 0.0))


def test_verifier_survives_huge_inputs():
    task, p = SumsTask(SumsConfig()), problem(137, 40, 99)
    huge = "\\boxed{" + "9" * 100_000 + "+1}"
    assert task.score(p, huge).reason == "no_answer"
    assert task.score(p, "\\boxed{" * 10_000 + "58+79" + "}" * 10_000).correct
    assert task.score(p, "\\boxed{" + " " * 100_000 + "58+79}").correct


def test_answer_spans_are_the_stated_numbers_and_the_box():
    text = "Take 23. 57-23 = 34. The answer is \\boxed{23+34}."
    assert [text[i:j] for i, j in SumsTask(SumsConfig()).answer_spans(text)] == ["23", "34", "23+34"]
    assert SumsTask(SumsConfig()).answer_spans("no answer") == []


def test_prompt_templates():
    p = SumsTask(SumsConfig(**SMALL)).load("sums")[0]
    assert SumsTask(SumsConfig(**SMALL)).prompt(p) == [{"role": "user", "content": p.question}]
    boxed = SumsTask(SumsConfig(template="boxed", **SMALL)).prompt(p)
    assert boxed[0]["content"] == p.question + " Put the final answer in \\boxed{} as a+b."


@pytest.mark.parametrize(
    "fields, fragment",
    [
        (dict(min_answers=0), "min_answers=0 must be in 1..90"),
        (dict(min_answers=91), "min_answers=91 must be in 1..90"),
        (dict(eval_fraction=0.0), "eval_fraction"),
    ],
)
def test_bad_config(fields, fragment):
    with pytest.raises(ValueError, match=fragment):
        SumsConfig(**fields)


def test_bad_config_fails_at_compose_time():
    with pytest.raises(ConfigError, match="min_answers"):
        compose("config", ["task=sums", "task.min_answers=200"])


def test_too_many_problems_for_the_space():
    with pytest.raises(ValueError, match="too many"):
        SumsTask(SumsConfig(min_answers=88, train_size=20)).load("train")  # 3 + 6 + 5 questions in all
    with pytest.raises(ValueError, match="unknown split"):
        SumsTask(SumsConfig()).load("arith")
