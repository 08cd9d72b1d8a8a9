"""The RL loop: ``Trainer.fit`` (trainer.py), its update stage (update.py), data parallelism under
torchrun (distributed.py), every seed a run derives (seeds.py), checkpoints (checkpoints.py) and
where a run's results go (sinks.py: the run directory, parquet tables, wandb)."""
