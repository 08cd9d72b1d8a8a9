"""The RL loop with a vision-language policy: the tiny Qwen2-VL on the dots task with every
algorithm, resumed with images, and Geometry3K and MathVista with pictures end to end."""

import math
import subprocess
import sys

import pandas as pd
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText

from bench.compose import load_run_config
from bench.config import ModelConfig
from bench.models.policy import load_policy
from bench.models.vision import vision_tower
from bench.run import train
from common import PROJECT_ROOT

SMALL = ["task=dots", "model=tiny_dots", "trainer.steps=2", "trainer.prompts_per_step=5", "rollout.n=4",
         "rollout.max_new_tokens=12", "eval.problems=6", "eval.n=2", "trainer.eval_every=0", "logger=none"]


def run(tmp_path, *overrides) -> pd.DataFrame:
    train(load_run_config([*SMALL, *overrides]), tmp_path)
    return pd.read_parquet(tmp_path / "metrics.parquet")


@pytest.fixture(scope="module")
def base():
    model, _ = load_policy(ModelConfig(name="tiny_dots", tiny="dots"))
    return model


def trained(run_dir, step: int):
    return AutoModelForImageTextToText.from_pretrained(run_dir / "checkpoints" / f"step-{step:06d}" / "model")


@pytest.mark.parametrize("algorithm", ["grpo", "dr_grpo", "dapo", "gspo", "riskpo"])
def test_two_steps_of_every_algorithm_move_the_decoder_not_the_frozen_tower(tmp_path, algorithm, base):
    metrics = run(tmp_path, f"algorithm={algorithm}")
    assert metrics["step"].tolist() == [0, 1]
    assert all(math.isfinite(x) for x in metrics["train/loss"]) and all(metrics["train/entropy"] > 0)
    after = trained(tmp_path, 2)
    before_tower, after_tower = vision_tower(base).state_dict(), vision_tower(after).state_dict()
    assert all(torch.equal(before_tower[k], after_tower[k]) for k in before_tower)
    decoder = base.model.language_model.state_dict()
    moved = after.model.language_model.state_dict()
    assert any(not torch.equal(decoder[k], moved[k]) for k in decoder)
    assert (tmp_path / "checkpoints" / "step-000002" / "model" / "preprocessor_config.json").is_file()
    evals = pd.read_parquet(tmp_path / "eval.parquet")
    assert set(evals["step"]) == {0, 2} and evals["kl_from_initial"].notna().all()


def test_an_unfrozen_tower_is_trained_too(tmp_path, base):
    run(tmp_path, "algorithm=grpo", "model.freeze_vision=false", "trainer.steps=1")
    before, after = vision_tower(base).state_dict(), vision_tower(trained(tmp_path, 1)).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_a_resumed_run_with_images_continues_as_if_never_stopped(tmp_path):
    common = ["algorithm=riskpo", "trainer.steps=3", "trainer.checkpoint_every=1"]
    whole = run(tmp_path / "whole", *common)
    run(tmp_path / "cut", *common[:2], "trainer.steps=1", "trainer.checkpoint_every=1")
    resumed = run(tmp_path / "cut", *common, f"trainer.resume={tmp_path / 'cut'}")
    assert resumed["step"].tolist() == [0, 1, 2]
    columns = ["train/loss", "train/entropy", "train/reward_mean"]
    pd.testing.assert_frame_equal(resumed[columns], whole[columns], rtol=1e-6)
    a, b = trained(tmp_path / "whole", 3).state_dict(), trained(tmp_path / "cut", 3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_geometry3k_trains_and_evaluates_from_a_local_copy(tmp_path):
    from tests.tasks.test_geo3k import row, write

    source = tmp_path / "geo3k"
    problems = [row(f"<image>Find x{i}.", str(i), (30, 20)) for i in range(5)]
    write(source / "data", "train", problems)
    write(source / "data", "test", problems[:2])
    metrics = run(tmp_path / "run", "task=geo3k", f"task.source={source}", "algorithm=grpo", "trainer.steps=1",
                  "eval.problems=2")
    assert metrics["step"].tolist() == [0] and math.isfinite(metrics["train/loss"].iloc[0])
    evals = pd.read_parquet(tmp_path / "run" / "eval.parquet")
    assert set(evals["benchmark"]) == {"geo3k_test"}


def test_mathvista_is_evaluated_with_its_pictures(tmp_path):
    images = tmp_path / "mathvista" / "images"
    images.mkdir(parents=True)
    for pid in (1, 2):
        Image.new("RGB", (64, 48), "gray").save(images / f"{pid}.jpg")
    out = tmp_path / "eval"
    done = subprocess.run([sys.executable, "-m", "bench.evaluate", "model=tiny_dots", "task=mathvista",
                           f"task.image_dir={tmp_path / 'mathvista'}", "task.missing_image=skip",
                           "eval.benchmarks=[mathvista]", "eval.n=1", "rollout.max_new_tokens=4",
                           f"output_dir={out}"], capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert "skipped 998 of 1000 items whose image is missing" in done.stdout + done.stderr
    assert "mathvista (2)" in done.stdout
    assert len(pd.read_parquet(out / "problems.parquet")) == 2
