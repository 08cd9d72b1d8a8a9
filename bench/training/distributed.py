"""Data-parallel training under torchrun: which process this is, the model sharded with FSDP2,
and the few collectives the trainer needs.

    torchrun --nproc-per-node=4 -m bench.run algorithm=riskpo task=math ...

Every rank draws the same prompts (the sampler is seeded), generates and judges its own share of
them, and the shares are gathered, so selection, bundling and advantages run on the whole batch
on every rank (a RiskPO bundle may span ranks; ``check_same`` verifies the tracker agrees). Each
rank then backpropagates its share of every mini-batch with the loss denominators of the whole
mini-batch; FSDP averages the gradients over ranks, so the local loss is multiplied by the world
size and the gradient is the one a single process computes on the whole batch.

FSDP2 (``fully_shard``) shards each decoder layer and then the root (embeddings, head, final
norm) over a 1-D device mesh: NCCL on GPUs, gloo on the CPU. With FSDP every rank must run the
same forward and backward passes in the same order (each one all-gathers parameters), so shares
are equal in size (``share``, ``padded_share``), ranks with fewer micro-batches run empty ones
(``micro_batches``), and generation keeps finished ranks stepping (transformers' ``synced_gpus``).

At world size 1 (no torchrun) nothing here initialises anything: ``World()`` is one rank whose
collectives return their input.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import types
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import torch

T = TypeVar("T")

__all__ = ["World", "full_state_dict", "init_world", "shard", "world_size"]


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel ranks."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = "none"

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the run directory and prints."""
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.size, "backend": self.backend}

    def share(self, count: int) -> range:
        """This rank's contiguous slice of ``count`` items, which must divide evenly (FSDP runs
        every rank's passes in lock-step, so shares are equal)."""
        if count % self.size:
            raise ValueError(f"{count} items do not split evenly over {self.size} ranks")
        size = count // self.size
        return range(self.rank * size, (self.rank + 1) * size)

    def padded_share(self, count: int) -> tuple[list[int], int]:
        """(indices, real): this rank's contiguous slice of ``count`` items, padded by repeating its
        last index (or the last item's) to the size every rank gets; the first ``real`` are its own."""
        size = -(-count // self.size)
        start = min(self.rank * size, count)
        own = list(range(start, min(start + size, count)))
        return own + [own[-1] if own else count - 1] * (size - len(own)), len(own)

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order (picklable objects; tensors travel on the CPU)."""
        if self.size == 1:
            return [obj]
        out: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if self.size == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def check_same(self, obj: Any, what: str) -> None:
        """Raise on every rank unless ``obj`` pickles to the same bytes on all of them."""
        if self.size == 1:
            return
        digests = self.gather(hashlib.sha256(pickle.dumps(obj)).hexdigest())
        if len(set(digests)) > 1:
            differ = [r for r, d in enumerate(digests) if d != digests[0]]
            raise RuntimeError(f"{what} differs between ranks (rank 0 against ranks {differ}): the ranks' inputs "
                               "diverged; this is a bug, please report it with the run's config.yaml")

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()

    def micro_batches(self, rows: torch.Tensor, cut: Callable[[torch.Tensor], list[torch.Tensor]]) -> list[torch.Tensor]:
        """This rank's part of a mini-batch's ``rows`` in the micro-batches ``cut`` makes of it, padded
        with empty ones to the count of the rank with the most (the caller still runs a pass for an
        empty one). Every rank holds the whole batch, so each cuts every rank's part and knows that
        count without a collective. At world size 1: ``cut(rows)``."""
        parts = rows.tensor_split(self.size)
        cuts = [cut(part) for part in parts]
        mine = cuts[self.rank]
        return mine + [parts[self.rank][:0]] * (max(1, *(len(c) for c in cuts)) - len(mine))


def world_size() -> int:
    """How many data-parallel processes this run has: torchrun's ``WORLD_SIZE``; in a job of Hydra's
    submitit launcher with several tasks (``hydra.launcher.tasks_per_node``), the job's tasks, whose
    rank and rendezvous submitit's helper exports in torchrun's variables."""
    if "WORLD_SIZE" not in os.environ and os.environ.get("SUBMITIT_EXECUTOR") and \
            int(os.environ.get("SLURM_NTASKS", os.environ.get("SUBMITIT_LOCAL_NTASKS", "1"))) > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_world(device: str) -> World:
    """The world torchrun (or a multi-task submitit job, ``world_size``) describes, its process
    group started (NCCL when ``device`` is a GPU, gloo otherwise); ``World()`` for one process."""
    size = world_size()
    if size == 1:
        return World()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend)
    return World(rank=rank, size=size, local_rank=local, backend=torch.distributed.get_backend())


def shard(model: Any, world: World) -> Any:
    """FSDP2 over ``world``: each decoder layer (the model's ``_no_split_modules``), then the root.
    Parameters and compute keep the policy's dtype; on GPUs gradients are reduced in fp32. The
    harness's log-prob and KL functions go through the root's hooks (``bench_token_logprobs``,
    ``bench_token_kl``): they call the decoder and read the head's weight directly, which FSDP
    would otherwise leave sharded. A vision-language model's vision tower is a unit of its own
    (its blocks inside it), because ``generate`` runs it alone before the first forward pass."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    from bench.models import policy
    from bench.models.vision import is_multimodal, vision_tower

    device = next(model.parameters()).device
    mesh = init_device_mesh(device.type, (world.size,))
    # parameters and compute in the policy's dtype (model.dtype: bf16 on GPUs by default), gradients
    # reduced in fp32 on GPUs (gloo reduces what it is given)
    mixed = MixedPrecisionPolicy(reduce_dtype=torch.float32 if device.type == "cuda" else None)
    layer_types = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in layer_types]
    if not layers:
        raise ValueError(f"{type(model).__name__} names no decoder layer class (_no_split_modules); "
                         "data-parallel training shards per layer")
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=mixed)
    if is_multimodal(model):  # generate runs the vision tower alone, before the first forward pass
        fully_shard(vision_tower(model), mesh=mesh, mp_policy=mixed)
    fully_shard(model, mesh=mesh, mp_policy=mixed)
    if is_multimodal(model):  # FSDP initialises from the first unit to run: one token makes it the root
        with torch.no_grad():
            model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=device))
        model.reshard()  # the root keeps its parameters gathered after a forward pass: the optimizer needs the shards
    model.bench_token_logprobs = types.MethodType(policy.unsharded_token_logprobs, model)
    model.bench_token_kl = types.MethodType(policy.unsharded_token_kl, model)
    register_fsdp_forward_method(model, "bench_token_logprobs")
    register_fsdp_forward_method(model, "bench_token_kl")
    return model


def full_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The whole model's weights on the CPU, a tied copy (the head tied to the embeddings) once
    under its source's name, as save_pretrained writes them. Every rank must call it; each gets them."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    for tied in getattr(model, "all_tied_weights_keys", None) or {}:
        weights.pop(tied, None)
    return weights


def sharded(model: Any) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def set_gradient_sync(model: Any, sync: bool) -> None:
    """Reduce gradients on the next backward only when ``sync`` (the last micro-batch of an
    optimizer step); the others accumulate locally."""
    if sharded(model):
        model.set_requires_gradient_sync(sync)


def whole(value: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a DTensor (a sharded parameter, ``clip_grad_norm_`` of sharded gradients),
    gathered from every rank, so every rank must call it; a plain tensor as it is."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value


def cat_parts(parts: Sequence[Sequence[T]]) -> list[T]:
    return [item for part in parts for item in part]
