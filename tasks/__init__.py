"""The task registry: one module per suite, one name everywhere.

``math`` is tasks/math.py, the registry key and conf/task/math.yaml. Adding a suite: write the
module (a config dataclass subclassing TaskConfig and a Task subclass with ``load``, ``score``
and named prompt templates; ``reference`` too when its prompts ask for something other than a
\\boxed{} answer), add it to ``TASKS`` below, and add conf/task/<name>.yaml pointing at
``<name>_schema`` (bench/compose.py registers every schema with Hydra). tests/tasks/test_contract.py
then checks it on the real files.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from tasks.aime import AimeTask
from tasks.arith import ArithTask
from tasks.base import Problem, Task, TaskConfig, Verdict
from tasks.dots import DotsTask
from tasks.geo3k import Geo3KTask
from tasks.humaneval import HumanEvalTask
from tasks.math import MathTask
from tasks.mathvista import MathVistaTask
from tasks.sums import SumsTask

TASKS: dict[str, type[Task]] = {
    "math": MathTask,
    "aime": AimeTask,
    "humaneval": HumanEvalTask,
    "mathvista": MathVistaTask,
    "arith": ArithTask,
    "sums": SumsTask,
    "dots": DotsTask,
    "geo3k": Geo3KTask,
}


def get_task(name: str) -> type[Task]:
    """The task class registered under ``name``."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
    return TASKS[name]


def build(config: Any) -> Task:
    """A task from its config: a dataclass, or a composed Hydra node (validated here)."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_object(config)
    return get_task(config.name)(config)



__all__ = ["TASKS", "Problem", "Task", "TaskConfig", "Verdict", "build", "get_task"]
