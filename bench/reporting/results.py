"""Runs read back and compared: the loader, the statistics and the tables of ``bench.report``.

Every directory below the results directory holding a ``metrics.parquet`` (a training run of
bench.run; bench/training/sinks.py says what its directory holds) or an ``eval.parquet`` or
``problems.parquet`` without one (an evaluation-only run of bench.evaluate: weights trained
elsewhere, identified by its run.json) is a run. ``load_results`` reads them all into tidy
frames, each row carrying its run's identity (``ID``); notebooks use it too. An evaluation-only
run has no training metrics: it is in the pass@k tables and the paired comparisons, and has no
line in the figures over training steps. Runs are compared within a scope, one (experiment,
task); seeds are the replicates. Intervals:

- over seeds: a t-interval of the per-seed values (paired by seed for differences: every
  algorithm samples the same prompts for a given seed); none with one seed;
- over problems: pass@k per problem from ``problems.parquet`` at each run's final evaluation,
  averaged over seeds, target minus baseline on the problems both have, and a bootstrap interval
  of the mean difference (``bench.evaluation.passk.bootstrap_ci``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench.evaluation import passk
from bench.training.sinks import identify, read_table, run_dirs

ID = ["run_id", "algorithm", "task", "model", "seed", "experiment", "series"]
CONFIDENCE = 0.95
NEGLIGIBLE = 0.01  # a difference under 1% of the baseline's value is called negligible, CI or not
QUANTILES = ("a", "b", "tracker_a", "tracker_b")  # RiskPO's metrics, under algo/riskpo/
# the columns a table has even when no run has written a row of it yet
TABLES = {"metrics": ["step"], "eval": ["step", "benchmark", "k", "pass_at_k"],
          "problems": ["step", "benchmark", "uid", "n", "c"]}


@dataclass(frozen=True)
class Results:
    """The runs under a results directory: ``runs`` has one row per run (ID plus path, steps,
    planned_steps, wall_seconds, evaluation_only: no metrics.parquet, its steps the evaluated
    checkpoint's, its wall_seconds NaN); ``metrics``, ``evals`` and ``problems`` are the runs'
    parquet tables with the ID columns joined on. ``series`` is the label figures use: the algorithm, or
    experiment/task/algorithm when the directory holds several scopes."""

    runs: pd.DataFrame
    metrics: pd.DataFrame
    evals: pd.DataFrame
    problems: pd.DataFrame
    skipped: tuple[str, ...] = ()  # "<run dir>: unreadable (...)" for each run left out

    def subset(self, run_ids: Sequence[str]) -> Results:
        keep = set(run_ids)
        return Results(*(f[f["run_id"].isin(keep)] for f in (self.runs, self.metrics, self.evals, self.problems)),
                       self.skipped)

    def scopes(self) -> Iterator[tuple[str, Results]]:
        """(label, results) per (experiment, task); the label is empty when there is one scope."""
        groups = list(self.runs.groupby(["experiment", "task"], sort=True))
        for (experiment, task), runs in groups:
            yield (f"{experiment} / {task}" if len(groups) > 1 else ""), self.subset(runs["run_id"])


def load_results(root: str | Path, strict: bool = False, only: Optional[Collection[Path]] = None) -> Results:
    """Read every run below ``root`` (``only``: those of these run directories that are there; run
    IDs stay relative to ``root``); an unfinished run contributes what it has written so far. A
    run that cannot be read (a corrupt parquet, a config.yaml that does not parse) is skipped with
    a one-line warning and listed in ``Results.skipped``; ``strict`` raises instead."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results directory")
    found = run_dirs(root)
    if only is not None:
        wanted = {Path(d) for d in only}
        found = [d for d in found if d in wanted]
    if not found:
        raise ValueError(f"{root}: no runs there (a run directory holds metrics.parquet, from bench.run, or "
                         "eval.parquet, from bench.evaluate; none in it or below it)")
    identities, tables, skipped = [], [], []
    for run_dir in found:
        try:
            ident = identify(run_dir, root)
            tables.append({name: read_table(run_dir / f"{name}.parquet") for name in TABLES})
        except Exception as err:  # pyarrow's, OmegaConf's, json's errors: whatever a damaged file raises
            why = f"{run_dir}: unreadable ({type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]})"
            if strict:
                raise ValueError(why) from err
            print(f"bench.report: skipping {why}", file=sys.stderr)
            skipped.append(why)
            continue
        identities.append(ident)
    if not identities:
        raise ValueError(f"{root}: no readable run there ({len(skipped)} skipped)")
    runs = pd.DataFrame(identities)
    runs["planned_steps"] = runs["planned_steps"].astype("Int64")  # None where config.yaml is missing
    runs["evaluation_only"] = [t["metrics"] is None for t in tables]
    label = ["experiment", "task", "algorithm"] if runs.groupby(["experiment", "task"]).ngroups > 1 else ["algorithm"]
    runs["series"] = runs[label].astype(str).agg("/".join, axis=1)
    metrics, evals, problems = (joined(runs, [t[name] for t in tables], columns) for name, columns in TABLES.items())
    for frame in (runs, metrics, evals, problems):  # categories: one colour per series in every figure
        frame["series"] = pd.Categorical(frame["series"], categories=sorted(set(runs["series"])))
    last = metrics.groupby("run_id")
    # steps done: a training run's logged steps; an evaluation's, the step of the weights it evaluated
    evaluated = pd.concat([evals[["run_id", "step"]], problems[["run_id", "step"]]]).groupby("run_id")["step"].max()
    steps = runs["run_id"].map(last["step"].max() + 1).fillna(runs["run_id"].map(evaluated))
    runs["steps"] = steps.fillna(0).astype(int)
    wall = last["budget/wall_seconds"].max() if "budget/wall_seconds" in metrics else pd.Series(dtype=float)
    runs["wall_seconds"] = runs["run_id"].map(wall)
    return Results(runs, metrics, evals, problems, tuple(skipped))


def joined(runs: pd.DataFrame, tables: list[Optional[pd.DataFrame]], columns: list[str]) -> pd.DataFrame:
    """One table of every run that has rows in it (``tables`` in the order of ``runs``), with the
    run's ID columns."""
    frames = [table.assign(**{c: getattr(run, c) for c in ID})
              for run, table in zip(runs.itertuples(), tables) if table is not None and len(table)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*ID, *columns])


# --- statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """target - baseline, with its interval (NaN without one) and what it is over."""

    target: float
    baseline: float
    low: float
    high: float
    over: str  # how the interval was made: "CI over 3 seeds", "bootstrap CI over 200 problems"

    @property
    def value(self) -> float:
        return self.target - self.baseline


def half_width(values: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """Half the t-interval of the mean; NaN for fewer than two values."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last step."""
    return frame[frame["step"] == frame.groupby("run_id")["step"].transform("max")]


def final_window(metrics: pd.DataFrame, column: str, fraction: float = 0.1) -> tuple[pd.DataFrame, int]:
    """Each run's mean of ``column`` over its last ``fraction`` of steps (at least one step): one
    batch's entropy is noisy, the end of training is read over a window. Also the window's size."""
    rows = metrics.dropna(subset=[column])
    window = max(1, int(round(fraction * (rows["step"].max() + 1)))) if len(rows) else 1
    last = rows[rows["step"] > rows.groupby("run_id")["step"].transform("max") - window]
    return last.groupby(["run_id", "algorithm", "seed"], as_index=False)[column].mean(), window


def seed_difference(per_run: pd.DataFrame, column: str, baseline: str, target: str) -> Difference:
    """Mean of ``column`` per algorithm over the seeds both have (over all of each one's seeds
    when they share none), and a t-interval of the per-seed differences: the difference is the
    centre of its interval even while one algorithm has run more seeds than the other."""
    by_seed = per_run.groupby(["algorithm", "seed"])[column].mean()
    t, b = by_seed.get(target, pd.Series(dtype=float)), by_seed.get(baseline, pd.Series(dtype=float))
    paired = (t - b).dropna()
    if len(paired):
        t, b = t[paired.index], b[paired.index]
    half = half_width(paired)
    over = {0: "no seed in common", 1: "one seed in common"}.get(len(paired), f"CI over {len(paired)} seeds")
    return Difference(t.mean(), b.mean(), paired.mean() - half, paired.mean() + half, over)


def problem_difference(problems: pd.DataFrame, k: int, baseline: str, target: str) -> Difference:
    """Paired over problems: pass@k per problem at the final step, averaged over seeds per
    algorithm; the mean and its bootstrap interval of target - baseline on shared problems."""
    rows = final_rows(problems)
    rows = rows[rows["n"] >= k]
    rows = rows.assign(p=passk.pass_at_k_array(rows["n"].to_numpy(int), rows["c"].to_numpy(int), k))
    return paired_over_problems(rows, "p", baseline, target, f"no problem with n >= {k} in both")


def paired_over_problems(rows: pd.DataFrame, column: str, baseline: str, target: str, none: str) -> Difference:
    """``column`` per problem averaged over seeds per algorithm; target - baseline on the shared
    problems, with its bootstrap interval over problems (``none``: what to say without any)."""
    per_problem = rows.dropna(subset=[column]).groupby(["uid", "algorithm"])[column].mean().unstack()
    both = per_problem[[target, baseline]].dropna() if {target, baseline} <= set(per_problem.columns) else None
    if both is None or both.empty:
        return Difference(float("nan"), float("nan"), float("nan"), float("nan"), none)
    low, high = passk.bootstrap_ci((both[target] - both[baseline]).to_numpy(), confidence=CONFIDENCE,
                                   resamples=2000, seed=0)
    return Difference(both[target].mean(), both[baseline].mean(), low, high, f"bootstrap CI over {len(both)} problems")


def improvement(problems: pd.DataFrame, column: str, baseline: str, target: str) -> Optional[Difference]:
    """The probability of improvement (Agarwal et al. 2021, rliable): P(X > Y) + P(X = Y) / 2 for
    ``column`` at the final step, X a target run's value on a problem and Y a baseline run's on the
    same problem, over every pair of their seeds; the mean over problems with a bootstrap interval
    over problems (``baseline`` holds the 0.5 of no difference). None without shared problems."""
    rows = final_rows(problems).dropna(subset=[column])
    if column == "c":
        rows = rows.assign(c=rows["c"] / rows["n"])  # pass@1 per problem
    runs = {name: rows[rows["algorithm"] == name].pivot_table(index="uid", columns="seed", values=column)
            for name in (target, baseline)}
    shared = runs[target].index.intersection(runs[baseline].index)
    if shared.empty:
        return None
    x, y = runs[target].loc[shared].to_numpy()[:, :, None], runs[baseline].loc[shared].to_numpy()[:, None, :]
    wins = np.where(np.isnan(x) | np.isnan(y), np.nan, (x > y) + 0.5 * (x == y))  # a seed missing: no pair
    p_i = np.nanmean(wins, axis=(1, 2))
    low, high = passk.bootstrap_ci(p_i, confidence=CONFIDENCE, resamples=2000, seed=0)
    return Difference(float(p_i.mean()), 0.5, low, high, f"bootstrap CI over {len(shared)} problems")


def pass_difference(scope: Results, benchmark: str, k: int, baseline: str, target: str) -> Difference:
    """Paired over problems where problems.parquet is there, else over seeds from eval.parquet."""
    problems = scope.problems[scope.problems["benchmark"] == benchmark]
    if {baseline, target} <= set(problems["algorithm"]):
        return problem_difference(problems, k, baseline, target)
    evals = final_rows(scope.evals)
    evals = evals[(evals["benchmark"] == benchmark) & (evals["k"] == k)]
    return seed_difference(evals, "pass_at_k", baseline, target)


def describe(d: Difference, baseline: str) -> str:
    """'0.071 vs grpo 0.052 (difference +0.019, 95% CI over 2 seeds [+0.010, +0.028]: ...)'. A
    difference whose CI excludes 0 but which is under NEGLIGIBLE of the baseline's value is called
    negligible: seeds that agree closely make a CI narrow enough to exclude 0 for any change at all."""
    head = f"{d.target:.3f} vs {baseline} {d.baseline:.3f} (difference {signed(d.value)}"
    if not np.isfinite(d.low):
        return f"{head}; {d.over}, no CI: no difference can be claimed at this scale)"
    ci = f"{head}, {CONFIDENCE:.0%} {d.over} [{signed(d.low)}, {signed(d.high)}]"
    if d.low > 0 or d.high < 0:
        direction = "higher" if d.value > 0 else "lower"
        if abs(d.value) < NEGLIGIBLE * abs(d.baseline):
            return (f"{ci}: {direction}, the CI excludes 0, but by under {NEGLIGIBLE:.0%} of {baseline}'s value: "
                    "negligible)")
        return f"{ci}: {direction}, larger than its CI, which excludes 0)"
    return f"{ci}: no difference at this scale, the CI includes 0)"


def signed(x: float) -> str:
    """+0.019; a value that would print as +0.000 or -0.000 keeps two significant digits (+4.2e-04)."""
    return f"{x:+.1e}" if 0 < abs(x) < 0.0005 else f"{x:+.3f}"


# --- the conclusion and the tables --------------------------------------------------------------


def report_ks(results: Results, ks: Optional[Sequence[int]] = None) -> list[int]:
    """The k values of the table and conclusion: those asked for, else 1 and the largest evaluated."""
    if ks:
        return sorted(set(ks))
    return sorted({1, int(results.evals["k"].max())}) if len(results.evals) else [1]


def conclusion(results: Results, baseline: str = "grpo", target: str = "riskpo",
               ks: Optional[Sequence[int]] = None) -> str:
    """The comparison in words, with numbers and intervals, one paragraph per scope."""
    paragraphs = []
    for label, scope in results.scopes():
        head = f"{label}: " if label else ""
        have = sorted(set(scope.runs["algorithm"]))
        missing = [name for name in (target, baseline) if name not in have]
        if missing:
            paragraphs.append(f"{head}no {' or '.join(missing)} runs, so no comparison of {target} with {baseline} "
                              f"(algorithms here: {', '.join(have)}).")
            continue
        sentences = [entropy_sentence(scope, baseline, target)]
        for benchmark in sorted(set(scope.evals["benchmark"])):
            for k in report_ks(scope, ks):
                d = pass_difference(scope, benchmark, k, baseline, target)
                text = describe(d, baseline) if np.isfinite(d.value) else f"not available for both ({d.over})"
                sentences.append(f"pass@{k} on {benchmark}: {target} {text}.")
            sentences += kl_sentence(scope, benchmark, baseline, target)
            problems = scope.problems[scope.problems["benchmark"] == benchmark]
            if "distinct_correct" in problems and problems["distinct_correct"].notna().any():
                d = paired_over_problems(final_rows(problems), "distinct_correct", baseline, target, "no problem in both")
                if np.isfinite(d.value):
                    sentences.append(f"Distinct correct answers per problem on {benchmark}: {target} "
                                     f"{describe(d, baseline)}.")
        if scope.evals.empty:
            sentences.append("No pass@k evaluations yet.")
        paragraphs.append(head + " ".join(sentences))
    return "\n\n".join(paragraphs)


def kl_sentence(scope: Results, benchmark: str, baseline: str, target: str) -> list[str]:
    """How far each moved from the initial policy by the final evaluation (none without the KL):
    an algorithm that moved less is to be compared with the other at the same KL, not at the end."""
    evals = scope.evals
    if "kl_from_initial" not in evals or evals["kl_from_initial"].isna().all():
        return []
    evals = final_rows(evals[(evals["benchmark"] == benchmark) & (evals["k"] == 1)].dropna(subset=["kl_from_initial"]))
    d = seed_difference(evals, "kl_from_initial", baseline, target)
    if not np.isfinite(d.value):
        return []
    return [f"KL from the initial policy on {benchmark} at the final evaluation (nats per response): {target} "
            f"{describe(d, baseline)}; the metrics at equal KL are in the KL figure."]


def entropy_sentence(scope: Results, baseline: str, target: str) -> str:
    """The final token entropy of target against baseline, or why not: an algorithm with no
    training steps logged (evaluation-only runs, or a run not yet past its first step)."""
    metrics = scope.metrics
    logged = set(metrics.dropna(subset=["train/entropy"])["algorithm"]) if "train/entropy" in metrics else set()
    untrained = [name for name in (target, baseline) if name not in logged]
    if untrained:
        return (f"No entropy comparison: no training steps logged for {' or '.join(untrained)} "
                "(evaluation-only runs, or none past their first step).")
    entropy, window = final_window(metrics, "train/entropy")
    over = "its last step" if window == 1 else f"its mean over its last {window} steps"
    d = seed_difference(entropy, "train/entropy", baseline, target)
    return f"{target} ended with entropy {describe(d, baseline)} (a run's entropy: {over})."


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)"
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows])


def pass_table(results: Results, baseline: str = "grpo", ks: Optional[Sequence[int]] = None) -> str:
    """Algorithm x benchmark: pass@k at the final step, mean ± half CI over seeds, and the paired
    difference to the baseline with its interval; how many problems the runs' final evaluations
    had (a run stopped before its last step ended on the trainer's subset)."""
    rows = []
    for label, scope in results.scopes():
        for (algorithm, benchmark), group in final_rows(scope.evals).groupby(["algorithm", "benchmark"]):
            row = ({"scope": label} if label else {}) | {"algorithm": algorithm, "benchmark": benchmark,
                                                         "seeds": group["seed"].nunique(),
                                                         "problems": problems_cell(group)}
            for k in report_ks(scope, ks):
                row[f"pass@{k}"] = mean_cell(group[group["k"] == k].groupby("seed")["pass_at_k"].mean())
                row[f"Δ pass@{k} vs {baseline}"] = difference_cell(scope, benchmark, k, baseline, algorithm)
            rows.append(row)
    return markdown_table(rows)


def problems_cell(group: pd.DataFrame) -> str:
    """'500', '100 (subset)', '100 (subset), 500' over the runs of a group; '—' for runs older than
    the columns."""
    if "problems" not in group or group["problems"].isna().all():
        return "—"
    sets = group["problem_set"].fillna("full") if "problem_set" in group else pd.Series("full", index=group.index)
    return ", ".join(sorted({f"{int(n)}" + (" (subset)" if kind == "subset" else "")
                             for n, kind in zip(group["problems"], sets) if pd.notna(n)}))


def mean_cell(values: pd.Series) -> str:
    """'0.312 ± 0.020' (half the t-interval over seeds), '0.312 (n/a)' with one seed."""
    if values.empty:
        return "—"
    half = half_width(values)
    return f"{values.mean():.3f} ± {half:.3f}" if np.isfinite(half) else f"{values.mean():.3f} (n/a)"


def difference_cell(scope: Results, benchmark: str, k: int, baseline: str, algorithm: str) -> str:
    if algorithm == baseline or baseline not in set(scope.runs["algorithm"]):
        return "—"
    d = pass_difference(scope, benchmark, k, baseline, algorithm)
    if not np.isfinite(d.value):
        return "—"
    return f"{signed(d.value)} [{signed(d.low)}, {signed(d.high)}]" if np.isfinite(d.low) else f"{signed(d.value)} (n/a)"


def runs_table(results: Results) -> str:
    """The runs, and a note on runs that repeat an algorithm and seed (averaged as one seed)."""
    runs = results.runs.sort_values(["experiment", "algorithm", "seed"])
    repeated = runs.groupby(["experiment", "task", "algorithm", "seed"]).size()
    repeated = [f"{a} seed {s} ({n} runs)" for (_, _, a, s), n in repeated[repeated > 1].items()]
    note = f"\n\nRuns sharing an algorithm and seed count as one seed: {', '.join(repeated)}." if repeated else ""
    return markdown_table([{"experiment": r.experiment, "algorithm": r.algorithm, "seed": r.seed,
                            "steps": steps_cell(r),
                            "wall time (s)": f"{r.wall_seconds:.0f}" if pd.notna(r.wall_seconds) else "—",
                            "run": f"`{r.run_id}`"} for r in runs.itertuples()]) + note


def steps_cell(run: tuple) -> str:
    """'2/2' (steps done of planned), '2' (no config.yaml), '2 (evaluation only)' (weights after 2 steps)."""
    if run.evaluation_only:
        return f"{run.steps} (evaluation only)"
    return f"{run.steps}/{run.planned_steps}" if pd.notna(run.planned_steps) else str(run.steps)


def time_table(results: Results) -> Optional[str]:
    """Seconds per step in each stage (the ``time/<stage>`` columns every run logs), the mean over
    each algorithm's steps and seeds; None when no run logged them (runs older than the columns)."""
    columns = [c for c in results.metrics.columns if c.startswith("time/")]
    if not columns:
        return None
    means = results.metrics.groupby("series", sort=True, observed=True)[columns].mean()
    return markdown_table([{"algorithm": series, **{c.removeprefix("time/"): f"{row[c]:.3f}" for c in columns},
                            "total": f"{row.sum():.3f}"} for series, row in means.iterrows()])


def diversity_table(results: Results) -> Optional[str]:
    """Algorithm x benchmark at the final evaluation: distinct correct answers per problem and the
    answer entropy (nats), mean ± half CI over seeds; None when no run has the columns (older runs,
    or only code benchmarks)."""
    columns = {"distinct_correct": "distinct correct answers", "answer_entropy": "answer entropy"}
    if not set(columns) <= set(results.evals.columns) or results.evals["distinct_correct"].isna().all():
        return None
    rows = []
    for label, scope in results.scopes():
        final = final_rows(scope.evals)
        for (algorithm, benchmark), group in final[final["k"] == 1].groupby(["algorithm", "benchmark"]):
            row = ({"scope": label} if label else {}) | {"algorithm": algorithm, "benchmark": benchmark}
            rows.append(row | {name: mean_cell(group.groupby("seed")[column].mean().dropna())
                               for column, name in columns.items()})
    return markdown_table(rows)
