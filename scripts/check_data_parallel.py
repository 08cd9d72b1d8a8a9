"""One run trained by one process and by N torchrun processes (gloo on the CPU, NCCL on GPUs):
how far apart they end up, per algorithm.

    python scripts/check_data_parallel.py                      # grpo, dapo, riskpo; 3 steps; 2 processes
    python scripts/check_data_parallel.py --steps 5 --nproc 4 --algorithms riskpo -- model.device=cuda

For each algorithm it prints the largest weight difference after every step, the largest
relative difference of the logged gradient norm and absolute difference of the loss, whether the train rewards, the
advantages' mean and the evaluation's pass@k are identical, and each run's wall time.
tests/bench/test_distributed.py asserts the same at 2 steps, with the settings this script
reads from it; this script is for other step counts, devices and worlds.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

from bench.training.sinks import read_table

# the settings tests/bench/test_distributed.py asserts on, but for the number of steps
TESTS = Path(__file__).resolve().parent.parent / "tests" / "bench" / "test_distributed.py"


def tested_settings() -> tuple[list[str], dict[str, list[str]]]:
    spec = importlib.util.spec_from_file_location("test_distributed", TESTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [o for o in module.BASE if not o.startswith("trainer.steps=")], module.ALGORITHMS


def run(command: list[str], run_dir: Path) -> float:
    start = time.monotonic()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, f"hydra.run.dir={run_dir}"], capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - start


def weight_gap(one: Path, many: Path, step: int) -> float:
    a, b = (load_file(d / "checkpoints" / f"step-{step:06d}" / "model" / "model.safetensors") for d in (one, many))
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--algorithms", nargs="+", default=["grpo", "dapo", "riskpo"])
    parser.add_argument("overrides", nargs="*", help="more bench.run overrides, after --")
    args = parser.parse_args()
    base, algorithms = tested_settings()
    root = Path(tempfile.mkdtemp(prefix="data-parallel-"))
    print(f"{args.nproc} processes against 1, {args.steps} steps; runs in {root}")
    for name in args.algorithms:
        overrides = [*base, *algorithms[name], f"trainer.steps={args.steps}", *args.overrides]
        one, many = root / f"{name}-1", root / f"{name}-{args.nproc}"
        seconds_one = run([sys.executable, "-m", "bench.run", *overrides], one)
        seconds_many = run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc-per-node={args.nproc}", "-m", "bench.run", *overrides], many)
        m1, m2 = (read_table(d / "metrics.parquet") for d in (one, many))
        e1, e2 = (read_table(d / "eval.parquet") for d in (one, many))
        grad_rel = ((m1["train/grad_norm"] - m2["train/grad_norm"]).abs() / m1["train/grad_norm"]).max()
        loss_abs = (m1["train/loss"] - m2["train/loss"]).abs().max()  # about 0 with ratio 1: no relative gap
        same = {c: m1[c].tolist() == m2[c].tolist() for c in ("train/reward_mean", "train/adv_mean")}
        gaps = ", ".join(f"{weight_gap(one, many, s):.1e}" for s in range(1, args.steps + 1))
        print(f"{name}: max |weight difference| after each step {gaps}; grad norm rel {grad_rel:.1e}, "
              f"loss abs {loss_abs:.1e}; rewards identical {same['train/reward_mean']}, "
              f"advantage means identical {same['train/adv_mean']}, "
              f"pass@k identical {e1['pass_at_k'].tolist() == e2['pass_at_k'].tolist()}; "
              f"wall {seconds_one:.0f} s / {seconds_many:.0f} s")


if __name__ == "__main__":
    main()
