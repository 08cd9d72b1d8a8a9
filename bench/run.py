"""``python -m bench.run``: train one algorithm on one task, evaluate, write the run directory.

    python -m bench.run                                    # riskpo on arith with the tiny model, CPU
    python -m bench.run algorithm=grpo trainer.steps=20 seed=1
    python -m bench.run -m algorithm=grpo,dapo,riskpo seed=0,1,2   # a sweep (Hydra multirun)

Ends with a summary: pass@1 before and after, entropy at start and end, and ``run dir: <path>``.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bench.compose import CONF_DIR, CONFIG_ERRORS, one_line, resume_config, run_config
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
        print(f"bench.run: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    run_dir = Path(config.trainer.resume) if config.trainer.resume else Path(HydraConfig.get().runtime.output_dir)
    try:
        train(config, run_dir)
    except StartupError as err:
        print(f"bench.run: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        print(f"bench.run: {err.strerror}; free some space, then continue with trainer.resume={run_dir}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
