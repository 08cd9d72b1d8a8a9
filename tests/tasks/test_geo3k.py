"""Geometry3K: loading a local copy in the hub's layout, verl's multimodal prompt, verl's geo3k
reward, and the errors for a missing copy and an uncached hub dataset.

There is no Geometry3K file here (the contract test skips it offline), so each test builds a
small copy: parquet files written with pyarrow as the hub stores them (``images`` a list of
{"bytes", "path"} structs, ``problem`` with "<image>", ``answer``), holding tiny PNGs made with PIL.
"""

import io
import pickle
import time
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tasks.geo3k import Geo3KConfig, Geo3KTask, geo3k_problem
from tasks.scoring import Scorer

SCHEMA = pa.schema([
    ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
    ("problem", pa.string()),
    ("answer", pa.string()),
])
# verl examples/data_preprocess/geo3k.py's instruction_following, typed out from its source
VERL_INSTRUCTION = ("You FIRST think about the reasoning process as an internal monologue and then provide the final "
                    "answer. The reasoning process MUST BE enclosed within <think> </think> tags. The final answer "
                    "MUST BE put in \\boxed{}.")


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def row(problem: str, answer: str, size: tuple[int, int] = (7, 5), images: int = 1) -> dict:
    return {"images": [{"bytes": png(*size), "path": None}] * images, "problem": problem, "answer": answer}


def write(directory, split: str, rows: list[dict]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), directory / f"{split}-00000-of-00001.parquet")


@pytest.fixture
def source(tmp_path):
    """A copy as `huggingface-cli download hiyouga/geometry3k --repo-type dataset` lays it out."""
    write(tmp_path / "data", "train", [row("<image>Find x.", "3", (7, 5)),
                                       row("In the figure <image> find y.", "\\frac{1}{2}", (4, 6))])
    write(tmp_path / "data", "test", [row("<image>Find the area of the figure.", "2\\sqrt{3}", (3, 3))])
    return tmp_path


def make(source, template: str = "verl_think") -> Geo3KTask:
    return Geo3KTask(Geo3KConfig(source=str(source), template=template))


# ---- loading ---------------------------------------------------------------------------------

def test_loads_a_local_copy_in_the_hub_layout(source):
    train, test = make(source).load("train"), make(source).load("geo3k_test")
    assert [(p.uid, p.benchmark, p.question, p.answer) for p in train] == [
        ("geo3k_train-0", "geo3k_train", "<image>Find x.", "3"),
        ("geo3k_train-1", "geo3k_train", "In the figure <image> find y.", "\\frac{1}{2}")]
    assert [(p.uid, p.answer, p.image) for p in test] == [("geo3k_test-0", "2\\sqrt{3}", None)]
    assert train[0].metadata["image_bytes"] == png(7, 5)  # the embedded bytes, untouched
    assert pickle.loads(pickle.dumps(train[0])) == train[0]  # problems travel to scoring workers


def test_loads_split_files_lying_directly_in_the_directory(tmp_path):
    write(tmp_path, "validation", [row("<image>Find z.", "12")])
    assert [(p.uid, p.answer) for p in make(tmp_path).load("geo3k_val")] == [("geo3k_val-0", "12")]


def test_a_row_with_two_images_fails_naming_the_file_and_row(tmp_path):
    write(tmp_path / "data", "train", [row("<image>Find x.", "3"), row("<image>Find x.", "3", images=2)])
    with pytest.raises(ValueError, match=r"train-\*\.parquet row 2: expected one image, found 2"):
        make(tmp_path).load("train")


def test_unknown_split_is_a_clear_error(source):
    with pytest.raises(ValueError, match="unknown split 'test'; valid: train, geo3k_test, geo3k_val"):
        make(source).load("test")


def test_missing_directory_names_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        make(missing).load("train")
    message = str(err.value)
    assert "\n" not in message and f"task.source={missing} is no directory" in message
    assert "huggingface-cli download hiyouga/geometry3k --repo-type dataset" in message


def test_missing_split_file_names_the_directory_and_the_layout(tmp_path):
    write(tmp_path / "data", "train", [row("<image>Find x.", "3")])
    with pytest.raises(FileNotFoundError) as err:
        make(tmp_path).load("geo3k_test")
    message = str(err.value)
    assert "\n" not in message and f"no test-*.parquet in {tmp_path} or {tmp_path / 'data'}" in message
    assert "data/test-00000-of-00001.parquet" in message


def test_uncached_hub_dataset_fails_fast_offline():
    """tests/conftest.py sets HF_HUB_OFFLINE=1: one line naming the dataset and the fix, at once."""
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        Geo3KTask(Geo3KConfig(source="nobody/no-such-geometry")).load("train")
    assert time.monotonic() - start < 15
    message = str(err.value)
    assert "\n" not in message and "'nobody/no-such-geometry' (split 'train')" in message
    assert "task.source=DIR" in message


def test_a_hub_row_with_a_decoded_image_is_carried_as_png(source):
    """``datasets`` hands hub rows over with PIL images; they are kept as PNG bytes."""
    problem = geo3k_problem("geo3k_train", 0, {"images": [Image.new("RGB", (5, 2), "red")], "problem": "<image>Find x.",
                                               "answer": "3"})
    image = make(source).prompt(problem)[0]["content"][0]["image"]
    assert problem.metadata["image_bytes"].startswith(b"\x89PNG") and image.size == (5, 2)
    assert image.getpixel((0, 0)) == (255, 0, 0)


# ---- prompt ----------------------------------------------------------------------------------

def test_prompt_puts_the_image_where_the_placeholder_was(source):
    task = make(source)
    first, second = task.load("train")
    [message] = task.prompt(first)
    assert message["role"] == "user" and [part["type"] for part in message["content"]] == ["image", "text"]
    image = message["content"][0]["image"]
    assert isinstance(image, Image.Image) and (image.size, image.mode) == ((7, 5), "RGB")
    assert message["content"][1]["text"] == "Find x. " + VERL_INSTRUCTION  # verl: problem + " " + instruction
    content = task.prompt(second)[0]["content"]
    assert [part["type"] for part in content] == ["text", "image", "text"]
    assert content[0]["text"] == "In the figure " and content[1]["image"].size == (4, 6)
    assert content[2]["text"] == " find y. " + VERL_INSTRUCTION


def test_boxed_template_and_a_problem_without_placeholder(source):
    task = make(source, "boxed")
    problem = replace(task.load("train")[0], question="Find x.")
    content = task.prompt(problem)[0]["content"]
    assert [part["type"] for part in content] == ["image", "text"]  # no placeholder: the image first
    assert content[1]["text"] == "Find x. Put the final answer within \\boxed{}."
    assert all("<image>" not in part["text"] for p in task.load("train")
               for part in task.prompt(p)[0]["content"] if part["type"] == "text")


# ---- reward ----------------------------------------------------------------------------------

@pytest.mark.parametrize("template", ["verl_think", "boxed"])
def test_reference_is_judged_correct_with_full_reward(source, template):
    task = make(source, template)
    problems = task.load("train") + task.load("geo3k_test")
    verdicts = Scorer(task, workers=0).score(problems, [task.reference(p) for p in problems])
    assert [(v.correct, v.reward) for v in verdicts] == [(True, 1.0)] * 3
    assert task.reference(problems[0]).startswith("<think>") == (template == "verl_think")


# (gold, completion, reward, correct, reason). Rewards are verl 0.9.1's geo3k.compute_score (with
# mathruler 0.1.0), run on these very strings, except the two rows marked deviation.
VERL_THINK = [
    ("3", "<think>x</think> So \\boxed{3}.", 1.0, True, "correct"),  # 0.9 * 1 + 0.1 * 1
    ("3", "So \\boxed{3}.", 0.9, True, "correct"),  # right, no think block
    ("3", " <think>x</think> \\boxed{3}", 0.9, True, "correct"),  # fullmatch: nothing before <think>
    ("3", "<think>\\boxed{3}</think>", 0.9, True, "correct"),  # the box must come after </think>
    ("3", "<think>x</think> \\boxed{4}", 0.1, False, "wrong"),  # format only
    ("3", "<think>x</think> 3", 0.0, False, "no_answer"),  # no box: neither
    ("3", "<think></think>\\boxed{}", 0.1, False, "no_answer"),
    ("3", "<think>a</think> \\boxed{2} \\boxed{3}", 1.0, True, "correct"),  # the last box counts
    ("3", "<think>a</think>\\boxed{3.0}", 1.0, True, "correct"),
    ("3", "<think>a</think>\\boxed{x = 3}", 1.0, True, "correct"),
    ("60", "<think>a</think>\\boxed{60^\\circ}", 1.0, True, "correct"),
    ("\\frac{1}{2}", "<think></think>\\boxed{0.5}", 1.0, True, "correct"),
    ("\\frac{1}{2}", "<think>a</think>\\boxed{\\dfrac{1}{2}}", 1.0, True, "correct"),
    ("2\\sqrt{3}", "<think>a</think>\\boxed{\\sqrt{12}}", 1.0, True, "correct"),
    ("2\\sqrt{3}", "<think>a</think>\\boxed{2 \\sqrt { 3 }}", 1.0, True, "correct"),
    ("13.9", "<think>a</think>\\boxed{13.86}", 0.1, False, "wrong"),  # golds are rounded: so must answers be
    ("3", "<think></think>\\fbox{3}", 0.9, True, "correct"),  # deviation: verl 0.0 (mathruler reads \boxed{ only)
    ("\\frac{1}{2}", "<think>a</think>\\boxed{2/4}", 1.0, True, "correct"),  # deviation: verl 0.1 (unreduced)
]


@pytest.mark.parametrize("gold, completion, reward, correct, reason", VERL_THINK)
def test_verl_think_reward(source, gold, completion, reward, correct, reason):
    task = make(source)
    verdict = task.score(replace(task.load("train")[0], answer=gold), completion)
    assert (verdict.reward, verdict.correct, verdict.reason) == (reward, correct, reason)


@pytest.mark.parametrize("completion, reward", [("So \\boxed{3}.", 1.0), ("<think>x</think> \\boxed{3}", 1.0),
                                                ("<think>x</think> \\boxed{4}", 0.0), ("3", 0.0)])
def test_boxed_template_rewards_accuracy_only(source, completion, reward):
    task = make(source, "boxed")
    assert task.score(task.load("train")[0], completion).reward == reward


def test_answer_span_is_the_last_box(source):
    completion = "<think>\\boxed{2}</think> So \\boxed{3}."
    assert [completion[a:b] for a, b in make(source).answer_spans(completion)] == ["3"]
