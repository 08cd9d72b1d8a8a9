"""HumanEval: complete a Python function; the task's own tests judge it, run in a sandbox.

Source: Chen et al., "Evaluating Large Language Models Trained on Code" (arXiv 2107.03374) and
its harness, github.com/openai/human-eval (data/HumanEval.jsonl.gz: 164 problems with
task_id, prompt, canonical_solution, test, entry_point; human_eval/execution.py runs
``prompt + completion + test + check(entry_point)`` in a separate process with a time limit).

Judging. The code is the prompt followed by the completion's code: the first fenced block that
defines ``entry_point``, else the first fenced block (```python, ```py or a bare fence; an
unclosed fence, cut by the length limit, runs to the end), on a new line; or, with no fence, the
completion itself as the function body, cut at the Codex paper's stop sequences (a line starting
``class``, ``def``, ``#``, ``if`` or ``print``). The sandbox (tasks/sandbox.py, where the
isolation table lives) runs that code in the program's process; the test process runs the prompt
(for the helpers the tests call: HumanEval/32's ``poly``, /38's ``encode_cyclic``, /50's
``encode_shift``), the test, and ``check(entry_point)`` with ``entry_point`` rebound to the
program's function, which the tests call with plain data over the sandbox's channel. Only the
test process's token, written after the last part returns, counts as a pass. Reasons: passed,
failed (an assert failed), timeout (wall or CPU limit), error: <a builtin exception's name (what
the program's exception derives from), a signal, "exit N" when the program left early, or
BadMessage when it sent something that is not an answer>, no_code (nothing to run); never text
the program chose.

Deviations:
- No training split exists: ``train`` defaults to the benchmark itself (training on it is
  contamination; the default is for smoke runs, and ``load("train")`` says so).
- Stop sequences are applied when judging, not only when sampling, so an engine that samples
  past the function (a base model writing the next one) is not failed for it.
- The program cannot read the answers: its filesystem holds only the interpreter, the system
  libraries and its working directory, and ``task.data_dir`` (resolved, in whatever form it is
  given) is hidden from both processes besides; human-eval runs with the whole machine readable.
- The tests run in their own process: an object whose ``__eq__`` lies, a patched ``math.fabs``
  or a hook that rebinds ``check`` reaches nothing, and a completion that redefines a helper of
  the prompt (``poly``) changes its own copy, not the tests' (in human-eval it changes both).
  The price: the entry point must return plain data (None, bool, numbers, str, bytes, and lists,
  tuples, dicts, sets of them; numpy scalars count as numbers); a generator or a numpy array is
  an ``error: TypeError`` where human-eval would compare it.
- Limits: 5 s wall and 3 s CPU per process (human-eval: 3 s wall, which a loaded machine can
  exceed; the slowest canonical solution, HumanEval/75, takes 0.2 s here), 1 GiB address space.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Optional

from tasks.base import Problem, Task, TaskConfig, Verdict, read_jsonl
from tasks.sandbox import Limits, SandboxResult, run_python

DATA = "humaneval/HumanEval.jsonl.gz"

TEMPLATES = {
    # base model: the prompt is the start of a file; the model writes the function body
    "complete": "{question}",
    # chat model: asks for the whole function in a fenced block, which ``extract`` looks for first
    "instruct": (
        "Complete the following Python function. Reply with the complete function (imports and "
        "helpers included) in a single ```python code block.\n\n```python\n{question}```"
    ),
}

FENCE = re.compile(r"```(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # Codex paper, sec. 2.3


@dataclass(frozen=True)
class HumanEvalConfig(TaskConfig):
    name: str = "humaneval"
    template: str = "complete"
    train: str = "humaneval"
    eval: tuple[str, ...] = ("humaneval",)
    wall_seconds: float = 5.0  # per completion, start-up included (human-eval: 3 s)
    cpu_seconds: int = 3  # per process
    memory_mb: int = 1024  # address space per process
    file_size_mb: int = 16  # largest file the program may write (stdout included)
    processes: int = 16  # processes and threads the program may have at once


class HumanEvalTask(Task):
    config_type = HumanEvalConfig
    config: HumanEvalConfig
    version = "1"
    templates = TEMPLATES
    benchmarks = ("humaneval",)
    votes = False  # programs are not compared by majority vote
    comparable_answers = False  # nor counted as distinct answers: two programs can differ and agree

    def answer_spans(self, completion: str) -> list[tuple[int, int]]:
        return []  # the whole program is the answer: no entropy split

    @property
    def limits(self) -> Limits:
        c = self.config
        return Limits(c.wall_seconds, c.cpu_seconds, c.memory_mb, c.file_size_mb, c.processes)

    def load(self, split: str) -> list[Problem]:
        if split == "train":
            raise ValueError("HumanEval has no training split: set task.train=humaneval to train on the benchmark")
        if split not in self.benchmarks:
            raise ValueError(f"humaneval: unknown split {split!r}; valid: {', '.join(self.benchmarks)}")
        return [
            Problem(
                uid=row["task_id"],
                benchmark="humaneval",
                question=row["prompt"],
                answer=row["canonical_solution"],
                metadata={"test": row["test"], "entry_point": row["entry_point"]},
            )
            for row in read_jsonl(self.data_file(DATA))
        ]

    def score(self, problem: Problem, completion: str) -> Verdict:
        code = extract(problem, completion)
        if code is None:
            return Verdict(0.0, False, None, "no_code")
        entry_point = problem.metadata["entry_point"]
        call = f"{entry_point} = program.{entry_point}\ncheck({entry_point})"  # the program's function, by the channel
        tests = [problem.question, problem.metadata["test"], call]
        result = run_python(code, self.limits, tests=tests, hide=[self.data_dir.resolve()])
        return Verdict(float(result.finished), result.finished, code, reason(result))

    def reference(self, problem: Problem, rng: Optional[random.Random] = None) -> str:
        """The canonical solution as the template asks: the body after the prompt (complete), or
        the whole function in a ```python block (instruct)."""
        if self.config.template == "instruct":
            return f"```python\n{problem.question}{problem.answer}```"
        return problem.answer


def extract(problem: Problem, completion: str) -> Optional[str]:
    """The program's first part (prompt + the completion's code), or None if there is no code."""
    blocks = FENCE.findall(completion)
    if blocks:
        entry_point = problem.metadata["entry_point"]
        body = next((b for b in blocks if re.search(rf"\bdef\s+{re.escape(entry_point)}\s*\(", b)), blocks[0])
        return problem.question + "\n" + body if body.strip() else None
    cut = min((i for i in (completion.find(stop) for stop in STOP) if i >= 0), default=len(completion))
    body = completion[:cut]
    return problem.question + body if body.strip() else None


def reason(result: SandboxResult) -> str:
    if result.finished:
        return "passed"
    if result.timed_out:
        return "timeout"
    return "failed" if result.error == "AssertionError" else f"error: {result.error}"
