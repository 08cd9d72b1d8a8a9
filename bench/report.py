"""``python -m bench.report <results dir>``: figures and a markdown report comparing algorithms.

    python -m bench.report results/compare_arith                      # writes report.md + PNGs there
    python -m bench.report results --out /tmp/report --baseline grpo --target riskpo --k 1 8

Every directory below the results directory holding a ``metrics.parquet`` is a run (see
bench/sinks.py for what a run directory holds). ``load_results`` reads them all into tidy frames,
each row carrying its run's identity (``ID``); notebooks use it too. Runs are compared within a
scope, one (experiment, task); seeds are the replicates. Intervals:

- over seeds: a t-interval of the per-seed values (paired by seed for differences: every
  algorithm samples the same prompts for a given seed); none with one seed;
- over problems: pass@k per problem from ``problems.parquet`` at each run's final evaluation,
  averaged over seeds, target minus baseline on the problems both have, and a bootstrap interval
  of the mean difference (``bench.passk.bootstrap_ci``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator, ScalarFormatter
from omegaconf import OmegaConf
from scipy import stats

import algorithms
from bench import passk
from bench.sinks import write_atomically

ID = ["run_id", "algorithm", "task", "model", "seed", "experiment", "series"]
CONFIDENCE = 0.95
# Hydra's run directory name: <algorithm choice>-<task>-s<seed>[-<date>-<time>] (conf/config.yaml)
RUN_NAME = re.compile(r"^(?P<algorithm>.+)-(?P<task>[^-]+)-s(?P<seed>\d+)(?:-\d{8}-\d{6})?$")
QUANTILES = ("a", "b", "tracker_a", "tracker_b")  # RiskPO's metrics, under algo/riskpo/
# the columns a table has even when no run has written a row of it yet
TABLES = {"metrics": ["step"], "eval": ["step", "benchmark", "k", "pass_at_k"],
          "problems": ["step", "benchmark", "uid", "n", "c"]}


@dataclass(frozen=True)
class Results:
    """The runs under a results directory: ``runs`` has one row per run (ID plus path, steps,
    planned_steps, wall_seconds); ``metrics``, ``evals`` and ``problems`` are the runs' parquet
    tables with the ID columns joined on. ``series`` is the label figures use: the algorithm, or
    experiment/task/algorithm when the directory holds several scopes."""

    runs: pd.DataFrame
    metrics: pd.DataFrame
    evals: pd.DataFrame
    problems: pd.DataFrame

    def subset(self, run_ids: Sequence[str]) -> Results:
        keep = set(run_ids)
        return Results(*(f[f["run_id"].isin(keep)] for f in (self.runs, self.metrics, self.evals, self.problems)))

    def scopes(self) -> Iterator[tuple[str, Results]]:
        """(label, results) per (experiment, task); the label is empty when there is one scope."""
        groups = list(self.runs.groupby(["experiment", "task"], sort=True))
        for (experiment, task), runs in groups:
            yield (f"{experiment} / {task}" if len(groups) > 1 else ""), self.subset(runs["run_id"])


def load_results(root: str | Path) -> Results:
    """Read every run below ``root``; an unfinished run contributes what it has written so far."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results directory")
    run_dirs = sorted({p.parent for p in root.rglob("metrics.parquet")})
    if not run_dirs:
        raise ValueError(f"{root}: no runs there (no metrics.parquet in it or below it)")
    runs = pd.DataFrame([identify(d, root) for d in run_dirs])
    runs["planned_steps"] = runs["planned_steps"].astype("Int64")  # None where config.yaml is missing
    label = ["experiment", "task", "algorithm"] if runs.groupby(["experiment", "task"]).ngroups > 1 else ["algorithm"]
    runs["series"] = runs[label].astype(str).agg("/".join, axis=1)
    metrics, evals, problems = (read_tables(runs, name, columns) for name, columns in TABLES.items())
    for frame in (runs, metrics, evals, problems):  # categories: one colour per series in every figure
        frame["series"] = pd.Categorical(frame["series"], categories=sorted(set(runs["series"])))
    last = metrics.groupby("run_id")
    runs["steps"] = runs["run_id"].map(last["step"].max() + 1).fillna(0).astype(int)
    wall = last["budget/wall_seconds"].max() if "budget/wall_seconds" in metrics else pd.Series(dtype=float)
    runs["wall_seconds"] = runs["run_id"].map(wall)
    return Results(runs, metrics, evals, problems)


def read_tables(runs: pd.DataFrame, name: str, columns: list[str]) -> pd.DataFrame:
    """``<name>.parquet`` of every run that has rows in it, with the run's ID columns."""
    frames = []
    for run in runs.itertuples():
        path = Path(run.path) / f"{name}.parquet"
        table = pd.read_parquet(path) if path.is_file() else None
        if table is not None and len(table):
            frames.append(table.assign(**{c: getattr(run, c) for c in ID}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*ID, *columns])


def identify(run_dir: Path, root: Path) -> dict:
    """run.json's identity; for older runs config.yaml's, with the algorithm label (a Hydra choice
    such as riskpo_seeking, whose algorithm.name is riskpo) read from the directory name."""
    run_id = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
    ident = {"run_id": run_id, "path": str(run_dir), "experiment": run_dir.parent.name, "model": None,
             "planned_steps": None}
    named = RUN_NAME.match(run_dir.name)
    if named:
        ident |= {"algorithm": named["algorithm"], "task": named["task"], "seed": int(named["seed"])}
    if (run_dir / "config.yaml").is_file():
        cfg = OmegaConf.load(run_dir / "config.yaml")
        from_config = {"task": cfg.task.name, "model": cfg.model.name, "seed": int(cfg.seed),
                       "experiment": cfg.trainer.experiment, "planned_steps": int(cfg.trainer.steps)}
        agrees = named and (int(named["seed"]), named["task"]) == (from_config["seed"], from_config["task"])
        ident |= from_config | ({} if agrees else {"algorithm": cfg.algorithm.name})
    if (run_dir / "run.json").is_file():
        ident |= {k: v for k, v in json.loads((run_dir / "run.json").read_text() or "{}").items() if v is not None}
    missing = [k for k in ("algorithm", "task", "seed") if k not in ident]
    if missing:
        raise ValueError(f"{run_dir}: cannot tell its {', '.join(missing)} (no run.json or config.yaml, "
                         "and the name is not <algorithm>-<task>-s<seed>)")
    return ident


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
    """Mean of ``column`` per algorithm over seeds, and a t-interval of the per-seed differences."""
    by_seed = per_run.groupby(["algorithm", "seed"])[column].mean()
    t, b = by_seed.get(target, pd.Series(dtype=float)), by_seed.get(baseline, pd.Series(dtype=float))
    paired = (t - b).dropna()
    half = half_width(paired)
    over = {0: "no seed in common", 1: "one seed in common"}.get(len(paired), f"CI over {len(paired)} seeds")
    return Difference(t.mean(), b.mean(), paired.mean() - half, paired.mean() + half, over)


def problem_difference(problems: pd.DataFrame, k: int, baseline: str, target: str) -> Difference:
    """Paired over problems: pass@k per problem at the final step, averaged over seeds per
    algorithm; the mean and its bootstrap interval of target - baseline on shared problems."""
    rows = final_rows(problems)
    rows = rows[rows["n"] >= k]
    rows = rows.assign(p=passk.pass_at_k_array(rows["n"].to_numpy(int), rows["c"].to_numpy(int), k))
    per_problem = rows.groupby(["uid", "algorithm"])["p"].mean().unstack()
    both = per_problem[[target, baseline]].dropna() if {target, baseline} <= set(per_problem.columns) else None
    if both is None or both.empty:
        return Difference(float("nan"), float("nan"), float("nan"), float("nan"), f"no problem with n >= {k} in both")
    low, high = passk.bootstrap_ci((both[target] - both[baseline]).to_numpy(), confidence=CONFIDENCE,
                                   resamples=2000, seed=0)
    return Difference(both[target].mean(), both[baseline].mean(), low, high, f"bootstrap CI over {len(both)} problems")


def pass_difference(scope: Results, benchmark: str, k: int, baseline: str, target: str) -> Difference:
    """Paired over problems where problems.parquet is there, else over seeds from eval.parquet."""
    problems = scope.problems[scope.problems["benchmark"] == benchmark]
    if {baseline, target} <= set(problems["algorithm"]):
        return problem_difference(problems, k, baseline, target)
    evals = final_rows(scope.evals)
    evals = evals[(evals["benchmark"] == benchmark) & (evals["k"] == k)]
    return seed_difference(evals, "pass_at_k", baseline, target)


def describe(d: Difference, baseline: str) -> str:
    """'0.071 vs grpo 0.052 (difference +0.019, 95% CI over 2 seeds [+0.010, +0.028]: ...)'"""
    head = f"{d.target:.3f} vs {baseline} {d.baseline:.3f} (difference {d.value:+.3f}"
    if not np.isfinite(d.low):
        return f"{head}; {d.over}, no CI: no difference can be claimed at this scale)"
    ci = f"{head}, {CONFIDENCE:.0%} {d.over} [{d.low:+.3f}, {d.high:+.3f}]"
    if d.low > 0 or d.high < 0:
        return f"{ci}: {'higher' if d.value > 0 else 'lower'}, larger than its CI, which excludes 0)"
    return f"{ci}: no difference at this scale, the CI includes 0)"


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
        sentences = []
        if "train/entropy" in scope.metrics:
            entropy, window = final_window(scope.metrics, "train/entropy")
            over = "its last step" if window == 1 else f"its mean over its last {window} steps"
            sentences.append(f"{target} ended with entropy "
                             f"{describe(seed_difference(entropy, 'train/entropy', baseline, target), baseline)}"
                             f" (a run's entropy: {over}).")
        for benchmark in sorted(set(scope.evals["benchmark"])):
            for k in report_ks(scope, ks):
                d = pass_difference(scope, benchmark, k, baseline, target)
                text = describe(d, baseline) if np.isfinite(d.value) else f"not available for both ({d.over})"
                sentences.append(f"pass@{k} on {benchmark}: {target} {text}.")
        if scope.evals.empty:
            sentences.append("No pass@k evaluations yet.")
        paragraphs.append(head + " ".join(sentences))
    return "\n\n".join(paragraphs)


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)"
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows])


def pass_table(results: Results, baseline: str = "grpo", ks: Optional[Sequence[int]] = None) -> str:
    """Algorithm x benchmark: pass@k at the final step, mean ± half CI over seeds, and the paired
    difference to the baseline with its interval."""
    rows = []
    for label, scope in results.scopes():
        for (algorithm, benchmark), group in final_rows(scope.evals).groupby(["algorithm", "benchmark"]):
            row = ({"scope": label} if label else {}) | {"algorithm": algorithm, "benchmark": benchmark,
                                                         "seeds": group["seed"].nunique()}
            for k in report_ks(scope, ks):
                row[f"pass@{k}"] = mean_cell(group[group["k"] == k].groupby("seed")["pass_at_k"].mean())
                row[f"Δ pass@{k} vs {baseline}"] = difference_cell(scope, benchmark, k, baseline, algorithm)
            rows.append(row)
    return markdown_table(rows)


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
    return f"{d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}]" if np.isfinite(d.low) else f"{d.value:+.3f} (n/a)"


def runs_table(results: Results) -> str:
    """The runs, and a note on runs that repeat an algorithm and seed (averaged as one seed)."""
    runs = results.runs.sort_values(["experiment", "algorithm", "seed"])
    repeated = runs.groupby(["experiment", "task", "algorithm", "seed"]).size()
    repeated = [f"{a} seed {s} ({n} runs)" for (_, _, a, s), n in repeated[repeated > 1].items()]
    note = f"\n\nRuns sharing an algorithm and seed count as one seed: {', '.join(repeated)}." if repeated else ""
    return markdown_table([{"experiment": r.experiment, "algorithm": r.algorithm, "seed": r.seed,
                            "steps": f"{r.steps}/{r.planned_steps}" if pd.notna(r.planned_steps) else r.steps,
                            "wall time (s)": f"{r.wall_seconds:.0f}" if pd.notna(r.wall_seconds) else "—",
                            "run": f"`{r.run_id}`"} for r in runs.itertuples()]) + note


# --- figures: one function each, sharing mean_band ------------------------------------------------


def mean_band(ax: Axes, frame: pd.DataFrame, y: str, at: str = "step", x: Optional[str] = None) -> None:
    """One line per series: the mean of ``y`` over seeds at each value of ``at`` (plotted at the
    seeds' mean of ``x``), with a t-interval band over seeds where there are two or more."""
    if y not in frame:
        return
    for series, rows in frame.dropna(subset=[y]).groupby("series", observed=True):
        rows = rows.groupby([at, "seed"])[[y] if x is None else [y, x]].mean().reset_index()  # a seed run twice
        s = rows.groupby(at).agg(x=(x or at, "mean"), mean=(y, "mean"), half=(y, half_width))
        color = series_color(series, list(frame["series"].cat.categories))
        ax.plot(s["x"], s["mean"], color=color, label=series, marker="o" if len(s) <= 12 else None, markersize=3)
        ax.fill_between(s["x"], s["mean"] - s["half"], s["mean"] + s["half"], color=color, alpha=0.2, linewidth=0)
    style(ax)


def series_color(series: str, all_series: list[str]) -> str:
    """The same colour for an algorithm in every report (the registry's order, then its variants);
    by position when the figure holds an algorithm twice (several experiments) or an unknown label."""
    known = [*algorithms.ALGORITHMS, "riskpo_seeking", "riskpo_reference"]
    names = [s.rsplit("/", 1)[-1] for s in all_series]
    name = series.rsplit("/", 1)[-1]
    if name in known and names.count(name) == 1 and all(n in known for n in names):
        return f"C{known.index(name)}"
    return f"C{all_series.index(series) % 10}"


def style(ax: Axes) -> None:
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps, tokens and k are counts


def panels(count: int, title: str, width: float = 5.0) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width * count, 3.8), layout="constrained")
    axes = fig.subplots(1, count, squeeze=False)[0]
    fig.suptitle(title)
    return fig, list(axes)


def smoothed(metrics: pd.DataFrame, column: str) -> tuple[pd.DataFrame, int]:
    """Each run's ``column`` as a trailing moving average over about 1/25 of its steps (one batch's
    value is noisy; at most 2 steps are averaged per 50), and the window used."""
    window = max(1, int(metrics["step"].max() + 1) // 25) if len(metrics) else 1
    rows = metrics.dropna(subset=[column]).sort_values("step")
    values = rows.groupby("run_id")[column].transform(lambda v: v.rolling(window, min_periods=1).mean())
    return rows.assign(**{column: values}), window


def averaged(window: int) -> str:
    return "" if window == 1 else f"; {window}-step moving average"


def entropy_figure(results: Results) -> Figure:
    metrics, window = smoothed(results.metrics, "train/entropy")
    fig, (ax,) = panels(1, f"Token entropy of the sampled responses\n(mean over seeds, {CONFIDENCE:.0%} t-band"
                           f"{averaged(window)})", 7)
    mean_band(ax, metrics, "train/entropy")
    ax.set(xlabel="step", ylabel="mean token entropy (nats)")
    ax.legend()
    return fig


def reward_figure(results: Results) -> Figure:
    metrics, window = smoothed(results.metrics, "train/reward_mean")
    title = f"Training reward, per step and at equal generation budget\n(mean over seeds, {CONFIDENCE:.0%} t-band"
    fig, (by_step, by_tokens) = panels(2, f"{title}{averaged(window)})")
    mean_band(by_step, metrics, "train/reward_mean")
    mean_band(by_tokens, metrics, "train/reward_mean", x="budget/generated_tokens")
    by_step.set(xlabel="step", ylabel="batch reward (DAPO: kept groups)")
    by_tokens.set(xlabel="generated tokens so far (mean over seeds)")
    by_tokens.xaxis.set_major_formatter(EngFormatter())  # 250k, not 250000
    by_step.legend()
    return fig


def passk_figure(results: Results) -> Figure:
    evals = final_rows(results.evals)
    benchmarks = sorted(set(evals["benchmark"])) or ["(no evaluations yet)"]
    fig, axes = panels(len(benchmarks), "pass@k at each run's final evaluation (mean over seeds)")
    for ax, benchmark in zip(axes, benchmarks):
        mean_band(ax, evals[evals["benchmark"] == benchmark], "pass_at_k", at="k")
        ks = sorted(set(evals.loc[evals["benchmark"] == benchmark, "k"]))
        ax.set_xscale("log", base=2)
        ax.set_xticks([k for k in ks if k & (k - 1) == 0], minor=False)  # the powers of two
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.minorticks_off()
        ax.set(title=benchmark, xlabel="k", ylabel="pass@k")
    if len(evals):
        axes[0].legend()
    return fig


def quantiles_figure(results: Results) -> Optional[Figure]:
    """RiskPO's quantiles, one line per run: a, b used by the advantage (solid), the tracker after
    the step (dashed); None when no run logged them."""
    columns = [f"algo/riskpo/{q}" for q in QUANTILES if f"algo/riskpo/{q}" in results.metrics]
    metrics = results.metrics.dropna(subset=columns, how="all") if columns else results.metrics.iloc[:0]
    if metrics.empty:
        return None
    series = sorted(set(metrics["series"]))
    fig, axes = panels(len(series), "RiskPO's quantiles of paper scores: a (alpha) and b (beta)")
    for ax, name in zip(axes, series):
        for i, (_, run) in enumerate(metrics[metrics["series"] == name].groupby("run_id")):
            for column in columns:
                q = column.rsplit("/", 1)[1]
                ax.plot(run["step"], run[column], color="C0" if q.endswith("a") else "C3", alpha=0.6,
                        linestyle="--" if q.startswith("tracker") else "-",
                        label=None if i else f"{q[-1]} ({'tracker' if q.startswith('tracker') else 'used'})")
        ax.set(title=f"{name} (one line per run)", xlabel="step", ylabel="paper score quantile")
        ax.legend(fontsize=8)
        style(ax)
    return fig


# --- the report ------------------------------------------------------------------------------------


def write_report(results: Results, out: Path, baseline: str = "grpo", target: str = "riskpo",
                 ks: Optional[Sequence[int]] = None) -> Path:
    """report.md and its figures in ``out``, each file written atomically."""
    figures = {"entropy.png": entropy_figure(results), "reward.png": reward_figure(results),
               "passk.png": passk_figure(results), "quantiles.png": quantiles_figure(results)}
    lines = [f"# Report: {len(results.runs)} runs", "", "## Conclusion", "", conclusion(results, baseline, target, ks),
             "", "## pass@k at the final evaluation", "",
             f"Mean ± half the {CONFIDENCE:.0%} t-interval over seeds (n/a with one seed); Δ: paired difference to "
             f"{baseline} with its {CONFIDENCE:.0%} interval (bootstrap over problems).", "",
             pass_table(results, baseline, ks), "", "## Figures", ""]
    for name, fig in figures.items():
        if fig is None:
            lines += [f"No run logged RiskPO's quantiles (algo/riskpo/*): no {name}.", ""]
            continue
        write_atomically(out / name, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=110))
        lines += [f"![{name[:-4]}]({name})", ""]
    lines += ["## Runs", "", runs_table(results), ""]
    path = out / "report.md"
    write_atomically(path, lambda tmp: tmp.write_text("\n".join(lines)))
    return path


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a results directory (runs anywhere below it)")
    parser.add_argument("--out", type=Path, help="where report.md and the figures go (default: the results directory)")
    parser.add_argument("--baseline", default="grpo", help="algorithm label compared against (default: grpo)")
    parser.add_argument("--target", default="riskpo", help="algorithm label of the conclusion (default: riskpo)")
    parser.add_argument("--k", type=int, nargs="+", help="k values of the table (default: 1 and the largest)")
    args = parser.parse_args(argv)
    if args.k and min(args.k) < 1:
        parser.error(f"--k {min(args.k)}: k must be >= 1")
    try:
        results = load_results(args.results)
    except (FileNotFoundError, ValueError) as err:
        print(f"bench.report: {err}", file=sys.stderr)
        sys.exit(2)
    path = write_report(results, args.out or args.results, args.baseline, args.target, args.k)
    print(conclusion(results, args.baseline, args.target, args.k))
    print(f"report: {path}")


if __name__ == "__main__":
    main()
