"""How the policy's numbers are stored and computed: weight dtype, and bf16 autocast on the CPU.

On CUDA ``model.dtype=bfloat16`` (and ``auto``) loads the weights in bf16, as before. On the CPU
it keeps the weights, and so AdamW's update, in float32 and runs the forward passes under
``torch.autocast("cpu", dtype=torch.bfloat16)``: AdamW steps on bf16 weights lose updates smaller
than a weight's last bit (8 bits of mantissa), which float32 master weights keep. ``auto`` picks
that only on a CPU with bf16 matrix instructions (AVX512-BF16, AMX-BF16, Arm's BF16); elsewhere
bf16 is emulated by conversions around float32 arithmetic, slower than float32 itself, so ``auto``
stays float32 and an explicit ``bfloat16`` prints a one-line warning.

A model learns it should autocast from ``load_policy`` (``mark_autocast``: an attribute, which
``copy.deepcopy`` keeps, so the reference and initial copies follow); ``autocast(model)`` is the
context the forward passes run in (``token_logprobs``, the HF engine's ``generate``). The output
head's log-softmax is not autocast: policy.py runs it in float32.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from bench.config import DType

__all__ = ["Precision", "autocast", "cpu_description", "mark_autocast", "native_bf16", "pick_precision"]

# /proc/cpuinfo names of bf16 matrix instructions: x86 AVX512-BF16 and AMX-BF16 ("flags"), Arm's
# BF16 extension ("Features")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
ATTRIBUTE = "bench_autocast_dtype"  # set on the model by mark_autocast


def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")  # Linux only; elsewhere bf16 counts as not native
    return path.read_text() if path.is_file() else ""


def native_bf16(cpuinfo: Optional[str] = None) -> bool:
    """Whether the CPU has bf16 matrix instructions, from ``cpuinfo`` (the text of /proc/cpuinfo;
    None: read it). Only the ``flags`` / ``Features`` lines count."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and BF16_FLAGS.intersection(value.split()):
            return True
    return False


def cpu_description(cpuinfo: Optional[str] = None) -> dict[str, Any]:
    """What this CPU offers the policy's arithmetic, for env.json:
    ``{"cpu_capability": "AVX2", "native_bf16": False}`` (torch's vector ISA, and ``native_bf16``)."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_bf16(cpuinfo)}


@dataclass(frozen=True)
class Precision:
    """How a policy loads and runs: ``pick_precision``'s answer."""

    weights: torch.dtype  # the parameters' dtype, and so the optimizer's
    compute: Optional[torch.dtype]  # the forward passes' autocast dtype; None: no autocast


def pick_precision(dtype: DType, device: torch.device, cpuinfo: Optional[str] = None) -> Precision:
    """The weights' dtype and the autocast dtype (None: none) for ``model.dtype`` on ``device``.

    CUDA: ``auto`` and ``bfloat16`` load bf16 weights, no autocast. CPU: ``bfloat16`` keeps float32
    weights under bf16 autocast (one warning where bf16 is emulated); ``auto`` does so only with
    native bf16, else float32. ``float32`` is float32 everywhere."""
    if dtype is DType.float32:
        return Precision(torch.float32, None)
    if device.type != "cpu":
        return Precision(torch.bfloat16, None)
    native = native_bf16(cpuinfo)
    if dtype is DType.auto:
        return Precision(torch.float32, torch.bfloat16 if native else None)
    if not native:
        print(f"bench: warning: model.dtype=bfloat16 on a CPU without bf16 instructions "
              f"({torch.backends.cpu.get_cpu_capability()}, no avx512_bf16/amx_bf16): bf16 autocast is emulated, "
              "slower than float32", file=sys.stderr)
    return Precision(torch.float32, torch.bfloat16)


def mark_autocast(model: Any, compute: Optional[torch.dtype]) -> Any:
    """Have ``autocast(model)`` run ``model``'s forward passes in ``compute`` (None: as stored)."""
    setattr(model, ATTRIBUTE, compute)
    return model


def autocast(model: Any) -> AbstractContextManager:
    """The context ``model``'s forward passes run in: autocast to its marked dtype on its device, or nothing."""
    compute = getattr(model, ATTRIBUTE, None)
    if compute is None:
        return nullcontext()
    return torch.autocast(next(model.parameters()).device.type, dtype=compute)
