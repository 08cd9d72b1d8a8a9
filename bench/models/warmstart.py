"""The supervised warm start of the tiny model (``python -m bench.pretrain`` runs it).

Trains ``bench.models.tiny.build_model`` on the imitated task's worked solutions (arith, or
``TinyConfig.task``; one drawn at random per problem where there are many): each example is the task's
prompt through the chat template, then the worked answer and ``<|end|>``; the loss is the mean
cross-entropy over response tokens only. AdamW, linear warmup then cosine decay, seeded, a fixed
number of steps (``TinyConfig.steps``), so the weights do not depend on the machine's speed.

Then it measures what RL will start from, through the rollout engine and the task's scorer (the
trainer's own path): pass@1 at temperature 1 (no top-k, no top-p) on the first 200 problems of
the imitated task's eval split, 8 samples each; and the share of prompts whose 8 samples are mixed (some
right, some wrong), the ones a group-relative advantage can learn from. A pass@1 outside
[0.15, 0.65] leaves RL little to do (or nothing to find) and fails the build.

The directory holds the HF model and tokenizer (``from_pretrained`` loads it) and ``meta.json``
(fingerprint, config, steps, seconds, the measured figures), written under a temporary name and
moved into place (``common.write_atomically``), so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
import transformers
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.config import Sampling
from bench.engines.base import encode_prompts
from bench.engines.hf import HFEngine
from bench.models.tiny import (
    FORMAT_VERSION,
    META_FILE,
    SHIPPED_DIR,
    TinyConfig,
    build_image_processor,
    build_model,
    build_tokenizer,
    cache_root,
    demonstrations,
    imitated,
    is_built,
)
from bench.models.vision import Images, forward_kwargs
from common import write_atomically
from tasks.base import Problem, Task
from tasks.scoring import Scorer

log = logging.getLogger(__name__)

EVAL_PROBLEMS = 200  # the first problems of the imitated task's eval split
SAMPLES = 8  # per problem: the group size of the default RL run
PROMPTS_PER_CALL = 32  # problems per generate call (x SAMPLES sequences)
MAX_NEW_TOKENS = 48  # the two-operand demonstration is about 20 tokens
PASS1_RANGE = (0.15, 0.65)  # outside it RL has too little to learn or too little signal
IGNORE = -100  # label of tokens without loss (prompt, padding)


class PretrainError(RuntimeError):
    """The warm start landed outside ``PASS1_RANGE``; the message gives the figure."""


@dataclass(frozen=True)
class Measurement:
    """How the warm-started model samples at temperature 1 on the eval split."""

    pass1: float  # mean correctness over problems x samples
    mixed: float  # share of problems whose samples are neither all right nor all wrong
    all_correct: float  # share of problems with every sample right
    none_correct: float  # share of problems with no sample right
    distinct: float  # mean number of distinct completions per problem (of ``samples``)
    truncated: float  # share of completions that hit max_new_tokens without <|end|>
    problems: int
    samples: int
    seconds: float


Example = tuple[list[int], list[int]]  # (prompt ids, response ids ending in eos)


def encode(tokenizer: PreTrainedTokenizerBase, task: Task, problems: Sequence[Problem], responses: Sequence[str],
           image_processor: Optional[Any] = None) -> tuple[list[Example], Optional[list[Optional[Images]]]]:
    """((prompt ids, response ids ending in eos) per problem, each prompt's images or None): the
    prompts as the rollout engines encode them, the special tokens separating prompt and response."""
    prompt_ids, images = encode_prompts(tokenizer, [task.prompt(p) for p in problems], image_processor)
    response_ids = tokenizer(list(responses), add_special_tokens=False).input_ids
    return [(p, r + [tokenizer.eos_token_id]) for p, r in zip(prompt_ids, response_ids)], images


def render(tokenizer: PreTrainedTokenizerBase, task: Task, problem: Problem) -> str:
    return tokenizer.apply_chat_template(task.prompt(problem), add_generation_prompt=True, tokenize=False)


def collate(examples: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-padded (input_ids_bt, attention_bt, labels_bt); labels only on response tokens."""
    length = max(len(p) + len(r) for p, r in examples)
    ids_bt = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels_bt = torch.full((len(examples), length), IGNORE, dtype=torch.long)
    attention_bt = torch.zeros((len(examples), length), dtype=torch.long)
    for row, (prompt, response) in enumerate(examples):
        n = len(prompt) + len(response)
        ids_bt[row, :n] = torch.tensor(prompt + response)
        labels_bt[row, len(prompt) : n] = torch.tensor(response)
        attention_bt[row, :n] = 1
    return ids_bt, attention_bt, labels_bt


def lr_factor(step: int, config: TinyConfig) -> float:
    """Linear warmup to 1, then cosine decay to ``min_lr_ratio`` at the last step."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batch_order(size: int, config: TinyConfig) -> torch.Tensor:
    """Example indices for every step, [steps, batch]: seeded epochs of shuffled examples."""
    generator = torch.Generator().manual_seed(config.seed)
    needed = config.steps * config.batch_size
    epochs = [torch.randperm(size, generator=generator) for _ in range(-(-needed // size))]
    return torch.cat(epochs)[:needed].view(config.steps, config.batch_size)


def train(config: TinyConfig, tokenizer: PreTrainedTokenizerBase, progress: bool = True,
          image_processor: Optional[Any] = None) -> tuple[PreTrainedModel, list[float]]:
    """The warm start: a fresh model trained for ``config.steps`` steps; (model, loss per step).
    Each step's prompts are encoded as it comes (pictures are drawn then, not all held at once)."""
    task = imitated(config)
    problems = task.load(task.config.train)
    responses = demonstrations(task, problems, config.seed)
    torch.manual_seed(config.seed)
    model = build_model(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
    losses: list[float] = []
    bar = tqdm(batch_order(len(problems), config), desc="warm start", unit="step", disable=not progress)
    for indices in bar:
        picked = indices.tolist()
        examples, images = encode(tokenizer, task, [problems[i] for i in picked], [responses[i] for i in picked],
                                  image_processor)
        ids_bt, attention_bt, labels_bt = collate(examples, tokenizer.pad_token_id)
        pixels = forward_kwargs(model, ids_bt, None if images is None else Images.cat(images))
        loss = model(input_ids=ids_bt, attention_mask=attention_bt, labels=labels_bt, **pixels).loss  # response tokens
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if len(losses) % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / 20:.3f}")
    model.eval()
    return model, losses


def measure(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: Task, problems: Sequence[Problem],
            samples: int = SAMPLES, seed: int = 0, workers: Optional[int] = None,
            image_processor: Optional[Any] = None) -> Measurement:
    """pass@1 at temperature 1 (no top-k, no top-p) and the diversity of each problem's
    ``samples`` completions, sampled by the rollout engine and judged by the task's scorer."""
    started = time.perf_counter()
    engine = HFEngine(model, tokenizer, image_processor)
    texts: list[str] = []
    ended: list[bool] = []
    sampling = Sampling(temperature=1.0, max_new_tokens=MAX_NEW_TOKENS, seed=seed)
    with Scorer(task, workers=workers) as scorer:
        verdicts = []
        for first in range(0, len(problems), PROMPTS_PER_CALL):
            chunk = list(problems[first : first + PROMPTS_PER_CALL])
            rollouts = engine.generate([task.prompt(p) for p in chunk], samples, sampling, first=first)
            verdicts += scorer.score([chunk[int(i)] for i in rollouts.prompt_b], rollouts.texts)
            texts += rollouts.texts
            ended += [f == "stop" for f in rollouts.finish]
    correct_ps = torch.tensor([v.correct for v in verdicts], dtype=torch.float64).view(len(problems), samples)
    right_p = correct_ps.sum(dim=1)
    distinct = [len(set(texts[i : i + samples])) for i in range(0, len(texts), samples)]
    return Measurement(
        pass1=correct_ps.mean().item(),
        mixed=((right_p > 0) & (right_p < samples)).double().mean().item(),
        all_correct=(right_p == samples).double().mean().item(),
        none_correct=(right_p == 0).double().mean().item(),
        distinct=sum(distinct) / len(distinct),
        truncated=1 - sum(ended) / len(ended),
        problems=len(problems),
        samples=samples,
        seconds=time.perf_counter() - started,
    )


def build(config: TinyConfig, out: Union[str, Path], *, check: bool = True, progress: bool = True,
          eval_problems: int = EVAL_PROBLEMS, samples: int = SAMPLES, workers: Optional[int] = None) -> dict:
    """Train, measure, check the range (unless ``check=False``) and save to ``out``; the meta dict."""
    out = Path(out).expanduser()
    started = time.perf_counter()
    tokenizer = build_tokenizer(config)
    image_processor = build_image_processor(config) if config.vision else None
    model, losses = train(config, tokenizer, progress=progress, image_processor=image_processor)
    train_seconds = time.perf_counter() - started
    task = imitated(config)
    split = task.config.eval[0]
    measured = measure(model, tokenizer, task, task.load(split)[:eval_problems], samples, config.seed, workers,
                       image_processor)
    meta = {
        "name": config.name,
        "fingerprint": config.fingerprint(),
        "format_version": FORMAT_VERSION,
        "config": dataclasses.asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": len(losses),
        "train_seconds": round(train_seconds, 1),
        "initial_loss": round(losses[0], 4),
        "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),  # mean of the last 50 steps
        "eval": {"split": split, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "max_new_tokens": MAX_NEW_TOKENS,
                 **{k: round(v, 4) if isinstance(v, float) else v for k, v in dataclasses.asdict(measured).items()}},
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    print(summary(meta), file=sys.stderr)
    if check:
        check_pass1(measured.pass1, len(losses))
    save(model, tokenizer, meta, out, image_processor)
    return meta


def check_pass1(pass1: float, steps: int) -> None:
    """Raise ``PretrainError`` when pass@1 is outside ``PASS1_RANGE``."""
    low, high = PASS1_RANGE
    if not low <= pass1 <= high:
        raise PretrainError(f"pass@1 {pass1:.3f} at temperature 1 after {steps} steps is outside [{low}, {high}]: "
                            f"change TinyConfig.steps (or the recipe) and rebuild")


def summary(meta: dict) -> str:
    e = meta["eval"]
    return (f"{meta['name']}: {meta['steps']} steps in {meta['train_seconds']:.0f} s (loss {meta['final_loss']:.3f}); "
            f"pass@1 at T=1 {e['pass1']:.3f} on {e['problems']} x {e['samples']} samples; mixed groups "
            f"{e['mixed']:.0%}, all right {e['all_correct']:.0%}, none right {e['none_correct']:.0%}; "
            f"{e['distinct']:.1f} distinct completions per group; {e['truncated']:.1%} cut off "
            f"(measured in {e['seconds']:.0f} s)")


def save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, meta: dict, out: Path,
         image_processor: Optional[Any] = None) -> None:
    """Write the build under a temporary name, then move it into place (replacing an older build)."""

    def write(directory: Path) -> None:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        if image_processor is not None:
            image_processor.save_pretrained(directory)
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    try:
        write_atomically(out, write)
    except OSError:
        if not (out / META_FILE).is_file():  # unless another process just put a build there
            raise


def ensure_base(config: Optional[TinyConfig] = None, cache_dir: Union[str, Path, None] = None) -> Path:
    """The directory of the warm-started tiny model for ``config``: shipped, cached, or built now.

    Building runs the warm start (minutes) and fails if the measured pass@1 is out of range.
    """
    config = config or TinyConfig()
    shipped = SHIPPED_DIR / config.name
    if is_built(shipped, config):
        return shipped
    cached = Path(cache_dir).expanduser() / config.name if cache_dir else cache_root() / config.name
    if is_built(cached, config):
        return cached
    log.warning("tiny model %s is neither shipped (%s) nor cached: building it in %s with bench.pretrain "
                "(%d steps, a few minutes on two cores)", config.name, SHIPPED_DIR, cached, config.steps)
    build(config, cached)
    return cached
