"""Scoring many completions in parallel, in worker processes.

math-verify enforces its time limits with SIGALRM, which only works in a process's main thread,
so scoring never runs in threads: a pool of processes (one per core by default) each builds the
task once and judges a chunk of completions at a time. A chunk that takes longer than its limit
(a verifier stuck where no alarm reaches it) is given ``timeout`` verdicts and the pool is
replaced, so one pathological answer cannot hang a training step.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Optional, Sequence

from tasks.base import Problem, Task, TaskConfig, Verdict

STARTUP_SECONDS = 120.0  # a new worker imports the task's libraries before its first chunk
_worker_task: Optional[Task] = None


def _init_worker(task_type: type[Task], config: TaskConfig, parent: int) -> None:
    global _worker_task
    _die_with_parent(parent)
    _worker_task = task_type(config)


def _die_with_parent(parent: int) -> None:
    """On Linux, have the kernel send SIGTERM when the process that started this worker dies, so a
    trainer killed with SIGKILL leaves no scorer behind (the pool would wait for work forever)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the pool's own shutdown still applies
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def _score_chunk(items: list[tuple[Problem, str]]) -> list[Verdict]:
    assert _worker_task is not None
    return [_worker_task.score(problem, completion) for problem, completion in items]


class Scorer:
    """``Scorer(task).score(problems, completions)``: one verdict per completion, in order.

    ``workers=0`` scores in the calling process (its main thread must call it). Use it as a
    context manager, or call ``close``, to stop the pool.
    """

    def __init__(self, task: Task, workers: Optional[int] = None, seconds_per_item: float = 30.0) -> None:
        self.task = task
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.seconds_per_item = seconds_per_item
        self._pool: Optional[ProcessPoolExecutor] = None

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        items = list(zip(problems, completions))
        if self.workers == 0:
            return [self.task.score(p, c) for p, c in items]
        return self._score_in_pool(items)

    def _score_in_pool(self, items: list[tuple[Problem, str]]) -> list[Verdict]:
        size = max(1, min(32, -(-len(items) // (self.workers * 4))))  # about 4 chunks per worker
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        starting = self._pool is None
        pool = self._ensure_pool()
        futures = [pool.submit(_score_chunk, chunk) for chunk in chunks]
        verdicts: list[Verdict] = []
        for index, (chunk, future) in enumerate(zip(chunks, futures)):
            startup = STARTUP_SECONDS if starting and index == 0 else 0.0
            try:
                verdicts += future.result(timeout=self.seconds_per_item * len(chunk) + startup)
            except FutureTimeout:  # a worker is stuck: judge its chunk a timeout, start afresh
                verdicts += [Verdict(0.0, False, None, "timeout") for _ in chunk]
                self._kill_pool()
                return verdicts + self._score_in_pool([item for rest in chunks[index + 1 :] for item in rest])
        return verdicts

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            method = multiprocessing.get_start_method(allow_none=True)
            if method not in (None, *multiprocessing.get_all_start_methods()):
                # A loky worker (Hydra's joblib launcher) makes "loky" the default start method; a
                # spawned child is told to use the default and has no "loky": restore a standard one.
                multiprocessing.set_start_method("spawn", force=True)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded torch process
                initializer=_init_worker,
                initargs=(type(self.task), self.task.config, os.getpid()),
            )
        return self._pool

    def _kill_pool(self) -> None:
        if self._pool is not None:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
