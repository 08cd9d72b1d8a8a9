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
sets, so every run has pass@k curves over training. Both write, in the output directory:

- ``eval.parquet``: one row per (benchmark, step, k): ``pass_at_k`` (the unbiased estimator,
  every k in ``eval.k``, default 1..n), ``n``, ``stderr`` and a bootstrap ``ci_low``/``ci_high``
  over problems, ``maj_at_k`` (majority vote of k samples; NaN where answers are not comparable,
  as for code), ``distinct_correct`` and ``answer_entropy`` (the mean over problems of the number
  of different correct answers among the n samples and of the entropy of their answers, in nats:
  the sequence-level diversity; NaN for code; the same in every k row), ``decoding``
  (``sampled``, or ``greedy`` with ``eval.greedy=true``: temperature 0, one response per
  problem, its accuracy in the k = 1 row), ``task_version``;
- ``problems.parquet``: one row per (benchmark, step, problem): ``uid``, ``n``, ``c`` (correct
  samples), ``distinct_correct``, ``answer_entropy``, from which any pass@k and paired
  comparisons between runs can be recomputed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from omegaconf import DictConfig, OmegaConf

import tasks
from bench.config import EvalConfig, ModelConfig, RolloutConfig
from bench.evaluation.evaluator import Evaluation, Evaluator, load_benchmarks
from bench.training.checkpoints import checkpoint_step, latest_checkpoint
from bench.training.sinks import Table


@dataclass
class Source:
    """What ``checkpoint=`` named: model fields over the ``model`` group's, the run's task settings if
    any, and the step the weights are from."""

    model: dict[str, Any] = field(default_factory=dict)
    tasks: list[DictConfig] = field(default_factory=list)  # task nodes of the run's config.yaml
    step: int = 0


def resolve_checkpoint(spec: Optional[str]) -> Source:
    """A run directory (its latest checkpoint), a checkpoint directory, a model directory or a hub name."""
    if not spec:
        return Source()
    path = Path(spec).expanduser()
    path = latest_checkpoint(path) or path
    if (path / "trainer.pt").is_file() and (path / "model").is_dir():  # a checkpoint of a run
        config = path.parent.parent / "config.yaml"
        run = OmegaConf.load(config) if config.is_file() else None
        model = {"name": run.model.name if run else path.parent.parent.name, "path": str(path / "model")}
        return Source(model, [run.task] if run else [], checkpoint_step(path))
    if (path / "config.json").is_file():
        return Source({"name": path.name, "path": str(path)})
    if spec.startswith((".", "/", "~")) or path.exists():
        raise FileNotFoundError(f"model={spec}: not a run directory, a checkpoint or a model directory "
                                "(none of checkpoints/latest, trainer.pt + model/, config.json there)")
    return Source({"name": spec.rsplit("/", 1)[-1], "path": spec})  # a hub name; offline, load_policy says so


def route_model_argument(argv: list[str], presets: set[str]) -> list[str]:
    """``model=<path or hub name>`` means ``checkpoint=<it>``: ``model`` is also the Hydra group of
    the conf/model presets, which accepts only their names."""
    return [f"checkpoint={a[6:]}" if a.startswith("model=") and a[6:] not in presets else a for a in argv]


def write_results(out: Path, evaluation: Evaluation) -> None:
    Table(out / "eval.parquet").add(evaluation.rows)
    Table(out / "problems.parquet").add(evaluation.problems)


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
    from bench.models.policy import load_policy

    try:
        validate(cfg)
        config: EvalConfig = OmegaConf.to_object(cfg.eval)
        source = resolve_checkpoint(cfg.checkpoint)
        model_cfg: ModelConfig = OmegaConf.to_object(OmegaConf.merge(cfg.model, source.model))
        given = [tasks.build(OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(
            tasks.get_task(c.name).config_type), c))) for c in [*source.tasks, cfg.task]]
        benchmarks = load_benchmarks(config, given)
        model, tokenizer = load_policy(model_cfg)
        rollout: RolloutConfig = OmegaConf.to_object(cfg.rollout)
        engine = build_engine(rollout, model, tokenizer, seed=cfg.seed)
    except (ValueError, KeyError, TypeError, OSError, ImportError) as err:
        print(f"bench.evaluate: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    out = Path(cfg.output_dir) if cfg.output_dir else Path(HydraConfig.get().runtime.output_dir)
    evaluator = Evaluator(config, benchmarks, engine)
    try:
        evaluation = evaluator.evaluate(source.step, rollout.sampling(seed=cfg.seed), progress=True)
    finally:
        evaluator.close()
    write_results(out, evaluation)
    print(f"{model_cfg.name} at step {source.step}, {'greedy' if config.greedy else f'n={config.n}'}, "
          f"{', '.join(f'{b.name} ({len(b.problems)})' for b in benchmarks)}; {evaluation.seconds:.0f} s")
    print(table(evaluation))
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
