"""The RL loop end to end on the tiny model: every algorithm, DAPO's refill, kill and resume."""

import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from bench.compose import ConfigError, load_run_config
from bench.engines.vllm import VLLM_MISSING, vllm_available
from bench.run import train
from bench.training.measures import STAGES

SMALL = ["trainer.steps=2", "trainer.prompts_per_step=5", "rollout.n=4", "rollout.max_new_tokens=24",
         "eval.problems=6", "eval.n=2", "trainer.eval_every=0", "logger=none"]


def run(tmp_path, *overrides):
    train(load_run_config([*SMALL, *overrides]), tmp_path)
    return pd.read_parquet(tmp_path / "metrics.parquet")


@pytest.mark.parametrize("algorithm", ["grpo", "dr_grpo", "dapo", "gspo", "riskpo", "riskpo_seeking"])
def test_two_steps_of_every_algorithm(tmp_path, algorithm):
    metrics = run(tmp_path, f"algorithm={algorithm}")
    assert metrics["step"].tolist() == [0, 1]
    assert all(math.isfinite(x) for x in metrics["train/loss"]) and all(metrics["train/entropy"] > 0)
    assert metrics["budget/samples"].iloc[-1] >= 2 * 5 * 4
    assert all((metrics[f"time/{stage}"] >= 0).all() for stage in STAGES) and (metrics["time/generate"] > 0).all()
    assert metrics["time/eval"].iloc[0] > 0  # the evaluation before training lands in the first row
    for name in ("config.yaml", "env.json", "samples.parquet", "eval.parquet", "checkpoints/latest"):
        assert (tmp_path / name).exists(), name
    from transformers import AutoModelForCausalLM

    from bench.config import ModelConfig
    from bench.models.policy import load_policy

    base, _ = load_policy(ModelConfig())
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "checkpoints" / "step-000002" / "model")
    changed = [not torch.equal(a, b) for a, b in zip(base.state_dict().values(), trained.state_dict().values())]
    assert any(changed)
    evals = pd.read_parquet(tmp_path / "eval.parquet")
    assert set(evals["step"]) == {0, 2} and set(evals["k"]) == {1, 2}
    kl = evals.groupby("step")["kl_from_initial"].first()  # the same for every k
    assert kl[0] == 0.0 and kl[2] > 0.0  # the weights moved, so the sampling distribution did
    assert metrics["train/entropy_answer"].notna().all() and metrics["train/entropy_other"].notna().all()


def test_evaluations_in_between_use_the_same_seeded_subset(tmp_path):
    run(tmp_path, "algorithm=grpo", "trainer.steps=3", "trainer.eval_every=1", "eval.subset=3")
    evals = pd.read_parquet(tmp_path / "eval.parquet")
    sets = evals.groupby("step")[["problem_set", "problems"]].first()
    assert sets.to_dict("index") == {0: {"problem_set": "full", "problems": 6}, 1: {"problem_set": "subset", "problems": 3},
                                     2: {"problem_set": "subset", "problems": 3}, 3: {"problem_set": "full", "problems": 6}}
    uids = pd.read_parquet(tmp_path / "problems.parquet").groupby("step")["uid"].apply(list)
    assert uids[1] == uids[2] and set(uids[1]) < set(uids[0]) and uids[0] == uids[3]
    assert uids[1] == [u for u in uids[0] if u in set(uids[1])]  # the benchmark's order kept


def test_kl_from_initial_can_be_switched_off(tmp_path):
    run(tmp_path, "algorithm=grpo", "trainer.steps=1", "eval.kl_from_initial=false")
    assert pd.read_parquet(tmp_path / "eval.parquet")["kl_from_initial"].isna().all()


def test_kl_is_zero_at_the_first_step_with_reference_equal_to_policy(tmp_path):
    metrics = run(tmp_path, "algorithm=grpo", "algorithm.kl_coef=0.1", "trainer.steps=1")
    assert metrics["train/kl_ref"].iloc[0] == 0.0


def test_dapo_refills_the_batch_and_respects_its_bound(tmp_path):
    metrics = run(tmp_path, "algorithm=dapo", "algorithm.overlong_shaping=false", "trainer.max_resample=1")
    assert (metrics["rollout/rounds"] <= 2).all()
    assert (metrics["budget/prompts"].diff().fillna(metrics["budget/prompts"]) >= 5).all()


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["model.path=/nonexistent/model"], "model.path=/nonexistent/model does not exist; set model.path=<a model"),
        (["trainer.lr=-1"], "trainer.lr=-1.0 must be > 0"),
        (["trainer.checkpoint_every=-2"], "trainer.checkpoint_every=-2 must be >= 0"),
        (["rollout.max_new_tokens=0"], "max_new_tokens"),
        (["trainer.prompts_per_step=5", "trainer.mini_batches=2"], "not divisible"),
        (["trainer.tis_cap=2"], "trainer.tis_cap=2.0 corrects a rollout engine's mismatch with the policy; rollout=hf "
                                "samples from the policy itself: use rollout=vllm or trainer.tis_cap=null"),
        (["trainer.tis_cap=0", "rollout=vllm"], r"trainer.tis_cap=0.0 must be > 0 \(or null: off\)"),
    ],
)
def test_clear_errors(tmp_path, overrides, fragment):
    with pytest.raises((ConfigError, OSError, ValueError), match=fragment):
        run(tmp_path, *overrides)


def test_killed_run_resumes_to_the_same_metrics(tmp_path):
    common = [*SMALL, "trainer.steps=4", "trainer.checkpoint_every=2", "trainer.eval_every=2", "algorithm=riskpo"]
    whole = tmp_path / "whole"
    train(load_run_config(common), whole)
    expected = pd.read_parquet(whole / "metrics.parquet")

    cut = tmp_path / "cut"
    command = [sys.executable, "-m", "bench.run", *common, f"hydra.run.dir={cut}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    latest = cut / "checkpoints" / "latest"
    while not (latest.exists() and latest.read_text() >= "step-000002") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    train(load_run_config([*common, f"trainer.resume={cut}"]), cut)
    resumed = pd.read_parquet(cut / "metrics.parquet")
    assert resumed["step"].tolist() == [0, 1, 2, 3]
    columns = [c for c in expected.columns if not c.startswith(("budget/wall", "time/"))]  # wall-clock figures
    pd.testing.assert_frame_equal(resumed[columns], expected[columns], rtol=1e-6)
    for table in ("eval.parquet", "problems.parquet"):  # the evaluation at the checkpoint's step is kept, once
        pd.testing.assert_frame_equal(pd.read_parquet(cut / table), pd.read_parquet(whole / table), rtol=1e-6)


def test_several_epochs_use_stored_old_log_probs(tmp_path):
    metrics = run(tmp_path, "algorithm=grpo", "trainer.ppo_epochs=2", "trainer.steps=1")
    assert math.isfinite(metrics["train/loss"].iloc[0])
    # the first epoch's statistics are taken at the sampling weights: the stored old log-probs
    # match the fresh ones up to rounding
    assert abs(metrics["train/approx_kl_old"].iloc[0]) < 1e-6
    several = run(tmp_path / "mini", "algorithm=grpo", "trainer.mini_batches=5", "trainer.steps=1")
    assert math.isfinite(several["train/loss"].iloc[0]) and several["train/approx_kl_old"].iloc[0] > 0


@pytest.mark.skipif(vllm_available(), reason="vLLM is installed")
def test_the_vllm_engine_without_vllm_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.run", *SMALL, "rollout=vllm", f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"bench.run: {VLLM_MISSING}: No module named 'vllm'"
    assert "Traceback" not in done.stderr
