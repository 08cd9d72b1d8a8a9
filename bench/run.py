"""``python -m bench.run``: train one algorithm on one task, evaluate, write the run directory.

    python -m bench.run                                    # riskpo on arith with the tiny model, CPU
    python -m bench.run algorithm=grpo trainer.steps=20 seed=1
    python -m bench.run -m algorithm=grpo,dapo,riskpo seed=0,1,2   # a sweep (Hydra multirun)

Ends with a summary: pass@1 before and after, entropy at start and end, and ``run dir: <path>``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from tqdm import tqdm

from bench.config import CONF_DIR, ConfigError, one_line, validate


class StartupError(ValueError):
    """The run could not start (its model, engine or data); the message is one line."""


def train(cfg: DictConfig, run_dir: Path, labels: Optional[dict[str, str]] = None) -> dict[str, float]:
    """Train, evaluate, checkpoint; ``labels`` name the config choices (run.json, for reports)."""
    from bench.trainer import Trainer  # torch and transformers load only once the config is valid

    try:
        trainer = Trainer(cfg, run_dir, labels)
    except (ImportError, ValueError, OSError) as err:  # weights not found, vLLM missing or refusing a setting
        raise StartupError(one_line(err)) from err
    t = trainer.t
    try:
        before = trainer.evaluate(trainer.step) if trainer.step == 0 else {}
        label = (labels or {}).get("algorithm", cfg.algorithm.name)
        bar = tqdm(range(trainer.step, t.steps), initial=trainer.step, total=t.steps, desc=label)
        first = last = None
        for step in bar:
            trainer.step = step
            metrics = trainer.train_step(step)
            first = first or metrics
            last = metrics
            bar.set_postfix(reward=f"{metrics['train/reward_mean']:.3f}", entropy=f"{metrics['train/entropy']:.3f}")
            trainer.step = step + 1
            if t.eval_every and trainer.step % t.eval_every == 0 and trainer.step < t.steps:
                trainer.evaluate(trainer.step)
            if t.checkpoint_every and trainer.step % t.checkpoint_every == 0:
                trainer.checkpoint()
        after = trainer.evaluate(trainer.step)
        trainer.checkpoint()
    finally:
        trainer.close()
    measure = "greedy accuracy" if trainer.evaluator.config.greedy else "pass@1"
    for benchmark, value in after.items():
        start = f"{before[benchmark]:.3f} -> " if benchmark in before else ""
        print(f"{benchmark} {measure}: {start}{value:.3f}")
    if first and last:
        print(f"entropy: {first['train/entropy']:.3f} -> {last['train/entropy']:.3f}; "
              f"train reward: {first['train/reward_mean']:.3f} -> {last['train/reward_mean']:.3f}")
    print(f"run dir: {run_dir}")
    return after


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        validate(cfg)
    except (ConfigError, ValueError, KeyError, TypeError) as err:
        print(f"bench.run: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    run_dir = Path(cfg.trainer.resume) if cfg.trainer.resume else Path(HydraConfig.get().runtime.output_dir)
    choices = HydraConfig.get().runtime.choices
    try:
        train(cfg, run_dir, {group: choices[group] for group in ("algorithm", "task", "model") if group in choices})
    except StartupError as err:
        print(f"bench.run: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
