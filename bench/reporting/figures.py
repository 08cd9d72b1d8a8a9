"""The report's figures, one function each over ``Results``, sharing ``mean_band`` (a line per
algorithm, the mean over seeds, a band of the t-interval). Figures of training metrics have no
line for an evaluation-only run (bench.evaluate's), and are None when no run has trained."""

from __future__ import annotations

from typing import Optional

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator, ScalarFormatter

import algorithms
from bench.reporting.results import CONFIDENCE, QUANTILES, Results, final_rows, half_width, improvement


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


SPLIT = {"train/entropy_answer": "answer tokens (the task's answer_spans)", "train/entropy_other": "the other tokens"}


def logged(results: Results, column: str) -> bool:
    """Whether any run logged training metric ``column`` (none did when every run is evaluation-only)."""
    return column in results.metrics and bool(results.metrics[column].notna().any())


def entropy_figure(results: Results) -> Optional[Figure]:
    """Token entropy; with a panel each for answer tokens and the rest where runs logged the split.
    None when no run logged it."""
    if not logged(results, "train/entropy"):
        return None
    split = [c for c in SPLIT if logged(results, c)]
    columns = ["train/entropy", *split]
    fig, axes = panels(len(columns), f"Token entropy of the sampled responses\n(mean over seeds, {CONFIDENCE:.0%} "
                                     f"t-band{averaged(smoothed(results.metrics, columns[0])[1])})", 7 if not split else 5)
    for ax, column in zip(axes, columns):
        mean_band(ax, smoothed(results.metrics, column)[0], column)
        ax.set(xlabel="step", ylabel="mean token entropy (nats)", title=SPLIT.get(column, "all response tokens"))
    axes[0].legend()
    return fig


def kl_figure(results: Results) -> Optional[Figure]:
    """The matched-distance view: pass@1 and answer diversity at every evaluation against the KL
    of the sampling policy from the initial one, one line per run (seeds move at different speeds,
    so a mean over seeds would pair evaluations at unequal distances); the KL axis is linear up to
    1 nat and logarithmic beyond, so a run that broke away does not squeeze the others into a corner.
    None when no run measured it."""
    evals = results.evals
    if "kl_from_initial" not in evals or evals["kl_from_initial"].isna().all():
        return None
    evals = evals[evals["k"] == 1].dropna(subset=["kl_from_initial"])
    columns = {"pass_at_k": "pass@1", "distinct_correct": "distinct correct answers"}
    columns = {c: label for c, label in columns.items() if c in evals and evals[c].notna().any()}
    benchmarks = sorted(set(evals["benchmark"]))
    fig, axes = panels(len(columns) * len(benchmarks), "At equal distance moved: each evaluation against "
                       "KL(policy || initial policy) on its samples (one line per run)")
    for i, (benchmark, (column, label)) in enumerate((b, c) for b in benchmarks for c in columns.items()):
        run_lines(axes[i], evals[evals["benchmark"] == benchmark], column, x="kl_from_initial")
        axes[i].set(title=benchmark, xlabel="KL from the initial policy (nats per response)", ylabel=label)
        axes[i].set_xscale("symlog", linthresh=1.0)
    axes[0].legend()
    return fig


def run_lines(ax: Axes, frame: pd.DataFrame, y: str, x: str) -> None:
    """One thin line per run through its evaluations (``y`` against ``x``), in its series' colour,
    the series named once in the legend."""
    categories = list(frame["series"].cat.categories)
    named = set()
    for (series, _), rows in frame.dropna(subset=[y]).groupby(["series", "run_id"], observed=True):
        rows = rows.groupby("step")[[x, y]].mean()  # a step evaluated twice (a resumed run)
        ax.plot(rows[x], rows[y], color=series_color(series, categories), marker="o", markersize=3,
                linewidth=1, alpha=0.8, label=None if series in named else series)
        named.add(series)
    ax.grid(alpha=0.3)


def reward_figure(results: Results) -> Optional[Figure]:
    """Training reward per step and per generated token; None when no run logged it."""
    if not logged(results, "train/reward_mean"):
        return None
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


def diversity_figure(results: Results) -> Optional[Figure]:
    """Distinct correct answers per problem and answer entropy at every evaluation, per benchmark;
    None when no run has them (older runs, or only code benchmarks)."""
    evals = results.evals
    if "distinct_correct" not in evals or evals["distinct_correct"].isna().all():
        return None
    evals = evals[evals["k"] == 1].dropna(subset=["distinct_correct"])
    benchmarks = sorted(set(evals["benchmark"]))
    fig, axes = panels(2 * len(benchmarks), "Answer diversity per problem over its n samples (mean over seeds)")
    for i, benchmark in enumerate(benchmarks):
        rows = evals[evals["benchmark"] == benchmark]
        for ax, column, label in zip(axes[2 * i : 2 * i + 2], ("distinct_correct", "answer_entropy"),
                                     ("distinct correct answers", "answer entropy (nats)")):
            mean_band(ax, rows, column)
            ax.set(title=benchmark, xlabel="step", ylabel=label)
    axes[0].legend()
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


def improvement_figure(results: Results, baseline: str = "grpo") -> Optional[Figure]:
    """The probability that each algorithm beats ``baseline`` on a problem (``improvement``), for
    pass@1 and distinct correct answers, with its interval over problems; None without a baseline
    run or another algorithm."""
    problems = results.problems
    others = sorted(set(problems["algorithm"]) - {baseline})
    if baseline not in set(problems["algorithm"]) or not others:
        return None
    columns = {"c": "pass@1"} | ({"distinct_correct": "distinct correct answers"}
                                if "distinct_correct" in problems and problems["distinct_correct"].notna().any() else {})
    benchmarks = sorted(set(problems["benchmark"]))
    fig, axes = panels(len(columns) * len(benchmarks), f"Probability of improvement over {baseline} on a problem "
                       f"(final evaluation, every pair of seeds; {CONFIDENCE:.0%} CI over problems)", 4.5)
    for ax, (benchmark, (column, label)) in zip(axes, ((b, c) for b in benchmarks for c in columns.items())):
        rows = problems[problems["benchmark"] == benchmark]
        for i, name in enumerate(others):
            d = improvement(rows, column, baseline, name)
            if d is not None:
                ax.errorbar([d.target], [i], xerr=[[d.target - d.low], [d.high - d.target]], fmt="o", capsize=3,
                            color=series_color(name, list(problems["series"].cat.categories))
                            if name in problems["series"].cat.categories else f"C{i}")
        ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
        ax.set(title=f"{benchmark}: {label}", xlabel=f"P(algorithm > {baseline})", xlim=(0, 1))
        ax.set_yticks(range(len(others)), others)
        ax.grid(alpha=0.3)
    return fig
