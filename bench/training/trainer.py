"""The RL loop: one direction of data, every algorithm through the same hooks.

    evaluate()                                            # pass@k before training
    for step in range(steps):
        problems  = sampler.take(P)                       # seeded, same for every algorithm
        rollouts  = engine.generate(prompts, n)           # + more rounds while select drops prompts
        verdicts  = scorer.score(...)                     # the task's verifier, in worker processes
        adv       = advantage_step(algo, rewards, P, state)   # select -> group -> advantages
        updater.update(...)                               # epochs, mini-batches, micro-batches (update.py)
        engine.sync_weights(model)
        evaluate() every eval_every steps (on eval.subset's problems; the last on all of them)
        sinks.log(step, metrics); checkpoint() on schedule

``Trainer.fit`` is that loop. The trainer sees only the typed ``RunConfig`` (built once at the
command line) and never tests an algorithm's name: what differs lives in the algorithm's hooks.
Its engine, scorer and policy can be handed in (tests, benchmarks); otherwise it builds them.
Under torchrun the same loop is data-parallel (bench/training/distributed.py): ranks generate and
judge shares of each step's prompts, every rank sees the whole batch, each backpropagates its part.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm import tqdm

import algorithms
import tasks
from algorithms.base import RewardBatch, advantage_step
from bench.config import RunConfig, Sampling, plain
from bench.engines import Engine, Rollouts, build_engine
from bench.evaluation.evaluator import Evaluator, load_benchmarks
from bench.models.policy import load_image_processor, load_policy
from bench.training import checkpoints, distributed, measures, seeds
from bench.training.checkpoints import checkpoint_dir, latest_checkpoint, load_intact, remove_leftovers
from bench.training.measures import StageClock
from bench.training.sinks import RunLock, Silent, Sinks
from bench.training.update import UpdateBatch, Updater
from common import write_atomically
from tasks.base import Problem, Verdict
from tasks.scoring import Scorer


@dataclass
class Collected:
    """One step's training batch after selection: P prompts x n responses, judged."""

    problems: list[Problem]
    rollouts: Rollouts
    verdicts: list[Verdict]
    generated: dict[str, float]  # budget and rollout statistics over everything generated


@dataclass
class Summary:
    """What ``fit`` reports: pass@1 (or greedy accuracy) per benchmark before and after, and the
    first and last step's metrics of this process."""

    before: dict[str, float]
    after: dict[str, float]
    first: Optional[dict[str, float]] = None
    last: Optional[dict[str, float]] = None


class Trainer:
    def __init__(self, config: RunConfig, run_dir: Path, *, policy: Optional[tuple[Any, Any]] = None,
                 engine: Optional[Engine] = None, scorer: Optional[Scorer] = None) -> None:
        """``policy`` (model, tokenizer), ``engine`` (sampling from that model) and ``scorer``
        (of this run's task) are built from the config unless given; what is given stays the
        caller's to close."""
        self.config, self.t, self.run_dir = config, config.trainer, run_dir
        self.world = distributed.init_world(config.model.device.value)  # World() without torchrun
        self.lock = RunLock(run_dir) if self.world.main else None  # a second writer of this directory stops here
        try:
            self._build(config, run_dir, policy, engine, scorer)
        except BaseException:
            self.release()
            raise

    def _build(self, config: RunConfig, run_dir: Path, policy: Optional[tuple[Any, Any]], engine: Optional[Engine],
               scorer: Optional[Scorer]) -> None:
        if self.world.main:
            remove_leftovers(run_dir)
        self.world.barrier()
        self.algo = algorithms.build(config.algorithm)
        self.task = tasks.build(config.task)
        seeds.seed_everything(config.seed)
        if self.t.threads:
            torch.set_num_threads(self.t.threads)
        self.model, self.tokenizer = policy or load_policy(config.model)
        self.image_processor = load_image_processor(config.model, self.model)  # None for a text model
        self.device = next(self.model.parameters()).device
        # frozen replicas, whole on every rank (no collectives to keep in step)
        self.ref = copy.deepcopy(self.model).eval().requires_grad_(False) if config.algorithm.kl_coef > 0 else None
        self.initial = self.ref  # the weights before any update (before a resume restores later ones)
        if self.initial is None and config.eval.kl_from_initial and not config.eval.greedy:
            self.initial = copy.deepcopy(self.model).eval().requires_grad_(False)
        # vLLM with tensor parallelism: every rank passes the same prompts (one engine over all of them)
        self.replicated = self.world.size > 1 and config.rollout.tensor_parallel_size > 1
        if self.world.size > 1:
            if self.t.prompts_per_step % self.world.size and not self.replicated:
                raise ValueError(f"trainer.prompts_per_step={self.t.prompts_per_step} does not split evenly over "
                                 f"{self.world.size} ranks; make it a multiple of --nproc-per-node")
            distributed.shard(self.model, self.world)
        self.engine = engine or build_engine(config.rollout, self.model, self.tokenizer, seed=config.seed,
                                             image_processor=self.image_processor)
        trainable = [p for p in self.model.parameters() if p.requires_grad]  # a frozen vision tower is not
        self.optimizer = torch.optim.AdamW(trainable, lr=self.t.lr, weight_decay=self.t.weight_decay)
        warmup = max(self.t.warmup_steps, 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)))
        self.pool = self.task.load(self.task.config.train)
        self.sampler = seeds.PromptSampler(len(self.pool), config.seed)
        self.state = self.algo.init_state()
        self.step, self.budget = 0, {"prompts": 0, "samples": 0, "generated_tokens": 0, "wall_seconds": 0.0}
        if self.t.resume:
            self._restore(Path(self.t.resume))
        self.clock = StageClock()
        self.updater = Updater(config, self.algo, self.model, self.ref, self.optimizer, self.scheduler, self.world,
                               self.clock)
        self.owned_scorer = None if scorer is not None else Scorer(self.task)
        self.scorer = scorer or self.owned_scorer
        self.evaluator = Evaluator(config.eval, load_benchmarks(config.eval, [self.task]), self.engine,
                                   {self.task.config.name: self.scorer},
                                   divergence=self.kl_from_initial if config.eval.kl_from_initial else None,
                                   world=self.world)
        self.sinks = Silent() if not self.world.main else Sinks(
            run_dir, plain(config), config.logger, str(self.device), resume_step=self.step,
            identity={"algorithm": config.label("algorithm"), "task": config.label("task"),
                      "model": config.label("model"), "seed": config.seed, "experiment": config.experiment_name},
            world=self.world.describe())

    # --- the loop -------------------------------------------------------------------------------

    def fit(self) -> Summary:
        """Evaluate, train to ``trainer.steps`` (evaluating and checkpointing on schedule), evaluate,
        checkpoint. A resumed run continues from its checkpoint's step."""
        t = self.t
        summary = Summary(before=self.evaluate() if self.step == 0 else {}, after={})
        bar = tqdm(range(self.step, t.steps), initial=self.step, total=t.steps, desc=self.config.label("algorithm"),
                   disable=not self.world.main or bool(os.environ.get("TQDM_DISABLE")))  # tqdm's own switch
        for step in bar:
            metrics, samples = self.train_step(step)
            self.step = step + 1
            last_step = self.step == t.steps
            if last_step:
                summary.after = self.evaluate()
            elif t.eval_every and self.step % t.eval_every == 0:
                self.evaluate(full=False)  # eval.subset's problems: the curve between the two full ones
            metrics |= self.clock.lap()
            self.sinks.log(step, metrics, samples)
            summary.first, summary.last = summary.first or metrics, metrics
            bar.set_postfix(reward=f"{metrics['train/reward_mean']:.3f}", entropy=f"{metrics['train/entropy']:.3f}")
            if last_step or (t.checkpoint_every and self.step % t.checkpoint_every == 0):
                self.checkpoint()
        if not summary.after:  # resumed at the end: nothing left to train, the last evaluation is on disk
            summary.after = self.world.broadcast(self.sinks.evaluated(self.step)) or self.evaluate()
        return summary

    def train_step(self, step: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """One step: collect, advantages, update, push the weights; its metrics and kept samples."""
        start = time.monotonic()
        batch = self.collect(step)
        r = batch.rollouts.to(self.device)
        rewards_b = torch.tensor([v.reward for v in batch.verdicts], dtype=torch.float32)
        reward_batch = RewardBatch(rewards_b=rewards_b, prompt_b=r.prompt_b.cpu(), lengths_b=r.lengths_b.cpu(),
                                   max_length=self.config.rollout.max_new_tokens,
                                   seed=seeds.pairing_seed(self.config.seed, step))
        with self.clock("advantages"):
            out = advantage_step(self.algo, reward_batch, len(batch.problems), self.state)
        self.state = out.out.state
        self.world.check_same(self.algo.save_state(self.state), "the algorithm state (RiskPO's tracker)")
        adv_b = out.adv_b
        answer_bt, other_bt = measures.answer_tokens(self.task, self.tokenizer, batch.rollouts, self.device)
        metrics = self.updater.update(UpdateBatch(r, adv_b.to(self.device, torch.float32), answer_bt=answer_bt,
                                          other_bt=other_bt), step)
        adv = adv_b.double()
        metrics.update({
            "train/reward_mean": rewards_b.mean().item(),
            "train/accuracy": sum(v.correct for v in batch.verdicts) / len(batch.verdicts),
            "train/adv_mean": adv.mean().item(), "train/adv_std": adv.std().item() if adv.numel() > 1 else 0.0,
            "train/adv_min": adv.min().item(), "train/adv_max": adv.max().item(),
            "train/lr": self.scheduler.get_last_lr()[0],
            **batch.generated,
            **{f"algo/{self.algo.config.name}/{k}": float(v) for k, v in out.out.metrics.items() if v is not None},
        })
        with self.clock("sync"):
            self.engine.sync_weights(self.model)
        self.budget["wall_seconds"] += time.monotonic() - start
        metrics.update({f"budget/{k}": v for k, v in self.budget.items()})
        return metrics, self.samples(batch, adv_b)

    # --- collect: generate and judge until the batch is full -------------------------------------

    def sampling(self, step: int, round_: int = 0) -> Sampling:
        """Seeded by (run seed, step, round): a resumed run samples exactly what it would have."""
        return self.config.rollout.sampling(seed=seeds.sampling_seed(self.config.seed, step, round_))

    def generate(self, problems: list[Problem], n: int, sampling: Sampling) -> tuple[Rollouts, list[Verdict]]:
        """n judged responses for each of ``problems``: data-parallel ranks generate and judge their
        share, then every rank gets the whole batch, in order (sampling is keyed by prompt index, so
        the batch does not depend on the world size)."""
        share = range(len(problems)) if self.replicated else self.world.share(len(problems))
        with self.clock("generate"):
            rollouts = self.engine.generate([self.task.prompt(problems[i]) for i in share], n, sampling,
                                            first=share.start)
        with self.clock("score"):
            verdicts = self.scorer.score([problems[share.start + int(i)] for i in rollouts.prompt_b], rollouts.texts)
        if len(share) < len(problems):
            parts = self.world.gather((rollouts, verdicts))
            rollouts = Rollouts.cat([part[0] for part in parts], renumber=True)
            verdicts = distributed.cat_parts([part[1] for part in parts])
        return rollouts, verdicts

    def collect(self, step: int) -> Collected:
        """Generate and judge until P prompts are kept, or ``max_resample`` extra rounds are spent."""
        P, n = self.t.prompts_per_step, self.config.rollout.n
        kept: list[tuple[Problem, Rollouts, list[Verdict]]] = []
        stats = {"prompts": 0, "samples": 0, "tokens": 0, "truncated": 0, "zero_var": 0}
        for round_ in range(self.t.max_resample + 1):
            problems = [self.pool[i] for i in self.sampler.take(P)]
            rollouts, verdicts = self.generate(problems, n, self.sampling(step, round_))
            rewards_b = torch.tensor([v.reward for v in verdicts], dtype=torch.float32)
            keep_p = self.algo.select(RewardBatch(rewards_b=rewards_b, prompt_b=rollouts.prompt_b), P)
            stats["prompts"] += P
            stats["samples"] += len(verdicts)
            stats["tokens"] += int(rollouts.lengths_b.sum())
            stats["truncated"] += sum(f == "length" for f in rollouts.finish)
            constant = [len({verdicts[j].reward for j in range(i * n, (i + 1) * n)}) == 1 for i in range(P)]
            stats["zero_var"] += sum(constant)
            for p in keep_p.nonzero().flatten().tolist()[: P - len(kept)]:
                rows = list(range(p * n, (p + 1) * n))
                kept.append((problems[p], rollouts.select(rows), verdicts[p * n : (p + 1) * n]))
            if len(kept) == P:
                break
        if len(kept) < P and self.world.main:
            print(f"warning: step {step}: select kept {len(kept)}/{P} prompts after {self.t.max_resample} "
                  "extra rounds; training on those (raise trainer.max_resample to fill the batch)")
        generated = {
            "rollout/response_length": stats["tokens"] / stats["samples"],
            "rollout/truncation_rate": stats["truncated"] / stats["samples"],
            "rollout/zero_variance_groups": stats["zero_var"] / stats["prompts"],
            "rollout/rounds": round_ + 1,
        }
        self.budget["prompts"] += stats["prompts"]
        self.budget["samples"] += stats["samples"]
        self.budget["generated_tokens"] += stats["tokens"]
        return Collected(problems=[k[0] for k in kept], rollouts=Rollouts.cat([k[1] for k in kept], renumber=True),
                         verdicts=[v for k in kept for v in k[2]], generated=generated)

    def kl_from_initial(self, r: Rollouts) -> torch.Tensor:
        return measures.kl_from(self.initial, self.model, r, rows=self.t.micro_batch_size,
                                chunk=self.config.model.logprob_chunk, temperature=self.config.rollout.temperature)

    def samples(self, batch: Collected, adv_b: torch.Tensor) -> list[dict[str, Any]]:
        n, keep = self.config.rollout.n, self.t.samples_per_step
        picks = range(0, len(batch.verdicts), max(1, len(batch.verdicts) // max(keep, 1)))
        return [{"uid": batch.problems[i // n].uid, "completion": batch.rollouts.texts[i],
                 "reward": batch.verdicts[i].reward, "correct": batch.verdicts[i].correct,
                 "extracted": batch.verdicts[i].extracted, "reason": batch.verdicts[i].reason,
                 "advantage": float(adv_b[i])} for i in list(picks)[:keep]]

    # --- evaluation, checkpoints ----------------------------------------------------------------

    def evaluate(self, full: bool = True) -> dict[str, float]:
        """pass@k on every eval benchmark at the current step (``full=False``: on its seeded subset);
        returns pass@1 per benchmark."""
        with self.clock("eval"):
            evaluation = self.evaluator.evaluate(self.step, self.sampling(self.step, seeds.EVAL_ROUND), full=full)
            self.sinks.log_eval(self.step, evaluation.rows, evaluation.problems)
        return evaluation.pass_at(1)

    def checkpoint(self) -> Path:
        """Save everything a resume needs; a kill at any moment leaves the previous checkpoint usable
        (the new one is written under a temporary name and moved into place, then ``latest`` is switched)."""
        path = checkpoint_dir(self.run_dir, self.step)
        if latest_checkpoint(self.run_dir) == path:  # resumed from it: written once, never over itself
            return path
        with self.clock("checkpoint"):
            if self.world.size == 1:
                write_atomically(path, self._save)
                checkpoints.switch_latest(path)
            else:
                checkpoints.write_sharded(path, self.world, self._save_sharded)
        return path

    def _state(self) -> dict[str, Any]:
        """What a resume needs besides the weights, the optimizer and the random states."""
        return {"step": self.step, "scheduler": self.scheduler.state_dict(), "world_size": self.world.size,
                "algorithm_state": self.algo.save_state(self.state), "sampler": self.sampler.position,
                "budget": self.budget}

    def _save(self, directory: Path) -> None:
        self.model.save_pretrained(directory / "model")
        self._save_processing(directory / "model")
        torch.save({**self._state(), "optimizer": self.optimizer.state_dict(), "rng": seeds.rng_state()},
                   directory / "trainer.pt")

    def _save_sharded(self, directory: Path) -> None:
        """Every rank its shards (DCP) and random state; rank 0 the whole-model export and the rest."""
        checkpoints.save_sharded(directory, self.model, self.optimizer, self.world)
        weights = distributed.full_state_dict(self.model)  # every rank takes part in the gather
        if self.world.main:
            self.model.save_pretrained(directory / "model", state_dict=weights)
            self._save_processing(directory / "model")
            torch.save(self._state(), directory / "trainer.pt")

    def _save_processing(self, directory: Path) -> None:
        """The tokenizer (and a vision-language policy's image processor) beside the exported weights."""
        self.tokenizer.save_pretrained(directory)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(directory)

    def _restore(self, run_dir: Path) -> None:
        """Continue from the newest intact checkpoint of ``run_dir`` (rank 0 chooses it)."""
        found = load_intact(run_dir, type(self.model)) if self.world.main else None
        path = self.world.broadcast(None if found is None else found[0])
        if checkpoints.sharded(path):
            checkpoints.load_sharded(path, self.model, self.optimizer, self.world)
            saved = found[2] if found is not None else torch.load(path / "trainer.pt", weights_only=False)
        elif self.world.size > 1:
            raise ValueError(f"trainer.resume={run_dir}: {path.name} was written by a single-process run; "
                             "resume it with one process (python -m bench.run)")
        else:
            _, weights, saved = found
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(saved["optimizer"])
            seeds.set_rng_state(saved["rng"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = self.algo.restore_state(saved["algorithm_state"])
        self.sampler.position, self.budget, self.step = saved["sampler"], saved["budget"], saved["step"]
        self.engine.sync_weights(self.model)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def close(self) -> None:
        try:
            self.evaluator.close()
            if self.owned_scorer is not None:
                self.owned_scorer.close()
            self.sinks.close()
        finally:
            self.release()

