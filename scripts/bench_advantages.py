"""Wall time of one advantage computation per algorithm, on CPU, at the batch sizes of the
RiskPO paper's runs (1024 prompts x 8 or 16 responses, binary rewards).

    python scripts/bench_advantages.py          # the table
    python scripts/bench_advantages.py --loop   # also the loop version of RiskPO, and the speed-up

Each row times ``algo.advantages(batch, groups, state)`` (for DAPO ``select`` as well, and with
response lengths for its overlong shaping): the median of --repeats calls after a warm-up.
RiskPO's incoming tracker state comes from one step on the same rewards, so the timed calls take
the stochastic-approximation path a training run takes every step after the first.

--loop times tests/algorithms/loop_riskpo.py once per RiskPO row on the same inputs: plain Python
per response, as the reference code (RTkenny/RiskPO) is; the speed-up is loop / vectorised, and
max |diff| compares the two (float32 rewards, so the vectorised advantage is float32 too).
The goal is under 10 ms per call on a 2-core machine; the last column says whether a row meets it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from algorithms.base import Algorithm, RewardBatch
from algorithms.dapo import DAPO, DAPOConfig
from algorithms.grpo import GRPO, GRPOConfig
from algorithms.riskpo import RiskPO, RiskPOConfig

GOAL_MS = 10.0  # per call, on a 2-core machine
GOAL_CORES = 2
MAX_LENGTH = 20480  # DAPO's generation cap (its overlong buffer, 4096, is the default)
LOOP_PATH = Path(__file__).resolve().parent.parent / "tests" / "algorithms" / "loop_riskpo.py"


@dataclass(frozen=True)
class Case:
    name: str
    algo: Algorithm
    with_select: bool = False  # DAPO: dynamic sampling runs on the same rewards


CASES = [
    Case("grpo", GRPO(GRPOConfig())),
    Case("dapo (select + overlong)", DAPO(DAPOConfig()), with_select=True),
    Case("riskpo paper, tracked", RiskPO(RiskPOConfig())),
    # riskpo_reference.yaml (mixed form, ordered papers, std-normalised, credit by question std)
    # with the tracker instead of batch quantiles
    Case("riskpo reference, tracked", RiskPO(RiskPOConfig(
        formulation="reference", quantile_source="tracked", pairing="ordered", normalize_std=True, credit="std"))),
]


def make_batch(num_prompts: int, g: int, seed: int) -> RewardBatch:
    gen = torch.Generator().manual_seed(seed)
    rewards_b = torch.randint(0, 2, (num_prompts * g,), generator=gen).float()
    lengths_b = torch.randint(1, MAX_LENGTH + 1, (num_prompts * g,), generator=gen)
    prompt_b = torch.arange(num_prompts).repeat_interleave(g)
    return RewardBatch(rewards_b=rewards_b, prompt_b=prompt_b, lengths_b=lengths_b, max_length=MAX_LENGTH, seed=seed)


def step(case: Case, batch: RewardBatch, num_prompts: int, state: Any) -> Callable[[], Any]:
    """The call to time, closed over its inputs."""
    algo = case.algo
    groups = algo.group(num_prompts)

    def call() -> Any:
        if case.with_select:
            algo.select(batch.rewards_b, batch.prompt_b, num_prompts)
        return algo.advantages(batch, groups, state)

    return call


def median_ms(call: Callable[[], Any], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def load_loop() -> Callable:
    spec = importlib.util.spec_from_file_location("loop_riskpo", LOOP_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.loop_advantages


def time_loop(loop: Callable, case: Case, batch: RewardBatch, num_prompts: int, g: int, state: Any,
              vectorised_adv_b: torch.Tensor) -> tuple[float, float]:
    """(ms, max |loop - vectorised|) for one call of the loop version on the same inputs."""
    rows = batch.rewards_b.view(num_prompts, g).tolist()  # prompt-major, as make_batch lays it out
    start = time.perf_counter()
    adv, _ = loop(rows, case.algo.config, state, batch.seed)
    ms = (time.perf_counter() - start) * 1e3
    diff = (torch.tensor(adv, dtype=torch.float64).flatten() - vectorised_adv_b.double()).abs().max().item()
    return ms, diff


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", action="store_true", help="also time the loop version of RiskPO (slow)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    loop = load_loop() if args.loop else None
    print(f"advantage wall time, CPU: {cores} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), python {sys.version.split()[0]}")
    print(f"median of {args.repeats} calls after {args.warmup} warm-up; binary float32 rewards, seed {args.seed}; "
          f"goal < {GOAL_MS:g} ms per call on a {GOAL_CORES}-core machine"
          + ("" if cores == GOAL_CORES else f" (this machine has {cores}: the verdicts are indicative)"))
    header = f"{'algorithm':<28}{'prompts x G':>12}{'median ms':>11}{'< 10 ms':>9}"
    if loop:
        header += f"{'loop ms':>11}{'speed-up':>10}{'max |diff|':>12}"
    print(header)
    print("-" * len(header))
    for num_prompts, g in [(1024, 8), (1024, 16)]:
        batch = make_batch(num_prompts, g, args.seed)
        for case in CASES:
            state = case.algo.init_state()
            if state is not None:  # one step first: the tracker a training run carries
                state = case.algo.advantages(batch, case.algo.group(num_prompts), state).state
            call = step(case, batch, num_prompts, state)
            ms = median_ms(call, args.repeats, args.warmup)
            line = f"{case.name:<28}{f'{num_prompts} x {g}':>12}{ms:>11.2f}{'yes' if ms < GOAL_MS else 'NO':>9}"
            if loop and isinstance(case.algo, RiskPO):
                loop_ms, diff = time_loop(loop, case, batch, num_prompts, g, state, call().adv_b)
                line += f"{loop_ms:>11.1f}{loop_ms / ms:>9.0f}x{diff:>12.1e}"
            elif loop:
                line += f"{'-':>11}{'-':>10}{'-':>12}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
