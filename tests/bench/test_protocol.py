"""bench.protocol end to end on a miniature protocol: sweep, choice on the validation split, final
runs at each algorithm's own lr, a variant with other settings and one at the target's lr, the report; a second call runs nothing again, and a
run stopped half way resumes from its checkpoint."""

import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import pytest

from bench.compose import ConfigError
from bench.protocol import (
    ProtocolConfig,
    Sweep,
    Variant,
    choose,
    later_runs,
    load_protocol,
    lr_name,
    main,
    widen,
    worker_settings,
)

SMALL = ["task=sums", "model=tiny_sums", "logger=none", "trainer.prompts_per_step=5", "rollout.n=4",
         "rollout.max_new_tokens=40", "eval.problems=6", "eval.n=2", "trainer.eval_every=1",
         "trainer.checkpoint_every=1"]


def write_protocol(tmp_path):
    spec = {"name": "mini", "validation": "sums_val", "base": SMALL,
            "algorithms": {"grpo": ["algorithm=grpo"], "riskpo_batch": ["algorithm=riskpo",
                                                                        "algorithm.quantile_source=batch"]},
            "sweep": {"lrs": [1e-5, 1e-3], "extend": [1e-7], "overrides": ["trainer.steps=1"]},
            "final": {"seeds": [0], "overrides": ["trainer.steps=2"]},
            "variants": {"two_mini_batches": {"algorithms": ["grpo"], "overrides": ["trainer.mini_batches=2",
                                                                                   "trainer.prompts_per_step=6"]},
                         "same_lr": {"algorithms": ["grpo"], "lr_of": "riskpo_batch"}},
            "baseline": "grpo", "target": "riskpo_batch"}
    path = tmp_path / "mini.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def test_the_whole_protocol_and_its_resume(tmp_path, capsys):
    path, out = write_protocol(tmp_path), tmp_path / "out"
    main([str(path), "--out", str(out), "--jobs", "2"])  # two worker processes; the resumes below run in this one
    choice = json.loads((out / "choice.json").read_text())
    tried = 0
    for name in ("grpo", "riskpo_batch"):
        values = choice[name]["validation_pass@1"]
        assert set(values) - {"1e-07"} == {"1e-05", "0.001"}
        # the grid grew below exactly when its smaller end was the best of the two
        assert ("1e-07" in values) == (values["1e-05"] >= values["0.001"])
        assert values[f"{choice[name]['lr']:g}"] == max(values.values())
        assert choice[name]["at_grid_end"] == (choice[name]["lr"] != 1e-5)
        tried += len(values)
        sweep = pd.read_parquet(out / "sweep" / f"{name}-lr1e-5" / "eval.parquet")
        assert set(sweep["benchmark"]) == {"sums_val"}  # the sweep never sees the evaluation set
    grpo_dir = out / "final" / f"grpo-{lr_name(choice['grpo']['lr'])}-s0"
    riskpo_dir = out / "final" / f"riskpo_batch-{lr_name(choice['riskpo_batch']['lr'])}-s0"
    final = pd.read_parquet(riskpo_dir / "eval.parquet")
    assert set(final["benchmark"]) == {"sums"} and set(final["step"]) == {0, 1, 2}
    run = json.loads((riskpo_dir / "run.json").read_text())
    assert run["algorithm"] == "riskpo_batch" and run["experiment"] == "mini"
    assert sorted(p.name for p in (grpo_dir / "checkpoints").glob("step-*")) == ["step-000002"]
    report = (out / "report.md").read_text()
    assert "## Learning rates" in report and "riskpo_batch" in report and "two_mini_batches/report.md" in report
    assert (out / "two_mini_batches" / "report.md").is_file()
    # grpo at riskpo_batch's lr, reported against riskpo_batch's final run (its own report compares the two);
    # where the two chose the same lr, that run would be grpo's final run again and is not made
    apart = choice["grpo"]["lr"] != choice["riskpo_batch"]["lr"]
    if apart:
        same_lr = out / "same_lr" / f"grpo-{lr_name(choice['riskpo_batch']['lr'])}-s0"
        assert json.loads((same_lr / "run.json").read_text())["algorithm"] == "grpo"
        assert f"grpo at riskpo_batch's chosen lr ({choice['riskpo_batch']['lr']:g})" in report
        variant = (out / "same_lr" / "report.md").read_text()
        assert "riskpo_batch ended with entropy" in variant and "`same_lr/grpo-" in variant
        assert f"`final/riskpo_batch-{lr_name(choice['riskpo_batch']['lr'])}-s0`" in variant
    else:
        assert "Variant `same_lr` (grpo at riskpo_batch's chosen lr) is not run" in report
        assert not (out / "same_lr").exists()

    capsys.readouterr()
    main([str(path), "--out", str(out), "--plan"])  # every run done; the sweep's with its validation score
    plan = capsys.readouterr().out.splitlines()
    assert len(plan) == tried + 2 + 1 + apart and all(line.startswith("done") for line in plan)
    assert f"validation pass@1 {choice['grpo']['validation_pass@1']['1e-05']:.3f}" in plan[0]

    # called again: everything is done, nothing runs; --report-only only writes the report elsewhere
    main([str(path), "--out", str(out)])
    assert "protocol: " not in capsys.readouterr().out
    main([str(path), "--out", str(out), "--report-only", "--report", str(tmp_path / "docs")])
    assert "protocol: " not in capsys.readouterr().out and (tmp_path / "docs" / "report.md").read_text() == report
    # a variant at an algorithm's own lr has no runs of its own: the report says so
    main([str(path), "--out", str(out), "--report-only", "--report", str(tmp_path / "own"), "variants.same_lr.lr_of=grpo"])
    assert "Variant `same_lr` (grpo at grpo's chosen lr) is not run" in (tmp_path / "own" / "report.md").read_text()

    # more steps planned: the final runs and the variant's resume from their last checkpoint
    before = pd.read_parquet(grpo_dir / "metrics.parquet")
    main([str(path), "--out", str(out), "final.overrides=[trainer.steps=3]"])
    printed = capsys.readouterr().out
    assert printed.count("(partial)") == printed.count("protocol: done") == 3 + apart and "sweep" not in printed
    after = pd.read_parquet(grpo_dir / "metrics.parquet")
    assert after["step"].tolist() == [0, 1, 2]
    same = [c for c in before.columns if not c.startswith(("time/", "budget/wall"))]
    pd.testing.assert_frame_equal(after[same].iloc[:2], before[same])
    assert sorted(set(pd.read_parquet(grpo_dir / "eval.parquet")["step"])) == [0, 1, 2, 3]

    # as committed: every checkpoint left out; the finished runs stay done and report the same
    clone = tmp_path / "clone"
    shutil.copytree(out, clone, ignore=shutil.ignore_patterns("checkpoints", ".lock", "report.md"))
    main([str(path), "--out", str(clone), "final.overrides=[trainer.steps=3]"])
    assert "protocol: " not in capsys.readouterr().out
    assert (clone / "report.md").read_text() == (out / "report.md").read_text().replace(str(out), str(clone))
    # a run that stopped before its last evaluation, without a checkpoint, starts again
    evals = pd.read_parquet(clone / grpo_dir.relative_to(out) / "eval.parquet")
    evals[evals["step"] < 3].to_parquet(clone / grpo_dir.relative_to(out) / "eval.parquet")
    main([str(path), "--out", str(clone), "final.overrides=[trainer.steps=3]"])
    printed = capsys.readouterr().out
    assert printed.count("(new)") == printed.count("protocol: done") == 1 and "final grpo " in printed


def test_the_sweep_widens_past_an_end_until_its_best_is_inside():
    p = ProtocolConfig(algorithms={"a": [], "b": [], "c": [], "d": []},
                       sweep=Sweep(lrs=[3e-5, 1e-4, 3e-4], extend=[1e-3, 3e-6, 1e-5]))
    grids = {name: sorted(p.sweep.lrs) for name in p.algorithms}
    scores = {"a": {3e-5: 0.3, 1e-4: 0.2, 3e-4: 0.1},   # best at the small end
              "b": {3e-5: 0.1, 1e-4: 0.3, 3e-4: 0.2},   # inside: stays
              "c": {3e-5: 0.1, 1e-4: 0.2, 3e-4: 0.3},   # best at the large end
              "d": {3e-5: 0.3, 1e-4: 0.2}}              # a run not done: waits
    assert widen(p, grids, scores)
    assert grids == {"a": [3e-5, 1e-4, 3e-4, 1e-5], "b": [3e-5, 1e-4, 3e-4], "c": [3e-5, 1e-4, 3e-4, 1e-3],
                     "d": [3e-5, 1e-4, 3e-4]}
    assert not widen(p, grids, scores)  # the new runs have no score yet
    scores["a"][1e-5] = 0.35  # still the end: on to the next one down
    scores["c"][1e-3] = 0.0  # now inside
    assert widen(p, grids, scores) and grids["a"][-1] == 3e-6 and len(grids["c"]) == 4
    scores["a"][3e-6] = 0.4  # nothing further down: stops there, and the choice says so
    assert not widen(p, grids, scores)
    del scores["d"]
    choice = choose(p, scores)
    assert choice["a"]["lr"] == 3e-6 and choice["a"]["at_grid_end"]
    assert choice["c"]["lr"] == 3e-4 and not choice["c"]["at_grid_end"]
    assert list(choice["a"]["validation_pass@1"]) == ["3e-06", "1e-05", "3e-05", "0.0001", "0.0003"]
    tie = choose(p, {"e": {1e-4: 0.2, 3e-5: 0.2, 3e-4: 0.1}})["e"]
    assert tie["lr"] == 3e-5 and tie["at_grid_end"]  # ties go to the smaller lr


def test_a_variant_at_an_algorithms_own_lr_is_its_final_runs(tmp_path):
    p = ProtocolConfig(algorithms={"grpo": [], "riskpo": []},
                       variants={"same_lr": Variant(algorithms=["grpo"], seeds=[0, 1], lr_of="riskpo")})
    own = later_runs(p, tmp_path, {"grpo": 1e-5, "riskpo": 1e-5})
    assert [(r.stage, r.algorithm) for r in own] == [("final", "grpo"), ("final", "riskpo")] * 3
    apart = [r for r in later_runs(p, tmp_path, {"grpo": 1e-4, "riskpo": 1e-5}) if r.stage == "same_lr"]
    assert [(r.algorithm, r.lr, r.seed) for r in apart] == [("grpo", 1e-5, 0), ("grpo", 1e-5, 1)]
    assert apart[0].run_dir == tmp_path / "same_lr" / "grpo-lr1e-5-s0"


def test_a_worker_trains_with_its_share_of_the_threads(monkeypatch):
    # The variable alone came too late for torch in a spawned child: two 2-thread runs on 2 cores
    # ran about 4 times slower than two 1-thread ones. 3 is no machine's default here.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    import torch

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=worker_settings, initargs=(3,)) as pool:
        assert pool.submit(torch.get_num_threads).result() == 3


def test_lr_names_are_exact():
    assert [lr_name(x) for x in (1e-4, 3e-5, 1.5e-4, 2.5e-5, 1.0, 0.0123)] == \
        ["lr1e-4", "lr3e-5", "lr1.5e-4", "lr2.5e-5", "lr1e+0", "lr1.23e-2"]


def test_plan_and_report_only_run_nothing(tmp_path, capsys):
    path, out = write_protocol(tmp_path), tmp_path / "out"
    main([str(path), "--out", str(out), "--plan"])
    printed = capsys.readouterr().out
    assert printed.count("new ") == 4 and "the final runs come once the sweep is done" in printed
    with pytest.raises(SystemExit) as stop:
        main([str(path), "--out", str(out), "--report-only"])
    assert stop.value.code == 2 and "the sweep is not finished" in capsys.readouterr().err
    assert not out.exists()


def test_bad_protocols_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no protocol 'nope'.*known: arith, sums"):
        load_protocol("nope")
    path = write_protocol(tmp_path)
    with pytest.raises(ConfigError, match="variants.two_mini_batches.algorithms: 'dapo'"):
        load_protocol(str(path), ["variants.two_mini_batches.algorithms=[dapo]"])
    with pytest.raises(ConfigError, match="variants.same_lr.lr_of: 'dapo' is not one of"):
        load_protocol(str(path), ["variants.same_lr.lr_of=dapo"])
    with pytest.raises(ConfigError, match="variants.same_lr: lr_of compares with riskpo_batch's final runs"):
        load_protocol(str(path), ["variants.same_lr.overrides=[trainer.mini_batches=2]"])
    with pytest.raises(ConfigError, match="sweep.lrs"):
        load_protocol(str(path), ["sweep.lrs=[]"])
    with pytest.raises(ConfigError, match="sweep.extend: 0.0001 lies within sweep.lrs"):
        load_protocol(str(path), ["sweep.extend=[1e-7,1e-4]"])
