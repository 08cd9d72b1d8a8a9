"""A run's checkpoints: where they are, which one a resume starts from, reading one that may be damaged.

``checkpoints/step-000040/`` holds ``model/`` (weights and tokenizer) and ``trainer.pt``
(optimizer, scheduler, algorithm state, prompt order, budget, random states); each is written
once, under a temporary name, and moved into place, and only then does ``checkpoints/latest``
switch to it. A resume starts from the one ``latest`` names; if that one does not load
(truncated, deleted) it falls back to the newest one that does, and says so.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Optional

import torch


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    """Where the checkpoint after ``step`` steps goes: checkpoints/step-000040."""
    return run_dir / "checkpoints" / f"step-{step:06d}"


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint directory holds, read from its name (no need to load trainer.pt)."""
    return int(path.name.rsplit("-", 1)[-1])


def checkpoints(run_dir: Path) -> list[Path]:
    """A run's checkpoints, the one to resume from first: the one ``checkpoints/latest`` names
    (switched last, so a complete one), then every other ``step-*`` directory, newest first."""
    root = run_dir / "checkpoints"
    found = sorted(root.glob("step-*"), key=checkpoint_step, reverse=True) if root.is_dir() else []
    latest = root / "latest"
    named = root / latest.read_text().strip() if latest.is_file() else None
    return [named, *(c for c in found if c != named)] if named is not None and named.is_dir() else found


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    """The checkpoint a resume starts from (unless it turns out damaged), or None."""
    return next(iter(checkpoints(run_dir)), None)


def remove_leftovers(run_dir: Path) -> None:
    """Delete what a killed checkpoint write left behind (``.step-*.tmp``, ``.step-*.old``)."""
    for leftover in (run_dir / "checkpoints").glob(".step-*"):
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def load_intact(run_dir: Path, model_type: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(model weights, trainer state) of the newest checkpoint of ``run_dir`` that loads; a
    one-line warning for each damaged one passed over and when it is not the one ``latest`` names."""
    found = checkpoints(run_dir)
    if not found:
        raise FileNotFoundError(f"trainer.resume={run_dir}: no checkpoint there (the run stopped before its first "
                                "one); start it again without trainer.resume")
    named = (run_dir / "checkpoints" / "latest").is_file()
    for index, path in enumerate(found):
        try:
            saved = torch.load(path / "trainer.pt", weights_only=False)
            weights = model_type.from_pretrained(path / "model").state_dict()
        except Exception as err:  # truncated, missing or unreadable: torch's, pickle's and safetensors' errors
            message = (str(err).strip().splitlines() or [""])[0][:200]
            print(f"bench.run: checkpoint {path} is damaged ({type(err).__name__}: {message}); trying the one "
                  "before it", file=sys.stderr)
            continue
        if index or not named:
            print(f"bench.run: resuming from {path.name}, the newest intact checkpoint", file=sys.stderr)
        return weights, saved
    raise FileNotFoundError(f"trainer.resume={run_dir}: every checkpoint there is damaged "
                            f"({', '.join(p.name for p in found)}); start the run again without trainer.resume")
