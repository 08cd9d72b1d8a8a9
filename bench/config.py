"""Composing Hydra configs outside ``@hydra.main`` (tests, bench.explain), validated at once.

Hydra checks types and unknown keys against the ConfigStore dataclasses while composing;
building the dataclasses here runs their ``__post_init__`` checks (alpha < beta, ...) too, so a
bad value fails before any work starts, with one line naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import algorithms
import tasks
from bench.evaluate import EvalConfig
from bench.policy import ModelConfig
from bench.rollout import EngineName, RolloutConfig
from bench.sinks import LoggerConfig
from bench.trainer import TrainerConfig

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def register_schemas() -> None:
    """Put every config dataclass in Hydra's ConfigStore as ``<group>/<name>_schema``, the node
    each conf/<group>/*.yaml starts from. The dataclasses are frozen; their nodes are made
    writable so that command-line overrides still apply (the dataclass checks run in validate)."""
    schemas = {("algorithm", name): a.config_type for name, a in algorithms.ALGORITHMS.items()}
    schemas |= {("task", name): t.config_type for name, t in tasks.TASKS.items()}
    schemas |= {("model", "model"): ModelConfig, ("rollout", "rollout"): RolloutConfig,
                ("trainer", "trainer"): TrainerConfig, ("logger", "logger"): LoggerConfig, ("eval", "eval"): EvalConfig}
    for (group, name), config_type in schemas.items():
        node = OmegaConf.structured(config_type)
        OmegaConf.set_readonly(node, False)
        ConfigStore.instance().store(group=group, name=f"{name}_schema", node=node)


register_schemas()


class ConfigError(ValueError):
    """A config that does not compose or does not validate; the message is one line."""


def compose(config_name: str = "config", overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides and validate it."""
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
        validate(cfg)
    except (HydraException, OmegaConfBaseException, ValueError, KeyError, TypeError) as err:
        raise ConfigError(one_line(err)) from err
    return cfg


def validate(cfg: DictConfig) -> None:
    """Build every typed node once, so its dataclass checks run now."""
    if "algorithm" in cfg:
        algorithms.build(cfg.algorithm)
    if "task" in cfg:
        tasks.build(cfg.task)
    built = {group: OmegaConf.to_object(cfg[group]) for group in ("model", "rollout", "trainer", "logger", "eval")
             if group in cfg}
    if "trainer" in built and "rollout" in built:
        trainer, rollout = built["trainer"], built["rollout"]
        if trainer.tis_cap is not None and rollout.engine is EngineName.hf:
            raise ValueError(f"trainer.tis_cap={trainer.tis_cap} corrects a rollout engine's mismatch with the policy; "
                             "rollout=hf samples from the policy itself: use rollout=vllm or trainer.tis_cap=null")


def one_line(err: BaseException) -> str:
    """An exception's message on one line, with its cause's, without the context lines
    OmegaConf and Hydra append (keys, types, the config search path)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)  # no repr quotes
    text = text.split("Config search path")[0].strip()
    noise = ("full_key:", "object_type=", "reference_type=")
    message = " ".join(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(noise))
    if err.__cause__ is not None and not isinstance(err, ConfigError):
        message = f"{message}: {one_line(err.__cause__)}"
    return message or type(err).__name__


def to_plain(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
