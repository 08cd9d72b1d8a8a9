"""The task contract, checked for every suite registered in tasks.TASKS on the real files.

For each task (its default config) and each split it declares, ``Task.benchmarks`` and "train":
- the split loads from ../shared/data: problems with unique uids, a question and a gold answer;
- on a sample (the first FIRST problems and SPREAD more spread through the rest, the last one
  included), ``Task.reference`` (what a perfect policy writes) is judged correct, reward 1, by the
  task's own scorer, in-process as tasks.scoring does it;
- another problem's reference is judged wrong, so the check can fail.
Each template of each task gets the same reference check on a few problems.

A split whose file (or Hugging Face dataset, offline) is not here is skipped with the loader's
message; so is "train" for a suite that trains on one of its benchmarks and whose loader refuses
"train" (HumanEval has no training split).
"""

import functools

import pytest

from tasks import TASKS
from tasks.base import Problem, Task
from tasks.scoring import Scorer

FIRST, SPREAD = 20, 5
# (task, split, uid) -> why its gold fails its own verifier; such a case is xfailed, naming them.
KNOWN_FAILURES: dict[tuple[str, str, str], str] = {}
CASES = [pytest.param(name, split, id=f"{name}-{split}")
         for name, task_type in TASKS.items() for split in (*task_type.benchmarks, "train")]


def make(name: str, template: str = "") -> Task:
    config_type = TASKS[name].config_type
    return TASKS[name](config_type(template=template) if template else config_type())


@functools.cache
def _load(name: str, split: str) -> list[Problem]:
    return make(name).load(split)


def load(name: str, split: str) -> list[Problem]:
    """The split's problems, or a skip saying why they are not here."""
    try:
        return _load(name, split)
    except FileNotFoundError as err:  # no ../shared/data, or a hub dataset not cached while offline
        pytest.skip(f"{name}/{split}: data not available here: {err}")
    except ValueError as err:
        trains_on = make(name).config.train
        if split == "train" and trains_on != "train":  # the suite trains on a benchmark by default
            pytest.skip(f"{name} has no train split (its config trains on {trains_on!r}): {err}")
        raise


def sample(problems: list[Problem]) -> list[Problem]:
    n = len(problems)
    picks = set(range(min(n, FIRST))) | {(n - 1) * k // SPREAD for k in range(1, SPREAD + 1)}
    return [problems[i] for i in sorted(picks)]


@pytest.mark.parametrize("name, split", CASES)
def test_split_loads(name, split):
    problems = load(name, split)
    assert problems, f"{name}/{split} loaded no problems"
    assert len({p.uid for p in problems}) == len(problems), f"{name}/{split}: uids repeat"
    empty = [p.uid for p in problems if not (p.uid and p.question and isinstance(p.answer, str) and p.answer)]
    assert not empty, f"{name}/{split}: no question or no gold: {empty[:5]}"


@pytest.mark.parametrize("name, split", CASES)
def test_reference_scores_correct(name, split):
    task, picked = make(name), sample(load(name, split))
    verdicts = Scorer(task, workers=0).score(picked, [task.reference(p) for p in picked])
    failures = {p.uid: v for p, v in zip(picked, verdicts) if not (v.correct is True and v.reward == 1.0)}
    known = {uid: why for (t, s, uid), why in KNOWN_FAILURES.items()
             if (t, s) == (name, split) and uid in {p.uid for p in picked}}
    assert failures.keys() == known.keys(), f"{name}/{split}: gold judged wrong: {failures}"
    if known:
        pytest.xfail(f"{name}/{split} golds failing their own verifier: {known}")


@pytest.mark.parametrize("name, split", CASES)
def test_another_problems_reference_scores_wrong(name, split):
    task, picked = make(name), sample(load(name, split))
    problem = picked[0]
    others = [q for q in picked[1:] if q.answer != problem.answer and task.reference(q) != task.reference(problem)]
    # many comparable right answers per problem (no one gold to vote on): another problem's answer
    # may happen to fit this one, so one of several must not; otherwise the next problem's must not
    many_answers = task.comparable_answers and not task.votes
    others = others if many_answers else others[:1]
    verdicts = Scorer(task, workers=0).score([problem] * len(others), [task.reference(q) for q in others])
    wrong = [(v.correct, v.reward) == (False, 0.0) for v in verdicts]
    assert (any(wrong) if many_answers else all(wrong)), f"{name}/{split}: other golds accepted for {problem.uid}"


@pytest.mark.parametrize("name, template", [
    pytest.param(name, template, id=f"{name}-{template}") for name, task_type in TASKS.items()
    for template in task_type.templates])
def test_reference_follows_every_template(name, template):
    task = make(name, template)
    split = task.config.eval[0]
    picked = load(name, split)[:3]
    verdicts = Scorer(task, workers=0).score(picked, [task.reference(p) for p in picked])
    assert [(p.uid, v.reason) for p, v in zip(picked, verdicts) if not v.correct] == [], (name, template)
