"""Rollout engines: n sampled responses per chat prompt, as one padded batch of token ids.

Two engines with one contract (``generate`` and ``sync_weights``), so every algorithm samples
the same way:

- ``hf``: transformers ``generate`` on the policy itself (the CPU default; also GPU). It samples
  from the weights being trained, so ``sync_weights`` has nothing to do.
- ``vllm``: vLLM colocated with the trainer on the same GPU; the policy's weights are pushed
  into it after every update. An optional extra (``pip install -e '.[vllm]'``), never needed
  for the tests.

Both build prompts with the tokenizer's chat template, sample with exactly the settings of
``Sampling`` (the model's own ``generation_config`` defaults, such as a repetition penalty, are
not applied), stop at any EOS id of the model, and decode texts with the same tokenizer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any, Literal, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from algorithms.base import coerce_enums

__all__ = ["EngineName", "HFEngine", "RolloutConfig", "Rollouts", "Sampling", "VLLMEngine", "build_engine",
           "encode_prompts"]

Finish = Literal["stop", "length"]
VLLM_MISSING = "vLLM is not installed: pip install -e '.[vllm]' on a GPU machine"


class EngineName(str, Enum):
    hf = "hf"
    vllm = "vllm"


def check_sampling(owner: str, temperature: float, top_p: float, top_k: int, max_new_tokens: int) -> None:
    """One line naming the field, for the first sampling setting out of range."""
    if max_new_tokens < 1:
        raise ValueError(f"{owner}.max_new_tokens={max_new_tokens} must be >= 1")
    if temperature <= 0.0:
        raise ValueError(f"{owner}.temperature={temperature} must be > 0 (sampling; greedy decoding is not a rollout)")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"{owner}.top_p={top_p} must be in (0, 1]")
    if top_k < 0:
        raise ValueError(f"{owner}.top_k={top_k} must be >= 0 (0: off)")


@dataclass(frozen=True)
class Sampling:
    """How one ``generate`` call samples."""

    temperature: float = 1.0
    top_p: float = 1.0  # nucleus mass; 1: off
    top_k: int = 0  # 0: off
    max_new_tokens: int = 64
    seed: int = 0  # the same seed, prompts and weights give the same responses

    def __post_init__(self) -> None:
        check_sampling("sampling", self.temperature, self.top_p, self.top_k, self.max_new_tokens)


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
    gpu_memory_utilization: float = 0.5  # fraction of the GPU vLLM may take (weights + KV cache); the rest trains
    sleep_between_steps: bool = False  # free vLLM's weights and KV cache while the policy trains (sleep mode)
    tensor_parallel_size: int = 1  # > 1: one shard per trainer process, launched by torchrun

    def __post_init__(self) -> None:
        coerce_enums(self)
        check_sampling("rollout", self.temperature, self.top_p, self.top_k, self.max_new_tokens)
        if self.n < 1:
            raise ValueError(f"rollout.n={self.n} must be >= 1")
        if not 0.0 < self.gpu_memory_utilization < 1.0:
            raise ValueError(f"rollout.gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1)")
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

    @property
    def lengths_b(self) -> Tensor:
        """[N] long: response tokens per row (EOS included)."""
        return self.response_mask.sum(-1).long()

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def build(cls, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], prompt_b: Sequence[int],
              texts: list[str], finish: list[Finish], pad_id: int) -> Rollouts:
        """Lay out one row per response: its prompt's ids left-padded, its own ids right-padded."""
        rows = len(response_ids)
        width = max((len(p) for p in prompt_ids), default=0)
        longest = max((len(r) for r in response_ids), default=0)
        input_ids = torch.full((rows, width + longest), pad_id, dtype=torch.long)
        attention = torch.zeros((rows, width + longest), dtype=torch.long)
        response = torch.zeros((rows, width + longest), dtype=torch.float32)
        for row, (p, r) in enumerate(zip(prompt_b, response_ids)):
            prompt = prompt_ids[p]
            input_ids[row, width - len(prompt) : width] = torch.tensor(prompt, dtype=torch.long)
            input_ids[row, width : width + len(r)] = torch.tensor(r, dtype=torch.long)
            attention[row, width - len(prompt) : width + len(r)] = 1
            response[row, width : width + len(r)] = 1.0
        return cls(input_ids=input_ids, attention_mask=attention, response_mask=response,
                   prompt_b=torch.tensor(list(prompt_b), dtype=torch.long), texts=list(texts), finish=list(finish),
                   prompt_width=width, pad_id=pad_id)

    def select(self, rows: Sequence[int] | Tensor) -> Rollouts:
        """The given rows, in that order (prompt indices unchanged; ``cat(..., renumber=True)`` renumbers)."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.input_ids.device).flatten()
        keep = index.tolist()
        return replace(self, input_ids=self.input_ids[index], attention_mask=self.attention_mask[index],
                       response_mask=self.response_mask[index], prompt_b=self.prompt_b[index],
                       texts=[self.texts[i] for i in keep], finish=[self.finish[i] for i in keep])

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
        return cls(input_ids=torch.cat([padded(p, p.input_ids, parts[0].pad_id) for p in parts]),
                   attention_mask=torch.cat([padded(p, p.attention_mask, 0) for p in parts]),
                   response_mask=torch.cat([padded(p, p.response_mask, 0.0) for p in parts]),
                   prompt_b=prompt_b, texts=[t for p in parts for t in p.texts],
                   finish=[f for p in parts for f in p.finish], prompt_width=width, pad_id=parts[0].pad_id)

    def to(self, device: torch.device | str) -> Rollouts:
        return replace(self, input_ids=self.input_ids.to(device), attention_mask=self.attention_mask.to(device),
                       response_mask=self.response_mask.to(device), prompt_b=self.prompt_b.to(device))


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
                 finish: list[Finish]) -> Rollouts:
    texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
    prompt_b = [i for i in range(len(prompt_ids)) for _ in range(n)]
    return Rollouts.build(prompt_ids, responses, prompt_b, texts, finish, tokenizer.pad_token_id)


# --- transformers ----------------------------------------------------------------------------


class HFEngine:
    """transformers ``generate`` on the policy itself: batched, left-padded, seeded."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def generation_config(self, sampling: Sampling) -> Any:
        """Exactly ``sampling``: the fields generate would otherwise fill from the model's own defaults are pinned."""
        from transformers import GenerationConfig

        return GenerationConfig(
            do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
            max_new_tokens=sampling.max_new_tokens, eos_token_id=stop_ids(self.model, self.tokenizer),
            pad_token_id=self.tokenizer.pad_token_id, num_beams=1, num_return_sequences=1,
            min_new_tokens=0, min_p=0.0, typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0, repetition_penalty=1.0,
            no_repeat_ngram_size=0, use_cache=True,
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


def _load_into_worker(worker: Any, weights: list[tuple[str, Tensor]]) -> int:
    """Runs inside vLLM's worker (through ``collective_rpc``): copy HF-named tensors into its model.

    vLLM's model classes map Hugging Face parameter names (fused qkv / gate-up, tied heads,
    tensor-parallel shards) in ``load_weights``; the tensors are copied, cast to vLLM's dtype.
    """
    runner = worker.model_runner
    model = runner.get_model() if hasattr(runner, "get_model") else runner.model
    return len(model.load_weights(weights) or ())


class VLLMEngine:
    """vLLM colocated with the trainer; ``sync_weights`` pushes the policy's weights into it.

    The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``; with
    ``tensor_parallel_size`` > 1, vLLM's ``external_launcher`` under torchrun, one shard per
    trainer process, every process passing the same prompts and the full weights), so the
    weights are handed over as tensors on the same GPU, not serialised. After a push the prefix
    cache is reset: its KV blocks were computed with the old weights. With
    ``sleep_between_steps`` vLLM frees its weights and KV cache (sleep level 2) after each
    ``generate``; the next ``generate`` wakes it and loads the latest policy weights first.
    """

    def __init__(self, model: Any, tokenizer: Any, cfg: RolloutConfig) -> None:
        try:
            import vllm
        except ImportError as err:
            raise ImportError(VLLM_MISSING) from err
        path = getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", "")
        if not path:
            raise ValueError("the vllm engine builds its model from the policy's directory; load the policy with "
                             "from_pretrained (model.config._name_or_path is empty)")
        extra: dict[str, Any] = {}
        if cfg.tensor_parallel_size > 1:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            if world != cfg.tensor_parallel_size:
                raise ValueError(f"rollout.tensor_parallel_size={cfg.tensor_parallel_size} puts one vLLM shard in each "
                                 f"trainer process: launch with torchrun --nproc-per-node={cfg.tensor_parallel_size} "
                                 f"(WORLD_SIZE is {world})")
            extra["distributed_executor_backend"] = "external_launcher"
        else:
            # the engine core in this process, so weights pass by reference
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self.cfg, self.tokenizer, self.policy = cfg, tokenizer, model
        self.vllm = vllm
        self.llm = vllm.LLM(
            model=path, tokenizer=getattr(tokenizer, "name_or_path", None) or path,
            dtype=str(model.dtype).removeprefix("torch."),  # the policy's: bfloat16 on GPU by default
            gpu_memory_utilization=cfg.gpu_memory_utilization, tensor_parallel_size=cfg.tensor_parallel_size,
            enable_sleep_mode=cfg.sleep_between_steps,
            generation_config="vllm",  # sample with exactly our SamplingParams, not the model's defaults
            **extra,
        )
        self.asleep = False
        self.push(model)  # the policy may differ from its directory (a resumed checkpoint)

    def push(self, model: Any) -> None:
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
        self.llm.collective_rpc(_load_into_worker, args=(weights,))

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

    def generate(self, prompts: list[list[dict]], n: int, sampling: Sampling) -> Rollouts:
        self.wake()
        prompt_ids = encode_prompts(self.tokenizer, prompts)
        stops = stop_ids(self.policy, self.tokenizer)
        # one seed per prompt drawn from sampling.seed (vLLM gives the k-th of its n responses seed + k),
        # so no two prompts share a random stream
        seeds = torch.randint(0, 2**31 - 1, (len(prompts),), generator=torch.Generator().manual_seed(sampling.seed))
        params = [self.vllm.SamplingParams(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                                           top_k=sampling.top_k or -1, max_tokens=sampling.max_new_tokens,
                                           seed=int(seed), stop_token_ids=stops) for seed in seeds]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=False)
        responses: list[list[int]] = []
        finish: list[Finish] = []
        for output in outputs:
            for completion in sorted(output.outputs, key=lambda c: c.index):
                ids, why = cut_at_stop(completion.token_ids, stops)
                if completion.finish_reason == "stop" and why == "length":  # the stop id was not returned: add it back
                    reason = completion.stop_reason
                    ids, why = ids + [reason if isinstance(reason, int) else stops[0]], "stop"
                responses.append(ids)
                finish.append(why)
        if self.cfg.sleep_between_steps:
            self.llm.sleep(level=2)
            self.asleep = True
        return finish_batch(self.tokenizer, prompt_ids, n, responses, finish)


def build_engine(cfg: RolloutConfig, model: Any, tokenizer: Any) -> Engine:
    """The engine ``cfg.engine`` names, sampling from ``model``."""
    if cfg.engine is EngineName.vllm:
        return VLLMEngine(model, tokenizer, cfg)
    return HFEngine(model, tokenizer)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True

