"""The project's own tiny model: tokenizer, Qwen2-style config, and the cached warm-started base.

The hub is unreachable on the CPU testbed, so the default run trains a model the project builds
itself (DESIGN.md, "Models and engines"):

- a byte-level BPE tokenizer trained with ``tokenizers`` on arith prompts and demonstrations,
  with Qwen2's pre-tokenizer (every digit its own token), any other text through bytes; a chat
  template of ``<|user|>...<|end|><|assistant|>`` with ``<|end|>`` as eos;
- a Qwen2-style decoder of hidden 128, 4 layers, 4 heads (about 1.1M parameters, tied embeddings);
- weights warm-started by supervised training on arith demonstrations (``bench.pretrain``),
  budgeted in steps so the result does not depend on the machine's speed;
- with ``TinyConfig.vision`` set, a Qwen2-VL instead: the same decoder, a two-block vision tower
  over 14-pixel patches, the tokenizer extended with Qwen2-VL's vision tokens and a chat template
  that writes an image part as ``<|vision_start|><|image_pad|><|vision_end|>``, and Qwen2-VL's image
  processor fixed at ``image_size`` pixels square (the dots model, ``model=tiny_dots``).

``bench.models.warmstart.ensure_base(config)`` returns a directory that ``from_pretrained`` loads (model, tokenizer,
``meta.json`` with the measured pass@1): the checkpoint shipped in ``checkpoints/`` when its
fingerprint matches, else the cache (``$RISKPO_BENCH_CACHE``, default ``~/.cache/riskpo-bench``),
else it is built there once (a few minutes on two cores). Every algorithm starts from the same
weights. The fingerprint hashes every field of ``TinyConfig`` and ``FORMAT_VERSION``: change
either and the old checkpoint is no longer used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN2_PRETOKENIZE_REGEX

import tasks
from common import PROJECT_ROOT
from tasks.arith import ArithConfig, ArithTask
from tasks.base import Problem, Task, TaskConfig
from tasks.dots import DotsConfig
from tasks.sums import SumsConfig

SHIPPED_DIR = PROJECT_ROOT / "checkpoints"  # built by `python -m bench.pretrain`, kept in git
CACHE_ENV = "RISKPO_BENCH_CACHE"
FORMAT_VERSION = 1  # bump when the tokenizer, model or warm-start code changes what gets built
META_FILE = "meta.json"

# Fixed ids 0..4 (the BPE trainer puts special tokens first, in this order).
PAD, EOS = "<|pad|>", "<|end|>"
SPECIAL_TOKENS = (PAD, EOS, "<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('the tiny chat template has no role ' + message['role']) }}"
    "{%- endif -%}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}"
)
# The vision-language model's: Qwen2-VL's image parts (bench/models/vision.py expands the placeholder)
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
VISION_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('the tiny chat template has no role ' + message['role']) }}"
    "{%- endif -%}"
    "{{ '<|' + message['role'] + '|>' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|end|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}"
)


def _arith_default() -> ArithConfig:
    # The probe's task ("Compute a+-b", a, b < 100). 9,000 problems: about half of the train
    # side of that problem space, the most ArithTask.load accepts for it.
    return ArithConfig(train_size=9000)


@dataclass(frozen=True)
class VisionTower:
    """A Qwen2-VL vision encoder, small: ``patch`` pixel patches, ``merge`` x ``merge`` of them per
    image token, the picture's side fixed at ``image_size`` pixels (min = max pixels)."""

    depth: int = 2
    embed_dim: int = 64
    num_heads: int = 4
    mlp_ratio: int = 2
    patch: int = 14
    merge: int = 2
    image_size: int = 56
    # the patch merger's output projection starts at this fraction of its default init. Measured
    # on the dots warm start: at 1.0, 1,000 steps (and 1,500 on an earlier version of the task with
    # disks of three sizes) left the answer's distribution exactly uniform over the counts (pass@1
    # 0.09: the image tokens' norm grew to 100x the text's and the decoder read nothing from them);
    # at 0.03, 400 steps reach pass@1 0.32 on 100 problems
    merger_init_scale: float = 0.03


@dataclass(frozen=True)
class TinyConfig:
    """Everything that decides the tiny base checkpoint: tokenizer, architecture, warm start."""

    # tokenizer
    vocab_size: int = 320  # BPE vocabulary cap and embedding rows (the arith corpus fills ~290)
    # architecture (Qwen2-style)
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 128  # prompt + response is under 40 tokens for two operands
    rope_theta: float = 10000.0
    # supervised warm start (bench.pretrain); budgeted in steps, not seconds
    steps: int = 1500
    lr: float = 2e-3
    batch_size: int = 64
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay from lr to lr * min_lr_ratio
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0  # model init, data order and the measurement's sampling
    arith: ArithConfig = field(default_factory=_arith_default)  # the problems it imitates (task None)
    # another suite to imitate instead: its train split, prompts and ``Task.reference`` worked
    # solutions (drawn at random among the right ones where there are many); None: ``arith``
    task: Optional[TaskConfig] = None
    # a vision tower: the model is a Qwen2-VL (image-text-to-text) with this decoder; None: text only
    vision: Optional[VisionTower] = None

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(f"tiny: hidden_size {self.hidden_size}, num_heads {self.num_heads} and "
                             f"num_kv_heads {self.num_kv_heads} must divide evenly")
        if self.steps < 1 or self.batch_size < 1 or not 0 <= self.warmup_steps <= self.steps:
            raise ValueError("tiny: need steps >= 1, batch_size >= 1 and 0 <= warmup_steps <= steps")
        if self.vocab_size <= 256 + len(SPECIAL_TOKENS):
            raise ValueError(f"tiny: vocab_size {self.vocab_size} leaves no room past the 256 bytes and specials")

    def fingerprint(self) -> str:
        """A short hash of every field, the format version and the imitated task's version. Fields
        added after the first build (``task``, ``vision``) are hashed only when set, so earlier builds
        keep their name."""
        payload = {"format": FORMAT_VERSION, "arith_version": ArithTask.version, **dataclasses.asdict(self)}
        if self.task is None:
            del payload["task"]
        else:
            payload["task_version"] = imitated(self).version
        if self.vision is None:
            del payload["vision"]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def name(self) -> str:
        """The checkpoint directory's name: ``tiny-<fingerprint>``."""
        return f"tiny-{self.fingerprint()}"


def imitated(config: TinyConfig) -> Task:
    """The task whose train split the warm start imitates and whose eval split measures it."""
    return tasks.build(config.task) if config.task is not None else ArithTask(config.arith)


def demonstrations(task: Task, problems: list[Problem], seed: int) -> list[str]:
    """One worked solution per problem (``Task.reference``), a seeded random one of the right ones
    where a problem has many."""
    rng = random.Random(seed)
    return [task.reference(p, rng) for p in problems]


def corpus(config: TinyConfig) -> list[str]:
    """What the tokenizer is trained on: the rendered prompts and demonstrations of the train split."""
    task = imitated(config)
    problems = task.load(task.config.train)
    return [text_of(m["content"]) for p in problems for m in task.prompt(p)] + demonstrations(task, problems, config.seed)


def text_of(content: Any) -> str:
    """A message's text: the string, or the text parts of a content list (images have none)."""
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part.get("type") == "text")


def build_tokenizer(config: TinyConfig) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with the chat template, pad and eos, trained on the arith corpus.

    Its normalizer and pre-tokenizer are Qwen2's own, because ``AutoTokenizer`` loads any
    ``qwen2`` checkpoint as ``Qwen2Tokenizer``, which rebuilds that pipeline around the saved
    vocabulary and merges: built and loaded tokenizers must agree. Qwen2's pattern isolates
    every digit (``\\p{N}``), so no merge can join two digits; any other text goes through bytes.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    specials = SPECIAL_TOKENS + (VISION_TOKENS if config.vision else ())
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: any text encodes
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(config), trainer)
    assert [tokenizer.token_to_id(t) for t in specials] == list(range(len(specials)))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=PAD,  # never produced (byte-level); named so Qwen2Tokenizer adds no <|endoftext|>
        additional_special_tokens=list(specials[2:]),
        chat_template=VISION_CHAT_TEMPLATE if config.vision else CHAT_TEMPLATE,
        model_max_length=config.max_positions,
    )


def build_model(config: TinyConfig) -> PreTrainedModel:
    """A freshly initialised Qwen2-style model, or a Qwen2-VL one when ``config.vision`` is set
    (seed torch first for reproducible weights)."""
    pad_id, eos_id = SPECIAL_TOKENS.index(PAD), SPECIAL_TOKENS.index(EOS)
    text = dict(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_positions,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=None,
    )
    if config.vision is None:
        model = Qwen2ForCausalLM(Qwen2Config(**text))
    else:
        model = Qwen2VLForConditionalGeneration(vision_config(config, text))
        with torch.no_grad():
            model.model.visual.merger.mlp[-1].weight.mul_(config.vision.merger_init_scale)
    # Only the stop and pad ids: sampling settings belong to the rollout engine's config.
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)
    return model


def vision_config(config: TinyConfig, text: dict) -> Qwen2VLConfig:
    """Qwen2-VL's config: ``text`` for the decoder, ``config.vision`` for the encoder, the vision
    tokens' ids from the tokenizer's fixed special ids. M-RoPE splits each head's rotary
    frequencies over (time, height, width), in Qwen2-VL's proportions (1/4, 3/8, 3/8)."""
    v, half = config.vision, config.hidden_size // config.num_heads // 2
    section = [half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2]
    ids = {t: len(SPECIAL_TOKENS) + i for i, t in enumerate(VISION_TOKENS)}
    return Qwen2VLConfig(
        text_config={**text, "rope_parameters": {**text["rope_parameters"], "mrope_section": section}},
        vision_config=dict(depth=v.depth, embed_dim=v.embed_dim, hidden_size=config.hidden_size, num_heads=v.num_heads,
                           mlp_ratio=v.mlp_ratio, patch_size=v.patch, spatial_merge_size=v.merge,
                           temporal_patch_size=2, in_channels=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def build_image_processor(config: TinyConfig) -> Any:
    """Qwen2-VL's image processor (its PIL implementation: no torchvision here), every picture
    resized to ``image_size`` x ``image_size`` pixels."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    v = config.vision
    pixels = v.image_size**2
    return Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels, patch_size=v.patch, merge_size=v.merge,
                                    temporal_patch_size=2)


def cache_root() -> Path:
    """Where built checkpoints are cached: ``$RISKPO_BENCH_CACHE`` or ``~/.cache/riskpo-bench``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/riskpo-bench").expanduser()


def read_meta(directory: Path) -> Optional[dict]:
    """The checkpoint's ``meta.json``, or None when the directory holds no complete checkpoint."""
    needed = (META_FILE, "config.json", "model.safetensors", "tokenizer.json")
    if not all((directory / name).is_file() for name in needed):
        return None
    return json.loads((directory / META_FILE).read_text(encoding="utf-8"))


def is_built(directory: Path, config: TinyConfig) -> bool:
    meta = read_meta(directory)
    return meta is not None and meta.get("fingerprint") == config.fingerprint()


__all__ = ["SHIPPED_DIR", "TINY_MODELS", "TinyConfig", "VisionTower", "build_image_processor", "build_model",
           "build_tokenizer", "cache_root", "demonstrations", "imitated", "is_built", "read_meta"]


def _sums_default() -> SumsConfig:
    # 40,000 problems (of about 87,000 the loader accepts): the warm start sees each about 2.4
    # times, each time with the one worked solution drawn for it, so it learns to pick an answer
    # at random rather than one per question
    return SumsConfig(train_size=40_000)


# The project's tiny models by what they imitate (``model.tiny``; conf/model/tiny*.yaml)
# dots: a Qwen2-VL, the same decoder and a two-block vision tower (tasks/dots.py counts disks);
# 400 steps (VisionTower.merger_init_scale says why so few suffice)
# sums: 500 warm-start steps put pass@1 at temperature 1 at 0.29 (250: 0.03, 1500: 0.86, too easy
# for RL to have anything left to learn), with 7.6 distinct completions in a group of 8
TINY_MODELS = {"arith": TinyConfig(), "sums": TinyConfig(task=_sums_default(), steps=500),
               "dots": TinyConfig(task=DotsConfig(), vision=VisionTower(), steps=400, warmup_steps=80)}
