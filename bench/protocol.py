"""``python -m bench.protocol <name>``: the fair comparison, from learning-rate sweep to report.

    python -m bench.protocol sums                       # conf/protocol/sums.yaml, into results/protocol_sums
    python -m bench.protocol arith --report docs/protocol/arith
    python -m bench.protocol sums final.seeds=[0] --plan    # list the runs and their state, run nothing
    python -m bench.protocol sums --jobs 2              # two runs side by side, each on half the cores

One command, four stages, each algorithm treated alike:

1. **sweep**: every algorithm at every ``sweep.lrs``, one seed, shorter runs, evaluated on the
   task's validation split (never the evaluation set); an algorithm whose best lr is at an end of
   what it has tried also tries the nearest ``sweep.extend`` lr past that end, until its best is
   inside its grid or ``sweep.extend`` has nothing further that way;
2. **choose**: each algorithm's lr is the one with the best validation pass@k at the sweep's last
   evaluation (ties: the smaller lr); written to ``choice.json`` with every value it saw (a
   choice still at an end of its grid is marked in the report);
3. **final**: every algorithm at its own lr, ``final.seeds``, evaluated on the evaluation set;
   ``variants`` re-run some algorithms at their chosen lr with extra settings (two mini-batches
   per step, so the importance ratio differs from 1 and clipping can act), or at another
   algorithm's chosen lr (``lr_of``: the final settings otherwise, compared with that algorithm's
   final runs: the two at about the same distance moved from the initial policy);
4. **report**: ``bench.report``'s comparison of the final runs (pass@k with CIs and paired tests,
   entropy, answer diversity, metrics against KL from the initial policy), preceded by the lr
   choice, and one report per variant.

Every run is an ordinary run directory under ``<out>/{sweep,final,<variant>}``. Interrupted, the
command picks up where it stopped: finished runs are skipped, unfinished ones resume from their
last checkpoint (runs checkpoint at every evaluation), so their metrics are those of an
uninterrupted run. A finished run keeps only its last checkpoint, and stays done without it: the
protocols' finished runs are committed (``results/protocol_*``, checkpoints left out), so a fresh
clone reports from them (``--report-only``) and a protocol carries on where the last one stopped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import OmegaConf

from bench.compose import CONF_DIR, ConfigError, load_run_config, one_line
from bench.training.checkpoints import checkpoint_step, latest_checkpoint
from bench.training.sinks import read_table
from common import PROJECT_ROOT, write_atomically


# not frozen: OmegaConf makes a frozen dataclass's node read-only, and the YAML could not merge into it
@dataclass
class Sweep:
    lrs: list[float] = field(default_factory=lambda: [3e-5, 1e-4, 3e-4])
    extend: list[float] = field(default_factory=list)  # lrs past the grid's ends, tried where the best is at an end
    seed: int = 0
    k: int = 1  # the lr maximises validation pass@k
    overrides: list[str] = field(default_factory=list)  # e.g. fewer steps


@dataclass
class Final:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    overrides: list[str] = field(default_factory=list)


@dataclass
class Variant:
    algorithms: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)
    # run at this algorithm's chosen lr (with the final settings, so no overrides) and report
    # against its final runs; empty: each algorithm at its own chosen lr
    lr_of: str = ""


@dataclass
class ProtocolConfig:
    name: str = ""  # results go to results/<name> unless --out says otherwise
    validation: str = ""  # the benchmark the sweep evaluates on (a validation split)
    base: list[str] = field(default_factory=list)  # run overrides every run shares
    algorithms: dict[str, list[str]] = field(default_factory=dict)  # label -> its run overrides
    sweep: Sweep = field(default_factory=Sweep)
    final: Final = field(default_factory=Final)
    variants: dict[str, Variant] = field(default_factory=dict)
    baseline: str = "grpo"
    target: str = "riskpo"


@dataclass(frozen=True)
class Run:
    stage: str  # sweep, final or a variant's name
    algorithm: str
    lr: float
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path


def load_protocol(name: str, overrides: Sequence[str] = ()) -> ProtocolConfig:
    """conf/protocol/<name>.yaml (or a path) with dot-list overrides, typed and checked."""
    path = Path(name) if name.endswith(".yaml") else CONF_DIR / "protocol" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "protocol").glob("*.yaml"))
        raise ConfigError(f"no protocol {name!r}: {path} does not exist; known: {', '.join(known)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ProtocolConfig), OmegaConf.load(path),
                                 OmegaConf.from_dotlist(list(overrides)))
        protocol: ProtocolConfig = OmegaConf.to_object(merged)
    except Exception as err:  # OmegaConf's validation errors: one line naming the key
        raise ConfigError(f"{path.name}: {one_line(err)}") from err
    for variant, spec in protocol.variants.items():
        unknown = sorted(set(spec.algorithms) - set(protocol.algorithms))
        if unknown:
            raise ConfigError(f"variants.{variant}.algorithms: {unknown[0]!r} is not one of the protocol's "
                              f"algorithms ({', '.join(protocol.algorithms)})")
        if spec.lr_of and spec.lr_of not in protocol.algorithms:
            raise ConfigError(f"variants.{variant}.lr_of: {spec.lr_of!r} is not one of the protocol's algorithms "
                              f"({', '.join(protocol.algorithms)})")
        if spec.lr_of and spec.overrides:
            raise ConfigError(f"variants.{variant}: lr_of compares with {spec.lr_of}'s final runs, so its runs must "
                              f"have the final settings; drop overrides ({' '.join(spec.overrides)}) or lr_of")
    if not protocol.algorithms or not protocol.sweep.lrs or not protocol.validation:
        raise ConfigError(f"{path.name}: a protocol needs algorithms, sweep.lrs and a validation benchmark")
    inside = [lr for lr in protocol.sweep.extend if min(protocol.sweep.lrs) <= lr <= max(protocol.sweep.lrs)]
    if inside:
        raise ConfigError(f"sweep.extend: {inside[0]:g} lies within sweep.lrs ({min(protocol.sweep.lrs):g} .. "
                          f"{max(protocol.sweep.lrs):g}); extend holds lrs past the grid's ends")
    return protocol


def lr_name(lr: float) -> str:
    """lr1e-4, lr1.5e-4: as many digits as the value needs, so two lrs never share a name."""
    digits = next(d for d in range(17) if float(f"{lr:.{d}e}") == lr)
    return f"lr{lr:.{digits}e}".replace("e-0", "e-").replace("e+0", "e+")


def sweep_runs(p: ProtocolConfig, out: Path, grids: dict[str, list[float]]) -> list[Run]:
    return [Run("sweep", name, lr, p.sweep.seed,
                (*p.base, *p.algorithms[name], *p.sweep.overrides, f"eval.benchmarks=[{p.validation}]",
                 f"experiment_name={p.name}_sweep"),
                out / "sweep" / f"{name}-{lr_name(lr)}")
            for name, lrs in grids.items() for lr in lrs]


def widen(p: ProtocolConfig, grids: dict[str, list[float]], scores: dict[str, dict[float, float]]) -> bool:
    """Add to each fully scored grid whose best lr is at an end the nearest ``sweep.extend`` lr past
    that end; False when no grid grew."""
    grew = False
    for name, lrs in grids.items():
        if set(lrs) - set(scores[name]):
            continue  # not every run of this algorithm is done
        best = max(sorted(lrs), key=lambda lr: scores[name][lr])
        below = [lr for lr in p.sweep.extend if lr < min(lrs)] if best == min(lrs) else []
        above = [lr for lr in p.sweep.extend if lr > max(lrs)] if best == max(lrs) else []
        nearest = [max(below)] if below else [min(above)] if above else []
        lrs.extend(nearest)
        grew |= bool(nearest)
    return grew


def repeats_final(lr_of: str, name: str, lrs: dict[str, float]) -> bool:
    """A variant run of ``name`` at ``lr_of``'s lr is ``name``'s final run again when that lr is its own."""
    return bool(lr_of) and lrs[lr_of] == lrs[name]


def chosen_lrs(choice: dict[str, dict]) -> dict[str, float]:
    """Each algorithm's chosen lr, from ``choice.json``'s records."""
    return {name: c["lr"] for name, c in choice.items()}


def later_runs(p: ProtocolConfig, out: Path, lrs: dict[str, float]) -> list[Run]:
    """The final runs and the variants', each algorithm at its chosen lr (a variant's ``lr_of``:
    that algorithm's, and none where that is the algorithm's own: its final runs are those runs);
    seed by seed, so the report of an unfinished protocol has every algorithm."""
    stages = [("final", list(p.algorithms), p.final.seeds, p.final.overrides, "")]
    stages += [(name, v.algorithms, v.seeds, [*p.final.overrides, *v.overrides], v.lr_of)
               for name, v in p.variants.items()]
    return [Run(stage, name, lr, seed, (*p.base, *p.algorithms[name], *extra, f"experiment_name={p.name}"),
                out / stage / f"{name}-{lr_name(lr)}-s{seed}")  # a changed choice never reuses a run
            for stage, names, seeds, extra, lr_of in stages for seed in seeds for name in names
            for lr in [lrs[lr_of or name]] if not repeats_final(lr_of, name, lrs)]


def state(run: Run, steps: int) -> str:
    """done, partial (a checkpoint to resume from) or new. A run with no checkpoint is done when it
    was evaluated at its last step: a finished run as committed, its checkpoints left out."""
    latest = latest_checkpoint(run.run_dir)
    if latest is None:
        return "done" if finished_without_checkpoint(run.run_dir, steps) else "new"
    return "done" if checkpoint_step(latest) >= steps else "partial"


def finished_without_checkpoint(run_dir: Path, steps: int) -> bool:
    """Trained ``steps`` steps and evaluated after the last: only the end of a run evaluates at
    ``steps``, so a run killed on the way never passes."""
    metrics, evals = read_table(run_dir / "metrics.parquet"), read_table(run_dir / "eval.parquet")
    return (metrics is not None and evals is not None and not metrics.empty
            and int(metrics["step"].max()) + 1 >= steps and int(evals["step"].max()) >= steps)


def execute(run: Run) -> None:
    """Train ``run`` to its end: skip it when done, resume it when partial."""
    from bench.run import train  # torch loads only when something runs

    overrides = [*run.overrides, f"trainer.lr={run.lr}", f"seed={run.seed}"]
    config = load_run_config(overrides, labels={"algorithm": run.algorithm})
    status = state(run, config.trainer.steps)
    if status == "done":
        return
    if status == "partial":
        config = load_run_config([*overrides, f"trainer.resume={run.run_dir}"], labels={"algorithm": run.algorithm})
    elif run.run_dir.exists():
        shutil.rmtree(run.run_dir)  # stopped before its first checkpoint: nothing to keep
    print(f"protocol: {run.stage} {run.algorithm} lr={run.lr:g} seed={run.seed} ({status}) -> {run.run_dir}", flush=True)
    start = time.monotonic()
    train(config, run.run_dir)
    print(f"protocol: done {run.run_dir} ({(time.monotonic() - start) / 60:.1f} min)", flush=True)
    latest = latest_checkpoint(run.run_dir)
    for old in (run.run_dir / "checkpoints").glob("step-*"):
        if old != latest:
            shutil.rmtree(old)


def execute_all(runs: Sequence[Run], jobs: int) -> None:
    """Every run of ``runs`` to its end, ``jobs`` at a time (each in its own process with
    ``cpu_count // jobs`` threads: a tiny model's run uses few cores well, so several side by
    side get more done); the first failure stops the rest and is raised."""
    if jobs <= 1:
        for run in runs:
            execute(run)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=worker_settings, initargs=(threads,)) as pool:
        futures = [pool.submit(execute, run) for run in runs]
        try:
            for future in as_completed(futures):
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def worker_settings(threads: int) -> None:
    """A protocol worker: ``threads`` torch threads (unless OMP_NUM_THREADS says otherwise) and no
    progress bars, whose lines would interleave with the other workers'."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ["TQDM_DISABLE"] = "1"
    import torch  # already imported by the spawned child's imports, so the variable alone comes too late

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def choose(p: ProtocolConfig, scores: dict[str, dict[float, float]]) -> dict[str, dict]:
    """Per algorithm: the lr with the best validation pass@k at the sweep run's last evaluation
    (ties: the smaller), every lr's value, and whether the best is at an end of the lrs tried."""
    choice: dict[str, dict] = {}
    for name, values in scores.items():
        best = max(sorted(values), key=lambda lr: values[lr])  # max keeps the first of equals: the smaller lr
        choice[name] = {"lr": best, "at_grid_end": best in (min(values), max(values)),
                        f"validation_pass@{p.sweep.k}": {f"{lr:g}": values[lr] for lr in sorted(values)}}
    return choice


def validation_score(p: ProtocolConfig, run: Run) -> float:
    """A sweep run's validation pass@k at its last evaluation."""
    evals = read_table(run.run_dir / "eval.parquet")
    if evals is None:
        raise ConfigError(f"{run.run_dir}: no eval.parquet to choose an lr by")
    rows = evals[(evals["benchmark"] == p.validation) & (evals["k"] == p.sweep.k)].dropna(subset=["pass_at_k"])
    if rows.empty:
        raise ConfigError(f"{run.run_dir}: no pass@{p.sweep.k} on {p.validation} to choose an lr by "
                          f"(sweep.k must be <= eval.n; the run's eval.parquet must be this protocol's)")
    return float(rows.loc[rows["step"].idxmax(), "pass_at_k"])


def choice_lines(p: ProtocolConfig, choice: dict[str, dict]) -> list[str]:
    """The report's account of the lr choice, as markdown lines."""
    key = f"validation_pass@{p.sweep.k}"
    tried = sorted({float(lr) for c in choice.values() for lr in c[key]})
    header = ["algorithm", *(f"lr {lr:g}" for lr in tried), "chosen"]
    extend = (f"; where an algorithm's best was at an end of its grid, the nearest of "
              f"{', '.join(f'{lr:g}' for lr in p.sweep.extend)} past that end, one at a time" if p.sweep.extend else "")
    lines = ["## Learning rates", "", f"Each algorithm's lr maximises pass@{p.sweep.k} on `{p.validation}` (a "
             f"validation split, not the evaluation set) at the end of a sweep run (seed {p.sweep.seed}; settings: "
             f"`{' '.join([*p.sweep.overrides])}`; lrs {', '.join(f'{lr:g}' for lr in p.sweep.lrs)}{extend}); ties go "
             "to the smaller lr. A choice marked *(end)* is the smallest or largest lr its algorithm tried: its best "
             "lr may lie beyond it.", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, c in choice.items():
        values = c[key]
        cells = ["" if f"{lr:g}" not in values else f"**{values[f'{lr:g}']:.3f}**" if lr == c["lr"]
                 else f"{values[f'{lr:g}']:.3f}" for lr in tried]
        chosen = f"{c['lr']:g}" + (" *(end)*" if c["at_grid_end"] else "")
        lines.append("| " + " | ".join([name, *cells, chosen]) + " |")
    return [*lines, ""]


def report(p: ProtocolConfig, out: Path, target: Path, choice: dict[str, dict], runs: list[Run]) -> Path:
    """report.md of the final runs in ``target`` (and one per variant below it); runs of an
    earlier choice that are still on disk are left out."""
    from bench.report import write_report
    from bench.reporting.results import Results, conclusion, load_results

    def current(*stages: str, algorithms: Sequence[str] = ()) -> Results:
        """The runs of ``stages`` (of the first all, of the others only those of ``algorithms``)."""
        return load_results(out, only=[r.run_dir for r in runs if r.stage == stages[0]
                                       or (r.stage in stages and r.algorithm in algorithms)])

    final = current("final")
    others = [name for name in p.algorithms if name not in (p.baseline, p.target)]
    preface = [f"Every other algorithm against {p.baseline}:", "",
               *(line for name in others for line in (conclusion(final, p.baseline, name), "")), *choice_lines(p, choice)]
    lrs = chosen_lrs(choice)
    for name, variant in p.variants.items():
        if variant.lr_of and all(repeats_final(variant.lr_of, a, lrs) for a in variant.algorithms):
            preface += [f"Variant `{name}` ({', '.join(variant.algorithms)} at {variant.lr_of}'s chosen lr) is not run: "
                        f"that lr ({choice[variant.lr_of]['lr']:g}) is their own, so the final runs above are this "
                        "comparison.", ""]
            continue
        if not (out / name).is_dir():
            continue
        if variant.lr_of:  # against the lr's own algorithm's final runs, same settings
            write_report(current(name, "final", algorithms=[variant.lr_of]), target / name, p.baseline, p.target)
            what = (f"{', '.join(variant.algorithms)} at {variant.lr_of}'s chosen lr "
                    f"({choice[variant.lr_of]['lr']:g}), against {variant.lr_of}'s final runs")
        else:
            write_report(current(name), target / name, p.baseline, p.target)
            what = f"`{' '.join(variant.overrides)}`, {', '.join(variant.algorithms)} at their chosen lr"
        preface += [f"Variant `{name}` ({what}): [its report]({name}/report.md).", ""]
    settings = " ".join([*p.base, *p.final.overrides])
    preface += ["## Settings", "", f"Every final run: `{settings}`; per algorithm:", "",
                *(f"- {name}: `{' '.join(args) or '(defaults)'}`" for name, args in p.algorithms.items()), ""]
    return write_report(final, target, p.baseline, p.target, preface=preface)


def run_state(run: Run) -> str:
    """done, partial or new, against the steps the run's own settings ask for."""
    return state(run, planned_steps(run))


@lru_cache(maxsize=None)
def planned_steps(run: Run) -> int:
    """The steps ``run``'s settings ask for (composed once per run: the plan asks again and again)."""
    return load_run_config([*run.overrides, f"seed={run.seed}"]).trainer.steps


def plan_line(run: Run, status: str, score: Optional[str] = None) -> str:
    """The run's state, what it is and where, and a finished sweep run's validation score."""
    return f"{status:8s} {run.stage:16s} {run.algorithm:16s} lr={run.lr:<8g} {run.run_dir}{score or ''}"


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.protocol", description=__doc__.split("\n")[0])
    parser.add_argument("protocol", help="a name in conf/protocol (sums, arith) or a .yaml path")
    parser.add_argument("overrides", nargs="*", help="dot-list overrides of the protocol (final.seeds=[0])")
    parser.add_argument("--out", type=Path, help="the results directory (default: results/<name>)")
    parser.add_argument("--report", type=Path, help="where report.md goes (default: the results directory)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained side by side, each in its own process (default 1)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true", help="list the runs and their state; run nothing")
    mode.add_argument("--report-only", action="store_true",
                      help="report on the final runs so far (unfinished ones with what they have); run nothing")
    args = parser.parse_intermixed_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: give 1 or more runs to train side by side")
    try:
        protocol(args)
    except ConfigError as err:
        print(f"bench.protocol: {err}", file=sys.stderr)
        sys.exit(2)


def protocol(args: argparse.Namespace) -> None:
    p = load_protocol(args.protocol, args.overrides)
    out = args.out or PROJECT_ROOT / "results" / p.name
    grids = {name: sorted(p.sweep.lrs) for name in p.algorithms}
    for run in [*sweep_runs(p, out, grids), *later_runs(p, out, dict.fromkeys(p.algorithms, p.sweep.lrs[0]))]:
        run_state(run)  # a bad override fails now, not hours later
    running = not (args.plan or args.report_only)
    scores: dict[str, dict[float, float]] = {name: {} for name in p.algorithms}
    seen: set[Path] = set()
    while True:  # the sweep, widened where a best lr is at an end of its grid
        new = [run for run in sweep_runs(p, out, grids) if run.run_dir not in seen]
        seen.update(run.run_dir for run in new)
        if running:
            execute_all(new, args.jobs)
        for run in new:
            status = run_state(run)
            if status == "done":
                scores[run.algorithm][run.lr] = validation_score(p, run)
            if args.plan:
                score = f"  validation pass@{p.sweep.k} {scores[run.algorithm][run.lr]:.3f}" if status == "done" else ""
                print(plan_line(run, status, score))
        if not widen(p, grids, scores):
            break
    if any(set(lrs) - set(scores[name]) for name, lrs in grids.items()):  # only without running
        if args.report_only:
            raise ConfigError("the sweep is not finished, so no lr is chosen and no final run exists yet; "
                              "run the protocol first")
        print("(the final runs come once the sweep is done and the lrs are chosen)")
        return
    choice = choose(p, scores)
    later = later_runs(p, out, chosen_lrs(choice))
    if args.plan:
        print("\n".join(plan_line(run, run_state(run)) for run in later))
        return
    write_atomically(out / "choice.json", lambda tmp: tmp.write_text(json.dumps(choice, indent=1)))
    if running:
        execute_all(later, args.jobs)
    if not any(state(run, 1) != "new" for run in later if run.stage == "final"):
        raise ConfigError(f"no final run in {out / 'final'} yet; run the protocol first")
    print(f"report: {report(p, out, args.report or out, choice, later)}")


if __name__ == "__main__":
    main()
