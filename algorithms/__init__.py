"""The algorithm registry: one module per algorithm, one name everywhere.

``riskpo`` is algorithms/riskpo.py, the registry key, conf/algorithm/riskpo.yaml and the
metric namespace ``algo/riskpo/``. Adding an algorithm: write the module (a config dataclass
subclassing AlgorithmConfig and an Algorithm subclass), add it to ``ALGORITHMS`` below, and add
conf/algorithm/<name>.yaml pointing at ``<name>_schema``.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from algorithms.base import Algorithm, AlgorithmConfig
from algorithms.dapo import DAPO
from algorithms.dr_grpo import DrGRPO
from algorithms.grpo import GRPO
from algorithms.gspo import GSPO
from algorithms.riskpo import RiskPO

ALGORITHMS: dict[str, type[Algorithm]] = {
    "grpo": GRPO,
    "dr_grpo": DrGRPO,
    "dapo": DAPO,
    "gspo": GSPO,
    "riskpo": RiskPO,
}


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered under ``name``."""
    if name not in ALGORITHMS:
        raise KeyError(f"unknown algorithm {name!r}; valid: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def build(config: Any) -> Algorithm:
    """An algorithm from its config: a dataclass, or a composed Hydra node (validated here)."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_object(config)
    return get_algorithm(config.name)(config)



__all__ = ["ALGORITHMS", "Algorithm", "AlgorithmConfig", "build", "get_algorithm"]
