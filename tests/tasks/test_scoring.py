"""tasks.scoring.Scorer when a judgement misbehaves: a worker that dies, a verifier that times out
under load, a chunk stuck past its limit. Each runs the real Scorer with spawned workers on
TrickyTask (scoring_tasks.py), whose completions say how to misbehave."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from scoring_tasks import TrickyConfig, TrickyTask

from tasks.base import Problem
from tasks.humaneval import HumanEvalConfig
from tasks.math import MathConfig
from tasks.scoring import RETRY_FACTOR, Scorer, patient

PROBLEM = Problem(uid="p", benchmark="train", question="q", answer="a")


def reasons(scorer, completions):
    return [v.reason for v in scorer.score([PROBLEM] * len(completions), completions)]


def test_a_worker_that_dies_costs_only_the_completion_that_killed_it():
    completions = ["ok"] * 6 + ["crash=always"] + ["ok"] * 6
    with Scorer(TrickyTask(TrickyConfig()), workers=2) as scorer:
        verdicts = scorer.score([PROBLEM] * len(completions), completions)
        assert [v.correct for v in verdicts] == [c == "ok" for c in completions]
        assert verdicts[6].reason == "error: the scoring worker died (killed by SIGKILL), twice on this completion"
        assert "\n" not in verdicts[6].reason and verdicts[6].reward == 0.0
        assert reasons(scorer, ["ok", "ok"]) == ["correct", "correct"]  # a fresh pool took over


def test_a_worker_that_dies_once_is_forgiven(tmp_path):
    completions = ["ok", f"crash={tmp_path / 'crashed'}", "ok", "ok"]
    with Scorer(TrickyTask(TrickyConfig()), workers=2) as scorer:
        assert reasons(scorer, completions) == ["correct"] * 4
    assert (tmp_path / "crashed").exists()  # it did crash, the first time


def test_a_worker_killed_while_idle_is_replaced():
    with Scorer(TrickyTask(TrickyConfig()), workers=1) as scorer:
        assert reasons(scorer, ["ok"]) == ["correct"]
        (worker,) = scorer._pool._processes.values()
        worker.kill()
        worker.join()
        assert reasons(scorer, ["ok", "ok"]) == ["correct", "correct"]


def test_a_verifier_timeout_is_judged_again_alone_with_a_longer_limit(tmp_path):
    """A judgement that needs 2 s gets a timeout under the 1 s limit (as on a loaded machine), then
    its verdict on the second try, with the 4 s limit, while nothing else is judged. In-process
    scoring (workers=0) does the same. (One that needs longer stays a timeout: the pathological
    answers of tests/tasks/test_math.py and the stuck verifier of tests/tasks/test_registry.py.)"""
    log = tmp_path / "log"
    log.mkdir()
    completions = [f"log={log}", f"log={log};needs=2", f"log={log}", f"log={log}", f"log={log}"]
    task = TrickyTask(TrickyConfig(timeout_s=1))
    with Scorer(task, workers=2) as scorer:
        assert reasons(scorer, completions) == ["correct"] * 5
    runs = sorted(tuple(map(float, path.read_text().split())) for path in log.iterdir())
    again = [run for run in runs if run[1] - run[0] > 1.5]
    assert len(runs) == 6 and len(again) == 1  # 5 first judgements (one cut at 1 s), 1 re-judgement of 2 s
    assert all(end <= again[0][0] or start >= again[0][1] for start, end in runs if (start, end) != again[0])
    assert reasons(Scorer(task, workers=0), ["needs=2", "ok"]) == ["correct", "correct"]


def test_a_stuck_chunk_is_judged_again_alone_with_a_longer_limit():
    """seconds_per_item=1: a judgement stuck for 2 s is stopped, then judged again with 4 s."""
    with Scorer(TrickyTask(TrickyConfig()), workers=2, seconds_per_item=1.0) as scorer:
        assert reasons(scorer, ["ok", "sleep=2", "ok", "ok"]) == ["correct"] * 4


def test_the_longer_limit_of_a_re_judge():
    assert patient(MathConfig(timeout_s=2)) == MathConfig(timeout_s=2 * RETRY_FACTOR)
    assert patient(TrickyConfig()).timeout_s == RETRY_FACTOR
    # a program's time limit is part of what a code task judges: not lengthened, not re-judged
    assert patient(HumanEvalConfig()) == HumanEvalConfig()


def test_ctrl_c_does_not_wait_for_the_chunks_in_flight():
    """Ctrl-C (a real SIGINT) while a chunk is stuck: leaving the context stops the workers at once."""
    scorer = Scorer(TrickyTask(TrickyConfig()), workers=1)
    scorer.score([PROBLEM], ["ok"])  # the worker is started before the signal is armed
    (worker,) = scorer._pool._processes.values()
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with scorer:
            scorer.score([PROBLEM], ["sleep=60"])
    worker.join(timeout=10)
    assert not worker.is_alive() and time.monotonic() - start < 10


def members_of_group(pgid: int) -> list[int]:
    """Processes (zombies included) whose process group is ``pgid``, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(command)": state, ppid, pgrp, ...
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == pgid:
            out.append(int(stat.parent.name))
    return out


def test_a_process_that_scored_leaves_no_child_behind():
    """Worker pools and multiprocessing's resource tracker end with the scorer: once a process
    that scored has exited, nothing of its process group is left for init to reap."""
    code = ("from tasks.math import MathConfig, MathTask; from tasks.scoring import Scorer; "
            "task = MathTask(MathConfig()); p = task.load('math500')[0]\n"
            "with Scorer(task, workers=2) as s: assert s.score([p], ['\\\\boxed{' + p.answer + '}'])[0].correct")
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    assert process.wait(timeout=120) == 0
    assert members_of_group(process.pid) == []
