"""The task registry, its Hydra configs, and parallel scoring with its watchdog."""

import time
from dataclasses import dataclass

import pytest

import tasks
from bench.compose import CONF_DIR, ConfigError, compose
from tasks.arith import ArithConfig, ArithTask, demonstration
from tasks.base import Problem, Task, TaskConfig, Verdict
from tasks.scoring import Scorer

TASK_YAMLS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))


def test_every_task_has_a_yaml_and_composes():
    assert set(tasks.TASKS) == set(TASK_YAMLS)
    for name in TASK_YAMLS:
        task = tasks.build(compose("config", [f"task={name}"]).task)
        assert isinstance(task, tasks.get_task(name)) and task.version
        assert task.config.template in task.templates


def test_unknown_task_lists_valid_names():
    with pytest.raises(KeyError, match="valid: math, aime, humaneval, mathvista, arith"):
        tasks.get_task("gsm")


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["task=math", "task.template=fancy"], "task.template='fancy' is not one of"),
        (["task=aime", "task.eval=[aime26]"], "unknown split 'aime26'"),
        (["task=arith", "task.operators=/"], "operators"),
        (["task=arith", "task.digitz=3"], "digitz"),
    ],
)
def test_bad_task_config_fails_at_compose_time(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        compose("config", overrides)


def test_data_dir_from_config_names_the_missing_path(tmp_path):
    task = tasks.build(compose("config", ["task=math", f"task.data_dir={tmp_path}"]).task)
    with pytest.raises(FileNotFoundError, match="task.data_dir="):
        task.load("math500")


def test_scoring_in_worker_processes_matches_scoring_inline():
    task = ArithTask(ArithConfig(train_size=50, eval_size=40))
    problems = task.load("arith")
    completions = [demonstration(p) if i % 3 else "\\boxed{0.5}" for i, p in enumerate(problems)]
    inline = Scorer(task, workers=0).score(problems, completions)
    with Scorer(task, workers=2) as scorer:
        assert scorer.score(problems, completions) == inline
        assert scorer.score(problems[:3], completions[:3]) == inline[:3]  # the pool is reused
    assert sum(v.correct for v in inline) == sum(1 for i in range(40) if i % 3)


@dataclass(frozen=True)
class StallConfig(TaskConfig):
    name: str = "stall"
    template: str = "plain"
    train: str = "train"


class StallTask(Task):
    """Judges "stall" by hanging far past any limit, the way a stuck verifier would."""

    config_type = StallConfig
    templates = {"plain": "{question}"}

    def score(self, problem: Problem, completion: str) -> Verdict:
        if completion == "stall":
            time.sleep(600)
        return Verdict(1.0, True, completion, "correct")


def test_a_stuck_verifier_times_out_and_the_scorer_goes_on():
    problem = Problem(uid="p", benchmark="train", question="q", answer="a")
    completions = ["ok", "stall", "ok", "ok"]
    with Scorer(StallTask(StallConfig()), workers=1, seconds_per_item=2.0) as scorer:
        start = time.monotonic()
        verdicts = scorer.score([problem] * 4, completions)
        assert time.monotonic() - start < 60
        assert [v.reason for v in verdicts] == ["correct", "timeout", "correct", "correct"]
        assert scorer.score([problem], ["ok"])[0].correct


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="2 problems but 1 completions"):
        Scorer(ArithTask(ArithConfig()), workers=0).score([None, None], ["x"])


KILLED_PARENT = """
import os, sys, time
from tasks.arith import ArithConfig, ArithTask, demonstration
from tasks.scoring import Scorer
task = ArithTask(ArithConfig(train_size=50, eval_size=40))
problems = task.load("arith")
scorer = Scorer(task, workers=2)
scorer.score(problems, [demonstration(p) for p in problems])
print(" ".join(str(pid) for pid in scorer._pool._processes), flush=True)
time.sleep(600)
"""


def test_scorer_workers_exit_when_their_trainer_is_killed():
    import os
    import signal
    import subprocess
    import sys

    parent = subprocess.Popen([sys.executable, "-c", KILLED_PARENT], stdout=subprocess.PIPE, text=True,
                              cwd=CONF_DIR.parent)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") and not zombie(pid) for pid in workers):
        time.sleep(0.2)
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}") and not zombie(pid)]


def zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
