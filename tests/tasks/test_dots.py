"""dots: pictures drawn from a problem's seed, the count read from the last box."""

import numpy as np
import pytest

from tasks.dots import RADIUS, DotsConfig, DotsTask, layout, render


@pytest.fixture(scope="module")
def task():
    return DotsTask(DotsConfig(train_size=300, eval_size=100))


@pytest.mark.parametrize("completion, reward, extracted, reason", [
    ("The answer is \\boxed{4}.", 1.0, "4", "correct"),
    ("\\boxed{ 04 }", 1.0, "4", "correct"),  # spaces and a leading zero: the same number
    ("\\boxed{3} no, \\boxed{4}", 1.0, "4", "correct"),  # the last box counts
    ("The answer is \\boxed{5}.", 0.0, "5", "wrong"),
    ("The answer is 4.", 0.0, None, "no_answer"),
    ("\\boxed{four}", 0.0, "four", "no_answer"),
    ("\\boxed{4.0}", 0.0, "4.0", "no_answer"),  # a count is a whole number of disks
    ("\\boxed{1234}", 0.0, "1234", "no_answer"),  # more digits than any count has
    ("\\boxed{٤}", 0.0, "٤", "no_answer"),  # only ASCII digits
])
def test_golden_verdicts(task, completion, reward, extracted, reason):
    problem = next(p for p in task.load("dots") if p.answer == "4")
    verdict = task.score(problem, completion)
    assert (verdict.reward, verdict.correct, verdict.extracted, verdict.reason) == \
        (reward, reward == 1.0, extracted, reason)


def test_a_picture_shows_its_count_and_is_the_same_every_time(task):
    ink_per_disk = set()
    for problem in task.load("dots")[:40]:
        disks = layout(problem.metadata["count"], problem.metadata["size"], problem.metadata["seed"])
        assert len(disks) == int(problem.answer)
        for i, (x, y, r) in enumerate(disks):
            assert r == RADIUS and r < x < problem.metadata["size"] - r - 1 and r < y < problem.metadata["size"] - r - 1
            assert all((x - a) ** 2 + (y - b) ** 2 > (r + q + 1) ** 2 for a, b, q in disks[i + 1 :])
        first, again = np.asarray(render(problem)), np.asarray(render(problem))
        assert first.shape == (56, 56, 3) and (first == again).all()
        ink_per_disk.add((first < 128).all(-1).sum() / int(problem.answer))
    assert len(ink_per_disk) == 1  # disks never overlap or leave the picture: the ink is the count's


def test_splits_differ_and_counts_cover_the_range(task):
    train, held_out, validation = (task.load(s) for s in ("train", "dots", "dots_val"))
    assert len(train) == 300 and len(held_out) == len(validation) == 100
    seeds = [{p.metadata["seed"] for p in split} for split in (train, held_out, validation)]
    assert not seeds[0] & seeds[1] and not seeds[0] & seeds[2] and not seeds[1] & seeds[2]
    assert {int(p.answer) for p in train} == set(range(1, 10))
    assert [p.uid for p in held_out] == [p.uid for p in task.load("dots")]  # seeded


def test_the_prompt_is_the_picture_then_the_question(task):
    problem = task.load("dots")[0]
    (turn,) = task.prompt(problem)
    image, text = turn["content"]
    assert image["type"] == "image" and image["image"].size == (56, 56)
    assert text == {"type": "text", "text": "How many dots are in the image?"}
    assert task.score(problem, task.reference(problem)).correct


@pytest.mark.parametrize("fields, fragment", [
    ({"min_dots": 5, "max_dots": 3}, "min_dots <= max_dots"),
    ({"max_dots": 40}, "do not fit"),
])
def test_bad_configs_are_one_line(fields, fragment):
    with pytest.raises(ValueError, match=fragment):
        DotsConfig(**fields)
