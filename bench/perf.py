"""Performance figures of the pipeline's stages, printed (speed goals live here, not in tests).

    python -m bench.perf memory    # peak memory of log-probs + entropy: chunked vs full logits
    python -m bench.perf step [overrides ...]   # time split of training steps of the default run
    python -m bench.perf rollout   # tokens/s of the hf and vllm engines on the same prompts (.venv-vllm)
    python -m bench.perf update    # update time and padding share: micro-batches of rows vs a token budget
    python -m bench.perf goals [--before <older checkout>]   # the speed goals, in one run

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

``update`` times the update stage alone on a batch with the length spread of real math: MATH
training prompts answered by their reference solutions (cut at ``--max-new-tokens``), on a random
wider model of the tiny family, with micro-batches of ``--micro-rows`` rows against a token budget
of the same worst case (rows x max_new_tokens); it prints each one's seconds per update and
padding share (``train/padding_share``), and the padding share of the batch's full-width layout.

``goals`` measures, on a quiet machine: the trainer's GRPO step against a bare loop on the same
workload (``floor_steps``: generate, judge, one forward/backward, AdamW, nothing else) with the
tiny model and a random 34M one; ``bench.evaluate`` of the 500 held-out arith problems x 8, start-up
included; ``import tasks``; and ``make run``'s wall time and final pass@1 with its interval. With
``--before DIR`` (a checkout of an older commit, e.g. ``git worktree add``) the last three run
there too, for the before/after figures. TRL's GRPOTrainer on the same step: scripts/bench_trl.py.

``memory`` builds a 2-layer Qwen2 with a real-size vocabulary (151,936, as Qwen2.5) and a small
hidden size, random weights, so the output head dominates; each variant runs forward and
backward in a fresh subprocess, and the figure is the growth of the peak over what the process
held before the computation: ``torch.cuda.max_memory_allocated`` on CUDA, the peak resident set
(``getrusage`` maxrss) on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
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


def wider_model(hidden: int, layers: int) -> str:
    """A directory with a random model of the tiny model's family and tokenizer, ``hidden`` wide and
    ``layers`` deep (responses then run to the length cap: a timing workload, not a policy)."""

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from bench.config import ModelConfig
    from bench.models.policy import resolve_path

    tiny = resolve_path(ModelConfig())
    config = AutoConfig.from_pretrained(tiny)
    heads = max(hidden // 64, 1)  # head_dim 64 (vLLM's CPU attention needs >= 32)
    config.update({"hidden_size": hidden, "intermediate_size": 4 * hidden, "num_hidden_layers": layers,
                   "num_attention_heads": heads, "num_key_value_heads": heads, "head_dim": hidden // heads,
                   "layer_types": ["full_attention"] * layers})
    torch.manual_seed(0)
    directory = Path(tempfile.mkdtemp(prefix="bench-perf-model-"))
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(directory)
    return str(directory)


def rollout_policy(hidden: int, layers: int):
    """The tiny policy, or (hidden > 0) a random wider model of its family with its tokenizer."""
    from bench.config import ModelConfig
    from bench.models.policy import load_policy

    if not hidden:
        return load_policy(ModelConfig())
    return load_policy(ModelConfig(name=f"random-h{hidden}-l{layers}", path=wider_model(hidden, layers)))


def rollout_speed(args: argparse.Namespace) -> int:

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


def trained_metrics(overrides: Sequence[str], prefix: str):
    """metrics.parquet of a run of the trainer with ``overrides``, in a fresh temporary directory."""
    import pandas as pd

    from bench.compose import load_run_config
    from bench.training.trainer import Trainer

    run_dir = Path(tempfile.mkdtemp(prefix=prefix))
    trainer = Trainer(load_run_config(overrides), run_dir)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return pd.read_parquet(run_dir / "metrics.parquet")


def step_split(args: argparse.Namespace) -> int:
    from bench.training.measures import STAGES

    overrides = ["logger=none", "eval.problems=1", "trainer.eval_every=0", *args.overrides,
                 f"trainer.steps={args.steps + 1}"]
    table = trained_metrics(overrides, "bench-perf-")
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


def math_rollouts(tokenizer, rows: int, max_new_tokens: int):
    """A batch with the length spread of real math: ``rows`` MATH training problems (their prompts
    through the task's template), each answered by its reference solution, cut at
    ``max_new_tokens`` (the solution lengths stand in for a policy's response lengths)."""
    from bench.engines.base import Rollouts, encode_prompts
    from tasks.math import MathConfig, MathTask

    task = MathTask(MathConfig())
    problems = task.load(task.config.train)[:rows]
    prompt_ids, _ = encode_prompts(tokenizer, [task.prompt(p) for p in problems])
    responses = [tokenizer(p.metadata["solution"], add_special_tokens=False)["input_ids"][: max_new_tokens - 1]
                 + [tokenizer.eos_token_id] for p in problems]
    return Rollouts.build(prompt_ids, responses, list(range(rows)), [""] * rows, ["stop"] * rows, tokenizer.pad_token_id)


def update_padding(args: argparse.Namespace) -> int:
    """Update-stage time and padding share: micro-batches of rows against a token budget."""

    import algorithms
    from algorithms.base import RewardBatch, advantage_step
    from bench.compose import load_run_config
    from bench.training.distributed import World
    from bench.training.measures import StageClock
    from bench.training.update import UpdateBatch, Updater

    model, tokenizer = rollout_policy(args.hidden, args.layers)
    r = math_rollouts(tokenizer, args.rows, args.max_new_tokens)
    real = int(r.attention_mask.sum())
    print(f"update stage (forward + backward + AdamW) of {args.rows} MATH prompts answered by their reference "
          f"solutions (max_new_tokens {args.max_new_tokens}), on a random {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
          f"model (hidden {args.hidden} x {args.layers} layers), {torch.get_num_threads()} torch threads")
    print(f"  batch: {real:,} tokens in a [{r.input_ids.shape[0]}, {r.input_ids.shape[1]}] layout; response length "
          f"min {int(r.lengths_b.min())}, median {int(r.lengths_b.median())}, max {int(r.lengths_b.max())}")
    print(f"  before this change (every pass at the batch's full width): padding share "
          f"{1 - real / r.input_ids.numel():.3f}")
    cuts = {f"micro_batch_size={args.micro_rows} rows": [f"trainer.micro_batch_size={args.micro_rows}"],
            f"micro_batch_tokens={args.micro_rows * args.max_new_tokens}": [
                f"trainer.micro_batch_tokens={args.micro_rows * args.max_new_tokens}"]}
    for label, overrides in cuts.items():
        config = load_run_config(["task=math", "algorithm=grpo", "logger=none",
                                  f"rollout.max_new_tokens={args.max_new_tokens}", *overrides])
        algo = algorithms.build(config.algorithm)
        rewards_b = (torch.arange(args.rows) % 3 == 0).float()
        adv_b = advantage_step(algo, RewardBatch(rewards_b=rewards_b, prompt_b=torch.arange(args.rows) // 4),
                               args.rows // 4, algo.init_state()).adv_b.float()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        updater = Updater(config, algo, model, None, optimizer, scheduler, World(), StageClock())
        seconds, share = [], 0.0
        for step in range(args.rounds):
            start = time.perf_counter()
            share = updater.update(UpdateBatch(r, adv_b), step)["train/padding_share"]
            seconds.append(time.perf_counter() - start)
        print(f"  {label:34s} {median(seconds):7.2f} s per update (median of {args.rounds})   padding share "
              f"{share:.3f}")
    return 0


# --- goals: the harness against a bare loop, evaluation, start-up, the default run ------------------


STEP = {"prompts": 20, "n": 8, "max_new_tokens": 64, "lr": 3e-5}  # the default run's step (conf/trainer, rollout)


def harness_steps(model_path: Optional[str], steps: int, overrides: Sequence[str] = ()) -> dict[str, float]:
    """Seconds per GRPO step of the trainer on the default step's workload (the first step left
    out: it warms up), from the run's own budget/wall_seconds; and the mean response length.
    ``overrides``: more Hydra overrides (the rollout engine, the loss aggregation)."""
    table = trained_metrics(["algorithm=grpo", "logger=none", "eval.problems=1", "eval.kl_from_initial=false",
                             "trainer.eval_every=0", f"trainer.steps={steps + 1}",
                             *([f"model.path={model_path}"] if model_path else []), *overrides], "bench-perf-goals-")
    return {"seconds": float(table["budget/wall_seconds"].diff().iloc[1:].median()),
            "length": float(table["rollout/response_length"].iloc[1:].mean())}


def floor_steps(model_path: Optional[str], steps: int) -> dict[str, float]:
    """The same steps as a bare loop with no harness around it: the same prompts (the run's prompt
    sampler), ``generate`` of the n samples, the verifier in this process, group-normalised
    advantages, one forward/backward of the whole batch through the model's own logits, AdamW.
    What the harness adds above this is its cost."""
    from bench.config import ModelConfig
    from bench.models.policy import load_policy
    from bench.training.seeds import PromptSampler
    from tasks.arith import ArithConfig, ArithTask

    model, tokenizer = load_policy(ModelConfig(path=model_path))
    task = ArithTask(ArithConfig())
    pool = task.load("train")
    sampler, optimizer = PromptSampler(len(pool), 0), torch.optim.AdamW(model.parameters(), lr=STEP["lr"])
    seconds, lengths, n = [], [], STEP["n"]
    for step in range(steps + 1):
        start = time.perf_counter()
        problems = [pool[i] for i in sampler.take(STEP["prompts"])]
        texts = [tokenizer.apply_chat_template(task.prompt(p), add_generation_prompt=True, tokenize=False)
                 for p in problems]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**batch, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                                 max_new_tokens=STEP["max_new_tokens"], num_return_sequences=n,
                                 pad_token_id=tokenizer.pad_token_id)
        width = batch["input_ids"].shape[1]
        response = out[:, width:]
        done = (response == tokenizer.eos_token_id).int().cumsum(-1)
        mask = ((done == 0) | ((done == 1) & (response == tokenizer.eos_token_id))).float()  # up to the EOS
        completions = tokenizer.batch_decode(response * mask.long() + tokenizer.pad_token_id * (1 - mask.long()),
                                             skip_special_tokens=True)
        rewards = torch.tensor([task.score(problems[i // n], c).reward for i, c in enumerate(completions)])
        grouped = rewards.view(-1, n)
        adv = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-6)).flatten()
        attention = torch.cat([batch["attention_mask"].repeat_interleave(n, 0), mask.long()], 1)
        logits = model(input_ids=out, attention_mask=attention).logits[:, width - 1 : -1].float()
        logp = logits.log_softmax(-1).gather(-1, response.unsqueeze(-1)).squeeze(-1)
        loss = -((logp * adv[:, None] * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first warms up
            seconds.append(time.perf_counter() - start)
            lengths.append(mask.sum(1).mean().item())
    return {"seconds": median(seconds), "length": sum(lengths) / len(lengths)}


def wall(command: list[str], cwd: Optional[str] = None, env: Optional[dict] = None) -> float:
    """Wall seconds of a command (raises with its last line of stderr if it fails)."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return time.perf_counter() - start


def default_run(checkout: str, python: str) -> dict[str, float]:
    """``python -m bench.run`` as ``make run`` runs it (logger=none), in ``checkout``: wall time and
    the final pass@1 with its interval."""
    import pandas as pd

    out = tempfile.mkdtemp(prefix="bench-perf-run-")
    seconds = wall([python, "-m", "bench.run", "logger=none", f"output_dir={out}"], cwd=checkout,
                   env={**os.environ, "PYTHONPATH": checkout})
    evals = pd.read_parquet(next(Path(out).rglob("eval.parquet")))
    final = evals[(evals["step"] == evals["step"].max()) & (evals["k"] == 1)].iloc[0]
    return {"seconds": seconds, "pass@1": final["pass_at_k"], "low": final["ci_low"], "high": final["ci_high"]}


def goals(args: argparse.Namespace) -> int:
    here = str(Path(__file__).resolve().parents[1])
    python = sys.executable
    print(f"speed goals on {os.cpu_count()} cores, {torch.get_num_threads()} torch threads "
          f"(quiet machine assumed: nothing else running)")
    for label, hidden, layers in (("tiny", 0, 0), ("34M", 512, 8)):
        path = wider_model(hidden, layers) if hidden else None
        harness, floor = harness_steps(path, args.steps), floor_steps(path, args.steps)
        print(f"  step, {label}: harness {harness['seconds']:.3f} s, bare floor {floor['seconds']:.3f} s -> "
              f"{harness['seconds'] / floor['seconds']:.2f}x the floor (goal at tiny: <= 1.10); mean response "
              f"{harness['length']:.1f} vs {floor['length']:.1f} tokens; median of {args.steps} steps")
    for name, checkout in (("now", here), *((("before", args.before),) if args.before else ())):
        env = {**os.environ, "PYTHONPATH": checkout}
        seconds = median(wall([python, "-m", "bench.evaluate", "eval.n=8", f"output_dir={tempfile.mkdtemp()}"],
                              checkout, env) for _ in range(2))
        imports = median(wall([python, "-c", "import tasks"], checkout, env) for _ in range(3))
        run = default_run(checkout, python)
        print(f"  {name} ({checkout}): bench.evaluate of 500 x 8 {seconds:.1f} s (median of 2, start-up included); "
              f"import tasks {imports:.2f} s; make run {run['seconds']:.1f} s, final pass@1 {run['pass@1']:.3f} "
              f"[{run['low']:.3f}, {run['high']:.3f}]")
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
    upd = commands.add_parser("update", help="update time and padding share: micro-batches of rows vs a token budget")
    upd.add_argument("--rows", type=int, default=64, help="responses in the batch")
    upd.add_argument("--max-new-tokens", type=int, default=512)
    upd.add_argument("--micro-rows", type=int, default=8, help="rows per micro-batch; the budget: this x max-new-tokens")
    upd.add_argument("--hidden", type=int, default=256, help="a random model this wide")
    upd.add_argument("--layers", type=int, default=4)
    upd.add_argument("--rounds", type=int, default=3)
    upd.set_defaults(run=update_padding)
    gol = commands.add_parser("goals", help="the speed goals: harness vs bare floor, evaluation, start-up, make run")
    gol.add_argument("--steps", type=int, default=5, help="steps timed after a warm-up step")
    gol.add_argument("--before", help="a checkout of an older commit to measure the same commands in")
    gol.set_defaults(run=goals)
    args = parser.parse_args(argv)
    if getattr(args, "chunk", 0) is None:
        from bench.config import ModelConfig

        args.chunk = ModelConfig().logprob_chunk
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
