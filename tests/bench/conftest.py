"""A small real results directory: grpo, riskpo and riskpo_seeking on arith, seeds 0 and 1, two
steps each with the tiny model, laid out as a sweep writes it: <root>/compare_arith/<label>-arith-s<seed>/."""

from dataclasses import replace

import pytest

import tasks
from bench.compose import load_run_config
from bench.run import train
from tasks.scoring import Scorer

EXPERIMENT = "compare_arith"
ALGORITHMS = ("grpo", "riskpo", "riskpo_seeking")
SEEDS = (0, 1)
# prompts_per_step: a multiple of RiskPO's bundle of 5, so every bundle is full
TINY = ["trainer.steps=2", "trainer.prompts_per_step=5", "rollout.n=4", "rollout.max_new_tokens=24",
        "trainer.eval_every=1", "eval.n=4", "eval.problems=16", "logger=none", f"experiment_name={EXPERIMENT}"]


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for algorithm in ALGORITHMS:
        for seed in SEEDS:
            config = load_run_config([*TINY, f"algorithm={algorithm}", f"seed={seed}"])
            config = replace(config, labels={"algorithm": algorithm, "task": "arith", "model": "tiny"})
            # Speed only: score in this process; a spawned worker pool per run costs seconds to start.
            with Scorer(tasks.build(config.task), workers=0) as scorer:
                train(config, root / EXPERIMENT / f"{algorithm}-arith-s{seed}", scorer=scorer)
    return root
