"""Data-parallel training on the CPU: torchrun with 2 gloo processes against one process.

A step at world size 2 must be the step one process takes on the whole batch: the same rollouts
(sampling is keyed by prompt and sample, not by batch), the same selection and advantages (RiskPO's
bundles span ranks; its tracker is the same on every rank), the same gradient (each rank's share
of the sum, with the whole batch's denominators). Weights agree to float rounding, not bitwise:
ranks pad their prompts and sum their micro-batches differently.
"""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import tasks
from bench.compose import load_run_config
from bench.models.policy import token_logprobs
from bench.run import train
from bench.training.checkpoints import checkpoint_dir
from tasks.scoring import Scorer

# threads=1 in both: a CPU matmul's summation order may depend on the thread count. float32: on a
# CPU with bf16 instructions the default is bf16 autocast, whose rounding differs with the batch's
# shape. Adam moves a weight whose gradient is near 0 by a fraction of lr that float rounding can
# change (the ranks sum in another order), so weights agree to a few percent of lr at worst: at lr
# 1e-5, within 1e-6, while a wrong share of the batch would move many by about lr. Adam hides the
# gradient's scale, so the gradient norm and the loss are compared too.
BASE = ["trainer.steps=2", "trainer.prompts_per_step=6", "rollout.n=4", "rollout.max_new_tokens=24",
        "eval.problems=5", "eval.n=2", "trainer.eval_every=1", "trainer.checkpoint_every=1", "logger=none",
        "trainer.micro_batch_size=5", "trainer.threads=1", "seed=3", "model.dtype=float32"]
ALGORITHMS = {
    "grpo": ["algorithm=grpo", "trainer.lr=1e-5"],
    "dapo": ["algorithm=dapo", "trainer.lr=1e-5"],  # dynamic sampling decided on the gathered batch
    # bundles of 4 over 3 prompts per rank: the first bundle spans both ranks; 2 mini-batches, so the
    # ratio differs from 1 and each rank has an idle micro-batch in one of them (9 rows: 5 and 4)
    "riskpo": ["algorithm=riskpo", "algorithm.bundle_size=4", "rollout.n=3", "trainer.mini_batches=2",
               "trainer.micro_batch_size=4", "trainer.lr=1e-5"],
    # a vision-language policy: each rank's rollouts carry their pixels into the gather, and the
    # frozen vision tower is sharded with the rest
    "grpo_images": ["task=dots", "model=tiny_dots", "algorithm=grpo", "trainer.lr=1e-5"],
}
TOLERANCE = 1e-6


def one_process(overrides, run_dir):
    config = load_run_config(overrides)
    with Scorer(tasks.build(config.task), workers=0) as scorer:
        train(config, run_dir, scorer=scorer)


def two_processes(overrides, run_dir, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "bench.run", *overrides, f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def weights(run_dir, step):
    return load_file(checkpoint_dir(run_dir, step) / "model" / "model.safetensors")


def max_gap(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope="module", params=list(ALGORITHMS))
def pair(request, tmp_path_factory):
    """(world-1 run dir, world-2 run dir) of the same 2-step run."""
    root = tmp_path_factory.mktemp(request.param)
    overrides = [*BASE, *ALGORITHMS[request.param]]
    one_process(overrides, root / "one")
    two_processes(overrides, root / "two")
    return request.param, root / "one", root / "two"


def test_two_processes_train_the_weights_one_process_trains(pair):
    name, one, two = pair
    for step in (1, 2):
        gap = max_gap(weights(one, step), weights(two, step))
        assert gap < TOLERANCE, f"{name} step {step}: weights differ by {gap:.2e}"
    start = load_file(checkpoint_dir(one, 1) / "model" / "model.safetensors")
    end = weights(two, 2)
    assert max_gap(start, end) > 5 * TOLERANCE  # the steps moved the weights: the comparison can fail


def test_two_processes_log_the_same_batch_and_metrics(pair):
    name, one, two = pair
    m1, m2 = pd.read_parquet(one / "metrics.parquet"), pd.read_parquet(two / "metrics.parquet")
    for column in ("train/reward_mean", "train/accuracy", "rollout/response_length", "rollout/rounds",
                   "budget/generated_tokens", "train/adv_mean", "train/adv_std"):
        assert m1[column].tolist() == pytest.approx(m2[column].tolist(), abs=1e-9), column
    for column in ("train/entropy", "train/loss", "train/grad_norm", "train/cov_logp_adv"):
        assert m1[column].tolist() == pytest.approx(m2[column].tolist(), rel=1e-5, abs=1e-7), column
    e1, e2 = pd.read_parquet(one / "eval.parquet"), pd.read_parquet(two / "eval.parquet")
    assert e1["pass_at_k"].tolist() == e2["pass_at_k"].tolist()  # 5 problems over 2 ranks: one padded
    p1, p2 = pd.read_parquet(one / "problems.parquet"), pd.read_parquet(two / "problems.parquet")
    assert p1[["uid", "step", "c"]].equals(p2[["uid", "step", "c"]])
    assert json.loads((two / "env.json").read_text())["world"] == {"world_size": 2, "backend": "gloo"}


def test_riskpos_tracker_is_the_one_process_tracker(pair):
    name, one, two = pair
    if name != "riskpo":
        pytest.skip("RiskPO keeps the algorithm state")
    s1 = torch.load(checkpoint_dir(one, 2) / "trainer.pt", weights_only=False)["algorithm_state"]
    s2 = torch.load(checkpoint_dir(two, 2) / "trainer.pt", weights_only=False)["algorithm_state"]
    assert s1.keys() == s2.keys() and s1  # every rank checked it against rank 0's each step (World.check_same)
    for key in s1:
        assert torch.as_tensor(s1[key]).double().tolist() == pytest.approx(torch.as_tensor(s2[key]).double().tolist(),
                                                                        abs=1e-9), key


def interrupted_copy(run_dir, to):
    """``run_dir`` as if killed during step 2: its tables and the checkpoint after step 1."""
    to.mkdir()
    for item in ("config.yaml", "run.json", "env.json", "metrics.parquet", "samples.parquet", "eval.parquet",
                 "problems.parquet"):
        shutil.copy(run_dir / item, to / item)
    shutil.copytree(checkpoint_dir(run_dir, 1), checkpoint_dir(to, 1))
    (to / "checkpoints" / "latest").write_text(checkpoint_dir(run_dir, 1).name)
    return to


def test_a_resumed_two_process_run_continues_exactly(pair, tmp_path):
    name, one, two = pair
    if name != "grpo":
        pytest.skip("one algorithm is enough for the checkpoint path")
    resumed = interrupted_copy(two, tmp_path / "resumed")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "bench.run", f"trainer.resume={resumed}"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert max_gap(weights(resumed, 2), weights(two, 2)) == 0.0  # the same ranks, the same sums: bitwise
    assert pd.read_parquet(resumed / "metrics.parquet")["train/loss"].tolist() == \
        pd.read_parquet(two / "metrics.parquet")["train/loss"].tolist()


def test_one_process_resumes_a_two_process_run(pair, tmp_path):
    """The shards (DCP) load into an unsharded model and optimizer: the run goes on in one process."""
    name, one, two = pair
    if name != "grpo":
        pytest.skip("one algorithm is enough for the checkpoint path")
    resumed = interrupted_copy(two, tmp_path / "resumed")
    config = load_run_config([f"trainer.resume={resumed}"])
    with Scorer(tasks.build(config.task), workers=0) as scorer:
        train(config, resumed, scorer=scorer)
    assert max_gap(weights(resumed, 2), weights(two, 2)) < TOLERANCE
    assert max_gap(weights(resumed, 2), weights(one, 2)) < TOLERANCE


def test_the_export_loads_in_one_process_with_the_same_logprobs(pair):
    name, one, two = pair
    if name != "grpo":
        pytest.skip("one algorithm is enough for the export")
    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_pretrained(checkpoint_dir(two, 2) / "model")
    trained = AutoModelForCausalLM.from_pretrained(checkpoint_dir(one, 2) / "model")
    ids = torch.randint(3, exported.config.vocab_size, (3, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        a, _ = token_logprobs(exported, ids, mask, 4, with_entropy=False)
        b, _ = token_logprobs(trained, ids, mask, 4, with_entropy=False)
    # the two runs' weights differ by float rounding (< 1e-6), so log-probs of -20 agree to a few 1e-5;
    # an export that loaded wrongly would be off by whole nats
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_submitit_job_with_two_tasks_is_two_ranks(pair, tmp_path):
    """Hydra's submitit launcher (the local executor here, SLURM on a cluster): each task a rank."""
    name, one, _ = pair
    if name != "grpo":
        pytest.skip("one algorithm is enough for the launcher")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "bench.run", "-m", "hydra/launcher=submitit_local",
                           "hydra.launcher.tasks_per_node=2", f"hydra.sweep.dir={tmp_path}", *BASE, *ALGORITHMS[name]],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = [p for p in tmp_path.iterdir() if (p / "env.json").is_file()]
    assert json.loads((run / "env.json").read_text())["world"]["world_size"] == 2
    assert max_gap(weights(one, 2), weights(run, 2)) < TOLERANCE


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices (BENCH_TEST_CUDA=0,1)")
def test_two_gpus_with_nccl_train_what_one_gpu_trains(tmp_path):
    """NCCL, the FSDP2 policy on GPUs (fp32 gradient reduction); float32 weights so the comparison
    is as tight as on the CPU, bf16 only reached through the default dtype elsewhere."""
    overrides = [*BASE, *ALGORITHMS["riskpo"], "model.device=cuda", "model.dtype=float32"]
    one_process(overrides, tmp_path / "one")
    two_processes(overrides, tmp_path / "two")
    assert json.loads((tmp_path / "two" / "env.json").read_text())["world"]["backend"] == "nccl"
    assert pd.read_parquet(tmp_path / "one" / "metrics.parquet")["train/reward_mean"].tolist() == \
        pd.read_parquet(tmp_path / "two" / "metrics.parquet")["train/reward_mean"].tolist()
    assert max_gap(weights(tmp_path / "one", 2), weights(tmp_path / "two", 2)) < 10 * TOLERANCE
