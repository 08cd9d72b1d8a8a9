"""The RL loop: ``Trainer.fit`` (trainer.py), every seed a run derives (seeds.py), and where a
run's results go (sinks.py: the run directory, parquet tables, wandb, checkpoint paths)."""
