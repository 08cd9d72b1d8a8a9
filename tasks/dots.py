"""dots: count the dots in a small picture, the CPU testbed for vision-language policies.

The project's tiny vision-language model (bench/models/tiny.py, ``TINY_MODELS["dots"]``) learns
to read these pictures within minutes on two cores, and only roughly, so a base policy at
temperature 1 is right on some samples and wrong on others: what RL needs to move.

- A problem is a ``image_size`` x ``image_size`` white picture with between ``min_dots`` and
  ``max_dots`` black disks (radius 4 pixels, none touching another or the border), and the
  question "How many dots are in the image?". The picture is drawn from the problem's seed when
  the prompt is built (``render``), so no image file exists or is needed.
- Splits: each is drawn from its own seeded stream (``{seed}-train``, ``{seed}-dots``,
  ``{seed}-dots_val``); pictures are continuous random layouts, so no eval picture is a train
  picture (the test checks it on the layouts).
- The answer is the last ``\\boxed{k}``: one to three ASCII digits, spaces around allowed.
  Reasons: "correct", "wrong", "no_answer" (no box, or not a number). ``extracted`` is the number
  without leading zeros.
- ``reference`` is "The answer is \\boxed{k}.": what the warm start imitates.

Deviations: none (this task is the project's own).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Optional

from tasks.base import Problem, Task, TaskConfig, Verdict
from tasks.extract import last_boxed

QUESTION = "How many dots are in the image?"
COUNT = re.compile(r"\s*([0-9]{1,3})\s*")
RADIUS = 4  # pixels: every disk the same, so the ink in a picture grows with the count
TEMPLATES = {
    "plain": "{question}",  # the tiny model learns the answer format from demonstrations
    "boxed": "{question} Put the final answer in \\boxed{{}}.",
}


@dataclass(frozen=True)
class DotsConfig(TaskConfig):
    name: str = "dots"
    template: str = "plain"
    train: str = "train"
    eval: tuple[str, ...] = ("dots",)
    image_size: int = 56  # pixels per side: 4 x 4 patches of 14 pixels, 4 image tokens for the tiny model
    min_dots: int = 1
    max_dots: int = 9
    train_size: int = 20_000
    eval_size: int = 500
    seed: int = 0  # seeds the problem set, not the run

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.min_dots <= self.max_dots:
            raise ValueError(f"dots: need 0 <= min_dots <= max_dots, got {self.min_dots}, {self.max_dots}")
        # every disk needs a free (2 r + 2)^2 cell at least: the packing must be possible
        cell = 2 * RADIUS + 2
        if self.max_dots > (self.image_size // cell) ** 2:
            raise ValueError(f"dots: {self.max_dots} dots do not fit in {self.image_size} pixels; "
                             f"raise image_size or lower max_dots")


class DotsTask(Task):
    config_type = DotsConfig
    version = "1"
    templates = TEMPLATES
    benchmarks = ("dots", "dots_val")
    config: DotsConfig

    def load(self, split: str) -> list[Problem]:
        c = self.config
        if split not in ("train", *self.benchmarks):
            raise ValueError(f"dots: unknown split {split!r}; valid: train, {', '.join(self.benchmarks)}")
        rng = random.Random(f"{c.seed}-{split}")
        problems = []
        for i in range(c.eval_size if split != "train" else c.train_size):
            count, seed = rng.randint(c.min_dots, c.max_dots), rng.getrandbits(64)
            problems.append(Problem(uid=f"dots-{split}-{i}", benchmark=split, question=QUESTION, answer=str(count),
                                    metadata={"count": count, "seed": seed, "size": c.image_size}))
        return problems

    def prompt(self, problem: Problem) -> list[dict[str, Any]]:
        text = self.templates[self.config.template].format(question=problem.question)
        return [{"role": "user", "content": [{"type": "image", "image": render(problem)},
                                             {"type": "text", "text": text}]}]

    def score(self, problem: Problem, completion: str) -> Verdict:
        boxed = last_boxed(completion)
        match = COUNT.fullmatch(boxed) if boxed else None
        if match is None:
            return Verdict(0.0, False, boxed or None, "no_answer")
        count = str(int(match.group(1)))
        right = count == problem.answer
        return Verdict(float(right), right, count, "correct" if right else "wrong")

    def reference(self, problem: Problem, rng: Optional[random.Random] = None) -> str:
        return f"The answer is \\boxed{{{problem.answer}}}."


def layout(count: int, size: int, seed: int) -> list[tuple[int, int, int]]:
    """(x, y, r) of each disk: inside the picture, at least one pixel apart. Rejection sampling,
    restarted whole when a disk finds no room."""
    rng = random.Random(seed)
    while True:
        disks: list[tuple[int, int, int]] = []
        for _ in range(count):
            for _attempt in range(200):
                r = RADIUS
                x, y = rng.randint(r + 1, size - r - 2), rng.randint(r + 1, size - r - 2)
                if all((x - a) ** 2 + (y - b) ** 2 > (r + q + 1) ** 2 for a, b, q in disks):
                    disks.append((x, y, r))
                    break
            else:
                break
        if len(disks) == count:
            return disks


def render(problem: Problem) -> Any:
    """The problem's picture: a PIL RGB image, the same for the same problem every time."""
    from PIL import Image, ImageDraw  # only prompts need it

    size = problem.metadata["size"]
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    for x, y, r in layout(problem.metadata["count"], size, problem.metadata["seed"]):
        draw.ellipse((x - r, y - r, x + r, y + r), fill="black")
    return image
