"""A run directory's integrity: a resume takes the run's saved config, one writer at a time,
each checkpoint written once, damaged checkpoints passed over, a full disk said plainly."""

import errno
import os
import shutil
import stat
import subprocess
import sys
import uuid

import pandas as pd
import pytest
import torch

import tasks
from bench.compose import ConfigError, load_run_config
from bench.run import StartupError, train
from bench.training.checkpoints import checkpoint_dir, latest_checkpoint
from bench.training.sinks import RunLock
from common import write_atomically
from tasks.scoring import Scorer

# not the defaults, so a resume that fell back to them would show
SMALL = ["trainer.steps=2", "trainer.prompts_per_step=5", "rollout.n=4", "rollout.max_new_tokens=24",
         "eval.problems=6", "eval.n=2", "trainer.eval_every=1", "trainer.checkpoint_every=1", "logger=none",
         "algorithm=riskpo", "algorithm.quantile_source=batch", "seed=3"]


def fit(config, run_dir):
    with Scorer(tasks.build(config.task), workers=0) as scorer:  # no worker pool to start: seconds per run
        return train(config, run_dir, scorer=scorer)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-step run, checkpointed after each step; tests copy it."""
    run_dir = tmp_path_factory.mktemp("run") / "riskpo_batch"
    fit(load_run_config(SMALL, {"algorithm": "riskpo_batch"}), run_dir)
    return run_dir


@pytest.fixture
def run_dir(finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def test_a_resume_takes_the_saved_config_and_changes_only_what_it_may(run_dir):
    config = load_run_config([f"trainer.resume={run_dir}", "trainer.steps=3"])
    saved = load_run_config(SMALL, {"algorithm": "riskpo_batch"})
    assert config.trainer.steps == 3 and config.seed == 3 and config.rollout.n == 4
    assert config.algorithm == saved.algorithm and config.labels == {"algorithm": "riskpo_batch"}
    fit(config, run_dir)
    assert pd.read_parquet(run_dir / "metrics.parquet")["step"].tolist() == [0, 1, 2]
    assert "steps: 3" in (run_dir / "config.yaml").read_text()
    assert '"algorithm": "riskpo_batch"' in (run_dir / "run.json").read_text()


@pytest.mark.parametrize("override, field", [
    ("algorithm=grpo", "algorithm.name=grpo"),
    ("algorithm=riskpo", "algorithm.quantile_source=tracked"),  # the group alone misses the run's own setting
    ("seed=0", "seed=0"),
    ("trainer.prompts_per_step=10", "trainer.prompts_per_step=10"),
    ("task=sums", "task.name=sums"),
])
def test_a_resume_refuses_to_change_what_the_run_trained(finished, override, field):
    with pytest.raises(ConfigError, match=f"^{field} on the command line, but the run in .* has "):
        load_run_config([f"trainer.resume={finished}", override])


def test_a_resume_names_a_missing_or_foreign_directory(tmp_path):
    with pytest.raises(ConfigError, match="trainer.resume=.*nowhere does not exist"):
        load_run_config([f"trainer.resume={tmp_path / 'nowhere'}"])
    with pytest.raises(ConfigError, match="has no config.yaml"):
        load_run_config([f"trainer.resume={tmp_path}"])


def test_bench_run_resumes_in_place_without_a_new_hydra_directory(run_dir, tmp_path):
    out = tmp_path / "outputs"
    done = subprocess.run([sys.executable, "-m", "bench.run", f"trainer.resume={run_dir}", "trainer.steps=3",
                           f"output_dir={out}"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not out.exists()  # the run continued where it is; nothing created beside it
    assert len(list((run_dir / ".hydra").glob("resume-*"))) == 1
    assert pd.read_parquet(run_dir / "metrics.parquet")["step"].tolist() == [0, 1, 2]


def test_a_second_writer_is_refused(run_dir):
    holder = RunLock(run_dir)
    try:
        with pytest.raises(StartupError, match=f"is being written by pid {os.getpid()}.*choose another directory"):
            fit(load_run_config([f"trainer.resume={run_dir}", "trainer.steps=3"]), run_dir)
    finally:
        holder.release()
    RunLock(run_dir).release()  # free again once the holder is gone


def test_a_finished_run_resumed_at_its_end_rewrites_nothing(run_dir):
    before = {table: pd.read_parquet(run_dir / table) for table in ("eval.parquet", "problems.parquet")}
    last = checkpoint_dir(run_dir, 2)
    inode = (last / "trainer.pt").stat().st_ino
    after = fit(load_run_config([f"trainer.resume={run_dir}"]), run_dir)
    assert (last / "trainer.pt").stat().st_ino == inode  # the final checkpoint is not written again
    for table, frame in before.items():  # its evaluation is not repeated
        pd.testing.assert_frame_equal(pd.read_parquet(run_dir / table), frame)
    assert after == {"arith": frame_pass_at_1(before["eval.parquet"], 2)}


def frame_pass_at_1(evals, step):
    return float(evals[(evals["step"] == step) & (evals["k"] == 1)]["pass_at_k"].iloc[0])


@pytest.mark.parametrize("damage", ["truncated trainer.pt", "truncated weights", "missing latest"])
def test_a_damaged_checkpoint_is_passed_over_for_the_newest_intact_one(run_dir, damage, capsys):
    last = checkpoint_dir(run_dir, 2)
    if damage == "truncated trainer.pt":
        os.truncate(last / "trainer.pt", 100)
    elif damage == "truncated weights":
        os.truncate(last / "model" / "model.safetensors", 100)
    else:
        (run_dir / "checkpoints" / "latest").unlink()
    stray = run_dir / "checkpoints" / f".step-000003.{uuid.uuid4().hex[:8]}.tmp"
    stray.mkdir()
    fit(load_run_config([f"trainer.resume={run_dir}", "trainer.steps=3"]), run_dir)
    err = capsys.readouterr().err
    start = 2 if damage == "missing latest" else 1
    assert f"resuming from step-00000{start}, the newest intact checkpoint" in err
    assert ("is damaged" in err) == (damage != "missing latest")
    assert pd.read_parquet(run_dir / "metrics.parquet")["step"].tolist() == [0, 1, 2]
    assert sorted(pd.read_parquet(run_dir / "eval.parquet")["step"].unique()) == [0, 1, 2, 3]
    assert not stray.exists() and latest_checkpoint(run_dir) == checkpoint_dir(run_dir, 3)


def test_no_intact_checkpoint_is_one_line(run_dir, tmp_path):
    for step in (1, 2):
        os.truncate(checkpoint_dir(run_dir, step) / "trainer.pt", 10)
    with pytest.raises(StartupError, match=r"every checkpoint there is damaged \(step-000002, step-000001\); start "):
        fit(load_run_config([f"trainer.resume={run_dir}", "trainer.steps=3"]), run_dir)
    shutil.rmtree(run_dir / "checkpoints")
    with pytest.raises(StartupError, match="no checkpoint there .the run stopped before its first one."):
        fit(load_run_config([f"trainer.resume={run_dir}", "trainer.steps=3"]), run_dir)


def test_results_are_as_readable_as_the_umask_allows(finished):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("metrics.parquet", "eval.parquet", "config.yaml", "run.json", "checkpoints/latest",
                 "checkpoints/step-000002/trainer.pt"):
        assert stat.S_IMODE((finished / name).stat().st_mode) == 0o666 & ~mask, name


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB filesystem (a tmpfs: needs root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)  # torch may not have closed its file yet


@pytest.mark.parametrize("writer", ["file", "torch.save"])
def test_a_full_disk_is_named_and_leaves_nothing(tiny_disk, writer):
    target = tiny_disk / "trainer.pt"

    def write(tmp):
        if writer == "file":
            tmp.write_bytes(bytes(1 << 20))
        else:  # torch says "basic_ios::clear: iostream error"
            torch.save({"weights": torch.zeros(1 << 18)}, tmp)

    with pytest.raises(OSError) as caught:
        write_atomically(target, write)
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.strerror == f"no space left on device while writing {target}"
    assert list(tiny_disk.iterdir()) == []
