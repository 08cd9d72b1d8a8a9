"""The harness's GRPO training against TRL's GRPOTrainer on the same workload, end to end.

    bash scripts/setup_trl.sh                                   # .venv-trl: the project plus TRL, once
    .venv-trl/bin/python scripts/bench_trl.py                   # the tiny model
    .venv-trl/bin/python scripts/bench_trl.py --hidden 512 --layers 8   # a random 34M model

Both train GRPO from the same weights on the default run's step: 20 arith prompts x 8 samples
(the prompts in the order of the run's seeded sampler), max_new_tokens 64, temperature 1, lr 3e-5
constant, AdamW, gradient clipping at 1, no KL term and no reference model, one optimizer step per
batch in two micro-batches of 80, each response's token mean then the mean over responses (TRL's
``loss_type="grpo"``, the harness's GRPO default), group-std-normalised advantages, float32 and no
activation checkpointing (TRL turns both bf16 and checkpointing on by default; on a CPU without
native bf16 its step is then about 7x slower, which is not the comparison). TRL generates
with transformers; the harness with its hf engine in this environment and, when ``.venv-vllm``
exists, with ``rollout=vllm`` there (TRL's vLLM modes are not installed in ``.venv-trl``).

Each side runs in its own process, one after the other (run it on a quiet machine). Printed per
side: seconds per step (the median of ``--steps`` steps after a warm-up step), the wall time of
the whole process (start-up, loading and the steps; the harness also evaluates one problem before
and after), the mean response length, and the throughput ratio harness / TRL (the goal: >= 1.5).
Without TRL in the environment it says how to get it and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
PROMPTS, N, MAX_NEW_TOKENS, LR, MICRO = 20, 8, 64, 3e-5, 80


def trl_side(model_dir: str, steps: int) -> dict:
    """TRL's GRPOTrainer for steps + 1 steps; per-step seconds from a callback."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from bench.training.seeds import PromptSampler
    from tasks.arith import ArithConfig, ArithTask

    task = ArithTask(ArithConfig())
    pool = task.load("train")
    order = PromptSampler(len(pool), 0).take(PROMPTS * (steps + 1))
    dataset = Dataset.from_list([{"prompt": task.prompt(pool[i]), "idx": i} for i in order])
    lengths: list[float] = []

    def reward(completions, idx, completion_ids, **_):
        lengths.append(sum(len(c) for c in completion_ids) / len(completion_ids))
        return [task.score(pool[i], c[0]["content"]).reward for c, i in zip(completions, idx)]

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_step_begin(self, *args, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            self.seconds.append(time.perf_counter() - self.start)

    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"), per_device_train_batch_size=MICRO,
        gradient_accumulation_steps=PROMPTS * N // MICRO, num_generations=N, max_completion_length=MAX_NEW_TOKENS,
        temperature=1.0, top_p=1.0, top_k=0, learning_rate=LR, lr_scheduler_type="constant", weight_decay=0.0,
        max_grad_norm=1.0, beta=0.0, num_iterations=1, loss_type="grpo", scale_rewards="group",
        max_steps=steps + 1, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
        shuffle_dataset=False, seed=0, dataloader_num_workers=0, disable_dropout=True,
        bf16=False, gradient_checkpointing=False)  # TRL's defaults are on: the harness's CPU step is fp32, whole
    clock = Clock()
    trainer = GRPOTrainer(model=model_dir, reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=AutoTokenizer.from_pretrained(model_dir, padding_side="left"),
                          callbacks=[clock])
    trainer.train()
    return {"seconds": median(clock.seconds[1:]), "length": sum(lengths[1:]) / max(len(lengths) - 1, 1),
            "threads": torch.get_num_threads()}


def harness_side(model_dir: str, steps: int, engine: str) -> dict:
    """The harness's trainer on the same step (bench.perf.harness_steps), with the engine chosen."""
    import torch

    from bench.perf import harness_steps

    figures = harness_steps(model_dir, steps, [f"rollout={engine}", f"trainer.micro_batch_size={MICRO}",
                                               "algorithm.loss_agg=seq_mean_token_mean"])
    return figures | {"threads": torch.get_num_threads()}


def side(python: str, name: str, model_dir: str, steps: int) -> dict:
    """One side in its own process: its figures, and the process's wall time."""
    start = time.perf_counter()
    done = subprocess.run([python, __file__, "--side", name, "--model-dir", model_dir, "--steps", str(steps)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise SystemExit(f"bench_trl: the {name} side failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"wall": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="steps timed after a warm-up step")
    parser.add_argument("--hidden", type=int, default=0, help="a random model this wide instead of the tiny one")
    parser.add_argument("--layers", type=int, default=8, help="its decoder layers (with --hidden)")
    parser.add_argument("--side", choices=["trl", "hf", "vllm"], help=argparse.SUPPRESS)  # one side, in this process
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        figures = trl_side(args.model_dir, args.steps) if args.side == "trl" else \
            harness_side(args.model_dir, args.steps, args.side)
        print(json.dumps(figures))
        return 0
    try:
        import trl
    except ImportError:
        print("bench_trl: TRL is not installed in this environment; run `bash scripts/setup_trl.sh`, then "
              "`.venv-trl/bin/python scripts/bench_trl.py`")
        return 0
    from bench.config import ModelConfig
    from bench.models.policy import resolve_path
    from bench.perf import wider_model

    model_dir = wider_model(args.hidden, args.layers) if args.hidden else resolve_path(ModelConfig())
    sides = {"trl": sys.executable, "hf": sys.executable}
    vllm_python = ROOT / ".venv-vllm" / "bin" / "python"
    if vllm_python.exists():
        sides["vllm"] = str(vllm_python)
    label = f"random {args.hidden} x {args.layers}" if args.hidden else "the tiny model"
    print(f"GRPO, {PROMPTS} prompts x {N} per step, max_new_tokens {MAX_NEW_TOKENS}, {label}; TRL {trl.__version__}; "
          f"median of {args.steps} steps after a warm-up step, each side in its own process")
    results = {name: side(python, name, model_dir, args.steps) for name, python in sides.items()}
    for name, r in results.items():
        who = "TRL GRPOTrainer" if name == "trl" else f"harness, rollout={name}"
        ratio = "" if name == "trl" else (f"   step throughput {results['trl']['seconds'] / r['seconds']:.2f}x TRL's, "
                                          f"whole process {results['trl']['wall'] / r['wall']:.2f}x")
        print(f"  {who:24s} {r['seconds']:7.3f} s per step, process {r['wall']:6.1f} s, mean response "
              f"{r['length']:5.1f} tokens, {r['threads']} threads{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
