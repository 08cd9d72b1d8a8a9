"""verl's entry point into the harness (``pip install -e '.[verl]'``, verl >= 0.9; tested with 0.9.1).

pyproject.toml declares this module in the ``verl.plugins`` entry-point group, which verl's
``__init__`` imports in every process on ``import verl`` (``VERL_USE_EXTERNAL_PLUGINS``, default
``auto``). Importing it registers:

- each RiskPO preset of ``bench.verl_plugin.ESTIMATORS`` with ``core_algos.register_adv_est``,
  for ``algorithm.adv_estimator=<preset>``;
- ``BenchTrainer`` with ``verl.trainer.ppo.v1.register_trainer`` as ``bench_sync``
  (``trainer.v1.trainer_mode=bench_sync``): verl's sync trainer, plus the carried RiskPO tracker
  saved to and restored from ``global_step_N/riskpo_bench_state.json`` with verl's checkpoints,
  and logged as ``algo/<preset>/...``. Without it the tracker restarts from the first batch on
  resume (harmless with ``quantile_source=batch``, the riskpo_reference presets).

verl logs a plug-in that fails to import at debug level only, so a failure here is printed to
stderr before it propagates. The trainer needs verl's TransferQueue (its ``verl-core`` extra);
where that is missing only the estimators are registered, and ``bench_sync`` is unknown to verl.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback

from bench import verl_plugin

TRAINER_NAME = "bench_sync"


def register_estimators() -> None:
    from verl.trainer.ppo import core_algos

    for preset in verl_plugin.ESTIMATORS:
        if preset not in core_algos.ADV_ESTIMATOR_REGISTRY:  # verl reloads plug-ins in some processes
            core_algos.register_adv_est(preset)(functools.partial(verl_plugin.advantage, preset))


def register_trainer() -> bool:
    """Register ``bench_sync``; False where verl's trainer cannot be imported (no TransferQueue)."""
    try:
        from verl.trainer.ppo.v1 import register_trainer
        from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
        from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
    except ImportError:
        return False

    class BenchTrainer(PPOTrainerSync):
        """verl's sync trainer; the harness estimators' carried state goes with its checkpoints."""

        # verl's base trainer tests ``trainer_mode == "sync"`` (the replay buffer, TransferQueue
        # checkpoints) and reads trainer.v1.<mode>: this trainer runs as, and is configured as, sync.
        trainer_mode = property(lambda self: "sync", lambda self, value: None)

        def _save_checkpoint(self):
            super()._save_checkpoint()
            folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
            with open(os.path.join(folder, verl_plugin.STATE_FILE), "w") as f:
                json.dump(verl_plugin.save_carry(), f)

        def _load_checkpoint(self):
            verl_plugin.CARRY.clear()
            super()._load_checkpoint()
            if self.global_steps == 0:
                return
            trainer = self.config.trainer
            folder = (trainer.resume_from_path if trainer.resume_mode == "resume_path"
                      else os.path.join(trainer.default_local_dir, f"global_step_{self.global_steps}"))
            path = os.path.join(os.path.abspath(folder), verl_plugin.STATE_FILE)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: a {TRAINER_NAME} checkpoint without the harness's state")
            with open(path) as f:
                verl_plugin.restore_carry(json.load(f))

        def _compute_advantage(self, batch, metrics):
            batch = super()._compute_advantage(batch, metrics)
            metrics.update(verl_plugin.carry_metrics())
            return batch

    if TRAINER_NAME not in TRAINER_REGISTRY:
        register_trainer(TRAINER_NAME)(BenchTrainer)
    return True


try:
    register_estimators()
    register_trainer()
except Exception:
    print(f"riskpo-bench verl plug-in failed to register:\n{traceback.format_exc()}", file=sys.stderr)
    raise
