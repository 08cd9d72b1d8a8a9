"""MathVista: loading testmini, the prompt, images from task.image_dir, and the verifier.

Real-data checks read ../shared/data/mathvista/testmini.json (1000 items, no images); image
tests build a directory of tiny images with PIL.
"""

import dataclasses
import logging
import pickle
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from PIL import Image

from tasks.mathvista import MathVistaConfig, MathVistaTask, MissingImage, norm


@pytest.fixture(scope="module")
def task():
    return MathVistaTask(MathVistaConfig())


@pytest.fixture(scope="module")
def items(task):
    return {p.uid: p for p in task.load("mathvista")}


@pytest.fixture
def image_dir(tmp_path):
    """images/1.jpg (4x3) and images/2.jpg (2x2): the layout of the MathVista release."""
    (tmp_path / "images").mkdir()
    Image.new("RGB", (4, 3), "red").save(tmp_path / "images" / "1.jpg")
    Image.new("RGB", (2, 2), "blue").save(tmp_path / "images" / "2.jpg")
    return tmp_path


# ---- loading ---------------------------------------------------------------------------------

def test_loads_all_testmini_rows(items, task):
    assert len(items) == 1000 and set(items) == {str(i) for i in range(1, 1001)}
    kinds = Counter((p.metadata["question_type"], p.metadata["answer_type"]) for p in items.values())
    assert kinds == {("multi_choice", "text"): 540, ("free_form", "integer"): 418,
                     ("free_form", "float"): 40, ("free_form", "list"): 2}
    first = items["1"]
    assert (first.benchmark, first.answer, first.image) == ("mathvista", "1.2", None)
    assert dict(first.metadata) == {"choices": None, "unit": None, "precision": 1,
                                    "question_type": "free_form", "answer_type": "float"}
    assert items["3"].metadata["choices"] == ("135°", "140°", "145°", "150°")
    assert [p.uid for p in task.load("train")] == list(items)
    assert pickle.loads(pickle.dumps(first)) == first  # problems travel to scoring workers


def test_unknown_split_and_missing_file_are_clear_errors(task, tmp_path):
    with pytest.raises(ValueError, match="unknown split 'test'"):
        task.load("test")
    with pytest.raises(FileNotFoundError, match="mathvista/testmini.json.*task.data_dir"):
        MathVistaTask(MathVistaConfig(data_dir=str(tmp_path))).load("mathvista")


# ---- acceptance: every gold answer scores as correct against itself ---------------------------

@pytest.mark.parametrize("form", ["... The answer is \\boxed{{{}}}", "{}", "Answer: {}", "so the answer is {}."])
def test_every_gold_answer_is_correct_against_itself(task, items, form):
    wrong = {uid: task.score(p, form.format(p.answer)) for uid, p in items.items()}
    wrong = {uid: v for uid, v in wrong.items() if not (v.correct and v.reward == 1.0)}
    assert len(items) - len(wrong) == 1000, f"{1000 - len(wrong)}/1000; first failures: {list(wrong.items())[:5]}"


def test_another_items_gold_is_judged_wrong(task, items):
    """Each item against the next item's gold (skipping equal golds, and a lone letter that does
    name this item's gold option): nothing may be accepted."""
    problems = list(items.values())
    accepted, tried = [], 0
    for problem, other in zip(problems, problems[1:] + problems[:1]):
        choices = problem.metadata["choices"] or ()
        names_gold = len(other.answer) == 1 and problem.answer in choices and \
            "ABCDEFGH".find(other.answer) == list(choices).index(problem.answer)
        if other.answer.strip().casefold() == problem.answer.strip().casefold() or names_gold:
            continue
        tried += 1
        if task.score(problem, f"The answer is \\boxed{{{other.answer}}}").correct:
            accepted.append((problem.uid, problem.answer, other.answer))
    assert tried > 950 and accepted == []


def test_every_gold_option_letter_is_correct(task, items):
    choice_items = [p for p in items.values() if p.metadata["choices"]]
    letters = {p.uid: "ABCDEFGH"[p.metadata["choices"].index(p.answer)] for p in choice_items}
    wrong = [p.uid for p in choice_items if not task.score(p, f"\\boxed{{{letters[p.uid]}}}").correct]
    assert len(choice_items) == 540 and wrong == []


def test_distinct_choices_never_share_a_comparison_key(items):
    """Case/space-insensitive matching must not merge two different options of one item."""
    for p in items.values():
        choices = p.metadata["choices"] or ()
        assert len({norm(c) for c in choices}) == len(set(choices)), (p.uid, choices)


# ---- adversarial responses --------------------------------------------------------------------
# pid 3: choices (A) 135° (B) 140° (C) 145° (D) 150°, gold 145°.  pid 15: Tilapia / Common water
# flea / Great diving beetle / Tadpole, gold "Common water flea".  pid 10: choices are the letters
# A..E, gold E.  pid 434: 60-k / k / 60+k / 120-k / 120-2*k, gold 60-k.  pid 749: \frac{..}{..}cm,
# gold \frac{20}{7}cm (D).  pid 482: 15*\degree .. 90*\degree, gold 60*\degree.
# pid 1: float, precision 1, gold 1.2.  pid 199: float, precision 2, gold 0.21.  pid 2: integer,
# gold 1000 (unit g).  pid 45: integer, gold -3.  pid 506: list, gold [2014, 2016].
CASES = [
    ("3", "\\boxed{A}", False, "wrong"),
    ("3", "The answer is (D).", False, "wrong"),
    ("3", "\\boxed{C}", True, "correct"),
    ("3", "\\fbox{C}", True, "correct"),  # the math suite's box reader (tasks/extract.py)
    ("1", "\\boxed {1.2}", True, "correct"),
    ("2", "So it is $\\boxed 1000$ g.", True, "correct"),
    ("3", "(C)", True, "correct"),
    ("3", "\\boxed{C.}", True, "correct"),
    ("3", "\\boxed{(c)}", True, "correct"),
    ("3", "Answer: c", True, "correct"),
    ("3", "Final answer: **C**", True, "correct"),
    ("3", "\\boxed{C. 145°}", True, "correct"),
    ("3", "The answer is C, 140°.", True, "correct"),
    ("3", "The answer is (C) 140°.", True, "correct"),  # an explicit letter wins over its text
    ("3", "\\boxed{145°}", True, "correct"),
    ("3", "\\boxed{145}", True, "correct"),  # the same number as one choice
    ("3", "\\boxed{145^\\circ}", True, "correct"),
    ("3", "\\boxed{140}", False, "wrong"),
    ("3", "\\boxed{F}", False, "no_choice"),  # not one of A-D, like nothing else
    ("3", "\\boxed{Z}", False, "no_choice"),
    ("3", "The angle is acute. So C is the one.", True, "correct"),  # last option letter
    ("3", "A triangle has three angles. I think it is (B).", False, "wrong"),  # "A triangle", "I think" are no letters
    ("15", "\\boxed{common  WATER flea}", True, "correct"),
    ("15", "The answer is \"Common water flea\".", True, "correct"),
    ("15", "\\boxed{Common water-flea}", True, "correct"),  # nearest choice text
    ("15", "\\boxed{Tadpoles}", False, "wrong"),
    ("15", "\\boxed{B}", True, "correct"),
    ("15", "\\boxed{water}", False, "no_choice"),  # no choice is similar enough
    ("10", "\\boxed{E}", True, "correct"),
    ("10", "\\boxed{D}", False, "wrong"),
    ("434", "\\boxed{60 - k}", True, "correct"),
    ("434", "\\boxed{k}", False, "wrong"),  # the option text "k", not a letter
    ("434", "\\boxed{A}", True, "correct"),
    ("749", "\\boxed{\\dfrac{20}{7}\\text{cm}}", True, "correct"),
    ("749", "\\boxed{20/7}", True, "correct"),
    ("749", "\\boxed{\\frac{20}{3}cm}", False, "wrong"),
    ("482", "\\boxed{60^\\circ}", True, "correct"),
    ("482", "60", True, "correct"),
    ("1", "\\boxed{1.2}", True, "correct"),
    ("1", "\\boxed{1.24}", True, "correct"),  # rounds to the item's one decimal place
    ("1", "\\boxed{1.15}", True, "correct"),  # half up
    ("1", "\\boxed{1.25}", False, "wrong"),
    ("1", "\\boxed{1.3}", False, "wrong"),
    ("1", "\\boxed{6/5}", True, "correct"),
    ("1", "d = 1.2 m", True, "correct"),
    ("199", "\\boxed{0.21}", True, "correct"),
    ("199", "\\boxed{0.214}", True, "correct"),
    ("199", "\\boxed{0.205}", True, "correct"),
    ("199", "\\boxed{0.2}", False, "wrong"),
    ("199", "\\boxed{0.216}", False, "wrong"),
    ("2", "\\boxed{1000.0}", True, "correct"),
    ("2", "\\boxed{1,000 g}", True, "correct"),
    ("2", "So it holds 1000 grams.", True, "correct"),  # the last number
    ("2", "\\boxed{1000.5}", False, "wrong"),  # the official int(float(x)) would truncate to 1000
    ("2", "\\boxed{999}", False, "wrong"),
    ("2", "\\boxed{one thousand}", False, "not_a_number"),
    ("45", "The answer is \u22123.", True, "correct"),
    ("45", "\\boxed{3}", False, "wrong"),
    ("199", "\\boxed{" + "9" * 40 + ".5}", False, "wrong"),  # past the decimal context: wrong, no crash
    ("506", "\\boxed{[2014, 2016]}", True, "correct"),
    ("506", "[2014,2016]", True, "correct"),
    ("506", "\\boxed{2014, 2016}", True, "correct"),
    ("506", "The peak lies between [2014, 2016].", True, "correct"),
    ("506", "\\boxed{[2016, 2014]}", False, "wrong"),
    ("506", "\\boxed{[2014]}", False, "wrong"),
    ("506", "\\boxed{[2014, 2016, 2018]}", False, "wrong"),
    ("225", "\\boxed{[0,2,0,2,1,7,1,2,0,3,0,6]}", True, "correct"),
    ("225", "\\boxed{[0,2,0,2,1,7,1,2,0,3,0,5]}", False, "wrong"),
]


@pytest.mark.parametrize("pid, response, correct, reason", CASES)
def test_adversarial_responses(task, items, pid, response, correct, reason):
    verdict = task.score(items[pid], response)
    assert (verdict.correct, verdict.reward, verdict.reason) == (correct, float(correct), reason), verdict


@pytest.mark.parametrize("pid", ["3", "1", "2", "506"])
@pytest.mark.parametrize("response", ["", "   ", "I don't know.", "\\boxed{}", "The answer is"])
def test_no_answer_scores_zero(task, items, pid, response):
    verdict = task.score(items[pid], response)
    assert (verdict.reward, verdict.correct, verdict.extracted, verdict.reason) == (0.0, False, None, "no_answer")


@settings(max_examples=300, deadline=None)
@given(response=st.text(alphabet=st.sampled_from(list("ABCDE abc()[]{},.:-0123456789\\boxed answer is")), max_size=80))
def test_any_text_gets_a_binary_verdict_without_raising(task, items, response):
    for pid in ("3", "1", "2", "506"):
        verdict = task.score(items[pid], response)
        assert verdict.reward in (0.0, 1.0) and verdict.correct == (verdict.reward == 1.0)


# ---- prompts ----------------------------------------------------------------------------------

def test_prompt_has_question_choices_hint_and_box(task, items):
    [turn] = task.prompt(items["3"])
    assert turn["role"] == "user" and isinstance(turn["content"], str)  # no image_dir: text only
    choices = "Choices:\n(A) 135°\n(B) 140°\n(C) 145°\n(D) 150°\n"
    assert turn["content"].startswith(f"Question: {items['3'].question}\n{choices}")
    assert "provide the correct option letter, e.g., A, B, C, D, at the end." in turn["content"]
    assert turn["content"].endswith("put the final answer within \\boxed{}.")


@pytest.mark.parametrize("pid, hint", [
    ("1", "a floating-point number with one decimal place"),
    ("199", "a floating-point number with two decimal places"),
    ("2", "an integer answer"),
    ("506", "a Python list as an answer"),
])
def test_prompt_hint_follows_the_answer_type(task, items, pid, hint):
    text = task.prompt(items[pid])[0]["content"]
    assert f"Hint: Please answer the question requiring {hint}" in text and "Choices:" not in text


def test_prompt_gives_the_unit(task, items):
    assert f"Question: {items['2'].question} (Unit: g)\n" in task.prompt(items["2"])[0]["content"]


# ---- images -----------------------------------------------------------------------------------

def test_missing_image_is_one_clear_error(image_dir):
    task = MathVistaTask(MathVistaConfig(image_dir=str(image_dir)))
    with pytest.raises(FileNotFoundError) as err:
        task.load("mathvista")
    message = str(err.value)
    for part in ("images/3.jpg", f"task.image_dir={image_dir}", "998 of 1000", "task.missing_image=skip"):
        assert part in message


def test_missing_image_skip_counts_and_logs(image_dir, caplog):
    task = MathVistaTask(MathVistaConfig(image_dir=str(image_dir), missing_image="skip"))
    with caplog.at_level(logging.WARNING, logger="tasks.mathvista"):
        problems = task.load("mathvista")
    assert [p.uid for p in problems] == ["1", "2"] and task.skipped == 998
    assert problems[0].image == str(image_dir / "images" / "1.jpg")
    assert "skipped 998 of 1000" in caplog.text


def test_prompt_with_image_is_multimodal(image_dir):
    task = MathVistaTask(MathVistaConfig(image_dir=str(image_dir), missing_image="skip"))
    problem = task.load("mathvista")[0]
    [turn] = task.prompt(problem)
    image_part, text_part = turn["content"]
    assert image_part["type"] == "image" and isinstance(image_part["image"], Image.Image)
    assert image_part["image"].size == (4, 3) and image_part["image"].mode == "RGB"
    text_only = task.prompt(dataclasses.replace(problem, image=None))[0]["content"]
    assert text_part == {"type": "text", "text": text_only}


def test_image_dir_may_hold_the_images_directly(image_dir):
    task = MathVistaTask(MathVistaConfig(image_dir=str(image_dir / "images"), missing_image="skip"))
    assert [p.image for p in task.load("mathvista")] == [str(image_dir / "images" / f"{i}.jpg") for i in (1, 2)]


def test_image_gone_after_load_names_the_file(image_dir):
    task = MathVistaTask(MathVistaConfig(image_dir=str(image_dir), missing_image="skip"))
    problem = task.load("mathvista")[1]
    (image_dir / "images" / "2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="2.jpg not found; check task.image_dir"):
        task.prompt(problem)


# ---- config -----------------------------------------------------------------------------------

def test_config_modes_are_checked_once():
    assert MathVistaConfig().missing_image is MissingImage.error
    assert MathVistaConfig(missing_image="skip").missing_image is MissingImage.skip
    with pytest.raises(ValueError, match="missing_image='ignore' is not one of: error, skip"):
        MathVistaConfig(missing_image="ignore")
    with pytest.raises(ValueError, match="task.template='chat' is not one of"):
        MathVistaTask(MathVistaConfig(template="chat"))


def test_config_builds_from_a_structured_omegaconf_node():
    node = OmegaConf.merge(OmegaConf.structured(MathVistaConfig), {"missing_image": "skip", "image_dir": "/img"})
    config = OmegaConf.to_object(node)
    assert config == MathVistaConfig(image_dir="/img", missing_image=MissingImage.skip)
    assert MathVistaTask(config).config.eval == ("mathvista",)
