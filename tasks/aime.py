"""AIME 2024 / 2025 and AMC 2023: competition problems with integer answers.

Sources: the files in ../shared/data (aime24 from QwenLM/Qwen2.5-Math's evaluation data, aime25
from nigelyaoj/Eval_reasoning, amc23 from QwenLM/Qwen2.5-Math; see its README). Every answer is
an integer; some files store it as a float (70.0) or zero-padded ('025'), normalised here to the
integer's decimal text.

Templates, each with the verifier that reads what it asks for:
- ``boxed_cot`` (default), the RiskPO paper's prompt: judged by the math suite's verifier
  (``tasks.math.judge``), so "\\boxed{25}", "\\boxed{025}" and "\\boxed{25.0}" all count;
  reward 1 or 0.
- ``dapo``, DAPO-Math-17k's own prompt ("The last line of your response should be of the form
  Answer: $Answer ..."), judged as the released RiskPO code judges that data and AIME
  (github RTkenny/RiskPO at 65ec40c, verl/utils/reward_score/math_dapo.py ``compute_score``,
  lines 242-272): reward +1 if right, -1 otherwise (no answer included). ``dapo_judge``'s rules:
  only the last 300 characters of the completion are read; the answer is the rest of the line
  after the last "answer:" (any case; spaces, even a line break, around the colon); it and the
  gold are normalised alike: the text after the last "=", with "an ", "a ", spaces, "\\ ",
  "\\;", ",\\!", "{,}", "^\\circ", '"' and "\\$" removed, the first $...$ span's content,
  \\boxed{} / \\text{} / \\textbf{} / \\overline{} unwrapped, "$" dropped and the commas of a
  digits-only answer removed; then compared as text: "025", "25.0" and "25." are wrong there as
  here.

Training: these sets are for evaluation. The RiskPO paper's hard-math runs train on
DAPO-Math-17k, which the ``train`` split loads from the Hugging Face hub
(``BytedTsinghua-SIA/DAPO-Math-17k``; fails at once, with a message, when offline and not cached).
Its rows carry the DAPO prompt, which is cut off and put back by the ``dapo`` template (the
``boxed_cot`` template uses the paper's instruction instead).

Deviations (``dapo``), all in the reference's normalisation, which this one simplifies: the
reference also deletes a fixed list of unit words ("degrees", "cm", "students", ...) and of
LaTeX fragments ("\\text{s}", "\\dots", "\\mathrm{th}", ...), reads \\mbox{} like \\text{},
rewrites \\frac / \\sqrt shorthand, and unwraps a box greedily. So with integer golds these
verdicts differ: "Answer: 25 degrees", "Answer: \\mbox{25}", "Answer: 25\\mathrm{th}" and
"Answer: 25\\dots" are right there and wrong here; "Answer: \\boxed{2}, \\boxed{5}" is wrong there
and right here (read as 25). 250,000 random answers found only such differences.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Optional

from tasks.base import Problem, Task, TaskConfig, Verdict, load_hf_rows, read_jsonl
from tasks.math import TEMPLATES as MATH_TEMPLATES
from tasks.math import judge

# benchmark -> (file, field holding the question)
FILES = {"aime24": ("aime24/test.jsonl", "problem"), "aime25": ("aime25/test.jsonl", "question"),
         "amc23": ("amc23/test.jsonl", "question")}
DAPO_MATH = "BytedTsinghua-SIA/DAPO-Math-17k"
DAPO_TEMPLATE = ("Solve the following math problem step by step. The last line of your response should be of the "
                 "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n{question}\n\n"
                 "Remember to put your answer on its own line after \"Answer:\".")
# DAPO-Math's rows hold the problem inside that instruction; the wrapper is cut off at loading.
_DAPO_WRAPPER = re.compile(r"^Solve the following math problem.*?\n\n(?P<q>.*?)\n\nRemember to put your answer.*$", re.S)

DAPO_TAIL = 300  # characters of a completion the reference reads (math_dapo.py:260)
ANSWER_LINE = re.compile(r"answer\s*:\s*([^\n]+)", re.I)  # math_dapo.py:166; the last one counts
DROPPED = ("an ", "a ", "\\$", "\\ ", " ", "\\;", ",\\!", "{,}", "^\\circ", "^{\\circ}", '"')  # the reference's order
DOLLARS = re.compile(r"\$(.*?)\$")
WRAPPER = re.compile(r"\\(?:boxed|text|textbf|overline)\{([^{}]*)\}")


@dataclass(frozen=True)
class AimeConfig(TaskConfig):
    name: str = "aime"
    template: str = "boxed_cot"  # dapo: DAPO-Math's prompt, "Answer:" verifier and +-1 reward
    train: str = "train"  # DAPO-Math-17k, from the hub
    eval: tuple[str, ...] = ("aime24", "aime25", "amc23")


class AimeTask(Task):
    config_type = AimeConfig
    version = "1"
    templates = {"boxed_cot": MATH_TEMPLATES["boxed_cot"], "dapo": DAPO_TEMPLATE}
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
        if self.config.template == "dapo":
            return dapo_judge(completion, problem.answer)
        return judge(completion, problem.answer)

    def reference(self, problem: Problem, rng: Optional[random.Random] = None) -> str:
        if self.config.template == "dapo":
            return f"So the final answer is {problem.answer}.\n\nAnswer: {problem.answer}"
        return super().reference(problem, rng)

    def answer_spans(self, completion: str) -> list[tuple[int, int]]:
        if self.config.template == "dapo":
            span = dapo_answer_span(completion)
            return [span] if span else []
        return super().answer_spans(completion)


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


def dapo_answer_span(completion: str) -> Optional[tuple[int, int]]:
    """Where ``dapo_judge`` reads its answer: the rest of the last "answer:" line among the
    completion's last DAPO_TAIL characters, or None."""
    start = max(len(completion) - DAPO_TAIL, 0)
    matches = list(ANSWER_LINE.finditer(completion, start))
    return matches[-1].span(1) if matches else None


def dapo_normal(text: str) -> str:
    """An answer as the reference compares it (see the module docstring): '$x = 1,000$.' -> '1000'."""
    text = text.split("=")[-1].replace(".$", "$")
    for junk in DROPPED:
        text = text.replace(junk, "")
    if match := DOLLARS.search(text):
        text = match[1]
    while (unwrapped := WRAPPER.sub(r"\1", text)) != text:
        text = unwrapped
    text = text.replace("$", "")
    return (text.replace(",", "") if text.replace(",", "").isdigit() else text).strip()


def dapo_judge(completion: str, gold: str) -> Verdict:
    """DAPO-Math's verifier: +1 when the last "Answer:" line matches the gold, else -1."""
    span = dapo_answer_span(completion)
    if span is None:
        return Verdict(-1.0, False, None, "no_answer")
    answer = dapo_normal(completion[span[0] : span[1]])
    if answer != dapo_normal(gold):
        return Verdict(-1.0, False, answer, "wrong")
    return Verdict(1.0, True, answer, "correct")
