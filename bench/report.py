"""``python -m bench.report <results dir>``: figures and a markdown report comparing algorithms.

    python -m bench.report results/compare_arith                      # writes report.md + PNGs there
    python -m bench.report results --out /tmp/report --baseline grpo --target riskpo --k 1 8

Every directory below the results directory holding a ``metrics.parquet`` (a training run) or an
``eval.parquet`` (an evaluation-only run: bench.evaluate on weights trained elsewhere, compared by
the label in its run.json: ``--baseline grpo --target riskpo_reference``) is a run; the loader,
statistics and tables are in bench/reporting/results.py, the figures in bench/reporting/figures.py
(notebooks use both through ``bench.reporting``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from bench.compose import writable
from bench.reporting import (
    Results,
    conclusion,
    diversity_figure,
    diversity_table,
    entropy_figure,
    improvement_figure,
    kl_figure,
    load_results,
    pass_table,
    passk_figure,
    quantiles_figure,
    reward_figure,
    runs_table,
    time_table,
)
from bench.reporting.results import CONFIDENCE, steps_cell
from common import write_atomically


def write_report(results: Results, out: Path, baseline: str = "grpo", target: str = "riskpo",
                 ks: Optional[Sequence[int]] = None, preface: Sequence[str] = ()) -> Path:
    """report.md and its figures in ``out``, each file written atomically; ``preface``: markdown
    lines placed after the conclusion (bench.protocol's account of its lr choice)."""
    figures = {"entropy.png": entropy_figure(results), "reward.png": reward_figure(results),
               "passk.png": passk_figure(results), "diversity.png": diversity_figure(results),
               "kl.png": kl_figure(results), "improvement.png": improvement_figure(results, baseline),
               "quantiles.png": quantiles_figure(results)}
    skipped = [f"Left out, unreadable: {len(results.skipped)} run(s).", "", *(f"- {why}" for why in results.skipped), ""]
    lines = [f"# Report: {len(results.runs)} runs", "", *(skipped if results.skipped else []), *unfinished_notice(results),
             "## Conclusion", "",
             conclusion(results, baseline, target, ks), "", *preface, "## pass@k at the final evaluation", "",
             f"Mean ± half the {CONFIDENCE:.0%} t-interval over seeds (n/a with one seed); Δ: paired difference to "
             f"{baseline} with its {CONFIDENCE:.0%} interval (bootstrap over problems).", "",
             pass_table(results, baseline, ks), "", "## Figures", ""]
    for name, fig in figures.items():
        if fig is None:
            why = {"entropy.png": "logged training steps (evaluation-only runs have none)",
                   "reward.png": "logged training steps (evaluation-only runs have none)",
                   "quantiles.png": "logged RiskPO's quantiles (algo/riskpo/*)",
                   "kl.png": "measured its KL from the initial policy (older runs, eval.kl_from_initial=false)",
                   "improvement.png": f"of {baseline} and another algorithm evaluated the same problems"}.get(
                name, "has answer-diversity columns (older runs, or code benchmarks only)")
            lines += [f"No run {why}: no {name}.", ""]
            continue
        write_atomically(out / name, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=110))
        lines += [f"![{name[:-4]}]({name})", ""]
    diversity = diversity_table(results)
    if diversity is not None:
        lines += ["## Answer diversity at the final evaluation", "",
                  "Per problem over its n samples: how many different correct answers, and the entropy of the "
                  "answers (nats); the sequence-level diversity the entropy-collapse claim is about. Mean ± half "
                  f"the {CONFIDENCE:.0%} t-interval over seeds.", "", diversity, ""]
    timing = time_table(results)
    if timing is not None:
        lines += ["## Where the time went", "", "Seconds per training step in each stage (the runs' `time/*` "
                  "metrics; eval and checkpoint: spent after the step, once per their schedule).", "", timing, ""]
    lines += ["## Runs", "", runs_table(results), ""]
    path = out / "report.md"
    write_atomically(path, lambda tmp: tmp.write_text("\n".join(lines)))
    return path


def unfinished_notice(results: Results) -> list[str]:
    """A warning naming the training runs below their planned steps: every "final" figure of the
    report takes such a run at its last evaluation, an earlier step than its finished peers'."""
    runs = results.runs
    short = runs[(runs["steps"] < runs["planned_steps"]).fillna(False)]  # NA: no plan (evaluation-only, no config)
    if short.empty:
        return []
    last = results.evals.groupby("run_id")["step"].max()
    where = {r: f"last evaluated at step {int(last[r])}" if r in last.index else "not evaluated yet" for r in short["run_id"]}
    return [f"**Unfinished: {len(short)} run(s) below their planned steps.** The final-evaluation tables and the "
            "conclusion take each at its last evaluation, an earlier step than the finished runs': read them as "
            "provisional until these runs end.", "",
            *(f"- `{r.run_id}`: {steps_cell(r)} steps, {where[r.run_id]}" for r in short.itertuples()), ""]


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a results directory (runs anywhere below it)")
    parser.add_argument("--out", type=Path, help="where report.md and the figures go (default: the results directory)")
    parser.add_argument("--baseline", default="grpo", help="algorithm label compared against (default: grpo)")
    parser.add_argument("--target", default="riskpo", help="algorithm label of the conclusion (default: riskpo)")
    parser.add_argument("--k", type=int, nargs="+", help="k values of the table (default: 1 and the largest)")
    parser.add_argument("--strict", action="store_true", help="fail on an unreadable run instead of leaving it out")
    args = parser.parse_args(argv)
    if args.k and min(args.k) < 1:
        parser.error(f"--k {min(args.k)}: k must be >= 1")
    if args.baseline == args.target:
        parser.error(f"--baseline and --target are both {args.target}: compare two algorithm labels")
    try:
        results = load_results(args.results, strict=args.strict)
        writable(args.out or args.results, "--out")  # before the figures are drawn
    except (FileNotFoundError, ValueError) as err:
        print(f"bench.report: {err}", file=sys.stderr)
        sys.exit(2)
    path = write_report(results, args.out or args.results, args.baseline, args.target, args.k)
    print(conclusion(results, args.baseline, args.target, args.k))
    print(f"report: {path}")


if __name__ == "__main__":
    main()
