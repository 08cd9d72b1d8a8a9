"""The harness's algorithms against verl's own code, in .venv-verl (``make test-verl``; marked verl).

- RiskPO's advantage through verl's ``compute_advantage`` (the plug-in registered by the
  ``verl.plugins`` entry point) equals the harness's ``advantage_step``, step after step with the
  tracker carried, with verl's rows in another order than the harness's prompts;
- GRPO's and Dr.GRPO's advantages are verl's ``grpo`` estimator's;
- verl's ``vanilla`` and ``gspo`` policy losses, under ``actor_settings``, equal the harness's
  ``token_loss`` + ``aggregate`` in value and gradient, for every aggregation mode.

verl's outputs are compared with tests/golden/verl/*.json, which tests/bench/test_verl_golden.py
checks against the harness without verl; ``RISKPO_BENCH_WRITE_GOLDEN=1`` rewrites them from verl.
Each test prints the largest difference it found.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

verl = pytest.importorskip("verl")
pytestmark = pytest.mark.verl

from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402
from verl.workers.config.actor import ActorConfig, PolicyLossConfig  # noqa: E402

import algorithms  # noqa: E402
from algorithms.base import PolicyBatch, RewardBatch, advantage_step  # noqa: E402
from algorithms.ops import LossAgg, LossNorm  # noqa: E402
from bench import verl_plugin  # noqa: E402
from bench.training.seeds import pairing_seed  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "verl"
WRITE = os.environ.get("RISKPO_BENCH_WRITE_GOLDEN") == "1"
PROMPTS, G, T, STEPS = 12, 5, 7, 4
# per preset, fields set under verl's algorithm.riskpo node (a 12-prompt step makes 2 full bundles of 5 and one of 2)
CASES = {"riskpo": {}, "riskpo_reference": {}, "riskpo_reference_hard": {}, "riskpo_seeking": {},
         "riskpo_random_mix": {"pairing": "random", "quantile_source": "mix", "credit": "score"}}


def make_step(gen: torch.Generator) -> dict:
    """One step in the harness's layout (prompt-major, prompts in sorted-uid order) and a row order
    for verl that moves prompts apart but keeps each prompt's responses in order."""
    uids = sorted(str(uuid.UUID(int=int(torch.randint(0, 2**62, (1,), generator=gen)))) for _ in range(PROMPTS))
    rewards = torch.randint(0, 2, (PROMPTS * G,), generator=gen).double().tolist()
    lengths = torch.randint(1, T + 1, (PROMPTS * G,), generator=gen).tolist()
    key = torch.rand(PROMPTS, generator=gen)[torch.arange(PROMPTS * G) // G] + torch.arange(PROMPTS * G) * 1e-3
    rows = torch.argsort(torch.rand(PROMPTS, generator=gen)[torch.arange(PROMPTS * G) // G] * 10 + key).tolist()
    return {"uids": [uids[i // G] for i in rows], "rewards": [rewards[i] for i in rows],
            "lengths": [lengths[i] for i in rows], "harness_row": rows}


def verl_tensors(step: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """token_level_rewards and response_mask [N, T]: the reward on the last response token, as verl puts it."""
    lengths = torch.tensor(step["lengths"])
    mask_bt = (torch.arange(T)[None, :] < lengths[:, None]).float()
    rewards_bt = torch.zeros(len(lengths), T)
    rewards_bt[torch.arange(len(lengths)), lengths - 1] = torch.tensor(step["rewards"], dtype=torch.float32)
    return rewards_bt, mask_bt


def through_verl(estimator: str, step: dict, algorithm_node: dict) -> torch.Tensor:
    rewards_bt, mask_bt = verl_tensors(step)
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards_bt, "response_mask": mask_bt},
                               non_tensors={"uid": np.array(step["uids"], dtype=object)})
    config = OmegaConf.create({"adv_estimator": estimator, **algorithm_node})
    return compute_advantage(data, adv_estimator=estimator, config=config).batch["advantages"]


@pytest.mark.parametrize("case", CASES)
def test_riskpo_through_verls_compute_advantage_equals_the_harness_step_after_step(case):
    preset = case if case in verl_plugin.ESTIMATORS else "riskpo"
    node = {"riskpo": CASES[case]} if CASES[case] else {}
    algo = algorithms.build(verl_plugin.algorithm_config(preset, CASES[case]))
    gen = torch.Generator().manual_seed(sorted(CASES).index(case))
    verl_plugin.CARRY.clear()
    state, steps, worst = algo.init_state(), [], 0.0
    for s in range(STEPS):
        step = make_step(gen)
        harness_order = np.argsort(step["harness_row"])  # row of each harness response
        batch = RewardBatch(rewards_b=torch.tensor(step["rewards"], dtype=torch.float32)[harness_order],
                            prompt_b=torch.arange(PROMPTS * G) // G, seed=pairing_seed(0, s))
        out = advantage_step(algo, batch, PROMPTS, state)
        state = out.out.state
        adv_bt = through_verl(preset, step, node)
        _, mask_bt = verl_tensors(step)
        expected_bt = out.adv_b[step["harness_row"]][:, None].float() * mask_bt
        worst = max(worst, (adv_bt - expected_bt).abs().max().item())
        steps.append({**{k: step[k] for k in ("uids", "rewards", "lengths")},
                      "advantages": adv_bt[:, 0].tolist(),  # every response has >= 1 token
                      "state": algo.save_state(verl_plugin.CARRY[preset].state)})
    print(f"{case}: max |verl - harness| advantage over {STEPS} steps = {worst:.3g}")
    assert worst <= 1e-6
    assert algo.save_state(state) == pytest.approx(steps[-1]["state"])
    check_golden("advantages", case, {"estimator": preset, "algorithm": node, "steps": steps, "max_abs_diff": worst},
                 note=f"{STEPS} steps of {PROMPTS} prompts x {G} responses, rewards 0/1 on the last of 1..{T} "
                      "tokens, rows in verl's order (prompts apart, each prompt's responses in order); "
                      "advantages: verl's compute_advantage with the plug-in, one per row; state: the "
                      "carried tracker after each step. Written by tests/verl_equivalence/test_verl_equivalence.py.")


@pytest.mark.parametrize("norm", [True, False], ids=["grpo", "dr_grpo"])
def test_verls_grpo_estimator_is_the_harness_grpo_and_dr_grpo(norm):
    gen = torch.Generator().manual_seed(7)
    step = make_step(gen)
    rewards_bt, mask_bt = verl_tensors(step)
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards_bt, "response_mask": mask_bt},
                               non_tensors={"uid": np.array(step["uids"], dtype=object)})
    got = compute_advantage(data, adv_estimator="grpo", norm_adv_by_std_in_grpo=norm,
                            config=OmegaConf.create({})).batch["advantages"]
    algo = algorithms.build(verl_plugin.algorithm_config("grpo" if norm else "dr_grpo"))
    batch, num_prompts = verl_plugin.reward_batch(rewards_bt, step["uids"], seed=0)
    expected = advantage_step(algo, batch, num_prompts, None).adv_b.float()[:, None] * mask_bt
    worst = (got - expected).abs().max().item()
    print(f"{'grpo' if norm else 'dr_grpo'}: max |verl grpo - harness| advantage = {worst:.3g}")
    assert worst <= 1e-6


LOSS_CASES = {
    "grpo": ("grpo", {}),
    "grpo_dual_clip": ("grpo", {"dual_clip": 3.0, "loss_agg": "token_mean"}),
    "dr_grpo": ("dr_grpo", {}),
    "dapo": ("dapo", {}),
    "gspo": ("gspo", {}),
    "gspo_wide_clip": ("gspo", {"clip_low": 0.2, "clip_high": 0.28, "loss_agg": "token_mean"}),
    "riskpo": ("riskpo", {}),
    "riskpo_reference": ("riskpo_reference", {}),
    **{f"vanilla_{mode.value}": ("riskpo_reference", {"loss_agg": mode.value}) for mode in LossAgg},
}


@pytest.mark.parametrize("case", LOSS_CASES)
def test_verls_policy_loss_equals_the_harness_loss(case):
    preset, fields = LOSS_CASES[case]
    config = verl_plugin.algorithm_config(preset, fields)
    settings = verl_plugin.actor_settings(config)
    gen = torch.Generator().manual_seed(sorted(LOSS_CASES).index(case))
    b, norm_length = 6, T + 3
    lengths = torch.randint(1, T + 1, (b,), generator=gen)
    mask_bt = (torch.arange(T)[None, :] < lengths[:, None]).float()
    old_bt = -torch.rand(b, T, generator=gen, dtype=torch.float64) * 3
    logp_bt = old_bt + torch.randn(b, T, generator=gen, dtype=torch.float64) * 0.6  # ratios past every clip
    adv_b = torch.randn(b, generator=gen, dtype=torch.float64)

    verl_logp = logp_bt.clone().requires_grad_(True)
    actor = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio=0.2,
                        clip_ratio_low=settings["clip_ratio_low"], clip_ratio_high=settings["clip_ratio_high"],
                        clip_ratio_c=settings.get("clip_ratio_c", 3.0), loss_agg_mode=settings["loss_agg_mode"],
                        policy_loss=PolicyLossConfig(loss_mode=settings["policy_loss.loss_mode"]))
    actor.global_batch_info["loss_scale_factor"] = norm_length  # actor.loss_scale_factor, per micro-batch
    loss_fn = core_algos.get_policy_loss_fn(settings["policy_loss.loss_mode"])
    verl_loss, _ = loss_fn(old_log_prob=old_bt, log_prob=verl_logp, advantages=adv_b[:, None].expand(b, T),
                           response_mask=mask_bt, loss_agg_mode=settings["loss_agg_mode"], config=actor)
    verl_loss.backward()

    algo = algorithms.build(config)
    logp = logp_bt.clone().requires_grad_(True)
    token = algo.token_loss(PolicyBatch(logp_bt=logp, old_logp_bt=old_bt, adv_b=adv_b, mask_bt=mask_bt))
    loss = algo.aggregate(token.loss_bt, mask_bt, LossNorm.of(mask_bt, norm_length))
    loss.backward()
    diff = abs(loss.item() - verl_loss.item())
    grad_diff = (logp.grad - verl_logp.grad).abs().max().item()
    print(f"{case}: |verl - harness| loss = {diff:.3g}, gradient max = {grad_diff:.3g}")
    assert diff <= 1e-9 and grad_diff <= 1e-9
    check_golden("losses", case, {
        "algorithm": preset, "fields": fields, "verl": settings, "norm_length": norm_length,
        "logp": logp_bt.tolist(), "old_logp": old_bt.tolist(), "adv": adv_b.tolist(), "mask": mask_bt.tolist(),
        "loss": verl_loss.item(), "grad": verl_logp.grad.tolist(), "max_abs_diff": max(diff, grad_diff)},
        note="verl's policy loss (policy_loss.loss_mode and actor settings in `verl`, float64, one "
             "micro-batch, dp 1, loss_scale_factor = norm_length): its value `loss` and its gradient "
             "`grad` with respect to logp. Written by tests/verl_equivalence/test_verl_equivalence.py.")


def check_golden(kind: str, name: str, case: dict, note: str) -> None:
    """Compare verl's outputs with tests/golden/verl/<kind>.json, or write them there (WRITE)."""
    path = GOLDEN / f"{kind}.json"
    cases = json.loads(path.read_text()) if path.is_file() else {}
    if WRITE:
        cases[name] = {**case, "verl_version": verl.__version__, "note": note}
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cases, indent=1, sort_keys=True) + "\n")
        return
    assert name in cases, f"{path}: no case {name}; run with RISKPO_BENCH_WRITE_GOLDEN=1"
    stored = cases[name]
    for key in ("advantages", "loss", "grad"):
        if key in case:
            assert np.allclose(np.array(case[key], dtype=float), np.array(stored[key], dtype=float), atol=1e-6)
    for got, want in zip(case.get("steps", []), stored.get("steps", [])):
        assert np.allclose(got["advantages"], want["advantages"], atol=1e-6)


def test_bench_sync_saves_and_restores_the_tracker_with_verls_checkpoint(tmp_path, monkeypatch):
    """The registered trainer's own part, on a bare instance: verl's actor, critic and dataloader
    checkpointing (which needs Ray workers) is left out by stubbing the sync trainer's methods."""
    from verl.trainer.ppo.v1 import get_trainer_cls
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    cls = get_trainer_cls("bench_sync")
    assert issubclass(cls, PPOTrainerSync)
    trainer = object.__new__(cls)
    trainer.trainer_mode = "bench_sync"  # what verl's __init__ assigns
    assert trainer.trainer_mode == "sync"
    trainer.config = OmegaConf.create({"trainer": {"default_local_dir": str(tmp_path), "resume_mode": "auto",
                                                   "resume_from_path": None}})
    monkeypatch.setattr(PPOTrainerSync, "_save_checkpoint", lambda self: (tmp_path / "global_step_3").mkdir())
    monkeypatch.setattr(PPOTrainerSync, "_load_checkpoint", lambda self: setattr(self, "global_steps", 3))
    verl_plugin.CARRY.clear()
    step = make_step(torch.Generator().manual_seed(0))
    through_verl("riskpo", step, {})
    before = verl_plugin.save_carry()
    trainer.global_steps = 3
    trainer._save_checkpoint()
    assert (tmp_path / "global_step_3" / verl_plugin.STATE_FILE).is_file()
    through_verl("riskpo", step, {})  # moves the tracker on
    assert verl_plugin.save_carry() != before
    trainer._load_checkpoint()
    assert verl_plugin.save_carry() == before
