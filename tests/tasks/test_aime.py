"""AIME24/25 and AMC23 on the real files; DAPO-Math's row format, prompt and verifier (the
released RiskPO code's math_dapo.py: last "Answer:" line, +-1 reward); the hub failing fast offline."""

import time

import pytest

from tasks.aime import AimeConfig, AimeTask, dapo_judge, dapo_problem, integer_text
from tasks.base import Verdict

TASK = AimeTask(AimeConfig())
DAPO = AimeTask(AimeConfig(template="dapo"))


@pytest.mark.parametrize("benchmark, count", [("aime24", 30), ("aime25", 30), ("amc23", 40)])
def test_real_files_load_with_integer_answers(benchmark, count):
    problems = TASK.load(benchmark)
    assert len(problems) == count and len({p.uid for p in problems}) == count
    assert all(p.answer.lstrip("-").isdigit() and not p.answer.startswith("0") or p.answer == "0" for p in problems)
    assert all(p.question.strip() for p in problems)


def test_answers_are_normalised():
    assert [integer_text(v) for v in ("025", 70.0, "-1", 0.0)] == ["25", "70", "-1", "0"]
    with pytest.raises(ValueError, match="integer"):
        integer_text(2.5)
    answers = [p.answer for p in TASK.load("aime24")]
    assert answers[6:8] == ["721", "25"]  # the file's '721', '025'


def test_own_gold_is_correct_and_other_gold_is_not():
    problems = TASK.load("aime24") + TASK.load("aime25") + TASK.load("amc23")
    for i, problem in enumerate(problems):
        assert TASK.score(problem, f"So the answer is \\boxed{{{problem.answer}}}.").correct
        other = problems[(i + 1) % len(problems)].answer
        if other != problem.answer:
            assert not TASK.score(problem, f"\\boxed{{{other}}}").correct


def test_zero_padded_and_float_forms_count():
    problem = next(p for p in TASK.load("aime24") if p.answer == "25")
    assert TASK.score(problem, "\\boxed{025}").correct
    assert TASK.score(problem, "\\boxed{25.0}").correct


ROW = {
    "prompt": [{"role": "user", "content": "Solve the following math problem step by step. The last line of your "
                "response should be of the form Answer: $Answer (without quotes) where $Answer is the answer to "
                "the problem.\n\nWhat is $1+1$?\n\nRemember to put your answer on its own line after \"Answer:\"."}],
    "reward_model": {"ground_truth": "2", "style": "rule-lighteval/MATH_v2"},
    "data_source": "math_dapo",
}


def test_dapo_math_row():
    problem = dapo_problem(3, ROW)
    assert (problem.uid, problem.question, problem.answer) == ("dapo_math-3", "What is $1+1$?", "2")


def test_dapo_template_gives_back_the_rows_own_prompt():
    assert DAPO.prompt(dapo_problem(3, ROW)) == ROW["prompt"]
    assert "\\boxed" in TASK.prompt(dapo_problem(3, ROW))[0]["content"]


def test_dapo_template_on_the_real_files():
    """Each gold as an "Answer:" line is right (+1); another problem's, the gold boxed without an
    "Answer:" line, and the zero-padded gold are wrong (-1), where the boxed verifier takes them."""
    problems = DAPO.load("aime24") + DAPO.load("aime25") + DAPO.load("amc23")
    for i, problem in enumerate(problems):
        assert DAPO.score(problem, DAPO.reference(problem)) == Verdict(1.0, True, problem.answer, "correct")
        other = problems[(i + 1) % len(problems)].answer
        if other != problem.answer:
            assert DAPO.score(problem, f"Answer: {other}").reward == -1.0
        assert DAPO.score(problem, f"\\boxed{{{problem.answer}}}") == Verdict(-1.0, False, None, "no_answer")
    padded = next(p for p in problems if p.answer == "25")
    assert DAPO.score(padded, "Answer: 025").reward == -1.0 and TASK.score(padded, "\\boxed{025}").correct


ECHO = 'Remember to put your answer on its own line after "Answer:".'
# (completion, gold, reward, what was read): math_dapo.py's rules, hostile cases included
DAPO_VERDICTS = [
    pytest.param("so it is 25.\nAnswer: 25", "25", 1.0, "25", id="plain"),
    pytest.param("the final answer:25", "25", 1.0, "25", id="lower-case-in-a-sentence"),
    pytest.param("ANSWER :  25", "25", 1.0, "25", id="spaces-around-colon"),
    pytest.param("Answer:\n25", "25", 1.0, "25", id="line-break-after-colon"),
    pytest.param("Answer: $25$", "25", 1.0, "25", id="dollars"),
    pytest.param("Answer: $\\boxed{25}$.", "25", 1.0, "25", id="boxed-in-dollars-full-stop-outside"),
    pytest.param("Answer: $25.$", "25", 1.0, "25", id="full-stop-inside-dollars"),
    pytest.param("Answer: x = 25", "25", 1.0, "25", id="last-side-of-equation"),
    pytest.param("Answer: 25^\\circ", "25", 1.0, "25", id="degrees-sign"),
    pytest.param("Answer: \\text{25}", "25", 1.0, "25", id="text"),
    pytest.param("Answer: 1,000", "1000", 1.0, "1000", id="thousands-commas"),
    pytest.param("Answer: -7", "-7", 1.0, "-7", id="negative"),
    pytest.param("Answer: 24\nAnswer: 25", "25", 1.0, "25", id="last-of-several-lines"),
    pytest.param("Answer: 25\nAnswer: 24", "25", -1.0, "24", id="last-of-several-lines-wrong"),
    pytest.param(ECHO + "\nSo:\nAnswer: 25", "25", 1.0, "25", id="prompt-echo-first"),
    pytest.param("Answer: 25\n" + ECHO, "25", -1.0, ".", id="prompt-echo-last-wins"),
    pytest.param("Answer: 25.", "25", -1.0, "25.", id="full-stop"),
    pytest.param("Answer: 025", "25", -1.0, "025", id="zero-padded"),
    pytest.param("Answer: 25.0", "25", -1.0, "25.0", id="decimal"),
    pytest.param("**Answer:** 25", "25", -1.0, "**25", id="markdown-bold"),
    pytest.param("Answer: 25 (as 5^2)", "25", -1.0, "25(as5^2)", id="trailing-words"),
    pytest.param("Answer: 25 degrees", "25", -1.0, "25degrees", id="unit-word-deviation"),
    pytest.param("Answer: 24 and Answer: 25", "25", -1.0, "24andAnswer:25", id="two-on-one-line"),
]


@pytest.mark.parametrize("completion, gold, reward, read", DAPO_VERDICTS)
def test_dapo_verdicts(completion, gold, reward, read):
    verdict = dapo_judge(completion, gold)
    assert (verdict.reward, verdict.correct, verdict.extracted) == (reward, reward == 1.0, read)


def test_dapo_no_answer_line_and_the_300_character_tail():
    assert dapo_judge("\\boxed{25}", "25") == Verdict(-1.0, False, None, "no_answer")
    assert dapo_judge("", "25").reward == -1.0
    late = "Answer: 25\n" + "x" * 300  # the reference reads the last 300 characters only
    assert dapo_judge(late, "25") == Verdict(-1.0, False, None, "no_answer")
    assert dapo_judge("Answer: 25\n" + "x" * 289, "25").correct  # "Answer: 25" inside the tail


def test_dapo_answer_span_is_what_was_read():
    completion = "x" * 400 + "\nAnswer: 24\nthen Answer: $25$ \nok"
    [(start, end)] = DAPO.answer_spans(completion)
    assert completion[start:end] == "$25$ "
    assert DAPO.answer_spans("Answer: 25\n" + "x" * 300) == []
    assert TASK.answer_spans("Answer: \\boxed{25}") == [(15, 17)]  # boxed_cot keeps the box


def test_hub_dataset_fails_fast_and_clearly_offline():
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match="not in the local cache and the hub is offline"):
        TASK.load("train")
    assert time.monotonic() - start < 15


def test_missing_file_names_the_path_and_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        AimeTask(AimeConfig(data_dir=str(tmp_path))).load("aime24")
    message = str(err.value)
    assert str(tmp_path / "aime24" / "test.jsonl") in message and "task.data_dir=" in message
