"""Sweeps: Hydra multirun over the matrix, runs grouped under results/<experiment>/, launchers."""

import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from bench.compose import CONF_DIR

TINY = ["trainer.steps=1", "trainer.prompts_per_step=5", "rollout.n=2", "rollout.max_new_tokens=16",
        "eval.problems=4", "eval.n=2", "eval.resamples=20", "logger=none"]


def test_a_sweep_runs_the_matrix_grouped_under_its_experiment(tmp_path):
    # compare_arith sweeps 6 algorithms x 3 seeds; the command line narrows it, as a user would
    done = subprocess.run([sys.executable, "-m", "bench.run", "-m", "experiment=compare_arith",
                           "algorithm=grpo,riskpo_seeking", "seed=0", *TINY, f"output_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=600, cwd=CONF_DIR.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = sorted(p.name for p in (tmp_path / "compare_arith").iterdir() if p.is_dir())
    assert runs == ["grpo-arith-s0", "riskpo_seeking-arith-s0"]
    for name in runs:
        identity = json.loads((tmp_path / "compare_arith" / name / "run.json").read_text())
        assert identity == {"algorithm": name.split("-")[0], "task": "arith", "model": "tiny", "seed": 0,
                            "experiment": "compare_arith"}
        assert (tmp_path / "compare_arith" / name / "problems.parquet").is_file()


def test_the_experiment_sweeps_every_algorithm_over_three_seeds():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", ["experiment=compare_arith"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params.algorithm.split(",") == ["grpo", "dr_grpo", "dapo", "gspo", "riskpo", "riskpo_seeking"]
    assert params.seed == "0,1,2" and cfg.experiment_name == "compare_arith"
    assert cfg.hydra.sweep.dir == "results/compare_arith"


@pytest.mark.parametrize("launcher, target", [
    ("parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
])
def test_launcher_configs_compose(launcher, target):
    pytest.importorskip(f"hydra_plugins.hydra_{'joblib' if launcher == 'parallel' else 'submitit'}_launcher",
                        reason="the sweep extra is not installed: pip install -e '.[sweep]'")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target
