"""bench.report: the loader on real runs, the report end to end, and the statistics on hand-made
run directories whose answers are known."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from bench.compose import compose
from bench.evaluate import cli
from bench.evaluation import passk
from bench.report import main, write_report
from bench.reporting.figures import improvement_figure, kl_figure
from bench.reporting.results import (
    conclusion,
    final_window,
    improvement,
    load_results,
    pass_table,
    problem_difference,
)

# what tests/bench/conftest.py trains
EXPERIMENT, ALGORITHMS, SEEDS = "compare_arith", ("grpo", "riskpo", "riskpo_seeking"), (0, 1)


def make_run(root, algorithm, seed, entropy, correct, n=4, experiment="hand"):
    """A finished two-step run: final entropy ``entropy``; at the final eval (step 2) problem i has
    ``correct[i]`` of n samples right; eval.parquet's pass@1 is their mean."""
    run = root / experiment / f"{algorithm}-arith-s{seed}"
    run.mkdir(parents=True)
    identity = {"algorithm": algorithm, "task": "arith", "model": "tiny", "seed": seed, "experiment": experiment}
    (run / "run.json").write_text(json.dumps(identity))
    pd.DataFrame({"step": [0, 1], "train/entropy": [0.5, entropy], "train/reward_mean": [0.1, 0.2],
                  "budget/generated_tokens": [100, 200], "budget/wall_seconds": [1.0, 2.0]}
                 ).to_parquet(run / "metrics.parquet")
    c = np.asarray(correct)
    pd.DataFrame({"step": 2, "benchmark": "arith", "k": [1], "pass_at_k": [float(np.mean(c / n))], "n": n,
                  "stderr": 0.0, "task_version": "1"}).to_parquet(run / "eval.parquet")
    pd.DataFrame({"step": 2, "benchmark": "arith", "uid": [f"q{i}" for i in range(len(c))], "n": n, "c": c}
                 ).to_parquet(run / "problems.parquet")
    return run


# --- the loader on the real fixture ------------------------------------------------------------


def test_loader_finds_every_run_with_its_label_and_seed(results_dir):
    results = load_results(results_dir)
    runs = results.runs
    assert sorted(zip(runs["algorithm"], runs["seed"])) == sorted((a, s) for a in ALGORITHMS for s in SEEDS)
    assert set(runs["run_id"]) == {f"{EXPERIMENT}/{a}-arith-s{s}" for a in ALGORITHMS for s in SEEDS}
    assert set(runs["experiment"]) == {EXPERIMENT} and set(runs["task"]) == {"arith"} and set(runs["model"]) == {"tiny"}
    assert (runs["steps"] == 2).all() and (runs["planned_steps"] == 2).all() and (runs["wall_seconds"] > 0).all()
    for frame in (results.metrics, results.evals, results.problems):
        assert {"run_id", "algorithm", "seed", "experiment", "task"} <= set(frame.columns)
        assert set(frame["run_id"]) == set(runs["run_id"])
    assert len(results.metrics) == 6 * 2 and "train/entropy" in results.metrics
    assert results.metrics.loc[results.metrics["algorithm"] != "grpo", "algo/riskpo/tracker_a"].notna().all()
    assert set(results.evals["step"]) == {0, 1, 2} and set(results.evals["k"]) == {1, 2, 3, 4}
    problems = results.problems.groupby(["run_id", "step"])["uid"].nunique()
    assert (problems == 16).all() and len(problems) == 6 * 3


def test_loader_without_run_json_reads_the_label_from_the_directory_name(results_dir, tmp_path):
    source = results_dir / EXPERIMENT / "riskpo_seeking-arith-s1"
    for name in ("riskpo_seeking-arith-s1-20260101-120000", "my-custom-run"):
        (tmp_path / "old" / name).mkdir(parents=True)
        for file in ("config.yaml", "metrics.parquet"):  # an older run: no run.json, no eval yet
            shutil.copy(source / file, tmp_path / "old" / name / file)
    runs = load_results(tmp_path).runs.set_index("run_id")
    # Hydra names the directory by the config choice; config.yaml only knows algorithm.name
    assert runs.loc["old/riskpo_seeking-arith-s1-20260101-120000", "algorithm"] == "riskpo_seeking"
    assert runs.loc["old/my-custom-run", "algorithm"] == "riskpo"
    assert set(runs["seed"]) == {1} and set(runs["experiment"]) == {EXPERIMENT}


def test_report_command_end_to_end(results_dir, tmp_path):
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "bench.report", str(results_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = (out / "report.md").read_text()
    for algorithm in ALGORITHMS:
        assert f"| {algorithm} | arith |" in text  # the pass@k table
        assert f"| {EXPERIMENT} | {algorithm} | 0 | 2/2 |" in text  # the runs table
    assert "riskpo ended with entropy" in text and "vs grpo" in text and "pass@4 on arith" in text
    diversity = text.split("## Answer diversity at the final evaluation")[1].split("## Where the time went")[0]
    assert "| algorithm | benchmark | distinct correct answers | answer entropy |" in diversity
    assert all(f"| {a} | arith |" in diversity for a in ALGORITHMS)
    timing = text.split("## Where the time went")[1].split("## Runs")[0]
    assert "| algorithm | generate | score |" in timing and all(f"| {a} |" in timing for a in ALGORITHMS)
    for name in ("entropy", "reward", "passk", "diversity", "kl", "improvement", "quantiles"):
        assert f"![{name}]({name}.png)" in text
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = imread(png).shape
        assert height > 200 and width > 400
    written = sorted(p.name for p in out.iterdir())  # no temporary files left behind
    assert written == ["diversity.png", "entropy.png", "improvement.png", "kl.png", "passk.png", "quantiles.png",
                       "report.md", "reward.png"]
    assert "riskpo ended with entropy" in done.stdout


def test_report_without_riskpo_runs_says_so_and_skips_the_quantiles(tmp_path):
    make_run(tmp_path, "grpo", 0, 0.1, [1, 2])
    make_run(tmp_path, "dapo", 0, 0.2, [1, 2])
    text = write_report(load_results(tmp_path), tmp_path / "out").read_text()
    assert "no riskpo runs, so no comparison of riskpo with grpo (algorithms here: dapo, grpo)" in text
    assert "no quantiles.png" in text and not (tmp_path / "out" / "quantiles.png").exists()
    assert "no kl.png" in text  # hand-made runs measured no KL


def test_the_probability_of_improvement_by_hand(tmp_path):
    """Two problems, target seeds {0, 1} against baseline seeds {0, 1}: problem q0 target c = (3, 1)
    vs baseline (2, 2) -> pairs 3>2, 3>2, 1<2, 1<2 -> 0.5; q1 (2, 2) vs (2, 0) -> tie 0.5, win 1,
    tie 0.5, win 1 -> 0.75; the mean 0.625."""
    make_run(tmp_path, "riskpo", 0, 0.1, [3, 2])
    make_run(tmp_path, "riskpo", 1, 0.1, [1, 2])
    make_run(tmp_path, "grpo", 0, 0.1, [2, 2])
    make_run(tmp_path, "grpo", 1, 0.1, [2, 0])
    results = load_results(tmp_path)
    d = improvement(results.problems, "c", "grpo", "riskpo")
    assert d.target == pytest.approx(0.625) and d.baseline == 0.5 and d.low <= 0.625 <= d.high
    assert improvement(results.problems, "c", "riskpo", "riskpo").target == 0.5  # against itself: all ties or even
    fig = improvement_figure(results, "grpo")
    (x,), _ = fig.axes[0].lines[0].get_data()
    assert x == pytest.approx(0.625)


def test_the_kl_view_draws_each_run_through_its_own_evaluations(tmp_path):
    for seed, kl in ((0, [0.0, 1.0]), (1, [0.0, 3.0])):
        run = make_run(tmp_path, "grpo", seed, 0.1, [1, 2])
        pd.DataFrame({"step": [0, 2], "benchmark": "arith", "k": 1, "pass_at_k": [0.2, 0.4 + 0.2 * seed], "n": 4,
                      "kl_from_initial": kl, "task_version": "1"}).to_parquet(run / "eval.parquet")
    fig = kl_figure(load_results(tmp_path))
    lines = sorted((ln.get_xdata().tolist(), ln.get_ydata().tolist()) for ln in fig.axes[0].get_lines())
    assert lines == [([0.0, 1.0], pytest.approx([0.2, 0.4])), ([0.0, 3.0], pytest.approx([0.2, 0.6]))]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["grpo"]  # the series named once


def test_the_conclusion_says_how_far_each_moved_from_the_initial_policy(tmp_path):
    for seed, (grpo_kl, riskpo_kl) in enumerate([(4.0, 0.5), (5.0, 0.4), (4.5, 0.6)]):
        for algorithm, kl in (("grpo", grpo_kl), ("riskpo", riskpo_kl)):
            run = make_run(tmp_path, algorithm, seed, 0.1, [1, 2])
            pd.DataFrame({"step": [0, 2, 2], "benchmark": "arith", "k": [1, 1, 4], "pass_at_k": [0.2, 0.4, 0.8],
                          "n": 4, "kl_from_initial": [0.0, kl, kl], "task_version": "1"}).to_parquet(run / "eval.parquet")
    text = conclusion(load_results(tmp_path))
    # per-seed differences -3.5, -4.6, -3.9: mean -4.0, sd 0.5568, t(0.975, 2) 4.303: half-width 1.383
    assert ("KL from the initial policy on arith at the final evaluation (nats per response): riskpo 0.500 vs grpo "
            "4.500 (difference -4.000, 95% CI over 3 seeds [-5.383, -2.617]: lower, larger than its CI") in text
    for algorithm in ("grpo", "riskpo"):  # runs without the KL (eval.kl_from_initial=false): not a word of it
        make_run(tmp_path / "no_kl", algorithm, 0, 0.1, [1, 2])
    assert "KL" not in conclusion(load_results(tmp_path / "no_kl"))


def test_only_the_run_directories_asked_for_are_loaded(tmp_path):
    kept = [make_run(tmp_path, "grpo", 0, 0.1, [1]), make_run(tmp_path, "riskpo", 1, 0.1, [1])]
    make_run(tmp_path, "grpo", 1, 0.1, [1])
    results = load_results(tmp_path, only=[*kept, tmp_path / "not-a-run"])
    assert results.runs["run_id"].tolist() == ["hand/grpo-arith-s0", "hand/riskpo-arith-s1"]
    assert set(results.evals["run_id"]) == set(results.runs["run_id"])


# --- evaluation-only runs: bench.evaluate's output directories --------------------------------------


@pytest.fixture(scope="module")
def mixed(results_dir, tmp_path_factory):
    """A trained run (grpo seed 0, copied from the fixture) beside two evaluation-only runs written
    by bench.evaluate in the same experiment: the tiny base model labelled ``base``, and riskpo's
    final weights as a bare model directory (as verl's merger writes one), labelled by its name."""
    root = tmp_path_factory.mktemp("mixed")
    trained = results_dir / EXPERIMENT
    shutil.copytree(trained / "grpo-arith-s0", root / EXPERIMENT / "grpo-arith-s0",
                    ignore=shutil.ignore_patterns("checkpoints"))
    weights = tmp_path_factory.mktemp("weights") / "riskpo_merged"
    shutil.copytree(trained / "riskpo-arith-s0" / "checkpoints" / "step-000002" / "model", weights)
    settings = ["eval.n=4", "eval.problems=8", "eval.resamples=50", "rollout.max_new_tokens=24",
                f"experiment_name={EXPERIMENT}"]
    cli(compose("evaluate", ["label=base", *settings, f"output_dir={root / EXPERIMENT / 'base'}"]))
    cli(compose("evaluate", [f"checkpoint={weights}", *settings, f"output_dir={root / EXPERIMENT / 'riskpo_merged'}"]))
    return root


def test_evaluation_only_runs_are_loaded_with_their_identity(mixed):
    results = load_results(mixed)
    runs = results.runs.set_index("run_id")
    columns = ["algorithm", "task", "model", "seed", "experiment", "steps", "evaluation_only"]
    assert runs[columns].to_dict("index") == {
        f"{EXPERIMENT}/grpo-arith-s0": dict(zip(columns, ["grpo", "arith", "tiny", 0, EXPERIMENT, 2, False])),
        f"{EXPERIMENT}/base": dict(zip(columns, ["base", "arith", "tiny", 0, EXPERIMENT, 0, True])),
        f"{EXPERIMENT}/riskpo_merged": dict(zip(columns, ["riskpo_merged", "arith", "riskpo_merged", 0, EXPERIMENT,
                                                          0, True]))}
    assert runs.loc[runs["evaluation_only"], "wall_seconds"].isna().all()
    assert runs.loc[runs["evaluation_only"], "planned_steps"].isna().all()
    assert set(results.metrics["algorithm"]) == {"grpo"}
    assert set(results.evals["algorithm"]) == {"grpo", "base", "riskpo_merged"}
    assert results.problems[results.problems["algorithm"] != "grpo"].groupby("algorithm").size().tolist() == [8, 8]


def test_report_compares_two_evaluation_only_runs_paired_over_problems(mixed, tmp_path):
    main([str(mixed), "--out", str(tmp_path), "--baseline", "base", "--target", "riskpo_merged"])
    text = (tmp_path / "report.md").read_text()
    evals = load_results(mixed).evals
    pass1 = {a: evals[(evals["algorithm"] == a) & (evals["k"] == 1)]["pass_at_k"].item()
             for a in ("base", "riskpo_merged")}
    # both evaluated the same 8 problems, so the paired means are each run's own pass@1
    assert (f"pass@1 on arith: riskpo_merged {pass1['riskpo_merged']:.3f} vs base {pass1['base']:.3f} (difference "
            f"{pass1['riskpo_merged'] - pass1['base']:+.3f}, 95% bootstrap CI over 8 problems [") in text
    assert "No entropy comparison: no training steps logged for riskpo_merged or base" in text
    table = text.split("## pass@k at the final evaluation")[1].split("## Figures")[0]
    assert "| algorithm | benchmark | seeds | problems | pass@1 | Δ pass@1 vs base | pass@4 | Δ pass@4 vs base |" in table
    merged_row = next(line for line in table.splitlines() if line.startswith("| riskpo_merged | arith | 1 |"))
    assert merged_row.count("(n/a) | ") == 2 and "| — |" not in merged_row  # a paired difference in both Δ cells
    assert f"| {EXPERIMENT} | base | 0 | 0 (evaluation only) | — | `{EXPERIMENT}/base` |" in text
    assert f"| {EXPERIMENT} | grpo | 0 | 2/2 |" in text
    assert "![entropy](entropy.png)" in text  # the trained grpo run's line; none for the evaluations


def test_report_compares_a_trained_run_with_an_evaluation_only_one(mixed, tmp_path):
    main([str(mixed), "--out", str(tmp_path), "--baseline", "base", "--target", "grpo"])
    text = (tmp_path / "report.md").read_text()
    # grpo's final evaluation had 16 problems, base's 8: paired on the 8 both have
    assert "pass@1 on arith: grpo " in text and "vs base " in text and "bootstrap CI over 8 problems" in text
    assert "No entropy comparison: no training steps logged for base" in text
    assert "| grpo | arith | 1 |" in text


def test_a_report_of_evaluation_only_runs_has_no_training_figures(mixed, tmp_path):
    for name in ("base", "riskpo_merged"):
        shutil.copytree(mixed / EXPERIMENT / name, tmp_path / "evals" / name)
    main([str(tmp_path / "evals"), "--out", str(tmp_path / "out"), "--baseline", "base", "--target", "riskpo_merged"])
    text = (tmp_path / "out" / "report.md").read_text()
    assert "# Report: 2 runs" in text and "bootstrap CI over 8 problems" in text
    for name in ("entropy", "reward", "quantiles"):
        assert f"no {name}.png" in text and not (tmp_path / "out" / f"{name}.png").exists()
    assert "No run logged training steps (evaluation-only runs have none): no entropy.png." in text
    assert (tmp_path / "out" / "passk.png").is_file() and (tmp_path / "out" / "improvement.png").is_file()
    assert "## Where the time went" not in text


# --- clear errors ----------------------------------------------------------------------------------


def test_missing_and_empty_directories_fail_with_one_line(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no such results directory"):
        load_results(tmp_path / "missing")
    (tmp_path / "empty" / "run").mkdir(parents=True)
    (tmp_path / "empty" / "run" / "run.json").write_text('{"algorithm": "grpo"}')  # an identity, no table
    with pytest.raises(ValueError, match=r"no runs there \(a run directory holds metrics.parquet, from bench.run, "
                                         r"or eval.parquet, from bench.evaluate; none in it or below it\)$"):
        load_results(tmp_path / "empty")
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "empty")])
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2 and stderr.count("\n") == 1 and stderr.startswith("bench.report: ")
    assert "no runs there" in stderr and not (tmp_path / "empty" / "report.md").exists()


def test_an_unreadable_run_is_left_out_and_named_unless_strict(tmp_path, capsys):
    for seed in (0, 1):
        make_run(tmp_path, "grpo", seed, 0.2, [1, 2])
        make_run(tmp_path, "riskpo", seed, 0.3, [2, 2])
    broken = tmp_path / "hand" / "riskpo-arith-s1" / "metrics.parquet"
    broken.write_bytes(broken.read_bytes()[:50])  # a truncated parquet
    (tmp_path / "hand" / "grpo-arith-s1" / "config.yaml").write_text("task: [unclosed")
    results = load_results(tmp_path)
    assert sorted(results.runs["run_id"]) == ["hand/grpo-arith-s0", "hand/riskpo-arith-s0"]
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("bench.report: skipping ") for w in warnings)
    assert any("riskpo-arith-s1: unreadable (" in w for w in warnings)
    assert len(results.skipped) == 2 and len(results.subset(["hand/grpo-arith-s0"]).skipped) == 2
    report = write_report(results, tmp_path / "out").read_text()
    assert "Left out, unreadable: 2 run(s)." in report and "grpo-arith-s1: unreadable" in report
    with pytest.raises(ValueError, match=r"grpo-arith-s1: unreadable \(ParserError: "):  # the first, in order
        load_results(tmp_path, strict=True)
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--strict", "--out", str(tmp_path / "strict")])
    assert exit_.value.code == 2 and not (tmp_path / "strict" / "report.md").exists()


def test_baseline_and_target_must_differ(tmp_path, capsys):
    make_run(tmp_path, "grpo", 0, 0.2, [1, 2])
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--baseline", "grpo", "--target", "grpo"])
    assert exit_.value.code == 2 and "--baseline and --target are both grpo" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_an_unwritable_output_directory_fails_before_the_report(tmp_path, capsys):
    make_run(tmp_path, "grpo", 0, 0.2, [1, 2])
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--out", "/proc/no/such/dir"])
    assert exit_.value.code == 2 and "cannot create /proc/no" in capsys.readouterr().err


# --- the conclusion on hand-made runs ---------------------------------------------------------------


def test_a_clear_win_is_larger_than_its_interval(tmp_path):
    for seed, (target, baseline) in enumerate([(0.50, 0.10), (0.52, 0.11), (0.51, 0.12)]):
        make_run(tmp_path, "riskpo", seed, target, [4] * 20)
        make_run(tmp_path, "grpo", seed, baseline, [0] * 20)
    text = conclusion(load_results(tmp_path), baseline="grpo", target="riskpo")
    # per-seed differences 0.40, 0.41, 0.39: mean 0.40, sd 0.01, t(0.975, 2) = 4.303: half-width 0.0248
    assert ("riskpo ended with entropy 0.510 vs grpo 0.110 (difference +0.400, 95% CI over 3 seeds "
            "[+0.375, +0.425]: higher, larger than its CI, which excludes 0)") in text
    # every problem: all 4 samples right for riskpo, none for grpo: +1 on each of 20 problems
    assert ("pass@1 on arith: riskpo 1.000 vs grpo 0.000 (difference +1.000, 95% bootstrap CI over 20 problems "
            "[+1.000, +1.000]: higher, larger than its CI") in text
    assert "no difference" not in text


def test_a_clear_loss_is_called_lower(tmp_path):
    for seed in (0, 1, 2):
        make_run(tmp_path, "riskpo", seed, 0.1 + seed / 100, [0, 1, 0, 1])
        make_run(tmp_path, "grpo", seed, 0.5 + seed / 50, [4, 4, 3, 4])
    text = conclusion(load_results(tmp_path))
    assert text.count("lower, larger than its CI") == 2 and "higher" not in text


def test_a_tiny_difference_with_a_tight_ci_is_called_negligible(tmp_path):
    # entropy +0.0004 on every seed (0.6% of grpo's 0.0700): the CI excludes 0, the change is negligible
    for seed in (0, 1, 2):
        make_run(tmp_path, "riskpo", seed, 0.0704 + seed / 1e5, [1, 2])
        make_run(tmp_path, "grpo", seed, 0.0700 + seed / 1e5, [1, 2])
    text = conclusion(load_results(tmp_path))
    assert ("riskpo ended with entropy 0.070 vs grpo 0.070 (difference +4.0e-04, 95% CI over 3 seeds "
            "[+4.0e-04, +4.0e-04]: higher, the CI excludes 0, but by under 1% of grpo's value: negligible)") in text
    assert "larger than its CI" not in text


def test_identical_runs_show_no_difference(tmp_path):
    for seed, entropy in enumerate([0.2, 0.3, 0.25]):
        for algorithm in ("riskpo", "grpo"):
            make_run(tmp_path, algorithm, seed, entropy, [0, 1, 2, 3, 4, 2])
    text = conclusion(load_results(tmp_path))
    assert "difference +0.000, 95% CI over 3 seeds [+0.000, +0.000]: no difference at this scale" in text
    assert "difference +0.000, 95% bootstrap CI over 6 problems [+0.000, +0.000]: no difference at this scale" in text
    assert "larger than its CI" not in text


def test_one_seed_gives_no_interval_over_seeds(tmp_path):
    make_run(tmp_path, "riskpo", 0, 0.4, [4, 0])
    make_run(tmp_path, "grpo", 0, 0.1, [0, 0])
    results = load_results(tmp_path)
    text = conclusion(results)
    assert ("riskpo ended with entropy 0.400 vs grpo 0.100 (difference +0.300; one seed in common, no CI: "
            "no difference can be claimed at this scale)") in text
    table = pass_table(results)
    assert "| riskpo | arith | 1 | — | 0.500 (n/a) |" in table and "| grpo | arith | 1 | — | 0.000 (n/a) | — |" in table


def test_seeds_only_one_algorithm_has_run_are_left_out_of_the_difference(tmp_path):
    for seed, (target, baseline) in enumerate([(0.50, 0.10), (0.52, 0.11)]):
        make_run(tmp_path, "riskpo", seed, target, [1])
        make_run(tmp_path, "grpo", seed, baseline, [1])
    make_run(tmp_path, "grpo", 2, 0.90, [1])  # a third grpo seed, riskpo's still to come
    text = conclusion(load_results(tmp_path))
    # seeds 0 and 1: differences 0.40 and 0.41, mean 0.405, sd 0.00707, t(0.975, 1) 12.706: half-width 0.0635
    assert ("riskpo ended with entropy 0.510 vs grpo 0.105 (difference +0.405, 95% CI over 2 seeds "
            "[+0.341, +0.469]") in text


def test_the_table_says_how_many_problems_each_final_evaluation_had(tmp_path):
    """A run stopped between evaluations ended on the trainer's subset; the table says so."""
    for algorithm, count, kind in (("riskpo", 2, "full"), ("grpo", 1, "subset")):
        run = make_run(tmp_path, algorithm, 0, 0.4, [4, 0][:count])
        evals = pd.read_parquet(run / "eval.parquet").assign(problems=count, problem_set=kind)
        evals.to_parquet(run / "eval.parquet")
    table = pass_table(load_results(tmp_path))
    assert "| riskpo | arith | 1 | 2 | " in table and "| grpo | arith | 1 | 1 (subset) | " in table


def test_missing_baseline_is_named(tmp_path):
    make_run(tmp_path, "riskpo", 0, 0.4, [4, 0])
    assert conclusion(load_results(tmp_path)) == ("no grpo runs, so no comparison of riskpo with grpo "
                                                  "(algorithms here: riskpo).")


def test_an_unfinished_run_is_loaded_with_what_it_has(tmp_path):
    make_run(tmp_path, "riskpo", 0, 0.4, [4, 0])
    run = make_run(tmp_path, "grpo", 0, 0.1, [0, 0])
    (run / "eval.parquet").unlink()
    (run / "problems.parquet").unlink()
    results = load_results(tmp_path)
    assert len(results.runs) == 2 and set(results.evals["algorithm"]) == {"riskpo"}
    assert "pass@1 on arith: riskpo not available for both" in conclusion(results)


def test_several_experiments_are_compared_separately(tmp_path):
    make_run(tmp_path, "riskpo", 0, 0.4, [4, 0], experiment="a")
    make_run(tmp_path, "grpo", 0, 0.1, [0, 0], experiment="a")
    make_run(tmp_path, "grpo", 0, 0.3, [0, 0], experiment="b")
    results = load_results(tmp_path)
    assert set(results.runs["series"]) == {"a/arith/riskpo", "a/arith/grpo", "b/arith/grpo"}
    text = conclusion(results)
    assert text.startswith("a / arith: riskpo ended with entropy 0.400 vs grpo 0.100")
    assert "b / arith: no riskpo runs" in text


# --- the paired difference over problems --------------------------------------------------------------


def test_paired_difference_averages_seeds_per_problem_and_pairs_shared_problems(tmp_path):
    # pass@1 = c / 4. riskpo per problem, mean of seeds: q0 (4,4) -> 1, q1 (2,2) -> .5, q2 (0,4) -> .5,
    # q3 (4,0) -> .5; grpo: q0 0, q1 .5, q2 0, q3 1. Differences 1, 0, .5, -.5: mean +0.25.
    # q4 is riskpo's only: left out.
    make_run(tmp_path, "riskpo", 0, 0.1, [4, 2, 0, 4, 4])
    make_run(tmp_path, "riskpo", 1, 0.1, [4, 2, 4, 0, 4])
    make_run(tmp_path, "grpo", 0, 0.1, [0, 2, 0, 4])
    make_run(tmp_path, "grpo", 1, 0.1, [0, 2, 0, 4])
    problems = load_results(tmp_path).problems
    d = problem_difference(problems, 1, baseline="grpo", target="riskpo")
    assert d.over == "bootstrap CI over 4 problems"
    assert (d.target, d.baseline, d.value) == pytest.approx((0.625, 0.375, 0.25))
    assert (d.low, d.high) == pytest.approx(passk.bootstrap_ci(np.array([1, 0, 0.5, -0.5]), 0.95, 2000, 0))
    assert d.low < 0 < d.high  # four problems: not distinguishable
    # pass@2 with n = 4: c = 2 -> 1 - C(2,2)/C(4,2) = 5/6; c = 4 -> 1; c = 0 -> 0
    # riskpo: q0 1, q1 5/6, q2 .5, q3 .5; grpo: q0 0, q1 5/6, q2 0, q3 1: differences 1, 0, .5, -.5 again
    assert problem_difference(problems, 2, "grpo", "riskpo").value == pytest.approx(0.25)
    assert problem_difference(problems, 2, "grpo", "riskpo").target == pytest.approx((1 + 5 / 6 + 0.5 + 0.5) / 4)


def test_k_values_asked_for_make_the_table_columns(results_dir, tmp_path):
    main([str(results_dir), "--out", str(tmp_path), "--k", "3", "1"])
    text = (tmp_path / "report.md").read_text()
    assert "| pass@1 | Δ pass@1 vs grpo | pass@3 | Δ pass@3 vs grpo |" in text and "pass@4" not in text
    assert "pass@3 on arith: riskpo" in text
    with pytest.raises(SystemExit):
        main([str(results_dir), "--k", "0"])


def test_final_entropy_is_each_runs_mean_over_its_last_tenth_of_steps():
    steps = np.arange(20)
    metrics = pd.concat([
        pd.DataFrame({"run_id": "a", "algorithm": "grpo", "seed": 0, "step": steps, "train/entropy": steps / 10}),
        pd.DataFrame({"run_id": "b", "algorithm": "riskpo", "seed": 0, "step": steps[:10], "train/entropy": 1.0}),
    ])
    final, window = final_window(metrics, "train/entropy")
    assert window == 2  # 10% of 20 steps
    assert dict(zip(final["run_id"], final["train/entropy"])) == pytest.approx({"a": (1.8 + 1.9) / 2, "b": 1.0})


def test_an_algorithm_keeps_its_colour_across_reports():
    from bench.reporting.figures import series_color

    assert series_color("grpo", ["dapo", "grpo", "riskpo"]) == series_color("grpo", ["grpo", "riskpo_seeking"])
    assert len({series_color(s, ["dapo", "grpo", "riskpo", "riskpo_seeking"])
                for s in ["dapo", "grpo", "riskpo", "riskpo_seeking"]}) == 4
    two_experiments = ["a/arith/grpo", "b/arith/grpo"]  # the same algorithm twice: told apart by position
    assert series_color(two_experiments[0], two_experiments) != series_color(two_experiments[1], two_experiments)


def test_a_run_below_its_planned_steps_is_named_as_unfinished(tmp_path):
    make_run(tmp_path, "grpo", 0, 0.1, [4, 0])
    for seed, planned in ((0, 5), (1, 2)):  # seed 0 stopped after 2 of its 5 steps; seed 1 finished
        run = make_run(tmp_path, "riskpo", seed, 0.4, [4, 0])
        (run / "config.yaml").write_text(f"seed: {seed}\nalgorithm: {{name: riskpo}}\ntask: {{name: arith}}\n"
                                         f"model: {{name: tiny}}\ntrainer: {{steps: {planned}}}\n")
    text = write_report(load_results(tmp_path), tmp_path).read_text()
    assert "**Unfinished: 1 run(s) below their planned steps.**" in text
    assert "- `hand/riskpo-arith-s0`: 2/5 steps, last evaluated at step 2" in text
    assert "riskpo-arith-s1`: 2/2" not in text.split("## Conclusion")[0]
