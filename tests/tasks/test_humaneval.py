"""HumanEval: loading, extraction, verdicts on the real benchmark, answer hiding whatever form
the data directory takes (hostile completions: test_humaneval_hostile.py).

The canonical run (164 solutions and 164 ``pass`` bodies through the Scorer pool) takes ~6 s on
2 cores, so it is in the default run.
"""

import os
import time

import pytest

from common import DEFAULT_DATA_DIR
from tasks.humaneval import DATA, TEMPLATES, HumanEvalConfig, HumanEvalTask, extract
from tasks.scoring import Scorer

TASK = HumanEvalTask(HumanEvalConfig())
PROBLEMS = TASK.load("humaneval")
BY_UID = {p.uid: p for p in PROBLEMS}
# tight limits keep the reason checks fast: 1 s wall, 1 s CPU, 256 MB, 1 MB files, 8 processes
HOSTILE = HumanEvalTask(HumanEvalConfig(wall_seconds=1.0, cpu_seconds=1, memory_mb=256, file_size_mb=1, processes=8))
ROOT = os.geteuid() == 0


# ---- loading and prompting ----


def test_load():
    assert len(PROBLEMS) == 164 and len(BY_UID) == 164
    first = BY_UID["HumanEval/0"]
    assert first.benchmark == "humaneval" and first.metadata["entry_point"] == "has_close_elements"
    assert first.question.startswith("from typing import List") and "def check(candidate)" in first.metadata["test"]
    assert first.answer.lstrip().startswith("for idx, elem")


def test_config_and_splits():
    config = HumanEvalConfig()
    assert (config.name, config.template, config.train) == ("humaneval", "complete", "humaneval")
    assert config.eval == ("humaneval",)
    with pytest.raises(ValueError, match="no training split"):
        TASK.load("train")
    with pytest.raises(ValueError, match="unknown split"):
        HumanEvalTask(HumanEvalConfig(eval=("mbpp",)))
    with pytest.raises(FileNotFoundError, match="task.data_dir"):
        HumanEvalTask(HumanEvalConfig(data_dir="/nonexistent")).load("humaneval")


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_templates(template):
    problem = BY_UID["HumanEval/2"]
    [message] = HumanEvalTask(HumanEvalConfig(template=template)).prompt(problem)
    assert message["role"] == "user" and problem.question in message["content"]


# ---- extraction ----

P0 = BY_UID["HumanEval/0"]
BODY = P0.answer
FULL = P0.question.split("\n\n\ndef")[0] + "\n\n\ndef has_close_elements(numbers, threshold):\n" + BODY


@pytest.mark.parametrize("completion, expected", [
    (BODY, P0.question + BODY),
    (BODY + "\n\ndef main():\n    pass\n", P0.question + BODY + "\n"),  # Codex stop sequences
    (BODY + "\nif __name__ == '__main__':\n    main()", P0.question + BODY),
    (BODY + "\nprint(has_close_elements([], 1.0))", P0.question + BODY),
    (f"Here it is:\n```python\n{FULL}```\nDone.", P0.question + "\n" + FULL),
    (f"```py\n{FULL}```", P0.question + "\n" + FULL),
    (f"```\n{FULL}```", P0.question + "\n" + FULL),
    (f"```python\n{FULL}", P0.question + "\n" + FULL),  # cut by the length limit: runs to the end
    (f"```python\nimport math\n```\n```python\n{FULL}```", P0.question + "\n" + FULL),  # the one with the def
    ("", None),
    ("   \n\n", None),
    ("```python\n\n```", None),
    ("\ndef helper():\n    pass", None),  # a stop sequence at once: nothing left
])
def test_extract(completion, expected):
    assert extract(P0, completion) == expected


# ---- verdicts ----


def test_reasons():
    cases = {
        BODY: "passed",
        "    return True\n": "failed",
        "    return undefined_name\n": "error: NameError",
        "    return (\n": "error: SyntaxError",
        "    import sys\n    sys.exit(0)\n": "error: SystemExit",
        "    while True:\n        pass\n": "timeout",
        "": "no_code",
    }
    for completion, reason in cases.items():
        verdict = HOSTILE.score(P0, completion)
        assert verdict.reason == reason, completion
        assert verdict.correct == (reason == "passed") and verdict.reward == float(reason == "passed")
        assert verdict.extracted == (None if reason == "no_code" else P0.question + completion)


def test_canonical_solutions_pass_and_pass_bodies_fail():
    """All 164 and 164 through the Scorer pool: ~6 s on 2 cores."""
    problems = PROBLEMS
    with Scorer(TASK) as scorer:
        start = time.monotonic()
        verdicts = scorer.score(problems + problems, [p.answer for p in problems] + ["    pass\n"] * len(problems))
        seconds = time.monotonic() - start
    n = len(problems)
    assert [(p.uid, v.reason) for p, v in zip(problems, verdicts[:n]) if not v.correct] == []
    assert [p.uid for p, v in zip(problems, verdicts[n:]) if v.correct] == []
    print(f"{n} canonical + {n} pass bodies: {seconds:.1f} s")


# ---- answer hiding and lying objects (the full battery: test_humaneval_hostile.py) ----


@pytest.mark.skipif(not ROOT, reason="the program's filesystem view needs namespaces (root)")
@pytest.mark.parametrize("form", ["relative", "absolute", "symlink"])
def test_the_answers_are_hidden_whatever_form_data_dir_takes(form, tmp_path):
    """``python -m bench.score task=humaneval task.data_dir=../shared/data`` once let a completion
    read the benchmark file and run the canonical solution: the relative path hid nothing."""
    link = tmp_path / "data"
    link.symlink_to(DEFAULT_DATA_DIR)
    data_dir = {"relative": os.path.relpath(DEFAULT_DATA_DIR), "absolute": str(DEFAULT_DATA_DIR), "symlink": str(link)}
    task = HumanEvalTask(HumanEvalConfig(data_dir=data_dir[form], wall_seconds=2.0))
    problem = task.load("humaneval")[0]
    for path in {str(task.data_file(DATA)), str(task.data_file(DATA).resolve()), os.path.abspath(task.data_file(DATA))}:
        completion = (f"    import gzip, json\n    row = json.loads(gzip.open({path!r}).readline())\n"
                      "    namespace = {}\n    exec(row['prompt'] + row['canonical_solution'], namespace)\n"
                      "    return namespace['has_close_elements'](numbers, threshold)\n")
        verdict = task.score(problem, completion)
        assert not verdict.correct and verdict.reason == "error: FileNotFoundError", path


def test_an_object_equal_to_everything_fails():
    completion = "    class Equal:\n        def __eq__(self, other):\n            return True\n    return Equal()\n"
    verdict = TASK.score(P0, completion)
    assert not verdict.correct and verdict.reason == "error: TypeError"


def test_the_tests_use_the_prompts_helpers_and_the_programs_entry_point():
    """HumanEval/32's test calls the prompt's ``poly``; HumanEval/33's calls ``sort_third``, the
    entry point itself: the first comes from the dataset, the second from the program."""
    find_zero, sort_third = BY_UID["HumanEval/32"], BY_UID["HumanEval/33"]
    cheat = "```python\ndef poly(xs, x):\n    return 0.0\ndef find_zero(xs):\n    return 0.0\n```"
    assert TASK.score(find_zero, cheat).reason == "failed"
    assert TASK.score(find_zero, find_zero.answer).correct and TASK.score(sort_third, sort_third.answer).correct
