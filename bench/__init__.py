"""The pipeline: configuration, the RL loop, rollouts, evaluation and reports."""
