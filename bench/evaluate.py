"""Pass@k evaluation: n samples per problem, judged by the task verifiers, summarised by bench.evaluation.passk.

    python -m bench.evaluate model=<run dir | checkpoint dir | model dir | conf/model name | hub name> \\
        eval.benchmarks=[math500,aime24] eval.n=16 eval.k=[1,2,4,8,16] rollout.temperature=0.6

``model=`` takes a conf/model preset (then ``model.dtype=...`` and the other fields apply) or any
weights; weights are passed on as ``checkpoint=``. A run directory means its latest checkpoint,
evaluated with the run's task settings (arith's digits, a prompt template) and reported at the
checkpoint's step. Each benchmark is judged by the
task that owns it (math500 -> math, aime24 -> aime, ...). Decoding is the ``rollout`` group's:
engine (hf or vllm), temperature, top_p, top_k, max_new_tokens.

The trainer calls the same ``Evaluator`` every ``trainer.eval_every`` steps on its task's eval
sets, so every run has pass@k curves over training: before the first step and after the last on
every problem, in between on a seeded subset of ``eval.subset`` problems per benchmark (the same
problems at every step and in every run). bench.evaluate evaluates every problem. Both write, in
the output directory:

- ``eval.parquet``: one row per (benchmark, step, k): ``pass_at_k`` (the unbiased estimator,
  every k in ``eval.k``, default 1..n), ``n``, ``stderr`` and a bootstrap ``ci_low``/``ci_high``
  over problems, ``maj_at_k`` (majority vote of k samples; NaN where answers are not comparable,
  as for code), ``distinct_correct`` and ``answer_entropy`` (the mean over problems of the number
  of different correct answers among the n samples and of the entropy of their answers, in nats:
  the sequence-level diversity; NaN for code; the same in every k row), ``decoding``
  (``sampled``, or ``greedy`` with ``eval.greedy=true``: temperature 0, one response per
  problem, its accuracy in the k = 1 row), ``problems`` (how many were evaluated) and
  ``problem_set`` (``full``, or ``subset`` for the trainer's evaluations in between), ``task_version``;
- ``problems.parquet``: one row per (benchmark, step, problem): ``uid``, ``n``, ``c`` (correct
  samples), ``distinct_correct``, ``answer_entropy``, from which any pass@k and paired
  comparisons between runs can be recomputed.

bench.evaluate also writes ``run.json``, the identity a training run's has (algorithm label, task,
model, seed, experiment), so that ``bench.report`` compares the directory as an evaluation-only run
(weights trained elsewhere, e.g. by verl)::

    python -m bench.evaluate model=weights/riskpo_reference-math-s0 task=math label=riskpo_reference \
        seed=0 experiment_name=verl output_dir=results/verl/riskpo_reference-math-s0

``label``, ``seed`` and ``experiment_name`` default to the evaluated run's own (a run directory or
one of its checkpoints; its task and model too), else to the model's name, 0 and ``evaluate``,
with the task that owns the first benchmark. ``seed`` also seeds the sampling.

An output directory holds one run: a ``run.json`` already there (a training run's, or an earlier
evaluation's) must name the same identity, else bench.evaluate refuses before any work. So a run
directory may be re-evaluated into itself (``output_dir=<run dir>``, e.g. with a larger
``eval.n`` at the end of training): the new rows replace the ones there of the same benchmark and
step (the trainer's final evaluation), never adding a second copy, and run.json stays the run's.
The directory is locked while bench.evaluate writes it, as a training run locks its own.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from omegaconf import DictConfig, OmegaConf

import tasks
from bench.config import EvalConfig, EvaluateSettings, ModelConfig, RolloutConfig
from bench.evaluation.evaluator import Evaluation, Evaluator, load_benchmarks
from bench.training.checkpoints import checkpoint_step, latest_checkpoint
from bench.training.sinks import RUN_FILES, RUN_IDENTITY, RunLock, Table, identify, written
from common import write_atomically


@dataclass
class Source:
    """What ``checkpoint=`` named: model fields over the ``model`` group's, the run's task settings and
    identity if any, and the step the weights are from."""

    model: dict[str, Any] = field(default_factory=dict)
    tasks: list[DictConfig] = field(default_factory=list)  # task nodes of the run's config.yaml
    step: int = 0
    identity: dict[str, Any] = field(default_factory=dict)  # the run's run.json (RUN_IDENTITY); empty for other weights


def resolve_checkpoint(spec: Optional[str]) -> Source:
    """A run directory (its latest checkpoint), a checkpoint directory, a model directory or a hub name."""
    if not spec:
        return Source()
    path = Path(spec).expanduser()
    path = latest_checkpoint(path) or path
    if (path / "trainer.pt").is_file() and (path / "model").is_dir():  # a checkpoint of a run
        run_dir = path.parent.parent
        run = OmegaConf.load(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else None
        model = {"name": run.model.name if run else run_dir.name, "path": str(path / "model")}
        return Source(model, [run.task] if run else [], checkpoint_step(path), run_identity(run_dir))
    if (path / "config.json").is_file():
        return Source({"name": path.name, "path": str(path)})
    if spec.startswith((".", "/", "~")) or path.exists():
        raise FileNotFoundError(f"model={spec}: not a run directory, a checkpoint or a model directory "
                                "(none of checkpoints/latest, trainer.pt + model/, config.json there)")
    return Source({"name": spec.rsplit("/", 1)[-1], "path": spec})  # a hub name; offline, load_policy says so


def run_identity(run_dir: Path) -> dict[str, Any]:
    """The identity of the run in ``run_dir``, as bench.report reads it; empty when it has none (a
    checkpoint copied out of its run, a directory holding no run)."""
    try:
        found = identify(run_dir, run_dir.parent)
    except ValueError:  # neither run.json nor config.yaml nor a run's name
        return {}
    return {key: found.get(key) for key in RUN_IDENTITY}


def identity(settings: EvaluateSettings, source: Source, model: str, task: str) -> dict[str, Any]:
    """The evaluation's run.json: each field as given (``label``, ``seed``, ``experiment_name``),
    else the evaluated run's, else ``model``'s name, seed 0, experiment "evaluate"; the task is the
    run's, else ``task`` (the owner of the first benchmark)."""
    given = {"algorithm": settings.label, "seed": settings.seed, "experiment": settings.experiment_name}
    otherwise = {"algorithm": model, "task": task, "model": model, "seed": 0, "experiment": "evaluate"}
    return {key: next(value for value in (given.get(key), source.identity.get(key), otherwise[key])
                      if value is not None) for key in RUN_IDENTITY}


def claim(out: Path, ident: dict[str, Any]) -> RunLock:
    """Lock ``out`` for this evaluation; a ValueError if it already holds another run's results
    (a directory holds one run: the same identity may be re-evaluated into it)."""
    lock = RunLock(out)
    holds = [name for name in ("run.json", *RUN_FILES) if written(out / name)]
    there = run_identity(out) if holds else ident
    if not there or any(value is not None and value != ident[key] for key, value in there.items()):
        lock.release()
        named = ", ".join(f"{k}={v}" for k, v in there.items()) if there else "a run without run.json"
        raise ValueError(f"output_dir={out} holds the results of {named} ({holds[0]}), not of "
                         f"{', '.join(f'{k}={v}' for k, v in ident.items())}: one directory holds one run; "
                         "choose another output_dir")
    return lock


def route_model_argument(argv: list[str], presets: set[str]) -> list[str]:
    """``model=<path or hub name>`` means ``checkpoint=<it>``: ``model`` is also the Hydra group of
    the conf/model presets, which accepts only their names."""
    return [f"checkpoint={a[6:]}" if a.startswith("model=") and a[6:] not in presets else a for a in argv]


def write_results(out: Path, evaluation: Evaluation, ident: dict[str, Any]) -> None:
    """run.json unless there (``claim`` checked it agrees), and the rows of eval.parquet and
    problems.parquet: rows already there of an evaluated (benchmark, step), the trainer's or an
    earlier evaluation's, are replaced, so none is counted twice: in one write of each table's one
    file (``Table.rewrite``)."""
    if not (out / "run.json").is_file():
        write_atomically(out / "run.json", lambda tmp: tmp.write_text(json.dumps(ident, indent=2)))
    done = {(row["benchmark"], row["step"]) for row in evaluation.rows}
    for name, rows in (("eval", evaluation.rows), ("problems", evaluation.problems)):
        table = Table(out / f"{name}.parquet")
        table.rewrite([*(row for row in table.rows if (row["benchmark"], row["step"]) not in done), *rows])


def table(evaluation: Evaluation) -> str:
    frame = pd.DataFrame(evaluation.rows)
    frame["cell"] = [f"{p:.3f} ± {s:.3f}" for p, s in zip(frame["pass_at_k"], frame["stderr"])]
    wide = frame.pivot(index="benchmark", columns="k", values="cell")
    greedy = (frame["decoding"] == "greedy").all()
    wide.columns = ["greedy" if greedy else f"pass@{k}" for k in wide.columns]
    return wide.to_string()


def cli(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from bench.compose import one_line, validate
    from bench.engines import build_engine
    from bench.models.policy import load_image_processor, load_policy

    try:
        validate(cfg)
        settings = EvaluateSettings(**{f.name: cfg[f.name] for f in fields(EvaluateSettings)})
        config: EvalConfig = OmegaConf.to_object(cfg.eval)
        source = resolve_checkpoint(settings.checkpoint)
        model_cfg: ModelConfig = OmegaConf.to_object(OmegaConf.merge(cfg.model, source.model))
        given = [tasks.build(OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(
            tasks.get_task(c.name).config_type), c))) for c in [*source.tasks, cfg.task]]
        benchmarks = load_benchmarks(config, given)
        ident = identity(settings, source, model_cfg.name, benchmarks[0].task.config.name)
        out = Path(settings.output_dir or HydraConfig.get().runtime.output_dir)
        lock = claim(out, ident)
        model, tokenizer = load_policy(model_cfg)
        rollout: RolloutConfig = OmegaConf.to_object(cfg.rollout)
        engine = build_engine(rollout, model, tokenizer, seed=ident["seed"],
                              image_processor=load_image_processor(model_cfg, model))
    except (ValueError, KeyError, TypeError, OSError, ImportError) as err:
        print(f"bench.evaluate: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    evaluator = Evaluator(config, benchmarks, engine)
    try:
        evaluation = evaluator.evaluate(source.step, rollout.sampling(seed=ident["seed"]), progress=True)
        write_results(out, evaluation, ident)
    finally:
        evaluator.close()
        lock.release()
    print(f"{model_cfg.name} at step {source.step}, {'greedy' if config.greedy else f'n={config.n}'}, "
          f"{', '.join(f'{b.name} ({len(b.problems)})' for b in benchmarks)}; {evaluation.seconds:.0f} s")
    print(table(evaluation))
    print(f"reported as {ident['algorithm']}, seed {ident['seed']}, experiment {ident['experiment']}, "
          f"task {ident['task']}")
    print(f"results: {out}")


def main() -> None:
    import hydra

    from bench.compose import CONF_DIR, ConfigError, check_command_line, fail, writable

    sys.argv = route_model_argument(sys.argv, {p.stem for p in (CONF_DIR / "model").glob("*.yaml")})
    cfg = check_command_line("bench.evaluate", "evaluate", sys.argv[1:])
    if cfg is not None and cfg.output_dir:  # else Hydra's own results/evaluate/<time>
        try:
            writable(Path(cfg.output_dir), "output_dir")
        except ConfigError as err:
            fail("bench.evaluate", err)
    hydra.main(config_path=str(CONF_DIR), config_name="evaluate", version_base="1.3")(cli)()


if __name__ == "__main__":
    main()
