"""Helpers every package may import (``algorithms``, ``tasks`` and ``bench``); it imports none of them.

- ``PROJECT_ROOT`` and ``DEFAULT_DATA_DIR``: where the checkout and the shared benchmark data are.
- ``coerce_enums``: a config dataclass's string values of Enum fields become members, checked once.
- ``write_atomically``: a file or directory written under a temporary name and moved into place,
  so a crash never leaves a torn result and a reader never sees half of one.
"""

from __future__ import annotations

import errno
import os
import shutil
import typing
import uuid
from enum import Enum
from pathlib import Path
from typing import Any, Callable

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"

__all__ = ["DEFAULT_DATA_DIR", "PROJECT_ROOT", "coerce_enums", "write_atomically"]


def coerce_enums(config: Any) -> None:
    """Turn string values of Enum-typed fields into members, or raise naming the valid ones.

    OmegaConf already does this for composed configs; this makes ``RiskPOConfig(credit="std")``
    in Python behave the same way.
    """
    for name, hint in typing.get_type_hints(type(config)).items():
        value = getattr(config, name)
        if not (isinstance(hint, type) and issubclass(hint, Enum)) or isinstance(value, hint):
            continue
        if value not in hint.__members__:
            raise ValueError(f"{name}={value!r} is not one of: {', '.join(hint.__members__)}")
        object.__setattr__(config, name, hint[value])


def write_atomically(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)``, which creates a file or a directory at ``tmp`` (a hidden sibling of
    ``path``), then move it into place; returns ``path``.

    A file replaces an older one in one ``os.replace``. A directory cannot be replaced in one step
    when one is already there: the older one is moved aside first, then removed, so at every moment
    ``path`` is either the old complete directory, absent, or the new complete one (callers that
    need a reader never to see "absent" switch a pointer file after this, as checkpoints do).
    On any error the temporary is removed and the older result is left as it was; a full disk is
    reported as "no space left on device while writing <path>", whatever the writer said.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    aside = None
    try:
        try:
            write(tmp)
        except (OSError, RuntimeError) as err:  # torch reports a full disk as "basic_ios::clear: iostream error"
            if _disk_full(err, path.parent):
                raise OSError(errno.ENOSPC, f"no space left on device while writing {path}") from err
            raise
        if tmp.is_dir() and path.is_dir():
            aside = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.old"
            os.replace(path, aside)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, aside):
            if leftover is not None and leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover is not None and leftover.exists():
                leftover.unlink()
    return path


def _disk_full(err: BaseException, directory: Path) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        stats = os.statvfs(directory)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 1 << 20  # under 1 MiB left: what the writer hit
