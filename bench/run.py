"""``python -m bench.run``: train one algorithm on one task, evaluate, write the run directory.

    python -m bench.run                                    # riskpo on arith with the tiny model, CPU
    python -m bench.run algorithm=grpo trainer.steps=20 seed=1
    python -m bench.run -m algorithm=grpo,dapo,riskpo seed=0,1,2   # a sweep (Hydra multirun)
    torchrun --nproc-per-node=4 -m bench.run ...           # data-parallel (FSDP2; bench/training/distributed.py)

Ends with a summary: pass@1 before and after, entropy at start and end, and ``run dir: <path>``.
"""

from __future__ import annotations

import errno
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bench.compose import (
    CONF_DIR,
    CONFIG_ERRORS,
    ConfigError,
    check_command_line,
    fail,
    one_line,
    resume_config,
    run_config,
    writable,
)
from bench.config import RunConfig


class StartupError(ValueError):
    """The run could not start (its model, engine or data); the message is one line."""


def train(config: RunConfig, run_dir: Path, **seams: Any) -> dict[str, float]:
    """Train, evaluate, checkpoint, print the summary; pass@1 per benchmark after training.
    ``seams``: the Trainer's ``policy``, ``engine`` or ``scorer``, when the caller builds them."""
    from bench.training.trainer import Trainer  # torch and transformers load only once the config is valid

    try:
        trainer = Trainer(config, run_dir, **seams)
    except (ImportError, ValueError, OSError) as err:  # weights not found, vLLM missing or refusing a setting
        raise StartupError(one_line(err)) from err
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    if not trainer.world.main:
        return summary.after
    measure = "greedy accuracy" if config.eval.greedy else "pass@1"
    for benchmark, value in summary.after.items():
        start = f"{summary.before[benchmark]:.3f} -> " if benchmark in summary.before else ""
        print(f"{benchmark} {measure}: {start}{value:.3f}")
    if summary.first and summary.last:
        first, last = summary.first, summary.last
        print(f"entropy: {first['train/entropy']:.3f} -> {last['train/entropy']:.3f}; "
              f"train reward: {first['train/reward_mean']:.3f} -> {last['train/reward_mean']:.3f}")
    print(f"run dir: {run_dir}")
    return summary.after


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    choices = HydraConfig.get().runtime.choices
    try:
        if cfg.trainer.resume:  # the run's saved config, with what the command line may change in it
            config = resume_config(cfg, HydraConfig.get().overrides.task)
        else:
            config = run_config(cfg, {group: choices[group] for group in ("algorithm", "task", "model") if group in choices})
    except CONFIG_ERRORS as err:
        discard_if_unused(Path(HydraConfig.get().runtime.output_dir))
        print(f"bench.run: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    run_dir = Path(config.trainer.resume) if config.trainer.resume else Path(HydraConfig.get().runtime.output_dir)
    run_dir = agreed_run_dir(config, run_dir)
    try:
        train(config, run_dir)
    except StartupError as err:
        discard_if_unused(run_dir)
        print(f"bench.run: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        print(f"bench.run: {err.strerror}; free some space, then continue with trainer.resume={run_dir}", file=sys.stderr)
        sys.exit(1)


def agreed_run_dir(config: RunConfig, run_dir: Path) -> Path:
    """Under torchrun, rank 0's run directory on every rank (each rank's Hydra names its own from the
    clock; the others' are removed when unused)."""
    from bench.training.distributed import init_world, world_size

    if world_size() == 1:
        return run_dir

    agreed = Path(init_world(config.model.device.value).broadcast(str(run_dir)))
    if agreed != run_dir:
        discard_if_unused(run_dir)
    return agreed


def discard_if_unused(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but Hydra's record of the call (a run that never started)."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", "run.log", ".lock"}:
        shutil.rmtree(run_dir, ignore_errors=True)


def check_before_hydra(argv: Sequence[str]) -> None:
    """A single run's overrides and the directory it will write, checked before Hydra creates it."""
    cfg = check_command_line("bench.run", "config", argv)
    if cfg is None or cfg.trainer.resume:
        return  # a resume writes into its run's directory, which bench.run checks
    given = [arg.split("=", 1)[1] for arg in argv if arg.startswith("hydra.run.dir=")]
    try:
        writable(Path(given[-1]).parent if given else Path(cfg.output_dir), "output_dir")
    except ConfigError as err:
        fail("bench.run", err)


if __name__ == "__main__":
    check_before_hydra(sys.argv[1:])
    main()
