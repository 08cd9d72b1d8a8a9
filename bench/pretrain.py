"""``python -m bench.pretrain [--model arith|sums] [--force] [--out DIR]``: the supervised warm start
of a tiny model.

    python -m bench.pretrain                # (re)builds checkpoints/tiny-<fingerprint>/ if missing
    python -m bench.pretrain --force        # rebuilds it anyway
    python -m bench.pretrain --model sums   # the tiny model of the sums task (model=tiny_sums)

Trains ``bench.models.tiny.build_model`` on arith demonstrations: each example is the task's prompt
through the chat template, then the worked answer and ``<|end|>``; the loss is the mean
cross-entropy over response tokens only. AdamW, linear warmup then cosine decay, seeded, a fixed
number of steps (``TinyConfig.steps``), so the weights do not depend on the machine's speed.

Then it measures what RL will start from: pass@1 at temperature 1 (no top-k, no top-p) on the
first 200 problems of the arith eval split, 8 samples each, sampled by the rollout engine and
judged by the task's verifier (bench/models/warmstart.py holds the recipe); and the share of prompts whose 8 samples are mixed (some right,
some wrong), the ones a group-relative advantage can learn from. A pass@1 outside [0.15, 0.65]
leaves RL little to do (or nothing to find) and fails the build with exit status 1.

The directory holds the HF model and tokenizer (``from_pretrained`` loads it) and ``meta.json``
(fingerprint, config, steps, seconds, the measured figures). It is written to a temporary
directory and renamed into place, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from bench.compose import ConfigError, writable
from bench.models.tiny import SHIPPED_DIR, TINY_MODELS, is_built
from bench.models.warmstart import PretrainError, build


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pretrain", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when the checkpoint is up to date")
    parser.add_argument("--out", type=Path, help=f"checkpoint directory (default: {SHIPPED_DIR}/tiny-<fingerprint>)")
    parser.add_argument("--model", choices=sorted(TINY_MODELS), default="arith",
                        help="which tiny model: the task it imitates (default: arith; model.tiny selects it in a run)")
    args = parser.parse_args(argv)
    config = TINY_MODELS[args.model]
    out = args.out or SHIPPED_DIR / config.name
    if not args.force and is_built(out, config):
        print(f"bench.pretrain: {out} is up to date (fingerprint {config.fingerprint()}); --force rebuilds it")
        return 0
    try:
        writable(out.parent, "--out")
    except ConfigError as err:
        print(f"bench.pretrain: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        build(config, out)
    except PretrainError as err:
        print(f"bench.pretrain: {err}", file=sys.stderr)
        return 1
    print(f"bench.pretrain: wrote {out}")
    current = {c.name for c in TINY_MODELS.values()}
    stale = sorted(p for p in out.parent.glob("tiny-*") if p != out and p.name not in current)
    if stale:
        print(f"bench.pretrain: other builds in {out.parent} (older configs; `git rm -r` them if unused): "
              f"{', '.join(p.name for p in stale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
