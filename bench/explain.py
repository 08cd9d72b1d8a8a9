"""``python -m bench.explain``: one advantage step on rewards you give, printed as JSON.

    python -m bench.explain algorithm=riskpo rewards='[[1,0,0,1],[0,0,0,0]]' algorithm.pairing=ordered

Rewards are one list per prompt, in batch order. The output has ``advantages`` in the same
nesting (the per-response value, before broadcasting over tokens), which prompts ``select``
kept (DAPO's dynamic sampling; a dropped prompt shows advantage 0, as it gets no gradient), the
algorithm's metrics, its state after the step, and its own account of the step (for riskpo:
bundles, papers with their [prompt, response] members, paper scores, the quantiles used).
Bad input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

import algorithms
from algorithms.base import RewardBatch, advantage_step
from bench.compose import ConfigError, compose, one_line
from bench.config import plain


def nested_tensor(rows: Any, what: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten one list per prompt into (values_b, prompt_b), rejecting empty or non-finite input."""
    shape_ok = isinstance(rows, list) and rows and all(isinstance(row, list) and row for row in rows)
    if not shape_ok or not all(isinstance(x, (int, float)) for row in rows for x in row):
        raise ValueError(f"{what} must be a non-empty list of non-empty lists of numbers, one list per prompt")
    flat = [float(x) for row in rows for x in row]
    if not all(math.isfinite(x) for x in flat):
        raise ValueError(f"{what} must be finite numbers (found NaN or inf)")
    prompt_b = torch.tensor([p for p, row in enumerate(rows) for _ in row])
    return torch.tensor(flat, dtype=dtype), prompt_b


def explain(cfg: DictConfig) -> dict[str, Any]:
    """Run the trainer's hook sequence (``advantage_step``: select -> group -> advantages) once and
    report every intermediate value."""
    if OmegaConf.is_missing(cfg, "rewards"):
        raise ValueError("rewards is required: one list per prompt, e.g. rewards='[[1,0,0,1],[0,0,0,0]]'")
    algo = algorithms.build(OmegaConf.to_object(cfg.algorithm))
    rows = _container(cfg.rewards)
    rewards_b, prompt_b = nested_tensor(rows, "rewards", torch.float64)
    lengths_b = None
    if cfg.lengths is not None:
        lengths_b, length_prompt_b = nested_tensor(_container(cfg.lengths), "lengths", torch.float64)
        if not torch.equal(length_prompt_b, prompt_b):
            raise ValueError("lengths must have the same nesting as rewards")
    batch = RewardBatch(rewards_b=rewards_b, prompt_b=prompt_b, lengths_b=lengths_b, max_length=cfg.max_length,
                        seed=cfg.seed)
    state = algo.restore_state(None if cfg.state is None else OmegaConf.to_container(cfg.state))
    step = advantage_step(algo, batch, len(rows), state)
    result: dict[str, Any] = {"algorithm": plain(algo.config), "kept": step.keep_p.tolist()}
    if bool(step.keep_p.any()):
        result.update(metrics=step.out.metrics, state=algo.save_state(step.out.state),
                      details=algo.describe(step.batch, step.groups, step.out))
    else:
        result.update(metrics={}, state=algo.save_state(state), details={})
    result["advantages"] = [step.adv_b[prompt_b == p].tolist() for p in range(len(rows))]
    return result


def to_json(result: dict[str, Any]) -> str:
    """Indented JSON with floats to 6 decimals and lists of scalars kept on one line."""
    text = json.dumps(_rounded(result), indent=2)
    return re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 6)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    return obj


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        result = explain(compose("explain", argv))
    except (ConfigError, ValueError, KeyError, TypeError) as err:
        print(f"bench.explain: {one_line(err)}", file=sys.stderr)
        return 2
    print(to_json(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
