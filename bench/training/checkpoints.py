"""A run's checkpoints: where they are, which one a resume starts from, reading one that may be damaged.

``checkpoints/step-000040/`` holds ``model/`` (weights and tokenizer) and ``trainer.pt``
(optimizer, scheduler, algorithm state, prompt order, budget, random states). A data-parallel run
(torchrun) writes the model and optimizer shards with torch.distributed.checkpoint under ``dcp/``
(any world size can load them), each rank's random state as ``rng-<rank>.pt``, and ``model/``
as a whole Hugging Face export (for from_pretrained, vLLM and bench.evaluate). Each checkpoint is
written once, under a temporary name, and moved into place, and only then does ``checkpoints/latest``
switch to it. A resume starts from the one ``latest`` names; if that one does not load
(truncated, deleted) it falls back to the newest one that does, and says so.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Optional

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


def sharded(path: Path) -> bool:
    """Whether a checkpoint was written by a data-parallel run (its state under ``dcp/``)."""
    return (path / "dcp").is_dir()


def load_intact(run_dir: Path, model_type: Any) -> tuple[Path, Optional[dict[str, torch.Tensor]], dict[str, Any]]:
    """(path, model weights, trainer state) of the newest checkpoint of ``run_dir`` that loads (the
    weights are None for a data-parallel one: they are read from its shards); a one-line warning
    for each damaged one passed over and when it is not the one ``latest`` names."""
    found = checkpoints(run_dir)
    if not found:
        raise FileNotFoundError(f"trainer.resume={run_dir}: no checkpoint there (the run stopped before its first "
                                "one); start it again without trainer.resume")
    named = (run_dir / "checkpoints" / "latest").is_file()
    for index, path in enumerate(found):
        try:
            saved = torch.load(path / "trainer.pt", weights_only=False)
            if sharded(path) and not (path / "dcp" / ".metadata").is_file():
                raise FileNotFoundError(f"{path / 'dcp' / '.metadata'} is missing")
            weights = None if sharded(path) else model_type.from_pretrained(path / "model").state_dict()
        except Exception as err:  # truncated, missing or unreadable: torch's, pickle's and safetensors' errors
            message = (str(err).strip().splitlines() or [""])[0][:200]
            print(f"bench.run: checkpoint {path} is damaged ({type(err).__name__}: {message}); trying the one "
                  "before it", file=sys.stderr)
            continue
        if index or not named:
            print(f"bench.run: resuming from {path.name}, the newest intact checkpoint", file=sys.stderr)
        return path, weights, saved
    raise FileNotFoundError(f"trainer.resume={run_dir}: every checkpoint there is damaged "
                            f"({', '.join(p.name for p in found)}); start the run again without trainer.resume")


def switch_latest(path: Path) -> None:
    """Point ``checkpoints/latest`` at ``path`` (one atomic replace)."""
    from common import write_atomically

    write_atomically(path.parent / "latest", lambda tmp: tmp.write_text(path.name))


def write_sharded(path: Path, world: Any, write: Callable[[Path], None]) -> None:
    """``write_atomically`` for a checkpoint every rank writes part of: rank 0 makes the temporary
    directory and tells the others; all ``write`` into it; rank 0 then moves it into place and
    switches ``latest``."""
    from common import write_atomically

    def together(tmp: Path) -> None:
        tmp.mkdir()
        world.broadcast(tmp)
        write(tmp)
        world.barrier()

    if world.main:
        write_atomically(path, together)
        switch_latest(path)
    else:
        write(world.broadcast(None))
        world.barrier()
    world.barrier()


def save_sharded(directory: Path, model: Any, optimizer: Any, world: Any) -> None:
    """This rank's shards of the model and the optimizer (``dcp/``) and its random state."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    from bench.training import seeds

    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=directory / "dcp")
    torch.save(seeds.rng_state(), directory / f"rng-{world.rank}.pt")


def load_sharded(path: Path, model: Any, optimizer: Any, world: Any) -> None:
    """Model and optimizer from ``dcp/`` (resharded to this world size), and this rank's random
    state (rank 0's for a rank the writing run did not have)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    from bench.training import seeds

    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=path / "dcp")
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    rng = path / f"rng-{world.rank}.pt"
    seeds.set_rng_state(torch.load(rng if rng.is_file() else path / "rng-0.pt", weights_only=False))
