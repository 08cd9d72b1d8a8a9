"""AIME 2024 / 2025 and AMC 2023: competition problems with integer answers.

Sources: the files in ../shared/data (aime24 from QwenLM/Qwen2.5-Math's evaluation data, aime25
from nigelyaoj/Eval_reasoning, amc23 from QwenLM/Qwen2.5-Math; see its README). Every answer is
an integer; some files store it as a float (70.0) or zero-padded ('025'), normalised here to the
integer's decimal text. Judged by the math suite's verifier (``tasks.math.judge``), so
"\\boxed{25}", "\\boxed{025}" and "\\boxed{25.0}" all count.

Training: these sets are for evaluation. The RiskPO paper's hard-math runs train on
DAPO-Math-17k, which the ``train`` split loads from the Hugging Face hub
(``BytedTsinghua-SIA/DAPO-Math-17k``; fails at once, with a message, when offline and not cached).

Deviations: none known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.base import Problem, Task, TaskConfig, Verdict, load_hf_rows, read_jsonl
from tasks.math import TEMPLATES as MATH_TEMPLATES
from tasks.math import judge

# benchmark -> (file, field holding the question)
FILES = {"aime24": ("aime24/test.jsonl", "problem"), "aime25": ("aime25/test.jsonl", "question"),
         "amc23": ("amc23/test.jsonl", "question")}
DAPO_MATH = "BytedTsinghua-SIA/DAPO-Math-17k"
# DAPO-Math wraps each problem in an instruction asking for an "Answer:" line; the suite's own
# template asks for \boxed{} instead, so the wrapper is cut off.
_DAPO_WRAPPER = re.compile(r"^Solve the following math problem.*?\n\n(?P<q>.*?)\n\nRemember to put your answer.*$", re.S)


@dataclass(frozen=True)
class AimeConfig(TaskConfig):
    name: str = "aime"
    template: str = "boxed_cot"
    train: str = "train"  # DAPO-Math-17k, from the hub
    eval: tuple[str, ...] = ("aime24", "aime25", "amc23")


class AimeTask(Task):
    config_type = AimeConfig
    version = "1"
    templates = {"boxed_cot": MATH_TEMPLATES["boxed_cot"]}  # the RiskPO paper's prompt
    benchmarks = ("aime24", "aime25", "amc23")

    def load(self, split: str) -> list[Problem]:
        if split == "train":
            return [dapo_problem(i, row) for i, row in enumerate(load_hf_rows(DAPO_MATH, "train"))]
        if split not in FILES:
            raise ValueError(f"aime: unknown split {split!r}; valid: train, {', '.join(self.benchmarks)}")
        path, field = FILES[split]
        return [
            Problem(uid=f"{split}-{row['id']}", benchmark=split, question=row[field], answer=integer_text(row["answer"]),
                    metadata={"url": row.get("url")})
            for row in read_jsonl(self.data_file(path))
        ]

    def score(self, problem: Problem, completion: str) -> Verdict:
        return judge(completion, problem.answer)


def integer_text(value: object) -> str:
    """'025', 70.0, '-1' -> '25', '70', '-1'; anything not integral is a data error."""
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"expected an integer answer, got {value!r}")
    return str(int(number))


def dapo_problem(index: int, row: dict) -> Problem:
    """A DAPO-Math-17k row (chat ``prompt``, ``reward_model.ground_truth``) as a Problem."""
    content = row["prompt"][0]["content"]
    match = _DAPO_WRAPPER.match(content)
    return Problem(uid=f"dapo_math-{index}", benchmark="dapo_math", question=match["q"] if match else content,
                   answer=str(row["reward_model"]["ground_truth"]), metadata={"source": row.get("data_source")})
