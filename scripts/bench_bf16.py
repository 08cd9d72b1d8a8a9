"""Seconds of a training forward + backward (``token_logprobs``, then ``logp.sum().backward()``) on the
CPU in float32 against ``model.dtype=bfloat16`` (float32 weights under bf16 autocast,
bench/models/precision.py), and how far the bf16 log-probs are from the float32 ones.

    python scripts/bench_bf16.py                       # hidden 512, 8 layers, 16 x 256 tokens, 3 repeats
    python scripts/bench_bf16.py --hidden 1024 --layers 4 --repeats 5

The model is a randomly initialised wider model of the tiny family (``bench.perf.rollout_policy``:
its tokenizer, 320 tokens, so the decoder, not the output head, is the work); the batch is random
token ids. Both variants are the same weights, the bf16 one marked as ``load_policy`` marks it; each
repeat times both, alternating which goes first, after one warm-up each; the median is printed.
torch uses every core. On a CPU without bf16 instructions (avx512_bf16, amx_bf16) bf16 is emulated:
its time measures the emulation, not the speed-up bf16 autocast is for. There (this project's AVX2
machine) the bf16 backward takes about 50 times the float32 one, nearly all of it in aten::mm's bf16
fallback: 16 x 256 tokens then take minutes per repeat; ``--batch 2`` gives the ratio sooner.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.config import DType  # noqa: E402
from bench.models.policy import token_logprobs  # noqa: E402
from bench.models.precision import cpu_description, mark_autocast, pick_precision  # noqa: E402
from bench.perf import rollout_policy  # noqa: E402


def forward_backward_seconds(model, input_ids_bt: torch.Tensor, mask_bt: torch.Tensor, chunk: int) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    logp_bt, _ = token_logprobs(model, input_ids_bt, mask_bt, chunk, with_entropy=False)
    logp_bt.sum().backward()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=256, help="model.logprob_chunk")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    cpu = cpu_description()
    fp32, tokenizer = rollout_policy(args.hidden, args.layers)  # model.dtype=auto: float32 here without bf16
    fp32 = mark_autocast(fp32, None).train()
    bf16 = mark_autocast(copy.deepcopy(fp32), pick_precision(DType.bfloat16, torch.device("cpu")).compute)
    params = sum(p.numel() for p in fp32.parameters())
    gen = torch.Generator().manual_seed(0)
    input_ids_bt = torch.randint(0, len(tokenizer), (args.batch, args.length), generator=gen)
    mask_bt = torch.ones_like(input_ids_bt)
    print(f"CPU: torch capability {cpu['cpu_capability']}, native bf16 (avx512_bf16/amx_bf16): {cpu['native_bf16']}; "
          f"{torch.get_num_threads()} torch threads")
    print(f"model: random, hidden {args.hidden}, {args.layers} layers, {params / 1e6:.1f}M parameters; "
          f"batch {args.batch} x {args.length} tokens; token_logprobs forward + backward", flush=True)

    variants = {"float32": fp32, "bf16 autocast": bf16}
    for model in variants.values():  # warm-up: first-call allocations, oneDNN's kernel choice
        forward_backward_seconds(model, input_ids_bt, mask_bt, args.chunk)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(args.repeats):
        order = list(variants) if repeat % 2 == 0 else list(variants)[::-1]
        for name in order:
            seconds[name].append(forward_backward_seconds(variants[name], input_ids_bt, mask_bt, args.chunk))
    median = {name: statistics.median(times) for name, times in seconds.items()}
    for name, value in median.items():
        print(f"  {name:14s} {value:7.2f} s  (median of {args.repeats}: "
              f"{', '.join(f'{t:.2f}' for t in seconds[name])})")
    print(f"  bf16 / float32 time: {median['bf16 autocast'] / median['float32']:.2f}")

    with torch.no_grad():
        logp_fp32, _ = token_logprobs(fp32, input_ids_bt, mask_bt, args.chunk, with_entropy=False)
        logp_bf16, _ = token_logprobs(bf16, input_ids_bt, mask_bt, args.chunk, with_entropy=False)
    diff = (logp_bf16 - logp_fp32)[:, 1:].abs()  # position 0 is not scored
    print(f"  |log p bf16 - log p float32|: max {diff.max():.4f}, mean {diff.mean():.5f} "
          f"(log p float32: mean {logp_fp32[:, 1:].mean():.3f})")
    if not cpu["native_bf16"]:
        print("  NOTE: this CPU has no bf16 instructions: the bf16 time is of emulated bf16 (conversions around "
              "float32 arithmetic), not the figure bf16 autocast is for; measure on a CPU with avx512_bf16 or amx_bf16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
