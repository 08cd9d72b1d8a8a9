"""Scoring many completions in parallel, in worker processes.

math-verify enforces its time limits with SIGALRM, which only works in a process's main thread,
so scoring never runs in threads: a pool of processes (one per core by default) each builds the
task once and judges a chunk of completions at a time, one chunk per worker in flight.

A verdict must not depend on how loaded the machine is, and one answer must not hang or abort a
training step:
- A chunk that runs past its limit (a verifier stuck where no alarm reaches it) is stopped: the
  pool is replaced and the chunks running beside it are judged again.
- A worker that dies (the OOM killer, a crash in a C extension) takes the chunks in flight with
  it: the pool is replaced and those items are judged again.
- Each item of a stopped chunk or of a dead worker's chunks, and each ``timeout`` verdict of a
  task whose config has a verifier time limit (a field of ``TIME_LIMITS``), is judged once more,
  alone (nothing else in flight), with RETRY_FACTOR times the limits: the config's time limit and
  the chunk limit. That verdict is final: ``timeout`` if it runs out again, and
  ``error: the scoring worker died ...`` if its worker dies again. A pathological answer thus
  costs at most about (1 + RETRY_FACTOR) times its limits, never a hang.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.resource_tracker
import os
import signal
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Optional, Sequence

from tasks.base import Problem, Task, TaskConfig, Verdict

STARTUP_SECONDS = 120.0  # a new worker imports the task's libraries before its first chunk (not counted in it)
RETRY_FACTOR = 4  # a judgement tried again gets this many times the first limits
TIME_LIMITS = ("timeout_s",)  # config fields that are a verifier's time limit (tasks.math: math-verify's)
_worker_task: Optional[Task] = None
_patient_task: Optional[Task] = None  # the worker's task with longer limits, built at its first re-judge

Item = tuple[Problem, str]


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


def _ready() -> int:
    """A started worker's process id (its initializer has run); it holds the worker a moment, so
    that the other workers answer the probes sent beside it once they are up."""
    time.sleep(0.05)
    return os.getpid()


def _score_chunk(items: list[Item], config: Optional[TaskConfig] = None) -> list[Verdict]:
    """Judge ``items`` with the worker's task, or with a task built from ``config`` (a re-judge)."""
    global _patient_task
    assert _worker_task is not None
    task = _worker_task
    if config is not None and config != task.config:
        if _patient_task is None or _patient_task.config != config:
            _patient_task = type(task)(config)
        task = _patient_task
    return [task.score(problem, completion) for problem, completion in items]


def patient(config: TaskConfig) -> TaskConfig:
    """``config`` with its verifier time limits (fields of TIME_LIMITS) RETRY_FACTOR times longer."""
    longer = {f.name: getattr(config, f.name) * RETRY_FACTOR for f in dataclasses.fields(config) if f.name in TIME_LIMITS}
    return dataclasses.replace(config, **longer) if longer else config


_POOLS: set[int] = set()  # the scorers whose worker pools are running


def _pool_closed(scorer: Scorer) -> None:
    """When the last pool is shut down, stop multiprocessing's resource tracker too: spawned pools
    start it, and left running it outlives this process, a child of the process group for init to
    reap. (After a pool was killed it is left running: it unlinks what the dead pool left.) A
    tracker this process did not start (a spawned child shares its parent's) is its starter's to stop."""
    _POOLS.discard(id(scorer))
    tracker = getattr(multiprocessing.resource_tracker, "_resource_tracker", None)
    started_here = getattr(tracker, "_pid", None) is not None
    if not _POOLS and started_here and hasattr(tracker, "_stop"):  # CPython's, since 3.8
        tracker._stop()


class Scorer:
    """``Scorer(task).score(problems, completions)``: one verdict per completion, in order.

    ``workers=0`` scores in the calling process (its main thread must call it). Use it as a
    context manager, or call ``close``, to stop the pool.
    """

    def __init__(self, task: Task, workers: Optional[int] = None, seconds_per_item: float = 30.0) -> None:
        self.task = task
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.seconds_per_item = seconds_per_item
        self.patient_config = patient(task.config)
        self._pool: Optional[ProcessPoolExecutor] = None

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        items = list(zip(problems, completions))
        if self.workers == 0:
            verdicts = [self.task.score(p, c) for p, c in items]
            again = {i for i, v in enumerate(verdicts) if self._retried(v)}
            patient_task = type(self.task)(self.patient_config) if again else self.task
            return [patient_task.score(*items[i]) if i in again else v for i, v in enumerate(verdicts)]
        first = self._score_in_pool(items)
        return [self._alone(item) if v is None or self._retried(v) else v for item, v in zip(items, first)]

    def _retried(self, verdict: Verdict) -> bool:
        """A verifier's own timeout, judged again when the config has a time limit to lengthen."""
        return verdict.reason == "timeout" and self.patient_config != self.task.config

    def _score_in_pool(self, items: list[Item]) -> list[Optional[Verdict]]:
        """Verdicts of every item, None for those of a chunk that ran past its limit or whose
        worker died. At most one chunk per worker is in flight, so a worker's death costs only those."""
        size = max(1, min(32, -(-len(items) // (self.workers * 4))))  # about 4 chunks per worker
        queue = deque(range(0, len(items), size))  # where each chunk waiting to be judged starts
        verdicts: list[Optional[Verdict]] = [None] * len(items)
        running: dict[Future, tuple[int, float]] = {}  # chunk in flight -> (its start, its deadline)
        while queue or running:
            died = False
            while queue and len(running) < self.workers and not died:
                chunk = items[queue[0] : queue[0] + size]
                try:
                    future = self._ensure_pool().submit(_score_chunk, chunk)
                except BrokenProcessPool:  # a worker died, idle or under a chunk in flight
                    died = True
                    continue
                running[future] = queue.popleft(), time.monotonic() + self.seconds_per_item * len(chunk)
            done = wait(running, timeout=self._until(running), return_when=FIRST_COMPLETED).done if running else ()
            for future in done:
                start, _ = running.pop(future)
                try:
                    verdicts[start : start + size] = future.result()
                except BrokenProcessPool:
                    died = True  # its items stay None, as do those of the other chunks in flight
            late = [f for f, (_, deadline) in running.items() if deadline <= time.monotonic()]
            if died:
                running.clear()
                self._kill_pool()
            elif late:  # stuck chunks stay None; the others in flight were not at fault: queued again
                queue.extendleft(start for f, (start, _) in running.items() if f not in late)
                running.clear()
                self._kill_pool()
        return verdicts

    @staticmethod
    def _until(running: dict[Future, tuple[int, float]]) -> float:
        """Seconds until the first deadline of the chunks in flight."""
        return max(0.0, min(deadline for _, deadline in running.values()) - time.monotonic())

    def _alone(self, item: Item) -> Verdict:
        """One more judgement of ``item``, alone and with RETRY_FACTOR times the limits; final."""
        try:
            future = self._ensure_pool().submit(_score_chunk, [item], self.patient_config)
        except BrokenProcessPool:  # a worker died while the pool was idle
            self._kill_pool()
            future = self._ensure_pool().submit(_score_chunk, [item], self.patient_config)
        try:
            return future.result(timeout=self.seconds_per_item * RETRY_FACTOR)[0]
        except FutureTimeout:
            self._kill_pool()
            return Verdict(0.0, False, None, "timeout")
        except BrokenProcessPool:
            how = self._death()
            self._kill_pool()
            return Verdict(0.0, False, None, f"error: the scoring worker died{how}, twice on this completion")

    def _death(self) -> str:
        """How a worker of the broken pool ended, as ' (killed by SIGKILL)' or ' (exit code 3)'; the
        others were stopped by the pool (SIGTERM)."""
        deadline = time.monotonic() + 5.0
        for process in self._processes():  # the dead one may not be reaped yet; the pool is stopping the others
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        codes = [p.exitcode for p in self._processes()]
        code = next((c for c in codes if c not in (None, 0, -signal.SIGTERM)), None)
        if code is None:
            return ""
        return f" (killed by {signal.Signals(-code).name})" if code < 0 else f" (exit code {code})"

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            method = multiprocessing.get_start_method(allow_none=True)
            if method not in (None, *multiprocessing.get_all_start_methods()):
                # A loky worker (Hydra's joblib launcher) makes "loky" the default start method; a
                # spawned child is told to use the default and has no "loky": restore a standard one.
                multiprocessing.set_start_method("spawn", force=True)
            _POOLS.add(id(self))
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded torch process
                initializer=_init_worker,
                initargs=(type(self.task), self.task.config, os.getpid()),
            )
            self._start_workers()
        return self._pool

    def _start_workers(self) -> None:
        """Wait until every worker has started, so that no chunk's limit pays for a start."""
        assert self._pool is not None
        deadline, started = time.monotonic() + STARTUP_SECONDS, set()
        try:
            while len(started) < self.workers:  # each call starts a worker while none is idle
                probes = [self._pool.submit(_ready) for _ in range(self.workers)]
                started |= {probe.result(timeout=max(0.0, deadline - time.monotonic())) for probe in probes}
        except (BrokenProcessPool, FutureTimeout) as err:
            self._kill_pool()
            why = "a worker exited (its error is above)" if isinstance(err, BrokenProcessPool) else "timed out"
            raise RuntimeError(f"the scoring workers of the {self.task.config.name} task did not start within "
                               f"{STARTUP_SECONDS:.0f} s: {why}") from err

    def _processes(self) -> list[multiprocessing.Process]:
        return list((getattr(self._pool, "_processes", None) or {}).values())

    def _kill_pool(self) -> None:
        if self._pool is not None:
            for process in self._processes():
                process.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            _POOLS.discard(id(self))  # its queues' semaphores may outlive it: the tracker stays to unlink them

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            _pool_closed(self)

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, error: Optional[type[BaseException]], *rest: object) -> None:
        if error is None:
            self.close()
        else:  # interrupted or failed: do not wait for the chunks in flight
            self._kill_pool()
