"""Hydra at the command line's edge: conf/ composed against the config dataclasses, then built once.

Hydra checks types and unknown keys against the ConfigStore schemas while composing;
``run_config`` then builds the typed ``RunConfig`` (bench/config.py), which runs every
dataclass's ``__post_init__`` checks (alpha < beta, ...), so a bad value fails before any work
starts, with one line naming the field. Nothing past this module sees OmegaConf.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

import algorithms
import tasks
from bench.config import (
    EvalConfig,
    EvaluateSettings,
    LoggerConfig,
    ModelConfig,
    RolloutConfig,
    RunConfig,
    RunSettings,
    TrainerConfig,
)
from common import PROJECT_ROOT

CONF_DIR = PROJECT_ROOT / "conf"
GROUPS = {"model": ModelConfig, "rollout": RolloutConfig, "trainer": TrainerConfig, "logger": LoggerConfig,
          "eval": EvalConfig}
CONFIG_ERRORS = (HydraException, OmegaConfBaseException, ValueError, KeyError, TypeError)
# What a resume may change: how long the run goes on and how it reports, never what it trains.
RESUMABLE = ("trainer.steps", "trainer.eval_every", "trainer.checkpoint_every", "trainer.threads",
             "trainer.samples_per_step", "trainer.resume", "logger", "output_dir")
# Algorithm presets that reproduce one released script, by the paper experiment each belongs to:
# under the other paper experiment they would silently train with the other script's settings.
SCRIPT_PRESETS = {"riskpo_reference": "paper_math", "riskpo_reference_hard": "paper_hard_math"}


def register_schemas() -> None:
    """Put every config dataclass in Hydra's ConfigStore as ``<group>/<name>_schema``, the node
    each conf/<group>/*.yaml starts from, and the root's own fields as ``run_schema``. The
    dataclasses are frozen; their nodes are made writable so that command-line overrides still
    apply (the dataclass checks run in ``run_config``)."""
    schemas = {("algorithm", name): a.config_type for name, a in algorithms.ALGORITHMS.items()}
    schemas |= {("task", name): t.config_type for name, t in tasks.TASKS.items()}
    schemas |= {(group, group): config_type for group, config_type in GROUPS.items()}
    for (group, name), config_type in schemas.items():
        node = OmegaConf.structured(config_type)
        OmegaConf.set_readonly(node, False)
        ConfigStore.instance().store(group=group, name=f"{name}_schema", node=node)
    for name, settings in (("run_schema", RunSettings), ("evaluate_schema", EvaluateSettings)):
        root = OmegaConf.structured(settings)  # typed fields; open to the groups composed beside them
        OmegaConf.set_readonly(root, False)
        OmegaConf.set_struct(root, False)
        ConfigStore.instance().store(name=name, node=root)


register_schemas()
# conf/config.yaml: a resumed run's Hydra directory is the run itself (no empty directory per resume)
OmegaConf.register_new_resolver("if_resume", lambda resume, then, otherwise: then if resume and Path(resume).is_dir()
                                else otherwise, replace=True)


class ConfigError(ValueError):
    """A config that does not compose or does not validate; the message is one line."""


def compose(config_name: str = "config", overrides: Sequence[str] = (), **hydra: Any) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides and validate it."""
    try:
        # Hydra's node holds the group choices (riskpo_reference, not riskpo): the run's labels
        cfg = _composed(config_name, overrides, **{**hydra, "return_hydra_config": True})
        choices = {group: str(choice) for group, choice in cfg.hydra.runtime.choices.items()}
        if not hydra.get("return_hydra_config"):
            with read_write(cfg), open_dict(cfg):
                del cfg["hydra"]
        validate(cfg, choices)
    except CONFIG_ERRORS as err:
        raise ConfigError(one_line(err)) from err
    return cfg


def _composed(config_name: str, overrides: Sequence[str], **hydra: Any) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides), **hydra)


def validate(cfg: DictConfig, choices: Optional[dict[str, str]] = None) -> None:
    """Build every typed node present, so its dataclass checks run now (for a run: ``run_config``,
    with Hydra's group ``choices`` as its labels)."""
    if "algorithm" in cfg and "task" in cfg and all(group in cfg for group in GROUPS):
        run_config(cfg, {group: choices[group] for group in ("algorithm", "task", "model") if group in (choices or {})})
        return
    if "algorithm" in cfg:
        algorithms.build(OmegaConf.to_object(cfg.algorithm))
    if "task" in cfg:
        tasks.build(OmegaConf.to_object(cfg.task))
    for group in GROUPS:
        if group in cfg:
            OmegaConf.to_object(cfg[group])


def run_config(cfg: DictConfig, labels: Optional[dict[str, str]] = None) -> RunConfig:
    """The typed root of a composed run config (``labels``: Hydra's group choices, for reports),
    checked whole: every dataclass, the root's cross-group rules, and the algorithm and task
    built once (a task checks its template and splits)."""
    groups = {group: OmegaConf.to_object(cfg[group]) for group in ("algorithm", "task", *GROUPS)}
    root = {f.name: cfg[f.name] for f in fields(RunSettings)}
    config = RunConfig(**root, **groups, labels=dict(labels or {}))
    algorithms.build(config.algorithm)
    tasks.build(config.task)
    check_script_preset(config.experiment_name, config.label("algorithm"))
    return config


def check_script_preset(experiment: str, algorithm: str) -> None:
    """Refuse one released script's algorithm preset under the other script's experiment."""
    home = SCRIPT_PRESETS.get(algorithm)
    if home is not None and experiment in SCRIPT_PRESETS.values() and experiment != home:
        own = next(preset for preset, script in SCRIPT_PRESETS.items() if script == experiment)
        raise ValueError(f"algorithm={algorithm} reproduces the released script of experiment={home}; "
                         f"with experiment={experiment} use algorithm={own}")


def load_run_config(overrides: Sequence[str] = (), labels: Optional[dict[str, str]] = None) -> RunConfig:
    """A run's config as the command line builds it: ``conf/config.yaml`` with ``overrides``
    (``labels``: what reports call its groups, e.g. {"algorithm": "riskpo_batch"}); with
    ``trainer.resume``, the resumed run's own config (``resume_config``)."""
    try:
        cfg = _composed("config", overrides)
        return resume_config(cfg, overrides) if cfg.trainer.resume else run_config(cfg, labels)
    except CONFIG_ERRORS as err:
        raise ConfigError(one_line(err)) from err


def resume_config(cfg: DictConfig, overrides: Sequence[str]) -> RunConfig:
    """The config of the run ``cfg.trainer.resume`` names, as its ``config.yaml`` saved it, with
    what ``overrides`` (the command line; ``cfg`` is what it composed to) change in it. Only the
    ``RESUMABLE`` fields may change; anything else that differs is refused, naming the field.
    Labels are the run's own."""
    run_dir = Path(cfg.trainer.resume)
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        what = "does not exist" if not run_dir.exists() else "has no config.yaml (not a run directory of bench.run)"
        raise ConfigError(f"trainer.resume={run_dir} {what}; name the directory of the run to continue")
    saved = OmegaConf.to_container(OmegaConf.load(saved_path))
    labels = saved.pop("labels", {})
    given = _leaves(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    touched = [o.lstrip("+~").split("=", 1)[0].split("@", 1)[0] for o in overrides]  # a group's package too
    if "experiment" in touched:  # a preset may set any field
        touched = list(given)
    old = _leaves(saved)
    values = old | {key: value for key, value in given.items() if any(_under(key, t) for t in touched)}
    for key, value in values.items():
        if value != old.get(key) and not any(_under(key, r) for r in RESUMABLE):
            raise ConfigError(f"{key}={value} on the command line, but the run in {run_dir} has {key}={old.get(key)}: "
                              f"a resume continues the run as saved and may change only {', '.join(RESUMABLE)}; "
                              "drop the override or start a new run")
    return _typed(_nested(values), labels)


def _typed(values: dict[str, Any], labels: dict[str, str]) -> RunConfig:
    """A RunConfig from plain data (a saved config.yaml), each group against its dataclass."""
    types = {"algorithm": algorithms.ALGORITHMS[values["algorithm"]["name"]].config_type,
             "task": tasks.TASKS[values["task"]["name"]].config_type, **GROUPS}
    cfg = OmegaConf.create({f.name: values[f.name] for f in fields(RunSettings)})
    for group, config_type in types.items():
        cfg[group] = OmegaConf.merge(OmegaConf.structured(config_type), values.get(group, {}))
    return run_config(cfg, labels)


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"trainer.steps": 40, ...}: every leaf of nested dicts by its dotted key (lists are leaves)."""
    if isinstance(tree, dict) and tree:
        return {k: v for key, value in tree.items() for k, v in _leaves(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(f"{prefix}.")


def _nested(leaves: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in leaves.items():
        *parents, name = key.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = value
    return tree


def writable(directory: Path, setting: str) -> None:
    """Create ``directory`` if need be and check a run can write in it, before any work; else a
    ConfigError naming ``setting``, the option that chose it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create {directory} ({err.strerror}); set {setting}=<a writable directory>") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"{directory} is not writable; set {setting}=<a writable directory>")


def check_command_line(program: str, config_name: str, argv: Sequence[str]) -> Optional[DictConfig]:
    """Before Hydra's main: the single run's overrides compose and validate, or one line and exit
    2 (Hydra's own report of a bad value is several lines, after it created the run's directory).
    Returns the composed config; None for multiruns and Hydra's own flags, which go to Hydra."""
    if any(arg.startswith("-") for arg in argv):
        return None
    try:
        return compose(config_name, [arg for arg in argv if not arg.startswith("hydra.")])
    except ConfigError as err:
        fail(program, err)


def fail(program: str, err: BaseException, status: int = 2) -> NoReturn:
    print(f"{program}: {one_line(err)}", file=sys.stderr)
    sys.exit(status)


def one_line(err: BaseException) -> str:
    """An exception's message on one line, with its cause's, without the context lines
    OmegaConf and Hydra append (keys, types, the config search path)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)  # no repr quotes
    text = text.split("Config search path")[0].strip()
    noise = ("full_key:", "object_type=", "reference_type=")
    message = " ".join(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(noise))
    message = re.sub(r" \w+_schema\b", "", message)  # Hydra lists the schema nodes among a group's options
    if err.__cause__ is not None and not isinstance(err, ConfigError):
        message = f"{message}: {one_line(err.__cause__)}"
    return message or type(err).__name__
