"""Geometry3K: geometry problems over a diagram (train 2,101, validation 300, test 601).

Sources, checked for this module:
- Data: the hub dataset ``hiyouga/geometry3k`` (its README, converted from lupantech/InterGPS):
  parquet files ``data/{train,validation,test}-*.parquet`` with ``images`` (a list holding the
  one diagram, each a {"bytes", "path"} struct), ``problem`` (text with an "<image>" placeholder,
  as in "<image>Find x.") and ``answer`` (LaTeX or a number); it also has ``id``, ``choices``
  and ``ground_truth``, which verl does not read and neither does this module.
- Prompt: verl's examples/data_preprocess/geo3k.py (github volcengine/verl at 0646a9b, which
  also reads a local copy as ``data/train-00000-of-00001.parquet``): the user turn is
  ``problem + " " + instruction``, the instruction below (``verl_think``), and
  verl/utils/dataset/rl_dataset.py ``_build_messages`` (verl 0.9.1, /work/main/.venv-verl)
  splits that text at "<image>" into a transformers content list with the image entry where the
  placeholder was and the text around it (empty pieces dropped). The released RiskPO code,
  built on verl, has no Geometry3K script (../shared/RISKPO.md), so verl's example is followed.
- Reward: verl/utils/reward_score/geo3k.py (verl 0.9.1, picked for data_source
  "hiyouga/geometry3k"): ``0.9 * acc + 0.1 * format`` where format is ``re.fullmatch(
  r"<think>.*</think>.*\\boxed\\{.*\\}.*", completion, re.DOTALL)`` (so nothing may precede
  "<think>", not even a space) and acc is mathruler's ``grade_answer`` of the last \\boxed{}'s
  content (hiyouga/MathRuler, mathruler/grader.py). Those rewards were reproduced by running it
  with mathruler 0.1.0 on the cases of tests/tasks/test_geo3k.py.

Template ``verl_think`` (default) scores as above, ``correct`` being the accuracy part; template
``boxed`` asks for no think tags, so its reward is the accuracy alone (1 or 0).

Images: ``Problem.image`` is a file path and Geometry3K has no files, only embedded bytes. They
stay in ``metadata["image_bytes"]`` (as stored; hub rows, whose images ``datasets`` decodes, are
encoded back, as PNG) and ``prompt`` decodes them to an RGB PIL image. Nothing is written to disk,
so there is no cache to go stale; the cost is some tens of KB per problem, which the scoring
workers receive too.

Splits: ``train`` is the train split; benchmarks ``geo3k_test`` (test, what verl validates on)
and ``geo3k_val`` (validation). ``task.source`` is a local copy when it is an existing
directory, holding ``<split>-*.parquet`` directly or under ``data/`` (``huggingface-cli download
hiyouga/geometry3k --repo-type dataset --local-dir DIR`` lays them out so); else a hub name
(owner/name, loaded through ``datasets``); anything else fails naming the path. A uid is the
benchmark and the row index (verl's ``extra_info.index``).

Deviations:
- Accuracy is the math suite's judge (tasks/math.py: math-verify) instead of mathruler: it also
  reads \\fbox{} and ``\\boxed 5`` (still unformatted: 0.9, where verl gives 0), and accepts
  unreduced fractions ("2/4" for "1/2"), which mathruler refuses.
- A problem without "<image>" gets the image before the text (verl would send no image).
"""

from __future__ import annotations

import io
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional

from tasks.base import Problem, Task, TaskConfig, Verdict, load_hf_rows
from tasks.math import judge, problems_from

HUB = "hiyouga/geometry3k"
PLACEHOLDER = "<image>"
HUB_ID = re.compile(r"[\w-][\w.-]*/[\w.-]+")  # owner/name
SPLITS = {"train": "train", "geo3k_test": "test", "geo3k_val": "validation"}  # ours -> the dataset's
# examples/data_preprocess/geo3k.py's instruction_following, after the problem and a space
VERL_INSTRUCTION = ("You FIRST think about the reasoning process as an internal monologue and then provide the "
                    "final answer. The reasoning process MUST BE enclosed within <think> </think> tags. "
                    "The final answer MUST BE put in \\boxed{{}}.")
TEMPLATES = {
    "verl_think": "{question} " + VERL_INSTRUCTION,
    "boxed": "{question} Put the final answer within \\boxed{{}}.",
}
FORMAT = re.compile(r"<think>.*</think>.*\\boxed\{.*\}.*", re.DOTALL)  # verl geo3k.py format_reward
FORMAT_SCORE = 0.1  # verl geo3k.py compute_score's format_score: the rest (0.9) is accuracy


@dataclass(frozen=True)
class Geo3KConfig(TaskConfig):
    name: str = "geo3k"
    template: str = "verl_think"  # verl's prompt and reward; boxed: a plain instruction, reward = accuracy
    train: str = "train"
    eval: tuple[str, ...] = ("geo3k_test",)
    source: str = HUB  # a hub dataset name, or a directory holding its parquet files


class Geo3KTask(Task):
    config_type = Geo3KConfig
    version = "1"
    templates = TEMPLATES
    benchmarks = ("geo3k_test", "geo3k_val")
    config: Geo3KConfig

    def load(self, split: str) -> list[Problem]:
        name = self.config.train if split == "train" else split
        if name not in SPLITS:
            raise ValueError(f"geo3k: unknown split {split!r}; valid: train, {', '.join(self.benchmarks)}")
        benchmark = "geo3k_train" if name == "train" else name
        source, rows = self._rows(SPLITS[name])
        return problems_from(source, rows, lambda index, row: geo3k_problem(benchmark, index, row))

    def _rows(self, split: str) -> tuple[str, list[dict]]:
        """(where the rows came from, the rows) of one of the dataset's splits."""
        source = self.config.source
        root = Path(source).expanduser()
        if root.is_dir():
            return local_rows(root, split)
        if not HUB_ID.fullmatch(source):
            raise FileNotFoundError(
                f"geo3k: task.source={source} is no directory: set it to a download of {HUB} (huggingface-cli "
                f"download {HUB} --repo-type dataset --local-dir DIR) or to the hub name {HUB}")
        try:
            return source, load_hf_rows(source, split)
        except FileNotFoundError as err:  # load_hf_rows' advice names task.data_dir, which geo3k does not read
            raise FileNotFoundError(
                f"geo3k: Hugging Face dataset {source!r} (split {split!r}) is neither cached nor reachable here "
                f"({type(err.__cause__).__name__}): download it on a connected machine (huggingface-cli download "
                f"{source} --repo-type dataset --local-dir DIR) and set task.source=DIR") from err

    def prompt(self, problem: Problem) -> list[dict[str, Any]]:
        """verl's user turn: the template's text, the image where "<image>" was (first when absent)."""
        text = self.templates[self.config.template].format(question=problem.question)
        before, found, after = text.partition(PLACEHOLDER)
        if not found:
            before, after = "", text
        image = {"type": "image", "image": open_image(problem.metadata["image_bytes"])}
        parts = [{"type": "text", "text": before}] if before else []
        parts += [image] + ([{"type": "text", "text": after}] if after else [])
        return [{"role": "user", "content": parts}]

    def score(self, problem: Problem, completion: str) -> Verdict:
        verdict = judge(completion, problem.answer, question=problem.question)
        if self.config.template != "verl_think":
            return verdict
        formatted = float(FORMAT.fullmatch(completion) is not None)
        return replace(verdict, reward=(1.0 - FORMAT_SCORE) * verdict.reward + FORMAT_SCORE * formatted)

    def reference(self, problem: Problem, rng: Optional[random.Random] = None) -> str:
        """The gold in \\boxed{}, after a think block when the template asks for one."""
        boxed = super().reference(problem, rng)
        if self.config.template == "verl_think":
            return f"<think>\nRead the diagram, then solve.\n</think>\n{boxed}"
        return boxed


def local_rows(root: Path, split: str) -> tuple[str, list[dict]]:
    """The rows of ``<split>-*.parquet`` under ``root`` or ``root/data`` (shards in name order)."""
    import pyarrow.parquet as pq  # only local copies need it

    files = sorted(root.glob(f"{split}-*.parquet")) or sorted(root.glob(f"data/{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"geo3k: no {split}-*.parquet in {root} or {root / 'data'}: task.source must hold {HUB}'s files as "
            f"the hub lays them out (data/{split}-00000-of-00001.parquet)")
    return str(files[0].parent / f"{split}-*.parquet"), [row for f in files for row in pq.read_table(f).to_pylist()]


def geo3k_problem(benchmark: str, index: int, row: Mapping[str, Any]) -> Problem:
    """A dataset row (one image, a problem with at most one "<image>", an answer) as a Problem."""
    images = row["images"]
    if len(images) != 1:
        raise ValueError(f"expected one image, found {len(images)}")
    if row["problem"].count(PLACEHOLDER) > 1:
        raise ValueError(f"the problem has {row['problem'].count(PLACEHOLDER)} {PLACEHOLDER} placeholders for one image")
    return Problem(uid=f"{benchmark}-{index}", benchmark=benchmark, question=row["problem"], answer=str(row["answer"]),
                   metadata={"image_bytes": image_bytes(images[0])})


def image_bytes(image: Any) -> bytes:
    """An image's encoded bytes: a parquet {"bytes", "path"} struct's, or a decoded PIL image's as PNG."""
    if isinstance(image, Mapping):
        if not image.get("bytes"):
            raise ValueError(f"the image has no embedded bytes (path {image.get('path')!r})")
        return image["bytes"]
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def open_image(data: bytes) -> Any:
    """The RGB PIL image of encoded bytes."""
    from PIL import Image  # only prompts need it

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")
