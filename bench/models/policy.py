"""The policy: loading a causal LM, and the log-probs and entropy of the tokens it was given.

``token_logprobs`` never builds the full float32 [batch, length, vocab] logits tensor: it runs
the decoder once, then applies the output head and the log-softmax to ``chunk`` sequence
positions at a time, in a fused autograd function whose backward recomputes the chunk's logits
instead of keeping them (what torch.utils.checkpoint would do, with fewer vocabulary-sized
buffers). With a 150k vocabulary, 8 x 1024 tokens of float32 logits are 5 GB; a 256-position
chunk is a quarter of that, freed before the next chunk (``python -m bench.perf memory``
measures both).

Precision (bench/models/precision.py): the decoder runs under the model's autocast, if
``load_policy`` marked one (bf16 on the CPU, float32 weights); the output head and its
log-softmax never do: they run in float32 whatever the weights' or the decoder's dtype.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.config import Device, DType, ModelConfig
from bench.models.precision import autocast, mark_autocast, pick_precision
from bench.models.vision import Images, forward_kwargs, freeze_vision, image_processor_at, is_multimodal

__all__ = ["DType", "Device", "ModelConfig", "load_image_processor", "load_policy", "resolve_path", "token_logprobs"]


# --- loading ---------------------------------------------------------------------------------


def resolve_path(cfg: ModelConfig) -> str:
    """The directory or hub name to load: ``cfg.path``, or the tiny model (built once, cached)."""
    if cfg.path is not None:
        return cfg.path
    from bench.models.tiny import TINY_MODELS
    from bench.models.warmstart import ensure_base  # imported here: building it pulls in the pretraining code

    return str(ensure_base(TINY_MODELS[cfg.tiny.value]))


def _hub_offline() -> bool:
    flags = (os.environ.get(v, "").upper() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag in ("1", "ON", "YES", "TRUE") for flag in flags)


def _pick_device(cfg: ModelConfig) -> torch.device:
    if cfg.device is Device.auto:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device is Device.cuda and not torch.cuda.is_available():
        raise RuntimeError("model.device=cuda but no CUDA device is visible; use model.device=auto or cpu")
    return torch.device(cfg.device.value)


def load_policy(cfg: ModelConfig) -> tuple[Any, Any]:
    """(model, tokenizer) from a directory or hub name, on the configured device and dtype
    (``pick_precision``: on the CPU bf16 is float32 weights under bf16 autocast).

    The tokenizer pads on the left (prompts end where generation starts) and has a pad token
    (its EOS when it has none). Offline (HF_HUB_OFFLINE=1) a name that is neither a directory nor
    in the local cache fails at once with one line saying how to point the config at weights.
    A vision-language model (a config with a ``vision_config``) loads through the image-text-to-text
    auto class, its vision tower frozen unless ``cfg.freeze_vision`` is false;
    ``load_image_processor`` gives its image processor.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer  # heavy

    path, kwargs = _source(cfg)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:  # not cached / not reachable; HFValidationError for odd names
        where = "" if kwargs["local_files_only"] else " and could not be downloaded"
        raise FileNotFoundError(f"{path} not found locally{where}; set model.path=<dir> "
                                f"({type(err).__name__})") from None
    device = _pick_device(cfg)
    config = AutoConfig.from_pretrained(path, **kwargs)  # read once: it picks the class and builds the model
    multimodal = getattr(config, "vision_config", None) is not None
    auto = AutoModelForImageTextToText if multimodal else AutoModelForCausalLM
    precision = pick_precision(cfg.dtype, device)
    model = auto.from_pretrained(path, config=config, dtype=precision.weights, **kwargs).to(device)
    mark_autocast(model, precision.compute)
    if multimodal and cfg.freeze_vision:
        freeze_vision(model)
    if cfg.gradient_checkpointing:
        # transformers >= 5 names it activation checkpointing; older releases only have the old name
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"the tokenizer of {path} has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_image_processor(cfg: ModelConfig, model: Any) -> Optional[Any]:
    """The image processor of a vision-language policy loaded from ``cfg`` (None for a text model)."""
    if not is_multimodal(model):
        return None
    path, kwargs = _source(cfg)
    return image_processor_at(path, model, local_files_only=kwargs["local_files_only"])


def _source(cfg: ModelConfig) -> tuple[str, dict[str, Any]]:
    """(the directory or hub name to load, from_pretrained's keyword arguments), or one clear error."""
    path = resolve_path(cfg)
    local_dir = Path(path).expanduser()
    if not local_dir.exists() and (local_dir.is_absolute() or str(path).startswith((".", "~"))):
        raise FileNotFoundError(f"model.path={path} does not exist; set model.path=<a model directory> or a hub name")
    if local_dir.is_dir():
        if not (local_dir / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: not a Hugging Face model directory; "
                                    "set model.path=<dir>")
        path = str(local_dir)
    return path, {"trust_remote_code": cfg.trust_remote_code,
                  "local_files_only": not local_dir.is_dir() and _hub_offline()}


# --- log-probs and entropy -------------------------------------------------------------------


def _chunk_log_softmax(hidden: Tensor, weight: Tensor, bias: Optional[Tensor], temperature: float,
                       lse: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """(log p [b, c, V], logsumexp [b, c]) of one chunk, log p computed in place in the logits' buffer.

    The head runs in float32 (half-precision weights and hidden states are cast; callers run it
    outside autocast) so no bf16 rounding reaches the log-probs. A known ``lse`` (the backward's
    recomputation) skips the logsumexp and its temporary.
    """
    dtype = _head_dtype(weight)
    weight, hidden = weight.to(dtype), hidden.to(dtype)
    bias = None if bias is None else bias.to(dtype)
    logits = F.linear(hidden, weight, bias)  # [b, c, V] float32
    if temperature != 1.0:
        logits.div_(temperature)
    if lse is None:
        lse = torch.logsumexp(logits, dim=-1)
    return logits.sub_(lse.unsqueeze(-1)), lse


def _head_dtype(weight: Tensor) -> torch.dtype:
    """The output head's compute dtype: float32, or float64 for a float64 model."""
    return torch.float64 if weight.dtype == torch.float64 else torch.float32


class _HeadLogProbs(torch.autograd.Function):
    """Output head + log-softmax + target log-prob + entropy for one chunk of positions.

    A fused function rather than autograd through the ops: the forward keeps no [b, c, V]
    tensor for the backward (only the chunk's hidden states), and the backward recomputes the
    chunk's log-probs and turns them into the logits' gradient in place, so at most two
    vocabulary-sized buffers of one chunk are alive at any time (autograd through the same ops,
    even under torch.utils.checkpoint, holds about five).

    With g = d loss / d logp_t and h = d loss / d H (H the entropy, p the distribution), for the
    logits z = (hidden W^T + b) / T:
        d loss / d z_v = g (1[v = t] - p_v) - h p_v (log p_v + H)
    and the gradient to hidden W^T + b is that divided by T. Both passes switch autocast off: it
    would run their matmuls in bf16 (the caller's autocast reaches a custom function's forward,
    and its backward under an autocast ``backward()`` call).
    """

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor,
                temperature: float, with_entropy: bool) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)  # an output the loss does not use sends None: no work for it
        with torch.autocast(hidden.device.type, enabled=False):
            logp_all, lse = _chunk_log_softmax(hidden, weight, bias, temperature)
            logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            if with_entropy:  # H = -sum_v p_v log p_v, as a batched dot product (no third buffer)
                probs = logp_all.exp()
                entropy = -(probs.unsqueeze(-2) @ logp_all.unsqueeze(-1)).squeeze(-1).squeeze(-1)
            else:
                entropy = logp.new_zeros(logp.shape)
                ctx.mark_non_differentiable(entropy)
            ctx.save_for_backward(hidden, weight, bias, targets, lse, entropy)
            ctx.temperature, ctx.with_entropy = temperature, with_entropy
            return logp, entropy

    @staticmethod
    def backward(ctx: Any, grad_logp: Optional[Tensor], grad_entropy: Optional[Tensor]):
        hidden, weight, bias, targets, lse, entropy = ctx.saved_tensors
        with torch.autocast(hidden.device.type, enabled=False):
            logp_all, _ = _chunk_log_softmax(hidden, weight, bias, ctx.temperature, lse)
            dtype = logp_all.dtype  # float32, or float64 for a float64 model
            g = torch.zeros_like(entropy) if grad_logp is None else grad_logp.to(dtype)
            dz = logp_all.exp()  # p
            if ctx.with_entropy and grad_entropy is not None:
                h = grad_entropy.to(dtype).unsqueeze(-1)
                coef = logp_all.add_(entropy.unsqueeze(-1)).mul_(h.neg()).sub_(g.unsqueeze(-1))  # -h (log p + H) - g
                dz.mul_(coef)
            else:
                dz.mul_(g.neg().unsqueeze(-1))
            del logp_all
            dz.scatter_add_(-1, targets.unsqueeze(-1), g.unsqueeze(-1))
            if ctx.temperature != 1.0:
                dz.div_(ctx.temperature)
            need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
            grad_hidden = (dz @ weight.to(dtype)).to(hidden.dtype) if need_hidden else None
            grad_weight = (dz.flatten(0, 1).T @ hidden.flatten(0, 1).to(dtype)).to(weight.dtype) if need_weight else None
            grad_bias = dz.sum((0, 1)).to(bias.dtype) if need_bias else None
            return grad_hidden, grad_weight, grad_bias, None, None, None


def _check_plain_head(model: Any) -> None:
    """The chunked head reproduces ``lm_head(h)``; models that change logits after it are refused."""
    config = model.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", 1.0) not in (None, 1.0) \
            or getattr(config, "logits_scaling", 1.0) not in (None, 1.0):
        raise NotImplementedError(f"{type(model).__name__} rescales or soft-caps its logits after the output head; "
                                  "token_logprobs computes plain lm_head logits")


def token_logprobs(model: Any, input_ids_bt: Tensor, attention_mask_bt: Tensor, chunk: int, with_entropy: bool,
                   *, temperature: float = 1.0, images: Optional[Images] = None) -> tuple[Tensor, Optional[Tensor]]:
    """``unsharded_token_logprobs``, through FSDP's hooks when the model is sharded
    (bench.training.distributed.shard gives it ``bench_token_logprobs``)."""
    sharded = getattr(model, "bench_token_logprobs", None)
    if sharded is not None:
        return sharded(input_ids_bt, attention_mask_bt, chunk, with_entropy, temperature=temperature, images=images)
    return unsharded_token_logprobs(model, input_ids_bt, attention_mask_bt, chunk, with_entropy,
                                    temperature=temperature, images=images)


def unsharded_token_logprobs(model: Any, input_ids_bt: Tensor, attention_mask_bt: Tensor, chunk: int,
                             with_entropy: bool, *, temperature: float = 1.0,
                             images: Optional[Images] = None) -> tuple[Tensor, Optional[Tensor]]:
    """Per-token log-probs (and entropies) of a batch under ``model``, chunked over positions.

    For t >= 1, ``logp_bt[:, t] = log p(x_t | x_<t)`` and ``entropy_bt[:, t]`` is the exact entropy
    of the full-vocabulary distribution that predicted x_t. Both are 0 at t = 0 and wherever x_t or
    x_{t-1} is padding, so a left-padded row gives the same values as the unpadded one (position
    ids follow the attention mask). ``temperature`` divides the logits (to score under the
    sampling distribution). Gradients reach the model's parameters through both outputs (an
    entropy bonus works); detach the entropy to log it. ``images``: the rows' pixel inputs, in row
    order, for a vision-language policy (its vision features are recomputed in this pass).

    input_ids_bt, attention_mask_bt: [B, T] -> (logp_bt [B, T], entropy_bt [B, T] or None), float32
    (float64 for a float64 model)
    """
    hidden_btd, head, valid_bt = _hidden_states(model, input_ids_bt, attention_mask_bt, chunk, images)
    bias = getattr(head, "bias", None)
    B, T = input_ids_bt.shape
    dtype = _head_dtype(head.weight)
    first = torch.zeros(B, 1, dtype=dtype, device=input_ids_bt.device)
    logps, entropies = [first], [first]
    for start in range(1, T, chunk):  # positions [start, end) are predicted by hidden states [start-1, end-1)
        end = min(start + chunk, T)
        logp, entropy = _HeadLogProbs.apply(hidden_btd[:, start - 1 : end - 1], head.weight, bias,
                                            input_ids_bt[:, start:end], temperature, with_entropy)
        logps.append(logp)
        entropies.append(entropy)
    logp_bt = torch.cat(logps, dim=1).masked_fill(~valid_bt, 0.0)
    if not with_entropy:
        return logp_bt, None
    return logp_bt, torch.cat(entropies, dim=1).masked_fill(~valid_bt, 0.0)


def token_kl(model: Any, initial: Any, input_ids_bt: Tensor, attention_mask_bt: Tensor, chunk: int,
             *, temperature: float = 1.0, images: Optional[Images] = None) -> Tensor:
    """``unsharded_token_kl``, through FSDP's hooks when ``model`` is sharded (``initial`` is a
    plain replica)."""
    sharded = getattr(model, "bench_token_kl", None)
    if sharded is not None:
        return sharded(initial, input_ids_bt, attention_mask_bt, chunk, temperature=temperature, images=images)
    return unsharded_token_kl(model, initial, input_ids_bt, attention_mask_bt, chunk, temperature=temperature,
                              images=images)


@torch.no_grad()
def unsharded_token_kl(model: Any, initial: Any, input_ids_bt: Tensor, attention_mask_bt: Tensor, chunk: int,
                       *, temperature: float = 1.0, images: Optional[Images] = None) -> Tensor:
    """Per-token KL(p || q) between the full next-token distributions of ``model`` (p) and
    ``initial`` (q), both divided by ``temperature``, at the positions ``token_logprobs`` scores
    (0 elsewhere).

    Summed over a sampled response, this is the exact KL of each step's distributions along the
    sampled prefix; its mean over responses drawn from p estimates the sequence-level KL(p || q)
    without bias (the chain rule), with less variance than the sampled log-ratio.

    input_ids_bt, attention_mask_bt: [B, T] -> kl_bt [B, T] float32 (float64 for float64 models)
    """
    hidden_p, head_p, valid_bt = _hidden_states(model, input_ids_bt, attention_mask_bt, chunk, images)
    hidden_q, head_q, _ = _hidden_states(initial, input_ids_bt, attention_mask_bt, chunk, images)
    B, T = input_ids_bt.shape
    parts = [torch.zeros(B, 1, dtype=_head_dtype(head_p.weight), device=input_ids_bt.device)]
    for start in range(1, T, chunk):
        end = min(start + chunk, T)
        with torch.autocast(input_ids_bt.device.type, enabled=False):  # the head in float32, as in _HeadLogProbs
            logp, _ = _chunk_log_softmax(hidden_p[:, start - 1 : end - 1], head_p.weight,
                                         getattr(head_p, "bias", None), temperature)
            logq, _ = _chunk_log_softmax(hidden_q[:, start - 1 : end - 1], head_q.weight,
                                         getattr(head_q, "bias", None), temperature)
            logq.sub_(logp).neg_()  # log p - log q, in q's buffer
            parts.append((logp.exp_().unsqueeze(-2) @ logq.unsqueeze(-1)).squeeze(-1).squeeze(-1))
    return torch.cat(parts, dim=1).masked_fill(~valid_bt, 0.0).clamp_(min=0.0)  # >= 0 up to rounding


def _hidden_states(model: Any, input_ids_bt: Tensor, attention_mask_bt: Tensor, chunk: int,
                   images: Optional[Images] = None) -> tuple[Tensor, Any, Tensor]:
    """(the decoder's last hidden states [B, T, D], the output head, valid_bt [B, T]): the
    positions where x_t and x_{t-1} are both real tokens, the ones token_logprobs scores. The
    decoder runs under the model's autocast (precision.autocast), the head is left to the caller.

    A vision-language model runs whole but for its head (``model.model``: vision tower, image
    features in place of the placeholders, the decoder), and computes its own (M-RoPE) positions
    from the attention mask; a text model runs its decoder with positions that skip the padding."""
    if chunk < 1:
        raise ValueError(f"chunk={chunk} must be >= 1")
    _check_plain_head(model)
    mask_bt = attention_mask_bt.long()
    if images is not None and not is_multimodal(model):
        raise ValueError(f"images given to {type(model).__name__}, a text model")
    with autocast(model):
        if is_multimodal(model):
            hidden_btd = model.model(input_ids=input_ids_bt, attention_mask=mask_bt, use_cache=False,
                                     **forward_kwargs(model, input_ids_bt, images)).last_hidden_state
        else:
            position_ids_bt = (mask_bt.cumsum(-1) - 1).clamp(min=0)
            hidden_btd = model.get_decoder()(input_ids=input_ids_bt, attention_mask=mask_bt,
                                             position_ids=position_ids_bt, use_cache=False).last_hidden_state
    valid_bt = torch.zeros_like(mask_bt, dtype=torch.bool)
    valid_bt[:, 1:] = (mask_bt[:, 1:] > 0) & (mask_bt[:, :-1] > 0)
    return hidden_btd, model.get_output_embeddings(), valid_bt
