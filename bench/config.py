"""Every config of a run, as frozen dataclasses: one per Hydra group, and ``RunConfig``, the root.

Hydra composes conf/ against these (bench.compose registers them as ``<group>/<name>_schema``);
the trainer, the evaluator and the commands see only the built dataclasses, never OmegaConf. The
only default of a field is here (the YAML files pick a schema and override), and each
``__post_init__`` checks its values once, with one line naming the field. This module imports no
other part of ``bench`` (the algorithm and task configs live with their modules: their registries
know their types).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import Enum
from typing import Any, Optional

from algorithms.base import AlgorithmConfig
from common import coerce_enums
from tasks.base import TaskConfig

__all__ = ["DType", "Device", "EngineName", "EvalConfig", "LoggerConfig", "LoggerKind", "ModelConfig",
           "RolloutConfig", "RunConfig", "RunSettings", "Sampling", "TinyModel", "TrainerConfig", "WandbMode", "plain"]


# --- model ---------------------------------------------------------------------------------------


class DType(str, Enum):
    """The policy's precision (bench.models.precision.pick_precision). On CUDA bfloat16 is the weights'
    dtype; on the CPU it is float32 weights (and optimizer) with the forward passes under bf16 autocast,
    emulated (slower than float32, with a warning) where the CPU lacks bf16 instructions."""

    auto = "auto"  # bfloat16 on CUDA; on the CPU bfloat16 where it has bf16 instructions, else float32
    float32 = "float32"
    bfloat16 = "bfloat16"


class TinyModel(str, Enum):
    """The project's tiny models, by the task they imitate (bench.models.tiny.TINY_MODELS)."""

    arith = "arith"
    sums = "sums"
    dots = "dots"  # a vision-language model (tasks/dots.py)


class Device(str, Enum):
    auto = "auto"  # CUDA when available
    cpu = "cpu"
    cuda = "cuda"


@dataclass(frozen=True)
class ModelConfig:
    """Which weights the policy starts from and how they run."""

    name: str = "tiny"  # a label for results and reports; the weights come from ``path``
    path: Optional[str] = None  # a local directory or a hub name; None: the project's tiny model (bench.models.tiny)
    tiny: TinyModel = TinyModel.arith  # which tiny model when path is None
    dtype: DType = DType.auto
    device: Device = Device.auto
    gradient_checkpointing: bool = False  # recompute decoder layers in the backward (long sequences)
    freeze_vision: bool = True  # a vision-language policy's vision tower gets no gradient (verl's Qwen2.5-VL recipe)
    logprob_chunk: int = 256  # sequence positions per output-head chunk in token_logprobs
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        coerce_enums(self)
        if self.logprob_chunk < 1:
            raise ValueError(f"logprob_chunk={self.logprob_chunk} must be >= 1")


# --- rollout -------------------------------------------------------------------------------------


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


# --- trainer -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainerConfig:
    steps: int = 40
    prompts_per_step: int = 20  # P, before the n responses each
    lr: float = 3e-5  # the tiny model collapses at 5e-4 (all algorithms); the paper uses 1e-6 at 1.5B
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    ppo_epochs: int = 1
    mini_batches: int = 1  # optimizer steps per epoch
    micro_batch_size: int = 80  # responses per forward/backward
    # > 0: micro-batches by a token budget instead: rows sorted by length, longest first, packed
    # while rows x (longest prompt + longest response among them) <= this (verl's use_dynamic_bsz
    # with ppo_max_token_len_per_gpu); micro_batch_size is then unused. 0: micro_batch_size rows
    micro_batch_tokens: int = 0
    entropy_coef: float = 0.0
    # truncated importance sampling of the rollout engine's mismatch: each token's policy-gradient
    # term weighted by min(pi_old / pi_engine, tis_cap) (ops.truncated_is_weight); None: off.
    # Needs an engine that reports its sampling log-probs (rollout=vllm)
    tis_cap: Optional[float] = None
    max_resample: int = 4  # extra generation rounds while select drops groups (DAPO)
    eval_every: int = 10  # evaluate (the eval group's settings) every this many steps; 0: only before and after
    checkpoint_every: int = 0  # 0: only at the end
    resume: Optional[str] = None  # a run directory to continue
    threads: int = 0  # torch threads of this run; 0: torch's default (every core). Parallel sweeps: cores / jobs
    samples_per_step: int = 4  # completions kept in samples.parquet per step

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "ppo_epochs", "mini_batches", "micro_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name}={getattr(self, name)} must be >= 1")
        for name in ("micro_batch_tokens", "weight_decay", "warmup_steps", "eval_every", "checkpoint_every", "threads", "samples_per_step",
                     "max_resample", "entropy_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"trainer.{name}={getattr(self, name)} must be >= 0")
        for name in ("lr", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"trainer.{name}={getattr(self, name)} must be > 0")
        if self.tis_cap is not None and self.tis_cap <= 0.0:
            raise ValueError(f"trainer.tis_cap={self.tis_cap} must be > 0 (or null: off)")
        if self.prompts_per_step % self.mini_batches:
            raise ValueError(f"trainer.prompts_per_step={self.prompts_per_step} is not divisible into "
                             f"trainer.mini_batches={self.mini_batches}")


# --- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    benchmarks: tuple[str, ...] = ()  # empty: the eval sets of the task (the run's, when one is given)
    n: int = 8  # samples per problem
    k: tuple[int, ...] = ()  # empty: every k from 1 to n
    problems: int = 0  # the first this many problems of each benchmark; 0: all
    # evaluations during training (not the first and the last, which see every problem) use this
    # many problems of each benchmark, the same seeded sample at every step; 0: all, every time
    subset: int = 100
    prompts_per_call: int = 64  # prompts per generate call (times n sequences); the samples do not depend on it
    confidence: float = 0.95  # of the bootstrap interval over problems
    resamples: int = 2000  # bootstrap resamples
    # greedy decoding (temperature 0) with one response per problem, as the RiskPO reference code
    # validates: reported as ``greedy`` accuracy (k = 1, n = 1; eval.n is not used)
    greedy: bool = False
    # KL of the sampling policy from the initial one on the evaluation samples (a frozen copy of the
    # initial weights is kept for it): compare algorithms at equal distance moved
    kl_from_initial: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "benchmarks", tuple(self.benchmarks))
        object.__setattr__(self, "k", tuple(self.k))
        if self.greedy:
            object.__setattr__(self, "n", 1)
        for name in ("n", "prompts_per_call", "resamples"):
            if getattr(self, name) < 1:
                raise ValueError(f"eval.{name}={getattr(self, name)} must be >= 1")
        for name in ("problems", "subset"):
            if getattr(self, name) < 0:
                raise ValueError(f"eval.{name}={getattr(self, name)} must be >= 0 (0: all)")
        bad = [k for k in self.k if not 1 <= k <= self.n]
        if bad and self.greedy:
            raise ValueError(f"eval.k={list(self.k)}: eval.greedy=true takes one response per problem, so k is 1")
        if bad:
            raise ValueError(f"eval.k={list(self.k)} has {bad[0]}, outside 1..eval.n={self.n}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"eval.confidence={self.confidence} must be in (0, 1)")

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.k))) or tuple(range(1, self.n + 1))

    @property
    def decoding(self) -> str:
        return "greedy" if self.greedy else "sampled"

    def sampling(self, rollout: Sampling) -> Sampling:
        """The decoding of an evaluation: the rollout's sampling, or greedy."""
        return replace(rollout, temperature=0.0) if self.greedy else rollout


# --- logging -------------------------------------------------------------------------------------


class LoggerKind(str, Enum):
    wandb = "wandb"
    none = "none"


class WandbMode(str, Enum):
    offline = "offline"  # files only, under the run directory; `wandb sync` uploads them later
    online = "online"
    disabled = "disabled"


@dataclass(frozen=True)
class LoggerConfig:
    kind: LoggerKind = LoggerKind.wandb
    mode: WandbMode = WandbMode.offline
    project: str = "riskpo-bench"

    def __post_init__(self) -> None:
        coerce_enums(self)


# --- the root ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettings:
    """The root config's own fields (conf/config.yaml), beside the groups."""

    seed: int = 0  # seeds sampling, pairing, shuffling and the prompt order (bench.training.seeds)
    experiment_name: str = "default"  # runs are grouped under <output_dir>/<experiment_name>/ (reports too)
    output_dir: str = "results"


@dataclass
class EvaluateSettings:
    """``python -m bench.evaluate``'s own fields (conf/evaluate.yaml), beside the groups. ``label``,
    ``seed`` and ``experiment_name`` say what the weights are, in the output's run.json (as a
    training run's), for ``bench.report``; None: the evaluated run's own (a run directory or one
    of its checkpoints), else the defaults in the comments."""

    checkpoint: Optional[str] = None  # set by model=<weights>
    label: Optional[str] = None  # the algorithm label a report groups by (riskpo_reference); else the model's name
    seed: Optional[int] = None  # seeds the sampling; the replicate a report pairs runs by; else 0
    experiment_name: Optional[str] = None  # a report compares runs within one experiment; else "evaluate"
    output_dir: Optional[str] = None  # None: Hydra's results/evaluate/<time>


@dataclass(frozen=True, kw_only=True)
class RunConfig(RunSettings):
    """Everything one training run is given, built once at the command line (bench.compose.run_config)."""

    algorithm: AlgorithmConfig
    task: TaskConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # what a report groups runs by: the config choices (riskpo_seeking, not the module name riskpo)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.trainer.tis_cap is not None and self.rollout.engine is EngineName.hf:
            raise ValueError(f"trainer.tis_cap={self.trainer.tis_cap} corrects a rollout engine's mismatch with the "
                             "policy; rollout=hf samples from the policy itself: use rollout=vllm or trainer.tis_cap=null")

    def label(self, group: str) -> str:
        """The config choice of ``group`` (algorithm, task, model) when Hydra made one, else its name."""
        return self.labels.get(group) or getattr(self, group).name


def plain(config: Any) -> Any:
    """A config as plain data (config.yaml, wandb, reports): enums by value, tuples as lists."""
    if is_dataclass(config):
        return {f.name: plain(getattr(config, f.name)) for f in fields(config)}
    if isinstance(config, dict):
        return {k: plain(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [plain(v) for v in config]
    return config.value if isinstance(config, Enum) else config
