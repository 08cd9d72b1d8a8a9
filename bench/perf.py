"""Performance figures of the pipeline's stages, printed (speed goals live here, not in tests).

    python -m bench.perf memory    # peak memory of log-probs + entropy: chunked vs full logits
    python -m bench.perf step [overrides ...]   # time split of training steps of the default run
    python -m bench.perf rollout   # tokens/s of the hf and vllm engines on the same prompts (.venv-vllm)

``step`` runs ``bench.run``'s trainer for a few steps (after one warm-up step) and reads the
stage times every run logs (``time/<stage>`` columns of metrics.parquet): generate, score,
advantages, old_logprobs, update (the forward/backward and optimizer work), sync (the push into
vLLM; nothing for hf); "other" is the rest of the step, the harness's own overhead.

``rollout`` builds both engines on one policy in one process and times them on the same
prompts, alternating which goes first: (a) one training step's batch (20 arith training prompts
x 8, one call), (b) the evaluation batch (the 500 held-out arith problems x 8, in calls of
``eval.prompts_per_call`` prompts, as the evaluator makes them). Generated tokens per second,
the median over rounds, and the ratio vllm / hf. ``--hidden``/``--layers`` swap the tiny model
for a randomly initialised wider one of the same family and tokenizer (responses then run to the
length cap), to show where compute, not per-token overhead, dominates.

``memory`` builds a 2-layer Qwen2 with a real-size vocabulary (151,936, as Qwen2.5) and a small
hidden size, random weights, so the output head dominates; each variant runs forward and
backward in a fresh subprocess, and the figure is the growth of the peak over what the process
held before the computation: ``torch.cuda.max_memory_allocated`` on CUDA, the peak resident set
(``getrusage`` maxrss) on the CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Optional, Sequence

import torch

GIB = 2**30


def build_model(vocab: int, hidden: int, device: torch.device):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config).to(device)


def naive(model, input_ids_bt: torch.Tensor, attention_mask_bt: torch.Tensor) -> torch.Tensor:
    """The usual way: full float32 logits, log-softmax, gather, entropy for logging."""
    logits = model(input_ids=input_ids_bt, attention_mask=attention_mask_bt).logits.float()
    logp_all = logits.log_softmax(-1)
    logp_bt = logp_all[:, :-1].gather(-1, input_ids_bt[:, 1:, None]).squeeze(-1)
    with torch.no_grad():
        entropy_bt = -(logp_all.exp() * logp_all).sum(-1)
    entropy_bt.mean().item()
    return logp_bt


def chunked(model, input_ids_bt: torch.Tensor, attention_mask_bt: torch.Tensor, chunk: int) -> torch.Tensor:
    from bench.models.policy import token_logprobs

    logp_bt, entropy_bt = token_logprobs(model, input_ids_bt, attention_mask_bt, chunk, with_entropy=True)
    entropy_bt.detach().mean().item()
    return logp_bt


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def measure_one(args: argparse.Namespace) -> dict:
    """One variant in this process: peak memory growth and wall time of forward + backward."""
    device = torch.device(args.device)
    model = build_model(args.vocab, args.hidden, device)
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, args.vocab, (args.batch, args.length), generator=gen).to(device)
    mask = torch.ones_like(input_ids)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = peak_rss_bytes()
    start = time.perf_counter()
    if args.variant == "naive":
        logp = naive(model, input_ids, mask)
    else:
        logp = chunked(model, input_ids, mask, args.chunk)
    logp.sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = peak_rss_bytes()
    return {"variant": args.variant, "peak_growth_bytes": peak - before, "seconds": time.perf_counter() - start}


def memory(args: argparse.Namespace) -> int:
    if args.variant:  # the child: one measurement, as JSON on the last line
        print(json.dumps(measure_one(args)))
        return 0
    logits_gib = args.batch * args.length * args.vocab * 4 / GIB
    print(f"log-probs + entropy, forward + backward: vocab {args.vocab:,} x batch {args.batch} x length "
          f"{args.length:,}, hidden {args.hidden}, on {args.device} (one float32 logits tensor: {logits_gib:.2f} GiB)")
    results = {}
    for variant in ("chunked", "naive"):
        command = [sys.executable, "-m", "bench.perf", "memory", "--variant", variant,
                   *(f"--{k}={getattr(args, k)}" for k in ("vocab", "hidden", "batch", "length", "chunk", "device"))]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            why = "killed (out of memory?)" if done.returncode < 0 else (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"  {variant:8s} failed: {why}")
            return 1
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        label = f"chunked (chunk={args.chunk})" if variant == "chunked" else "naive (full logits)"
        print(f"  {label:22s} peak +{results[variant]['peak_growth_bytes'] / GIB:6.2f} GiB   "
              f"{results[variant]['seconds']:6.1f} s")
    ratio = results["chunked"]["peak_growth_bytes"] / results["naive"]["peak_growth_bytes"]
    print(f"  chunked / naive peak: {ratio:.3f} (goal: <= 0.25)")
    return 0


def rollout_policy(hidden: int, layers: int):
    """The tiny policy, or (hidden > 0) a random wider model of its family with its tokenizer."""
    import tempfile
    from pathlib import Path

    from transformers import AutoConfig, AutoModelForCausalLM

    from bench.config import ModelConfig
    from bench.models.policy import load_policy, resolve_path

    if not hidden:
        return load_policy(ModelConfig())
    config = AutoConfig.from_pretrained(resolve_path(ModelConfig()))
    heads = max(hidden // 64, 1)  # head_dim 64 (vLLM's CPU attention needs >= 32)
    config.update({"hidden_size": hidden, "intermediate_size": 4 * hidden, "num_hidden_layers": layers,
                   "num_attention_heads": heads, "num_key_value_heads": heads, "head_dim": hidden // heads,
                   "layer_types": ["full_attention"] * layers})
    torch.manual_seed(0)
    directory = Path(tempfile.mkdtemp(prefix="bench-perf-model-"))
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    _, tokenizer = load_policy(ModelConfig())
    tokenizer.save_pretrained(directory)
    return load_policy(ModelConfig(name=f"random-h{hidden}-l{layers}", path=str(directory)))


def rollout_speed(args: argparse.Namespace) -> int:
    from statistics import median

    from bench.config import EngineName, EvalConfig, RolloutConfig, Sampling
    from bench.engines.hf import HFEngine
    from bench.engines.vllm import VLLMEngine
    from tasks.arith import ArithConfig, ArithTask

    task = ArithTask(ArithConfig())
    step_prompts = [task.prompt(p) for p in task.load("train")[:20]]
    eval_prompts = [task.prompt(p) for p in task.load("arith")[: args.eval_problems or None]]
    per_call = EvalConfig().prompts_per_call
    model, tokenizer = rollout_policy(args.hidden, args.layers)
    params = sum(p.numel() for p in model.parameters())
    start = time.perf_counter()
    engines = {"hf": HFEngine(model, tokenizer),
               "vllm": VLLMEngine(model, tokenizer, RolloutConfig(engine=EngineName.vllm), seed=0)}
    print(f"rollout engines on {params / 1e6:.1f}M parameters, {torch.get_num_threads()} torch threads, "
          f"max_new_tokens {args.max_new_tokens}; vllm started in {time.perf_counter() - start:.1f} s")

    def run(engine, prompts: list, calls: int, seed: int) -> tuple[int, float]:
        tokens, begin = 0, time.perf_counter()
        sampling = Sampling(max_new_tokens=args.max_new_tokens, seed=seed)
        for first in range(0, len(prompts), calls):
            tokens += int(engine.generate(prompts[first : first + calls], 8, sampling, first=first).lengths_b.sum())
        return tokens, time.perf_counter() - begin

    batches = {"(a) step: 20 prompts x 8": (step_prompts, len(step_prompts)),
               f"(b) eval: {len(eval_prompts)} prompts x 8, {per_call} per call": (eval_prompts, per_call)}
    for engine in engines.values():  # warm-up: first-call allocations, vLLM's first scheduling
        run(engine, step_prompts, len(step_prompts), seed=0)
    for label, (prompts, calls) in batches.items():
        speed: dict[str, list[float]] = {name: [] for name in engines}
        for round_ in range(args.rounds):
            order = list(engines) if round_ % 2 == 0 else list(engines)[::-1]
            for name in order:
                tokens, seconds = run(engines[name], prompts, calls, seed=1 + round_)
                speed[name].append(tokens / seconds)
        hf, vllm = median(speed["hf"]), median(speed["vllm"])
        print(f"  {label}: hf {hf:8.0f} tok/s   vllm {vllm:8.0f} tok/s   vllm / hf {vllm / hf:.2f} "
              f"(median of {args.rounds} rounds)")
    return 0


def step_split(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    import pandas as pd

    from bench.compose import load_run_config
    from bench.training.measures import STAGES
    from bench.training.trainer import Trainer

    overrides = ["logger=none", "eval.problems=1", "trainer.eval_every=0", *args.overrides,
                 f"trainer.steps={args.steps + 1}"]
    run_dir = Path(tempfile.mkdtemp(prefix="bench-perf-"))
    trainer = Trainer(load_run_config(overrides), run_dir)
    try:
        trainer.fit()
    finally:
        trainer.close()
    table = pd.read_parquet(run_dir / "metrics.parquet")
    rows = table.iloc[1:]  # the first step warms up (workers, allocations)
    step_s = table["budget/wall_seconds"].diff().iloc[1:].mean()  # budget/wall_seconds: cumulative, steps only
    train_stages = [s for s in STAGES if s not in ("eval", "checkpoint")]  # inside a step; the others between steps
    mean = {s: rows[f"time/{s}"].mean() for s in STAGES}
    mean["other"] = step_s - sum(mean[s] for s in train_stages)
    print(f"{args.steps} steps of {' '.join(overrides[:-1])}: {step_s:.3f} s per step "
          f"(metrics.parquet time/* columns, the first step left out)")
    for name in (*train_stages, "other"):
        print(f"  {name:14s} {mean[name]:8.3f} s  {100 * mean[name] / step_s:5.1f}%")
    print(f"  harness overhead ('other'): {100 * mean['other'] / step_s:.1f}% of the step (goal: < 10%)")
    print(f"  between steps: eval {rows['time/eval'].sum():.3f} s, checkpoint {rows['time/checkpoint'].sum():.3f} s "
          f"over the {len(rows)} steps")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    mem = commands.add_parser("memory", help="peak memory of log-probs + entropy: chunked vs full logits")
    mem.add_argument("--vocab", type=int, default=151_936)
    mem.add_argument("--hidden", type=int, default=64)
    mem.add_argument("--batch", type=int, default=8)
    mem.add_argument("--length", type=int, default=1024)
    mem.add_argument("--chunk", type=int, default=None, help="positions per chunk (default: model.logprob_chunk's)")
    mem.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    mem.add_argument("--variant", choices=["chunked", "naive"], help=argparse.SUPPRESS)  # run one, in this process
    mem.set_defaults(run=memory)
    stp = commands.add_parser("step", help="time split of a few training steps")
    stp.add_argument("--steps", type=int, default=5)
    stp.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. algorithm=grpo")
    stp.set_defaults(run=step_split)
    rol = commands.add_parser("rollout", help="tokens/s of the hf and vllm engines on the same prompts")
    rol.add_argument("--rounds", type=int, default=3)
    rol.add_argument("--max-new-tokens", type=int, default=64, help="the rollout default")
    rol.add_argument("--eval-problems", type=int, default=0, help="of the held-out set in (b); 0: all 500")
    rol.add_argument("--hidden", type=int, default=0, help="a random model this wide instead of the tiny one")
    rol.add_argument("--layers", type=int, default=4, help="its decoder layers (with --hidden)")
    rol.set_defaults(run=rollout_speed)
    args = parser.parse_args(argv)
    if getattr(args, "chunk", 0) is None:
        from bench.config import ModelConfig

        args.chunk = ModelConfig().logprob_chunk
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
