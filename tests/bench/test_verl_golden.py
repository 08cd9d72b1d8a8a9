"""The verl plug-in's harness side against verl's own numbers, without verl.

tests/golden/verl/*.json hold what verl 0.9.1 computed (tests/verl_equivalence/test_verl_equivalence.py,
``make test-verl``): its ``compute_advantage`` with the plug-in, step after step with the tracker
carried, and its ``vanilla`` / ``gspo`` policy losses and gradients. Here the same inputs go
through ``bench.verl_plugin.advantage`` (as verl calls it) and the harness's own loss.
"""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import algorithms
from algorithms.base import PolicyBatch
from algorithms.ops import LossNorm
from bench import verl_plugin

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "verl"
ADVANTAGES = json.loads((GOLDEN / "advantages.json").read_text())
LOSSES = json.loads((GOLDEN / "losses.json").read_text())


def verl_tensors(rewards: list[float], lengths: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's token_level_rewards (the reward on the last response token) and response_mask."""
    lengths_b = torch.tensor(lengths)
    mask_bt = (torch.arange(width)[None, :] < lengths_b[:, None]).float()
    rewards_bt = torch.zeros(len(lengths), width)
    rewards_bt[torch.arange(len(lengths)), lengths_b - 1] = torch.tensor(rewards)
    return rewards_bt, mask_bt


@pytest.fixture(autouse=True)
def fresh_carry():
    verl_plugin.CARRY.clear()
    yield
    verl_plugin.CARRY.clear()


@pytest.mark.parametrize("name", sorted(ADVANTAGES))
def test_the_plugin_reproduces_verls_advantages_step_after_step(name):
    case = ADVANTAGES[name]
    node = OmegaConf.create({"adv_estimator": case["estimator"], **case["algorithm"]})
    for step in case["steps"]:
        rewards_bt, mask_bt = verl_tensors(step["rewards"], step["lengths"], max(step["lengths"]) + 1)
        adv_bt, returns_bt = verl_plugin.advantage(case["estimator"], rewards_bt, mask_bt, step["uids"], node)
        assert torch.equal(adv_bt, returns_bt)
        assert adv_bt[:, 0].tolist() == pytest.approx(step["advantages"], abs=1e-6)
        assert (adv_bt * (1 - mask_bt)).abs().max() == 0
        saved = algorithms.build(verl_plugin.algorithm_config(case["estimator"])).save_state(
            verl_plugin.CARRY[case["estimator"]].state)
        assert saved == pytest.approx(step["state"])


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_harness_loss_is_verls(name):
    case = LOSSES[name]
    config = verl_plugin.algorithm_config(case["algorithm"], case["fields"])
    assert verl_plugin.actor_settings(config) == case["verl"]
    logp = torch.tensor(case["logp"], dtype=torch.float64, requires_grad=True)
    mask_bt = torch.tensor(case["mask"], dtype=torch.float64)
    algo = algorithms.build(config)
    token = algo.token_loss(PolicyBatch(logp_bt=logp, old_logp_bt=torch.tensor(case["old_logp"], dtype=torch.float64),
                                        adv_b=torch.tensor(case["adv"], dtype=torch.float64), mask_bt=mask_bt))
    loss = algo.aggregate(token.loss_bt, mask_bt, LossNorm.of(mask_bt, case["norm_length"]))
    loss.backward()
    assert loss.item() == pytest.approx(case["loss"], abs=1e-9)
    assert (logp.grad - torch.tensor(case["grad"], dtype=torch.float64)).abs().max() <= 1e-9


def test_bundles_do_not_depend_on_verls_row_order():
    case = ADVANTAGES["riskpo_reference"]["steps"][0]
    rewards_bt, mask_bt = verl_tensors(case["rewards"], case["lengths"], 8)
    adv_bt, _ = verl_plugin.advantage("riskpo_reference", rewards_bt, mask_bt, case["uids"])
    # prompts in another order (each prompt's responses keep theirs): the same advantage per response
    order = sorted(range(len(case["uids"])), key=lambda i: (case["uids"][i][::-1], i))
    moved_bt, _ = verl_plugin.advantage("riskpo_reference", rewards_bt[order], mask_bt[order],
                                        [case["uids"][i] for i in order])
    assert torch.equal(moved_bt, adv_bt[order])


@pytest.mark.parametrize("node, message", [
    ({"riskpo": {"bundel_size": 5}}, "algorithm.adv_estimator=riskpo: Key 'bundel_size' not in 'RiskPOConfig'"),
    ({"riskpo": {"alpha": 0.9}}, "algorithm.adv_estimator=riskpo: need 0 < alpha < beta < 1, got alpha=0.9 beta=0.8"),
    ({"riskpo": {"credit": "stdd"}}, "algorithm.adv_estimator=riskpo: Invalid value 'stdd'"),
    ({"riskpo": 5}, "algorithm.riskpo must be a mapping"),
])
def test_a_bad_field_fails_with_one_line(node, message):
    rewards_bt, mask_bt = verl_tensors([1.0, 0.0], [1, 1], 2)
    with pytest.raises(verl_plugin.VerlConfigError) as err:
        verl_plugin.advantage("riskpo", rewards_bt, mask_bt, ["u", "u"], OmegaConf.create(node))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_the_carried_tracker_survives_a_checkpoint():
    steps = ADVANTAGES["riskpo"]["steps"]
    for step in steps[:2]:
        verl_plugin.advantage("riskpo", *verl_tensors(step["rewards"], step["lengths"], 8), step["uids"])
    saved = json.loads(json.dumps(verl_plugin.save_carry()))  # through the checkpoint's JSON file
    verl_plugin.CARRY.clear()
    verl_plugin.restore_carry(saved)
    adv_bt, _ = verl_plugin.advantage("riskpo", *verl_tensors(steps[2]["rewards"], steps[2]["lengths"], 8),
                                      steps[2]["uids"])
    assert adv_bt[:, 0].tolist() == pytest.approx(steps[2]["advantages"], abs=1e-6)
