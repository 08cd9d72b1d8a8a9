"""The synthetic arith task: deterministic, disjoint splits, exact answers, worked demonstrations."""

import random
import re

import pytest

from tasks.arith import ArithConfig, ArithTask, demonstration, generate, in_eval_split
from tasks.base import Problem

SMALL = dict(train_size=300, eval_size=60)


def python_value(text: str) -> int:
    assert re.fullmatch(r"[0-9+\-*()]+", text)  # our own generated text: digits, + - *, parentheses
    return eval(text)  # noqa: S307 - an independent oracle for the generator's arithmetic


def test_same_seed_same_problems_other_seed_others():
    a = ArithTask(ArithConfig(**SMALL)).load("train")
    b = ArithTask(ArithConfig(**SMALL)).load("train")
    c = ArithTask(ArithConfig(seed=1, **SMALL)).load("train")
    assert [p.question for p in a] == [p.question for p in b]
    assert [p.question for p in a] != [p.question for p in c]
    assert len(a) == 300 and len({p.uid for p in a}) == 300


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_and_eval_are_disjoint_by_construction(seed):
    task = ArithTask(ArithConfig(seed=seed, **SMALL))
    train, held_out = task.load("train"), task.load("arith")
    assert not {p.question for p in train} & {p.question for p in held_out}
    assert all(in_eval_split(p.uid.removeprefix("arith-"), 0.1) for p in held_out)
    # another seed's eval set never meets this seed's train set either
    other_eval = ArithTask(ArithConfig(seed=seed + 10, **SMALL)).load("arith")
    assert not {p.question for p in train} & {p.question for p in other_eval}


def test_the_validation_split_is_held_out_and_never_an_eval_problem():
    task = ArithTask(ArithConfig())  # the default space: 2,000 held-out problems, 500 eval + 500 validation
    held_out, validation = task.load("arith"), task.load("arith_val")
    assert len(validation) == 500 and all(p.benchmark == "arith_val" for p in validation)
    assert all(in_eval_split(p.uid.removeprefix("arith-"), 0.1) for p in validation)
    assert not {p.question for p in validation} & {p.question for p in held_out}
    with pytest.raises(ValueError, match="too many"):
        ArithTask(ArithConfig(eval_size=600)).load("arith_val")  # 1,200 > half the held-out region


@pytest.mark.parametrize("operators, operands", [("+-", 2), ("+-*", 3), ("*", 3), ("-*", 4)])
def test_answers_are_exact(operators, operands):
    task = ArithTask(ArithConfig(operators=operators, operands=operands, digits=2, train_size=200, eval_size=20))
    for problem in task.load("train"):
        text = problem.question.removeprefix("Compute ").removesuffix(".")
        assert int(problem.answer) == python_value(text)
        assert len(problem.metadata["steps"]) == operands - 1


def test_parentheses_only_where_precedence_needs_them():
    rng = random.Random(0)
    texts = [generate(rng, 1, 4, "+-*")[0] for _ in range(300)]
    for text in texts:
        if "(" in text:
            assert re.search(r"\)\*", text)  # a parenthesised prefix is always multiplied
    assert any("(" in t for t in texts) and any("*" in t and "(" not in t for t in texts)


def test_demonstration_by_hand():
    problem = Problem(uid="arith-(12+7)*3", benchmark="train", question="Compute (12+7)*3.", answer="57",
                      metadata={"steps": [(12, "+7", 19), (19, "*3", 57)]})
    assert demonstration(problem) == "12+7 = 19. 19*3 = 57. The answer is \\boxed{57}."


def test_demonstrations_score_correct_and_wrong_answers_do_not():
    task = ArithTask(ArithConfig(**SMALL))
    for problem in task.load("arith")[:20]:
        assert task.score(problem, demonstration(problem)).correct
        wrong = f"The answer is \\boxed{{{int(problem.answer) + 1}}}."
        assert not task.score(problem, wrong).correct
        assert task.score(problem, "no idea").reason == "no_answer"


def test_answer_spans_are_each_result_and_the_box():
    text = "12+7 = 19. 19*3 = 57. 57-60 = -3. The answer is \\boxed{-3}."
    assert [text[i:j] for i, j in ArithTask(ArithConfig()).answer_spans(text)] == ["19", "57", "-3", "-3"]


def test_prompt_templates():
    problem = ArithTask(ArithConfig(**SMALL)).load("arith")[0]
    plain = ArithTask(ArithConfig(**SMALL)).prompt(problem)
    boxed = ArithTask(ArithConfig(template="boxed", **SMALL)).prompt(problem)
    assert plain == [{"role": "user", "content": problem.question}]
    assert boxed[0]["content"].endswith("Put the final answer in \\boxed{}.")


@pytest.mark.parametrize(
    "fields, fragment",
    [
        (dict(operators="+/"), "operators"),
        (dict(operands=1), "operands >= 2"),
        (dict(eval_fraction=1.0), "eval_fraction"),
    ],
)
def test_bad_config(fields, fragment):
    with pytest.raises(ValueError, match=fragment):
        ArithConfig(**fields)


def test_too_many_problems_for_the_space():
    with pytest.raises(ValueError, match="too many"):
        ArithTask(ArithConfig(digits=1, operands=2, operators="+", train_size=60)).load("train")
