"""Pass@k evaluation: n samples per problem, judged by the task verifiers, summarised by bench.passk.

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
  as for code), ``decoding`` (``sampled``, or ``greedy`` with ``eval.greedy=true``: temperature
  0, one response per problem, its accuracy in the k = 1 row), ``task_version``;
- ``problems.parquet``: one row per (benchmark, step, problem): ``uid``, ``n``, ``c`` (correct
  samples), from which any pass@k and paired comparisons between runs can be recomputed.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import tasks
from bench import passk
from bench.rollout import Sampling
from bench.sinks import Table, checkpoint_step, latest_checkpoint
from tasks.base import Problem, Task, Verdict
from tasks.scoring import Scorer


@dataclass(frozen=True)
class EvalConfig:
    benchmarks: tuple[str, ...] = ()  # empty: the eval sets of the task (the run's, when one is given)
    n: int = 8  # samples per problem
    k: tuple[int, ...] = ()  # empty: every k from 1 to n
    problems: int = 0  # the first this many problems of each benchmark; 0: all
    prompts_per_call: int = 64  # prompts per generate call (times n sequences)
    confidence: float = 0.95  # of the bootstrap interval over problems
    resamples: int = 2000  # bootstrap resamples
    # greedy decoding (temperature 0) with one response per problem, as the RiskPO reference code
    # validates: reported as ``greedy`` accuracy (k = 1, n = 1; eval.n is not used)
    greedy: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "benchmarks", tuple(self.benchmarks))
        object.__setattr__(self, "k", tuple(self.k))
        if self.greedy:
            object.__setattr__(self, "n", 1)
        for name in ("n", "prompts_per_call", "resamples"):
            if getattr(self, name) < 1:
                raise ValueError(f"eval.{name}={getattr(self, name)} must be >= 1")
        if self.problems < 0:
            raise ValueError(f"eval.problems={self.problems} must be >= 0 (0: all)")
        bad = [k for k in self.k if not 1 <= k <= self.n]
        if bad and self.greedy:
            raise ValueError(f"eval.k={list(self.k)}: eval.greedy=true takes one response per problem, so k is 1")
        if bad:
            raise ValueError(f"eval.k={list(self.k)} has {bad[0]}, outside 1..eval.n={self.n}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"eval.confidence={self.confidence} must be in (0, 1)")

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.k))) or tuple(range(1, self.n + 1))

    @property
    def decoding(self) -> str:
        return "greedy" if self.greedy else "sampled"

    def sampling(self, rollout: Sampling) -> Sampling:
        """The decoding of an evaluation: the rollout's sampling, or greedy."""
        return replace(rollout, temperature=0.0) if self.greedy else rollout


@dataclass
class Benchmark:
    name: str
    task: Task
    problems: list[Problem]


@dataclass
class Evaluation:
    rows: list[dict[str, Any]]  # eval.parquet
    problems: list[dict[str, Any]]  # problems.parquet
    seconds: float = 0.0

    def pass_at(self, k: int = 1) -> dict[str, float]:
        """pass@k per benchmark (with greedy decoding, k = 1 is the greedy accuracy)."""
        return {r["benchmark"]: r["pass_at_k"] for r in self.rows if r["k"] == k}


def owner_of(benchmark: str) -> str:
    """The task that loads and judges ``benchmark``."""
    owners = [name for name, task in tasks.TASKS.items() if benchmark in task.benchmarks]
    if not owners:
        known = sorted({b for t in tasks.TASKS.values() for b in t.benchmarks})
        raise ValueError(f"eval.benchmarks: unknown benchmark {benchmark!r}; known: {', '.join(known)}")
    return owners[0]


def load_benchmarks(config: EvalConfig, task_configs: list[Any]) -> list[Benchmark]:
    """Each benchmark with its owner task: built from the first of ``task_configs`` with the owner's
    name, from the owner's defaults otherwise. No ``eval.benchmarks``: the first task's eval sets."""
    given: dict[str, Task] = {}
    for c in task_configs:
        schema = OmegaConf.structured(tasks.get_task(c.name).config_type)
        given.setdefault(c.name, tasks.build(OmegaConf.merge(schema, c)))
    names = config.benchmarks or (next(iter(given.values())).config.eval if given else ())
    if not names:
        raise ValueError("no benchmarks to evaluate: set eval.benchmarks=[...] (e.g. [math500,gsm8k])")
    out = []
    for name in names:
        owner = owner_of(name)
        task = given.get(owner) or tasks.build(tasks.get_task(owner).config_type())
        out.append(Benchmark(name, task, task.load(name)[: config.problems or None]))
    return out


def majority(task: Task, groups: list[list[Verdict]], k: int) -> float:
    """maj@k over problems, voting on the extracted answers; NaN where answers are not comparable (code)."""
    if not task.votes:
        return float("nan")
    keys = [[(v.extracted or "").strip() or None for v in g] for g in groups]
    return float(np.mean([passk.majority_at_k(a, [v.correct for v in g], k) for a, g in zip(keys, groups)]))


class Evaluator:
    """n samples per problem on each benchmark, judged, summarised; the engine is shared with training."""

    def __init__(self, config: EvalConfig, benchmarks: list[Benchmark], engine: Any,
                 scorers: Optional[dict[str, Scorer]] = None) -> None:
        self.config, self.benchmarks, self.engine = config, benchmarks, engine
        self.scorers = dict(scorers or {})
        needed = {b.task.config.name: b.task for b in benchmarks if b.task.config.name not in self.scorers}
        self.owned = [Scorer(task) for task in needed.values()]  # closed by close(); the others are the caller's
        self.scorers |= {s.task.config.name: s for s in self.owned}

    def evaluate(self, step: int, sampling: Sampling, progress: bool = False) -> Evaluation:
        """pass@k (or greedy accuracy) of every benchmark; ``sampling`` is the rollout's, seeded."""
        start, rows, problem_rows = time.monotonic(), [], []
        sampling = self.config.sampling(sampling)
        for bench in self.benchmarks:
            verdicts = self.sample(bench, sampling, progress)
            n = self.config.n
            groups = [verdicts[i * n : (i + 1) * n] for i in range(len(bench.problems))]
            c = np.array([sum(v.correct for v in g) for g in groups])
            problem_rows += [{"benchmark": bench.name, "step": step, "uid": p.uid, "n": n, "c": int(ci)}
                             for p, ci in zip(bench.problems, c)]
            summary = passk.summarize(n, c, self.config.ks, self.config.confidence, self.config.resamples, seed=step)
            rows += [{"benchmark": bench.name, "step": step, **row, "maj_at_k": majority(bench.task, groups, row["k"]),
                      "decoding": self.config.decoding, "task_version": bench.task.version} for row in summary]
        return Evaluation(rows, problem_rows, time.monotonic() - start)

    def sample(self, bench: Benchmark, sampling: Sampling, progress: bool) -> list[Verdict]:
        """n judged samples per problem, problem by problem in order; one seed per generate call."""
        per_call, verdicts = self.config.prompts_per_call, []
        bar = tqdm(total=len(bench.problems), desc=f"eval {bench.name}", unit="problem", disable=not progress)
        for start in range(0, len(bench.problems), per_call):
            chunk = bench.problems[start : start + per_call]
            seeded = replace(sampling, seed=sampling.seed + start)
            rollouts = self.engine.generate([bench.task.prompt(p) for p in chunk], self.config.n, seeded)
            scorer = self.scorers[bench.task.config.name]
            verdicts += scorer.score([chunk[int(i)] for i in rollouts.prompt_b], rollouts.texts)
            bar.update(len(chunk))
        bar.close()
        return verdicts

    def close(self) -> None:
        for scorer in self.owned:
            scorer.close()


# --- the command line ------------------------------------------------------------------------


@dataclass
class Source:
    """What ``checkpoint=`` named: model fields over the ``model`` group's, the run's task settings if
    any, and the step the weights are from."""

    model: dict[str, Any] = field(default_factory=dict)
    tasks: list[DictConfig] = field(default_factory=list)
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

    from bench.config import one_line, validate
    from bench.policy import ModelConfig, load_policy
    from bench.rollout import build_engine

    try:
        validate(cfg)
        config: EvalConfig = OmegaConf.to_object(cfg.eval)
        source = resolve_checkpoint(cfg.checkpoint)
        model_cfg: ModelConfig = OmegaConf.to_object(OmegaConf.merge(cfg.model, source.model))
        benchmarks = load_benchmarks(config, [*source.tasks, cfg.task])
        model, tokenizer = load_policy(model_cfg)
        rollout = OmegaConf.to_object(cfg.rollout)
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

    from bench.config import CONF_DIR

    sys.argv = route_model_argument(sys.argv, {p.stem for p in (CONF_DIR / "model").glob("*.yaml")})
    hydra.main(config_path=str(CONF_DIR), config_name="evaluate", version_base="1.3")(cli)()


if __name__ == "__main__":
    main()
