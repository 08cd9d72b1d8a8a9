"""bench.evaluate: the evaluator the trainer and the command line share, and its output files."""

import json
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import tasks
from bench.compose import CONF_DIR, ConfigError, compose, load_run_config
from bench.config import EvalConfig, EvaluateSettings, ModelConfig, Sampling
from bench.engines.hf import HFEngine
from bench.evaluate import Source, cli, identity, resolve_checkpoint, route_model_argument, table
from bench.evaluation import passk
from bench.evaluation.evaluator import Evaluator, diversity, load_benchmarks, majority, owner_of
from bench.models.policy import load_policy
from bench.reporting.results import load_results
from tasks.arith import ArithConfig, ArithTask
from tasks.base import Verdict
from tasks.humaneval import HumanEvalConfig, HumanEvalTask
from tasks.scoring import Scorer

EVAL_COLUMNS = {"benchmark", "step", "k", "pass_at_k", "n", "stderr", "task_version"}


def test_every_benchmark_has_one_owner_and_unknown_ones_are_named():
    for name, task in tasks.TASKS.items():
        for benchmark in task.benchmarks:
            assert owner_of(benchmark) == name
    with pytest.raises(ValueError, match="unknown benchmark 'nope'; known: aime24"):
        owner_of("nope")


@pytest.mark.parametrize("overrides, fragment", [
    (["eval.k=[9]"], "eval.k=[9] has 9, outside 1..eval.n=8"),
    (["eval.n=0"], "eval.n=0 must be >= 1"),
    (["eval.problems=-1"], "eval.problems=-1 must be >= 0"),
    (["eval.confidence=1.5"], "eval.confidence=1.5 must be in (0, 1)"),
    (["eval.subset=-2"], "eval.subset=-2 must be >= 0 (0: all)"),
    (["eval.greedy=true", "eval.k=[1,4]"], "eval.k=[1, 4]: eval.greedy=true takes one response per problem, so k is 1"),
    (["rollout.temperature=0"], "rollout.temperature=0.0 must be > 0: a rollout samples (greedy decoding is for "
                                "evaluation: eval.greedy=true)"),
])
def test_bad_eval_settings_fail_at_compose_time(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        compose("config", overrides)


def test_default_ks_are_every_k_up_to_n():
    assert EvalConfig(n=5).ks == (1, 2, 3, 4, 5)
    assert EvalConfig(n=16, k=(16, 1, 4, 4)).ks == (1, 4, 16)


def test_a_benchmark_subset_is_a_seeded_uniform_sample_in_the_benchmarks_order():
    arith = tasks.build(load_run_config(["task.eval_size=500"]).task)
    bench, = load_benchmarks(EvalConfig(benchmarks=("arith",)), [arith])
    picked = bench.sample(100)
    uids = [p.uid for p in bench.problems]
    assert [p.uid for p in picked.problems] == [p.uid for p in bench.sample(100).problems]  # every call, every run
    assert len(picked.problems) == 100 and len({p.uid for p in picked.problems}) == 100
    assert [uids.index(p.uid) for p in picked.problems] == sorted(uids.index(p.uid) for p in picked.problems)
    assert picked.problems != bench.problems[:100]  # a sample, not the first problems
    assert 150 < np.mean([uids.index(p.uid) for p in picked.problems]) < 350  # spread over the whole set
    assert bench.sample(0) is bench and bench.sample(500) is bench and bench.sample(900) is bench


def test_benchmarks_take_the_given_task_settings_and_the_owners_defaults_otherwise():
    arith = tasks.build(load_run_config(["task.digits=1", "task.eval_size=3", "task.train_size=10"]).task)
    loaded = load_benchmarks(EvalConfig(benchmarks=("arith", "math500"), problems=3), [arith])
    assert [(b.name, b.task.config.name, len(b.problems)) for b in loaded] == [("arith", "arith", 3),
                                                                              ("math500", "math", 3)]
    assert loaded[0].task.config.digits == 1
    assert all(int(x) < 10 for p in loaded[0].problems for x in re.findall(r"\d+", p.question))
    assert [b.name for b in load_benchmarks(EvalConfig(), [arith])] == ["arith"]  # the task's eval sets


def test_majority_votes_on_answers_and_is_undefined_for_programs():
    v = lambda answer, ok: Verdict(float(ok), ok, answer, "correct" if ok else "wrong")  # noqa: E731
    groups = [[v("3", True), v("4", False), v("4", False)], [v(" 7 ", True), v("7", True), v(None, False)]]
    arith = ArithTask(ArithConfig())
    expected = np.mean([passk.majority_at_k(["3", "4", "4"], [True, False, False], 2),
                        passk.majority_at_k(["7", "7", None], [True, True, False], 2)])
    assert majority(arith, groups, 2) == pytest.approx(expected)
    assert majority(arith, groups, 3) == pytest.approx(0.5)  # 4 beats 3 in the first, 7 wins the second
    assert math.isnan(majority(HumanEvalTask(HumanEvalConfig()), groups, 1))


def test_answer_diversity_by_hand():
    v = lambda answer, ok: Verdict(float(ok), ok, answer, "correct" if ok else "wrong")  # noqa: E731
    # two different right answers and a wrong one; one right answer said twice and no answer
    groups = [[v("58+79", True), v("60+77", True), v("1+2", False), v("58+79", True)],
              [v(" 7 ", True), v("7", True), v(None, False), v("", False)]]
    distinct, entropy = diversity(ArithTask(ArithConfig()), groups)
    assert distinct == [2.0, 1.0]
    # p = (2, 1, 1) / 4 and (2, 2) / 4: no answer and an empty one are one class
    assert entropy == pytest.approx([-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)), math.log(2)])
    assert passk.answer_entropy(["a"] * 5) == 0.0 and passk.answer_entropy(list("abcd")) == pytest.approx(math.log(4))
    assert all(math.isnan(x) for x in diversity(HumanEvalTask(HumanEvalConfig()), groups)[0])


@pytest.fixture(scope="module")
def policy():
    return load_policy(ModelConfig())


def evaluate(policy, config, problems=12, seed=5):
    model, tokenizer = policy
    task = ArithTask(ArithConfig())
    bench = load_benchmarks(config, [task])
    bench[0].problems = bench[0].problems[:problems]
    with Scorer(task, workers=0) as scorer:
        return Evaluator(config, bench, HFEngine(model, tokenizer), {"arith": scorer}).evaluate(7, Sampling(seed=seed))


def test_evaluation_rows_agree_with_the_per_problem_counts(policy):
    out = evaluate(policy, EvalConfig(n=4, resamples=200))
    rows, problems = pd.DataFrame(out.rows), pd.DataFrame(out.problems)
    assert EVAL_COLUMNS | {"ci_low", "ci_high", "maj_at_k"} <= set(rows.columns)
    assert rows["k"].tolist() == [1, 2, 3, 4] and set(rows["step"]) == {7} and set(rows["n"]) == {4}
    assert len(problems) == 12 and problems["uid"].is_unique and set(problems["n"]) == {4}
    for _, row in rows.iterrows():
        per_problem = passk.pass_at_k_array(problems["n"], problems["c"], int(row["k"]))
        assert row["pass_at_k"] == pytest.approx(per_problem.mean())
        assert row["ci_low"] <= row["pass_at_k"] <= row["ci_high"]
    assert rows["pass_at_k"].is_monotonic_increasing
    assert out.pass_at(1) == {"arith": pytest.approx(problems["c"].sum() / 48)}
    assert (problems["distinct_correct"] <= problems["c"]).all() and (problems["answer_entropy"] >= 0).all()
    for column in ("distinct_correct", "answer_entropy"):  # the same value in every k row
        assert rows[column].tolist() == pytest.approx([problems[column].mean()] * len(rows))


def test_evaluation_is_seeded_and_independent_of_the_call_size(policy):
    one = evaluate(policy, EvalConfig(n=3, k=(1, 3), resamples=100, prompts_per_call=4))
    again = evaluate(policy, EvalConfig(n=3, k=(1, 3), resamples=100, prompts_per_call=4))
    for a, b in ((one.rows, again.rows), (one.problems, again.problems)):
        pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))  # NaN (kl_from_initial, unmeasured) equals NaN
    other_seed = evaluate(policy, EvalConfig(n=3, k=(1, 3), resamples=100, prompts_per_call=4), seed=6)
    assert [p["c"] for p in other_seed.problems] != [p["c"] for p in one.problems]


def test_greedy_evaluation_is_one_deterministic_response_per_problem(policy):
    config = EvalConfig(n=8, greedy=True, resamples=200, prompts_per_call=5)
    assert (config.n, config.ks, config.decoding) == (1, (1,), "greedy")
    out = evaluate(policy, config)
    pd.testing.assert_frame_equal(pd.DataFrame(out.rows), pd.DataFrame(evaluate(policy, config, seed=6).rows))  # no seed
    rows, problems = pd.DataFrame(out.rows), pd.DataFrame(out.problems)
    assert rows["k"].tolist() == [1] and set(rows["n"]) == {1} and set(rows["decoding"]) == {"greedy"}
    assert set(problems["n"]) == {1} and len(problems) == 12
    accuracy = problems["c"].mean()
    assert rows["pass_at_k"].iloc[0] == pytest.approx(accuracy)
    assert rows["stderr"].iloc[0] == pytest.approx(problems["c"].std(ddof=1) / math.sqrt(12))  # over problems
    assert rows["ci_low"].iloc[0] <= accuracy <= rows["ci_high"].iloc[0]
    assert "greedy" in table(out) and "pass@1" not in table(out)
    sampled = evaluate(policy, EvalConfig(n=1, resamples=200))
    assert set(pd.DataFrame(sampled.rows)["decoding"]) == {"sampled"}


def test_the_trainer_writes_every_k_at_every_evaluation(results_dir):
    run = next((results_dir / "compare_arith").glob("grpo-arith-s0"))
    evals, problems = pd.read_parquet(run / "eval.parquet"), pd.read_parquet(run / "problems.parquet")
    assert sorted(set(evals["step"])) == [0, 1, 2] and sorted(set(problems["step"])) == [0, 1, 2]
    assert evals.groupby("step")["k"].apply(list).tolist() == [[1, 2, 3, 4]] * 3
    assert problems.groupby("step").size().tolist() == [16, 16, 16]


def test_model_argument_routes_weights_to_checkpoint():
    presets = {p.stem for p in (CONF_DIR / "model").glob("*.yaml")}
    argv = ["evaluate", "model=tiny", "model=results/x/run", "model=Qwen/Qwen2.5-1.5B", "eval.n=4"]
    assert route_model_argument(argv, presets) == ["evaluate", "model=tiny", "checkpoint=results/x/run",
                                                   "checkpoint=Qwen/Qwen2.5-1.5B", "eval.n=4"]


def test_checkpoint_resolution(results_dir, tmp_path):
    run = results_dir / "compare_arith" / "riskpo-arith-s1"
    source = resolve_checkpoint(str(run))
    assert source.step == 2 and source.model["path"].endswith("checkpoints/step-000002/model")
    assert source.tasks[0].name == "arith"
    assert resolve_checkpoint(str(run / "checkpoints" / "step-000002")).step == 2
    assert resolve_checkpoint(source.model["path"]).model["path"] == source.model["path"]  # a model directory
    assert resolve_checkpoint("org/name").model == {"name": "name", "path": "org/name"}
    with pytest.raises(FileNotFoundError, match="not a run directory, a checkpoint or a model directory"):
        resolve_checkpoint(str(tmp_path))


def test_command_line_evaluates_a_run_directory(results_dir, tmp_path):
    run = results_dir / "compare_arith" / "grpo-arith-s1"
    out = tmp_path / "eval"
    done = subprocess.run([sys.executable, "-m", "bench.evaluate", f"model={run}", "eval.n=2", "eval.problems=6",
                           "eval.resamples=50", f"output_dir={out}"], capture_output=True, text=True, timeout=300,
                          cwd=CONF_DIR.parent)
    assert done.returncode == 0, done.stderr
    assert "tiny at step 2, n=2, arith (6)" in done.stdout and "pass@2" in done.stdout
    assert done.stdout.strip().endswith(f"results: {out}")
    rows = pd.read_parquet(out / "eval.parquet")
    assert EVAL_COLUMNS <= set(rows.columns) and rows["k"].tolist() == [1, 2] and set(rows["step"]) == {2}
    assert len(pd.read_parquet(out / "problems.parquet")) == 6
    # the run's own identity, so bench.report groups the evaluation with its run's algorithm and seed
    assert json.loads((out / "run.json").read_text()) == {"algorithm": "grpo", "task": "arith", "model": "tiny",
                                                          "seed": 1, "experiment": "compare_arith"}
    assert "reported as grpo, seed 1, experiment compare_arith, task arith" in done.stdout
    runs = load_results(out).runs
    assert runs[["algorithm", "seed", "steps", "evaluation_only"]].values.tolist() == [["grpo", 1, 2, True]]
    assert runs["wall_seconds"].isna().all() and runs["planned_steps"].isna().all()


def test_an_evaluation_is_identified_as_given_else_as_its_run_else_by_the_model():
    run = Source(identity={"algorithm": "riskpo_seeking", "task": "arith", "model": "tiny", "seed": 2,
                           "experiment": "compare_arith"})
    assert identity(EvaluateSettings(), run, "tiny", "math") == run.identity  # a run's checkpoint: the run's
    given = EvaluateSettings(label="riskpo_reference", seed=1, experiment_name="verl")
    assert identity(given, run, "tiny", "math") == {"algorithm": "riskpo_reference", "task": "arith", "model": "tiny",
                                                    "seed": 1, "experiment": "verl"}
    merged = Source({"name": "riskpo_reference-math-s0", "path": "weights/riskpo_reference-math-s0"})
    assert identity(EvaluateSettings(), merged, "riskpo_reference-math-s0", "math") == {
        "algorithm": "riskpo_reference-math-s0", "task": "math", "model": "riskpo_reference-math-s0", "seed": 0,
        "experiment": "evaluate"}
    assert identity(given, merged, "qwen", "gsm8k") == {"algorithm": "riskpo_reference", "task": "gsm8k",
                                                        "model": "qwen", "seed": 1, "experiment": "verl"}


def evaluate_in_process(capsys, *overrides):
    """bench.evaluate's entry point, ``cli``, on the composed config, in this process (no torch start-up
    per call): (exit status, stdout, stderr)."""
    try:
        cli(compose("evaluate", ["eval.resamples=50", "rollout.max_new_tokens=24", *overrides]))
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_run_reevaluated_into_its_own_directory_has_one_row_per_benchmark_and_step(results_dir, tmp_path, capsys):
    run = tmp_path / "compare_arith" / "riskpo-arith-s0"
    shutil.copytree(results_dir / "compare_arith" / "riskpo-arith-s0", run)
    before = {name: pd.read_parquet(run / f"{name}.parquet") for name in ("eval", "problems")}
    identity_before = (run / "run.json").read_text()
    status, out, err = evaluate_in_process(capsys, f"checkpoint={run}", "eval.n=2", "eval.problems=6",
                                           f"output_dir={run}")
    assert status == 0, err
    evals, problems = pd.read_parquet(run / "eval.parquet"), pd.read_parquet(run / "problems.parquet")
    # the trainer's evaluations after steps 0 and 1 stay; the one after step 2 is replaced, not added to
    for name, frame in (("eval", evals), ("problems", problems)):
        kept = frame[frame["step"] < 2].reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, before[name][before[name]["step"] < 2].reset_index(drop=True))
    final = evals[evals["step"] == 2]
    assert final["k"].tolist() == [1, 2] and set(final["n"]) == {2}
    assert len(problems[problems["step"] == 2]) == 6 and problems.groupby("step").size().tolist() == [16, 16, 6]
    assert (run / "run.json").read_text() == identity_before
    runs = load_results(tmp_path).runs
    assert runs[["algorithm", "seed", "steps", "evaluation_only"]].values.tolist() == [["riskpo", 0, 2, False]]
    # another identity into the same directory: refused before any work, in one line
    status, out, err = evaluate_in_process(capsys, f"checkpoint={run}", "label=other", f"output_dir={run}")
    assert status == 2 and err.strip().splitlines() == [
        f"bench.evaluate: output_dir={run} holds the results of algorithm=riskpo, task=arith, model=tiny, seed=0, "
        "experiment=compare_arith (run.json), not of algorithm=other, task=arith, model=tiny, seed=0, "
        "experiment=compare_arith: one directory holds one run; choose another output_dir"]
    pd.testing.assert_frame_equal(pd.read_parquet(run / "eval.parquet"), evals)


def test_command_line_errors_are_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.evaluate", f"model={tmp_path}"], capture_output=True,
                          text=True, timeout=120, cwd=CONF_DIR.parent)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"bench.evaluate: model={tmp_path}: not a run directory, a checkpoint "
                                                "or a model directory (none of checkpoints/latest, trainer.pt + "
                                                "model/, config.json there)"]
