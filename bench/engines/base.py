"""What every rollout engine shares: the ``Engine`` contract, the ``Rollouts`` batch it returns,
and the prompt encoding, stop ids and batch layout both engines use (bench/engines/__init__.py
lists the engines)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Optional, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.config import Sampling
from bench.models.vision import Images, check_reads_images, encode

__all__ = ["Engine", "Finish", "Rollouts", "cut_at_stop", "encode_prompts", "finish_batch", "span_tokens", "stop_ids"]

Finish = Literal["stop", "length"]


@dataclass(frozen=True)
class Rollouts:
    """N = P x n responses, each row its prompt (left-padded) then its response (right-padded).

    Columns [0, prompt_width) hold prompts, [prompt_width, T) responses. The n responses of a
    prompt are contiguous rows. Tensors live on the CPU until ``to``.
    """

    input_ids: Tensor  # [N, T] long
    attention_mask: Tensor  # [N, T] long, 1 on prompt and response tokens
    response_mask: Tensor  # [N, T] float32, 1.0 on generated tokens up to and including EOS
    prompt_b: Tensor  # [N] long, the row's prompt, 0..P-1
    texts: list[str]  # decoded responses, special tokens removed
    finish: list[Finish]  # "stop": ended with EOS; "length": hit max_new_tokens
    prompt_width: int  # the column where every response starts
    pad_id: int
    # [N, T] float32: the engine's log-prob of each token it sampled (0 elsewhere), under the
    # distribution it sampled from (temperature applied); None when the engine samples from the
    # policy itself (hf), whose own recomputation is then exact
    sample_logp_bt: Optional[Tensor] = None
    # each row's prompt images (vision-language policies; bench/models/vision.py), shared by the rows
    # of one prompt; None when no prompt has any
    images: Optional[tuple[Optional[Images], ...]] = None

    @property
    def lengths_b(self) -> Tensor:
        """[N] long: response tokens per row (EOS included)."""
        return self.response_mask.sum(-1).long()

    def __len__(self) -> int:
        return len(self.texts)

    def images_of(self, rows: Sequence[int] | Tensor | None = None) -> Optional[Images]:
        """The pixel inputs of ``rows`` (all rows by default) for one forward pass, in row order;
        None without images."""
        if self.images is None:
            return None
        picked = self.images if rows is None else [self.images[i] for i in torch.as_tensor(rows).flatten().tolist()]
        return Images.cat(picked)

    @classmethod
    def build(cls, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], prompt_b: Sequence[int],
              texts: list[str], finish: list[Finish], pad_id: int,
              sample_logps: Optional[Sequence[Sequence[float]]] = None,
              prompt_images: Optional[Sequence[Optional[Images]]] = None) -> Rollouts:
        """Lay out one row per response: its prompt's ids left-padded, its own ids right-padded
        (``sample_logps``: one engine log-prob per response token, laid out like the tokens;
        ``prompt_images``: each prompt's images, or None)."""
        rows = len(response_ids)
        width = max((len(p) for p in prompt_ids), default=0)
        longest = max((len(r) for r in response_ids), default=0)
        input_ids = torch.full((rows, width + longest), pad_id, dtype=torch.long)
        attention = torch.zeros((rows, width + longest), dtype=torch.long)
        response = torch.zeros((rows, width + longest), dtype=torch.float32)
        sample_logp = None if sample_logps is None else torch.zeros((rows, width + longest), dtype=torch.float32)
        for row, (p, r) in enumerate(zip(prompt_b, response_ids)):
            prompt = prompt_ids[p]
            input_ids[row, width - len(prompt) : width] = torch.tensor(prompt, dtype=torch.long)
            input_ids[row, width : width + len(r)] = torch.tensor(r, dtype=torch.long)
            attention[row, width - len(prompt) : width + len(r)] = 1
            response[row, width : width + len(r)] = 1.0
            if sample_logp is not None:
                sample_logp[row, width : width + len(r)] = torch.tensor(sample_logps[row], dtype=torch.float32)
        return cls(input_ids=input_ids, attention_mask=attention, response_mask=response,
                   prompt_b=torch.tensor(list(prompt_b), dtype=torch.long), texts=list(texts), finish=list(finish),
                   prompt_width=width, pad_id=pad_id, sample_logp_bt=sample_logp,
                   images=_row_images(prompt_images, prompt_b))

    def select(self, rows: Sequence[int] | Tensor) -> Rollouts:
        """The given rows, in that order (prompt indices unchanged; ``cat(..., renumber=True)`` renumbers)."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.input_ids.device).flatten()
        keep = index.tolist()
        return replace(self, input_ids=self.input_ids[index], attention_mask=self.attention_mask[index],
                       response_mask=self.response_mask[index], prompt_b=self.prompt_b[index],
                       texts=[self.texts[i] for i in keep], finish=[self.finish[i] for i in keep],
                       sample_logp_bt=None if self.sample_logp_bt is None else self.sample_logp_bt[index],
                       images=None if self.images is None else tuple(self.images[i] for i in keep))

    @classmethod
    def cat(cls, parts: Sequence[Rollouts], renumber: bool = False) -> Rollouts:
        """Rows of every part, re-padded to a common layout.

        ``renumber``: prompts numbered 0..P-1 in order of first appearance, a prompt of one part
        never merged with a prompt of another (as after ``select`` over several rounds).
        """
        if not parts:
            raise ValueError("Rollouts.cat needs at least one part")
        width = max(p.prompt_width for p in parts)
        longest = max(p.input_ids.shape[1] - p.prompt_width for p in parts)

        def padded(part: Rollouts, tensor: Tensor, value: float) -> Tensor:
            left, right = width - part.prompt_width, longest - (tensor.shape[1] - part.prompt_width)
            return F.pad(tensor, (left, right), value=value)

        prompt_b = torch.cat([p.prompt_b for p in parts])
        if renumber:
            keys = [(i, int(q)) for i, part in enumerate(parts) for q in part.prompt_b.tolist()]
            dense: dict[tuple[int, int], int] = {}
            prompt_b = torch.tensor([dense.setdefault(k, len(dense)) for k in keys], dtype=torch.long,
                                    device=prompt_b.device)
        engine_logps = all(p.sample_logp_bt is not None for p in parts)  # parts of one engine: all or none
        images = None if all(p.images is None for p in parts) else tuple(
            image for p in parts for image in (p.images or (None,) * len(p)))
        return cls(input_ids=torch.cat([padded(p, p.input_ids, parts[0].pad_id) for p in parts]),
                   attention_mask=torch.cat([padded(p, p.attention_mask, 0) for p in parts]),
                   response_mask=torch.cat([padded(p, p.response_mask, 0.0) for p in parts]),
                   prompt_b=prompt_b, texts=[t for p in parts for t in p.texts],
                   finish=[f for p in parts for f in p.finish], prompt_width=width, pad_id=parts[0].pad_id,
                   sample_logp_bt=torch.cat([padded(p, p.sample_logp_bt, 0.0) for p in parts]) if engine_logps else None,
                   images=images)

    def to(self, device: torch.device | str) -> Rollouts:
        return replace(self, input_ids=self.input_ids.to(device), attention_mask=self.attention_mask.to(device),
                       response_mask=self.response_mask.to(device), prompt_b=self.prompt_b.to(device),
                       sample_logp_bt=None if self.sample_logp_bt is None else self.sample_logp_bt.to(device))


class Engine(Protocol):
    def generate(self, prompts: list[list[dict]], n: int, sampling: Sampling, first: int = 0) -> Rollouts:
        """n responses to each prompt, prompt-major. ``first``: the index of ``prompts[0]`` among the
        step's (or evaluation's) prompts. Response j of prompt i is a function of (sampling.seed,
        first + i, j) and the weights alone, so splitting the prompts over several calls (or
        data-parallel ranks), each told its ``first``, samples what one call would."""
        ...

    def sync_weights(self, model: Any) -> None: ...


def encode_prompts(tokenizer: Any, prompts: list[list[dict]],
                   image_processor: Optional[Any] = None) -> tuple[list[list[int]], Optional[list[Optional[Images]]]]:
    """(token ids of each chat prompt through the tokenizer's chat template, ready for the reply;
    each prompt's images, or None when no prompt has any).

    The template writes any BOS itself, so the tokenizer adds no special tokens of its own. Image
    placeholders are expanded to the image's length in tokens (bench/models/vision.py).
    """
    check_reads_images(prompts, image_processor)
    texts = [tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) for chat in prompts]
    texts, images = encode(tokenizer, image_processor, texts, prompts)
    ids = [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    return ids, None if all(image is None for image in images) else images


def _row_images(prompt_images: Optional[Sequence[Optional[Images]]],
                prompt_b: Sequence[int]) -> Optional[tuple[Optional[Images], ...]]:
    return None if prompt_images is None else tuple(prompt_images[p] for p in prompt_b)


def stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS and the model's generation_config EOS ids."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update([configured] if isinstance(configured, int) else configured or [])
    if not ids:
        raise ValueError("neither the tokenizer nor the model's generation_config names an EOS token")
    return sorted(ids)


def cut_at_stop(ids: Sequence[int], stops: Sequence[int]) -> tuple[list[int], Finish]:
    """The response up to and including its first stop id, and why it ended."""
    for i, token in enumerate(ids):
        if token in stops:
            return list(ids[: i + 1]), "stop"
    return list(ids), "length"


def finish_batch(tokenizer: Any, prompt_ids: list[list[int]], n: int, responses: list[list[int]],
                 finish: list[Finish], sample_logps: Optional[list[list[float]]] = None,
                 prompt_images: Optional[list[Optional[Images]]] = None) -> Rollouts:
    texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
    prompt_b = [i for i in range(len(prompt_ids)) for _ in range(n)]
    return Rollouts.build(prompt_ids, responses, prompt_b, texts, finish, tokenizer.pad_token_id, sample_logps,
                          prompt_images)


def span_tokens(tokenizer: Any, rollouts: Rollouts,
                spans: Sequence[Sequence[tuple[int, int]]]) -> tuple[Tensor, Tensor]:
    """The response tokens that overlap any of each row's character spans of its text:
    (inside_bt [N, T] bool, mapped_b [N] bool). A token's characters are found by decoding it
    alone, so a row is mapped only when its tokens, decoded one by one, spell its text (they do
    for ASCII; the pieces of a multi-byte character split across byte-level tokens do not). A row
    without spans is mapped, with no token inside."""
    inside_bt = torch.zeros(rollouts.input_ids.shape, dtype=torch.bool)
    mapped_b = torch.zeros(len(rollouts), dtype=torch.bool)
    cols_b = [row.nonzero().flatten() for row in rollouts.response_mask > 0]
    ids = rollouts.input_ids[rollouts.response_mask > 0].unique().tolist()  # each distinct token decoded once
    piece = dict(zip(ids, tokenizer.batch_decode([[i] for i in ids], skip_special_tokens=True)))
    for b, cols in enumerate(cols_b):
        row = [piece[i] for i in rollouts.input_ids[b, cols].tolist()]
        if not "".join(row).startswith(rollouts.texts[b]):
            continue
        mapped_b[b] = True
        lengths = torch.tensor([len(p) for p in row], dtype=torch.long)
        ends = lengths.cumsum(0)
        for start, end in spans[b]:
            inside_bt[b, cols[(lengths > 0) & (ends - lengths < end) & (ends > start)]] = True
    return inside_bt, mapped_b
