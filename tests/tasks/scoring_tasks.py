"""A task whose verifier misbehaves on command, for tests/tasks/test_scoring.py: it runs in the
real Scorer's spawned workers, which import it by name (pytest puts this directory on sys.path
and spawn passes sys.path on).

A completion is a list of commands, "name=value" joined by ";":
- ``crash=always``: the worker kills itself with SIGKILL (the OOM killer, a segfault in C code);
  ``crash=<path>``: the same, unless ``path`` exists, which it creates first (a crash that
  does not come back).
- ``needs=<seconds>``: a judgement that takes that long, against the config's ``timeout_s``: past
  it, the verifier's own ``timeout`` verdict, as tasks.math gives.
- ``sleep=<seconds>``: a judgement stuck where no time limit of the verifier reaches it.
- ``log=<directory>``: a file there records when the judgement ran ("start end", monotonic).
Otherwise the completion is judged correct.
"""

import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tasks.base import Problem, Task, TaskConfig, Verdict


@dataclass(frozen=True)
class TrickyConfig(TaskConfig):
    name: str = "tricky"
    template: str = "plain"
    train: str = "train"
    timeout_s: int = 1  # the verifier's time limit (as tasks.math's): a re-judge lengthens it


class TrickyTask(Task):
    config_type = TrickyConfig
    templates = {"plain": "{question}"}
    config: TrickyConfig

    def score(self, problem: Problem, completion: str) -> Verdict:
        start = time.monotonic()
        commands = dict(part.split("=", 1) for part in completion.split(";") if "=" in part)
        crash = commands.get("crash")
        if crash == "always" or (crash is not None and not os.path.exists(crash)):
            if crash != "always":
                Path(crash).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(commands.get("sleep", 0)))
        needs = float(commands.get("needs", 0))
        time.sleep(min(needs, self.config.timeout_s))
        if "log" in commands:
            Path(commands["log"], uuid.uuid4().hex).write_text(f"{start} {time.monotonic()}")
        if needs > self.config.timeout_s:
            return Verdict(0.0, False, completion, "timeout")
        return Verdict(1.0, True, completion, "correct")
