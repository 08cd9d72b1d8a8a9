"""AIME24/25 and AMC23 on the real files; DAPO-Math's row format; the hub failing fast offline."""

import time

import pytest

from tasks.aime import AimeConfig, AimeTask, dapo_problem, integer_text

TASK = AimeTask(AimeConfig())


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


def test_dapo_math_row():
    row = {
        "prompt": [{"role": "user", "content": "Solve the following math problem step by step. The last line of your "
                    "response should be of the form Answer: $Answer (without quotes) where $Answer is the answer to "
                    "the problem.\n\nWhat is $1+1$?\n\nRemember to put your answer on its own line after \"Answer:\"."}],
        "reward_model": {"ground_truth": "2", "style": "rule-lighteval/MATH_v2"},
        "data_source": "math_dapo",
    }
    problem = dapo_problem(3, row)
    assert (problem.uid, problem.question, problem.answer) == ("dapo_math-3", "What is $1+1$?", "2")


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
