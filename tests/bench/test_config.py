"""Configs compose from conf/ and fail at compose time, in one line, when wrong."""

import dataclasses
from pathlib import Path

import pytest

import algorithms
from algorithms.dapo import DAPOConfig
from algorithms.riskpo import Credit, RiskPOConfig
from bench.compose import CONF_DIR, ConfigError, compose

ALGORITHM_YAMLS = sorted(p.stem for p in (CONF_DIR / "algorithm").glob("*.yaml"))


@pytest.mark.parametrize("choice", ALGORITHM_YAMLS)
def test_every_algorithm_yaml_composes_and_builds(choice):
    cfg = compose("config", [f"algorithm={choice}"])
    algo = algorithms.build(cfg.algorithm)
    assert algo.config.name in algorithms.ALGORITHMS
    assert isinstance(algo, algorithms.get_algorithm(algo.config.name))


def test_every_registered_algorithm_has_a_yaml_of_its_name():
    assert set(algorithms.ALGORITHMS) <= set(ALGORITHM_YAMLS)


@pytest.mark.parametrize("name", list(algorithms.ALGORITHMS))
def test_yaml_defaults_are_the_dataclass_defaults(name):
    """The only default of a field is in its dataclass: the plain YAML adds nothing."""
    built = algorithms.build(compose("config", [f"algorithm={name}"]).algorithm)
    assert built.config == algorithms.get_algorithm(name).config_type()


def test_variant_yamls_set_what_they_say():
    seeking = algorithms.build(compose("config", ["algorithm=riskpo_seeking"]).algorithm).config
    assert seeking.risk_seeking and seeking.name == "riskpo"
    ref = algorithms.build(compose("config", ["algorithm=riskpo_reference"]).algorithm).config
    assert (ref.formulation.value, ref.quantile_source.value, ref.pairing.value) == ("reference", "batch", "ordered")
    assert ref.normalize_std and ref.credit is Credit.std and ref.dual_clip == 3.0 and ref.natural_baseline
    assert (ref.alpha, ref.beta, ref.w_mix) == (0.2, 0.9, 1.5)  # the MATH/GSM8K script's quantile_up 0.9
    hard = algorithms.build(compose("config", ["algorithm=riskpo_reference_hard"]).algorithm).config
    assert (hard.formulation.value, hard.quantile_source.value, hard.pairing.value) == ("reference", "batch", "ordered")
    assert hard.normalize_std and hard.credit is Credit.sum_mean and hard.dual_clip == 3.0 and not hard.natural_baseline
    assert (hard.alpha, hard.beta, hard.w_mix) == (0.2, 0.8, 1.5)


def test_paper_defaults():
    assert (DAPOConfig().clip_low, DAPOConfig().clip_high) == (0.2, 0.28)
    c = RiskPOConfig()
    assert (c.bundle_size, c.alpha, c.beta, c.omega, c.w_mix, c.tracker_lr) == (5, 0.2, 0.8, 0.5, 1.5, 0.1)


def test_overrides_reach_the_dataclass():
    cfg = compose("config", ["algorithm=riskpo", "algorithm.alpha=0.1", "algorithm.credit=sum_mean"])
    config = algorithms.build(cfg.algorithm).config
    assert config.alpha == 0.1 and config.credit is Credit.sum_mean


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["algorithm.alpha=0.9"], "alpha < beta"),
        (["algorithm.alpha=0.8"], "alpha < beta"),
        (["algorithm.beta=1.0"], "beta < 1"),
        (["algorithm.bundle_size=0"], "bundle_size=0"),
        (["algorithm.credit=fair"], "expected one of [uniform, std, score, sum_mean]"),
        (["algorithm.quantile_source=median"], "expected one of [tracked, batch, mix]"),
        (["algorithm.alpah=0.1"], "alpah"),
        (["algorithm=grpo", "algorithm.loss_agg=token-mean"], "expected one of [token_mean"),
        (["algorithm=grpo", "algorithm.clip_low=1.5"], "clip_low=1.5"),
        (["algorithm=dapo", "algorithm.dual_clip=0.5"], "dual_clip=0.5"),
        (["algorithm=ppo"], "Available options in 'algorithm'"),
    ],
)
def test_bad_config_fails_at_compose_time_in_one_line(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        compose("config", overrides)
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_python_construction_checks_modes_too():
    assert RiskPOConfig(credit="std").credit is Credit.std
    with pytest.raises(ValueError, match="credit='fair' is not one of: uniform, std, score, sum_mean"):
        RiskPOConfig(credit="fair")
    with pytest.raises(dataclasses.FrozenInstanceError):
        RiskPOConfig().alpha = 0.3


def test_unknown_algorithm_lists_valid_names():
    with pytest.raises(KeyError, match="valid: grpo, dr_grpo, dapo, gspo, riskpo"):
        algorithms.get_algorithm("ppo")


def test_conf_dir_is_the_repository_conf():
    assert CONF_DIR == Path(algorithms.__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF_DIR / "experiment").glob("paper_*.yaml")))
@pytest.mark.parametrize("algorithm", list(algorithms.ALGORITHMS))
def test_paper_experiments_compose_with_every_algorithm(experiment, algorithm):
    cfg = compose("config", [f"experiment={experiment}", f"algorithm={algorithm}"])
    assert cfg.trainer.lr == 1e-6 and cfg.rollout.engine.value == "vllm" and cfg.model.path
    # the released scripts' verl: AdamW weight decay 0.01 and dual-clip 3 for every algorithm
    assert cfg.trainer.weight_decay == 0.01 and cfg.algorithm.dual_clip == 3.0
    assert cfg.trainer.prompts_per_step % 5 == 0  # whole RiskPO bundles, the same for every algorithm


def test_paper_experiments_follow_their_scripts():
    """Optimizer steps per step: 1024 prompts in mini-batches of 512 (easy), 512 in 128 (hard);
    the training pool and the DAPO prompt, verifier and +-1 reward."""
    easy = compose("config", ["experiment=paper_math"])
    assert (easy.trainer.mini_batches, easy.trainer.prompts_per_step, easy.task.train) == (2, 1020, "math_train")
    hard = compose("config", ["experiment=paper_hard_math"])
    assert (hard.trainer.mini_batches, hard.trainer.prompts_per_step, hard.task.template) == (4, 520, "dapo")


@pytest.mark.parametrize("experiment, wrong, right", [("paper_hard_math", "riskpo_reference", "riskpo_reference_hard"),
                                                      ("paper_math", "riskpo_reference_hard", "riskpo_reference")])
def test_a_script_preset_is_refused_under_the_other_scripts_experiment(experiment, wrong, right):
    with pytest.raises(ConfigError) as err:
        compose("config", [f"experiment={experiment}", f"algorithm={wrong}"])
    assert str(err.value) == (f"algorithm={wrong} reproduces the released script of experiment="
                              f"{'paper_math' if wrong == 'riskpo_reference' else 'paper_hard_math'}; "
                              f"with experiment={experiment} use algorithm={right}")
    assert compose("config", [f"experiment={experiment}", f"algorithm={right}"]).algorithm.name == "riskpo"
    assert compose("config", [f"algorithm={wrong}"]).algorithm.name == "riskpo"  # outside the paper experiments
