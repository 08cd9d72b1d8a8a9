"""The harness's algorithms as verl advantage estimators: the part that needs no verl.

verl (>= 0.9, ``verl.trainer.ppo.core_algos``) calls an advantage estimator once per step, on the
driver, with the whole step's batch: ``token_level_rewards`` [N, T], ``response_mask`` [N, T],
``index`` (one uid string per prompt, repeated over its responses) and ``config`` (verl's
``algorithm`` node). ``advantage`` below turns that into the harness's ``RewardBatch`` and runs
the harness's own ``advantage_step``; bench/verl_register.py hands it to verl's registries.

- Estimators: one per RiskPO preset of conf/algorithm (``ESTIMATORS``), under the preset's name:
  ``algorithm.adv_estimator=riskpo_reference``. The preset's fields come from its YAML file; any
  field can be overridden under ``algorithm.riskpo`` (``+algorithm.riskpo.bundle_size=10``). A
  bad field or value fails with one line. GRPO, Dr.GRPO, DAPO and GSPO need no estimator here:
  verl's ``grpo`` (``norm_adv_by_std_in_grpo`` true / false) computes the harness's advantage
  (tests/verl_equivalence/test_verl_equivalence.py), and their losses are verl's ``vanilla``
  and ``gspo`` with the settings ``actor_settings`` gives.
- Bundles come from the uids, never from row order: prompt p is the p-th of the step's uids in
  sorted order, and bundle k holds prompts kB..kB+B-1. verl's uids are uuid4 strings, so sorting
  them is a random shuffle of the prompts, fixed by the uids: the paper's "B consecutive
  (shuffled) questions", and the same bundles however verl orders the rows (it does: verl
  0.9's trainer sorts rows by length across data-parallel ranks, ``_balance_batch``, before
  ``_compute_advantage``, and that may move responses within a prompt too). No bundle id is
  needed. Within a prompt, responses are dealt to papers in row order (``pairing=ordered``) or
  by a seeded permutation of that order (``random``): a reorder within a prompt deals another
  pairing, as arbitrary as the first (the paper draws one at random), so the papers' scores may
  change but not their distribution.
- State: verl's estimator signature has no state argument, so the tracker is carried here, in
  ``CARRY`` (one ``Carry`` per estimator name), read and replaced by each call, and saved and
  restored with verl's ``global_step_N`` checkpoints by the trainer of bench/verl_register.py
  (``save_carry`` / ``restore_carry``). Only the driver computes advantages, so one process holds
  it. The step count seeds the random pairing (``pairing_seed(0, step)``), as the harness's
  trainer does with its run seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

import algorithms
from algorithms.base import AlgorithmConfig, RewardBatch, advantage_step
from algorithms.ops import KLEstimator, LossAgg, RatioLevel
from bench.compose import CONF_DIR, CONFIG_ERRORS, one_line
from bench.training.seeds import pairing_seed

ESTIMATORS = ("riskpo", "riskpo_reference", "riskpo_reference_hard", "riskpo_seeking")
STATE_FILE = "riskpo_bench_state.json"  # next to verl's actor/ and data.pt in global_step_N/
# verl's loss_agg_mode spells the harness's LossAgg with "-" for "_"
LOSS_AGG = {mode: mode.value.replace("_", "-") for mode in LossAgg}
# verl's vanilla loss always applies dual-clip (clip_ratio_c, default 3); a bound no ratio reaches
# turns it off exactly: the log-ratio is clamped at 20 before exp(), and exp(20) < 1e9.
NO_DUAL_CLIP = 1e9
# verl's kl_loss_type names of Schulman's estimators (core_algos.kl_penalty)
KL_LOSS_TYPE = {KLEstimator.k1: "kl", KLEstimator.k2: "mse", KLEstimator.k3: "low_var_kl"}


class VerlConfigError(ValueError):
    """A bad ``algorithm`` node for a harness estimator; the message is one line."""


@dataclass(frozen=True)
class Carry:
    """What one estimator carries from step to step: the algorithm's state and the steps taken."""

    state: Any = None
    steps: int = 0


CARRY: dict[str, Carry] = {}


def algorithm_config(preset: str, node: Optional[Mapping[str, Any]] = None) -> AlgorithmConfig:
    """The typed config of ``preset`` (a conf/algorithm file), with ``node``'s fields on top
    (verl's ``algorithm.<name>`` node, where <name> is the algorithm's registry key)."""
    try:
        path = CONF_DIR / "algorithm" / f"{preset}.yaml"
        if not path.is_file():
            raise KeyError(f"no preset conf/algorithm/{preset}.yaml")
        values = OmegaConf.load(path)
        schema = next(d for d in values.pop("defaults") if str(d).endswith("_schema"))
        config_type = algorithms.get_algorithm(str(schema).removesuffix("_schema")).config_type
        merged = OmegaConf.merge(OmegaConf.structured(config_type), values, node or {})
        return OmegaConf.to_object(merged)
    except CONFIG_ERRORS as err:
        raise VerlConfigError(f"algorithm.adv_estimator={preset}: {one_line(err)}") from err


def config_from_verl(preset: str, algorithm_node: Any) -> AlgorithmConfig:
    """``algorithm_config`` of verl's ``algorithm`` node (a DictConfig or a verl AlgoConfig)."""
    key = algorithm_config(preset).name  # riskpo for every RiskPO preset
    node = algorithm_node.get(key) if algorithm_node is not None and hasattr(algorithm_node, "get") else None
    if node is not None and not isinstance(node, (Mapping, DictConfig)):
        raise VerlConfigError(f"algorithm.{key} must be a mapping of {preset}'s fields, got {node!r}")
    return algorithm_config(preset, node)


def reward_batch(token_level_rewards: Tensor, index: Sequence[Any], seed: int) -> tuple[RewardBatch, int]:
    """The harness's batch of verl's rows, with prompts numbered by their uids' sorted order."""
    uids = sorted(set(index))
    number = {uid: p for p, uid in enumerate(uids)}
    prompt_b = torch.tensor([number[uid] for uid in index], dtype=torch.long)
    rewards_b = token_level_rewards.sum(dim=-1)  # outcome reward: verl puts it on the last token
    return RewardBatch(rewards_b=rewards_b, prompt_b=prompt_b.to(rewards_b.device), seed=seed), len(uids)


def advantage(preset: str, token_level_rewards: Tensor, response_mask: Tensor, index: Sequence[Any],
              config: Any = None) -> tuple[Tensor, Tensor]:
    """verl's estimator contract: (advantages, returns), both [N, T], the response's advantage on
    each of its tokens. Runs ``advantage_step`` with the state carried from the previous call."""
    algo = algorithms.build(config_from_verl(preset, config))
    carry = CARRY.get(preset) or Carry(state=algo.init_state())
    batch, num_prompts = reward_batch(token_level_rewards, index, pairing_seed(0, carry.steps))
    step = advantage_step(algo, batch, num_prompts, carry.state)
    CARRY[preset] = Carry(state=step.out.state, steps=carry.steps + 1)
    adv_bt = step.adv_b.to(token_level_rewards.dtype)[:, None] * response_mask
    return adv_bt, adv_bt


def carry_metrics() -> dict[str, float]:
    """The carried trackers, as algo/<preset>/... metrics for verl's logger."""
    out = {}
    for preset, carry in CARRY.items():
        saved = carry.state.__dict__ if hasattr(carry.state, "__dict__") else {}
        out |= {f"algo/{preset}/{k}": float(v) for k, v in saved.items() if isinstance(v, (int, float))}
    return out


def save_carry() -> dict[str, Any]:
    """``CARRY`` as plain data (JSON), through each algorithm's ``save_state``."""
    out = {}
    for preset, carry in CARRY.items():
        algo = algorithms.build(algorithm_config(preset))
        out[preset] = {"state": algo.save_state(carry.state), "steps": carry.steps}
    return out


def restore_carry(saved: Mapping[str, Any]) -> None:
    """Undo ``save_carry``: ``CARRY`` as it was when the checkpoint was written."""
    CARRY.clear()
    for preset, entry in saved.items():
        algo = algorithms.build(algorithm_config(preset))
        CARRY[preset] = Carry(state=algo.restore_state(entry["state"]), steps=int(entry["steps"]))


def actor_settings(config: AlgorithmConfig) -> dict[str, Any]:
    """verl's ``actor_rollout_ref.actor`` settings under which verl's own loss is the harness's
    ``token_loss`` + ``aggregate`` for ``config`` (tests/verl_equivalence/test_verl_equivalence.py).

    ``loss_scale_factor`` (Dr.GRPO's constant length) is the generation cap: set it to
    ``data.max_response_length`` yourself. kl_coef > 0 maps to verl's ``use_kl_loss``."""
    sequence = config.ratio is RatioLevel.sequence
    if sequence and config.dual_clip is not None:
        raise VerlConfigError(f"{config.name}: verl's gspo loss has no dual-clip; set algorithm.dual_clip=null")
    out = {"policy_loss.loss_mode": "gspo" if sequence else "vanilla", "clip_ratio_low": config.clip_low,
           "clip_ratio_high": config.clip_high, "loss_agg_mode": LOSS_AGG[config.loss_agg],
           "use_kl_loss": config.kl_coef > 0}
    if not sequence:
        out["clip_ratio_c"] = NO_DUAL_CLIP if config.dual_clip is None else config.dual_clip
    if config.kl_coef > 0:
        out |= {"kl_loss_coef": config.kl_coef, "kl_loss_type": KL_LOSS_TYPE[config.kl_estimator]}
    return out
