"""The RL loop: one direction of data, every algorithm through the same hooks.

    evaluate()                                            # pass@k before training
    for step in range(steps):
        problems  = sampler.take(P)                       # seeded, same for every algorithm
        rollouts  = engine.generate(prompts, n)           # + more rounds while select drops prompts
        verdicts  = scorer.score(...)                     # the task's verifier, in worker processes
        adv       = advantage_step(algo, rewards, P, state)   # select -> group -> advantages
        for epoch, mini-batch: norm over the mini-batch; for micro-batch: loss.backward()
        optimizer.step(); engine.sync_weights(model)
        evaluate() every eval_every steps; sinks.log(step, metrics); checkpoint() on schedule

``Trainer.fit`` is that loop. The trainer sees only the typed ``RunConfig`` (built once at the
command line) and never tests an algorithm's name: what differs lives in the algorithm's hooks.
Its engine, scorer and policy can be handed in (tests, benchmarks); otherwise it builds them.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm import tqdm

import algorithms
import tasks
from algorithms import ops
from algorithms.base import LossNorm, PolicyBatch, RewardBatch, advantage_step
from bench.config import RunConfig, Sampling, plain
from bench.engines import Engine, Rollouts, build_engine
from bench.evaluation.evaluator import Evaluator, load_benchmarks
from bench.models.policy import load_policy, token_logprobs
from bench.training import measures, seeds
from bench.training.checkpoints import checkpoint_dir, latest_checkpoint, load_intact, remove_leftovers
from bench.training.measures import StageClock
from bench.training.sinks import RunLock, Sinks
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


@dataclass(frozen=True)
class UpdateBatch:
    """What every micro-step of one update reads; rows are picked from it."""

    rollouts: Rollouts  # on the policy's device
    adv_b: torch.Tensor  # [N] float32
    old_logp_bt: Optional[torch.Tensor] = None  # [N, T] the sampling policy's; None: each pass's own, detached
    ref_logp_bt: Optional[torch.Tensor] = None  # [N, T] the reference's (KL penalty)
    answer_bt: Optional[torch.Tensor] = None  # [N, T] bool: answer tokens (Task.answer_spans)
    other_bt: Optional[torch.Tensor] = None  # [N, T] bool: the other response tokens of rows that map


@dataclass(frozen=True)
class MicroStats:
    """One micro-batch's contribution to the step's statistics."""

    loss: float  # its share of the mini-batch loss (they sum to the mini-batch's)
    token_sums: dict[str, float] = field(default_factory=dict)  # token-weighted sums, divided by all tokens later
    logprob_diff_max: Optional[float] = None  # the largest |engine - policy| log-prob gap (engines that report them)
    rows: Optional[torch.Tensor] = None  # [b] the micro-batch's rows, with seq_logp_b
    seq_logp_b: Optional[torch.Tensor] = None  # [b] float64, each response's log-prob under the sampling policy


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
        self.lock = RunLock(run_dir)  # first: a second writer of this directory stops here
        try:
            self._build(config, run_dir, policy, engine, scorer)
        except BaseException:
            self.lock.release()
            raise

    def _build(self, config: RunConfig, run_dir: Path, policy: Optional[tuple[Any, Any]], engine: Optional[Engine],
               scorer: Optional[Scorer]) -> None:
        remove_leftovers(run_dir)
        self.algo = algorithms.build(config.algorithm)
        self.task = tasks.build(config.task)
        seeds.seed_everything(config.seed)
        if self.t.threads:
            torch.set_num_threads(self.t.threads)
        self.model, self.tokenizer = policy or load_policy(config.model)
        self.device = next(self.model.parameters()).device
        self.engine = engine or build_engine(config.rollout, self.model, self.tokenizer, seed=config.seed)
        self.ref = copy.deepcopy(self.model).eval().requires_grad_(False) if config.algorithm.kl_coef > 0 else None
        self.initial = self.ref  # the weights before any update (before a resume restores later ones)
        if self.initial is None and config.eval.kl_from_initial and not config.eval.greedy:
            self.initial = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.t.lr, weight_decay=self.t.weight_decay)
        warmup = max(self.t.warmup_steps, 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)))
        self.pool = self.task.load(self.task.config.train)
        self.sampler = seeds.PromptSampler(len(self.pool), config.seed)
        self.state = self.algo.init_state()
        self.step, self.budget = 0, {"prompts": 0, "samples": 0, "generated_tokens": 0, "wall_seconds": 0.0}
        if self.t.resume:
            self._restore(Path(self.t.resume))
        self.clock = StageClock()
        self.owned_scorer = None if scorer is not None else Scorer(self.task)
        self.scorer = scorer or self.owned_scorer
        self.evaluator = Evaluator(config.eval, load_benchmarks(config.eval, [self.task]), self.engine,
                                   {self.task.config.name: self.scorer},
                                   divergence=self.kl_from_initial if config.eval.kl_from_initial else None)
        self.sinks = Sinks(run_dir, plain(config), config.logger, str(self.device), resume_step=self.step,
                           identity={"algorithm": config.label("algorithm"), "task": config.label("task"),
                                     "model": config.label("model"), "seed": config.seed,
                                     "experiment": config.experiment_name})

    # --- the loop -------------------------------------------------------------------------------

    def fit(self) -> Summary:
        """Evaluate, train to ``trainer.steps`` (evaluating and checkpointing on schedule), evaluate,
        checkpoint. A resumed run continues from its checkpoint's step."""
        t = self.t
        summary = Summary(before=self.evaluate() if self.step == 0 else {}, after={})
        bar = tqdm(range(self.step, t.steps), initial=self.step, total=t.steps, desc=self.config.label("algorithm"))
        for step in bar:
            metrics, samples = self.train_step(step)
            self.step = step + 1
            last_step = self.step == t.steps
            if last_step:
                summary.after = self.evaluate()
            elif t.eval_every and self.step % t.eval_every == 0:
                self.evaluate()
            metrics |= self.clock.lap()
            self.sinks.log(step, metrics, samples)
            summary.first, summary.last = summary.first or metrics, metrics
            bar.set_postfix(reward=f"{metrics['train/reward_mean']:.3f}", entropy=f"{metrics['train/entropy']:.3f}")
            if last_step or (t.checkpoint_every and self.step % t.checkpoint_every == 0):
                self.checkpoint()
        if not summary.after:  # resumed at the end: nothing left to train, the last evaluation is on disk
            summary.after = self.sinks.evaluated(self.step) or self.evaluate()
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
        adv_b = out.adv_b
        answer_bt, other_bt = measures.answer_tokens(self.task, self.tokenizer, batch.rollouts, self.device)
        metrics = self.update(UpdateBatch(r, adv_b.to(self.device, torch.float32), answer_bt=answer_bt,
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
        with self.clock("generate"):
            rollouts = self.engine.generate([self.task.prompt(p) for p in problems], n, sampling)
        with self.clock("score"):
            verdicts = self.scorer.score([problems[int(i)] for i in rollouts.prompt_b], rollouts.texts)
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
        if len(kept) < P:
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

    # --- update: PPO epochs, mini-batches, micro-batches ---------------------------------------

    def update(self, batch: UpdateBatch, step: int) -> dict[str, float]:
        """PPO epochs over mini-batches and micro-batches; loss denominators per mini-batch."""
        r = batch.rollouts
        # With one epoch and one mini-batch every forward pass runs at the sampling weights, so the
        # old log-probs are that pass's own, detached: a whole forward pass saved (verl does the same).
        on_policy = self.t.ppo_epochs == 1 and self.t.mini_batches == 1
        with self.clock("old_logprobs"), torch.no_grad():
            old_bt = None if on_policy else self.logprobs(self.model, r)
            ref_bt = self.logprobs(self.ref, r) if self.ref is not None else None
        batch = replace(batch, old_logp_bt=old_bt, ref_logp_bt=ref_bt)
        rows = r.input_ids.shape[0]
        stats: list[MicroStats] = []
        grad_norms: list[float] = []
        gen = torch.Generator().manual_seed(seeds.shuffle_seed(self.config.seed, step))
        with self.clock("update"):
            for epoch in range(self.t.ppo_epochs):
                order = torch.randperm(rows, generator=gen) if self.t.mini_batches > 1 else torch.arange(rows)
                for mini in order.chunk(self.t.mini_batches):
                    stats += self.backward(batch, mini, with_stats=epoch == 0)
                    grad = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    grad_norms.append(grad.item())
        split = {} if batch.answer_bt is None else {"train/entropy_answer": batch.answer_bt.sum().item(),
                                                   "train/entropy_other": batch.other_bt.sum().item()}
        return self.reduce(stats, grad_norms, r.response_mask.sum().item(), batch.adv_b, split)

    def backward(self, batch: UpdateBatch, rows: torch.Tensor, with_stats: bool = True) -> list[MicroStats]:
        """The loss of ``rows`` (one mini-batch) backpropagated micro-batch by micro-batch, its
        denominators fixed over all of ``rows`` first, so the gradient does not depend on
        ``micro_batch_size``; with_stats: token statistics of the policy that sampled the batch."""
        norm = LossNorm.of(batch.rollouts.response_mask[rows].float(), self.config.rollout.max_new_tokens)
        return [self.micro_step(batch, micro, norm, with_stats) for micro in rows.split(self.t.micro_batch_size)]

    def micro_step(self, batch: UpdateBatch, rows: torch.Tensor, norm: LossNorm, with_stats: bool) -> MicroStats:
        r, t = batch.rollouts, self.t
        mask = r.response_mask[rows].float()
        logp_bt, ent_bt = token_logprobs(self.model, r.input_ids[rows], r.attention_mask[rows],
                                         self.config.model.logprob_chunk, with_entropy=True,
                                         temperature=self.config.rollout.temperature)
        old = logp_bt.detach() if batch.old_logp_bt is None else batch.old_logp_bt[rows]
        engine_bt = None if r.sample_logp_bt is None else r.sample_logp_bt[rows]
        weight_bt = None
        if engine_bt is not None and t.tis_cap is not None:
            weight_bt = ops.truncated_is_weight(old, engine_bt, t.tis_cap)
        pb = PolicyBatch(logp_bt=logp_bt, old_logp_bt=old, adv_b=batch.adv_b[rows], mask_bt=mask,
                         ref_logp_bt=None if batch.ref_logp_bt is None else batch.ref_logp_bt[rows],
                         is_weight_bt=weight_bt)
        token_loss = self.algo.token_loss(pb)
        loss = self.algo.aggregate(token_loss.loss_bt, mask, norm)
        if t.entropy_coef:
            loss = loss - t.entropy_coef * (ent_bt * mask).sum() / norm.num_tokens
        loss.backward()
        if not with_stats:
            return MicroStats(loss=loss.item())
        tokens = mask.sum().item()
        sums = {f"train/{name}": value.item() * tokens for name, value in token_loss.metrics.items()}
        sums["train/entropy"] = (ent_bt.detach() * mask).sum().item()
        if batch.answer_bt is not None:
            sums["train/entropy_answer"] = ent_bt.detach()[batch.answer_bt[rows]].sum().item()
            sums["train/entropy_other"] = ent_bt.detach()[batch.other_bt[rows]].sum().item()
        diff_max = None
        if engine_bt is not None:  # the engine's sampling log-probs against the policy's recomputation
            diff_bt = (old - engine_bt).abs() * mask
            sums["rollout/logprob_diff_mean"] = diff_bt.sum().item()
            diff_max = diff_bt.max().item()
            if weight_bt is not None:
                sums["train/tis_clip_frac"] = ((weight_bt >= t.tis_cap).float() * mask).sum().item()  # held at the cap
        seq_logp_b = (logp_bt.detach() * mask).sum(-1).double().cpu()
        return MicroStats(loss=loss.item(), token_sums=sums, logprob_diff_max=diff_max, rows=rows.cpu(),
                          seq_logp_b=seq_logp_b)

    def reduce(self, stats: list[MicroStats], grad_norms: list[float], tokens: float, adv_b: torch.Tensor,
               split: Optional[dict[str, float]] = None) -> dict[str, float]:
        """Token means of the statistics (over all ``tokens``, or ``split[name]`` of them for the
        entropy split; NaN over none), the mean loss and gradient norm per optimizer step, and
        Cov(log pi(y), A) over the batch: the covariance of each response's sequence log-prob with
        its advantage, the quantity that drives the one-step change of entropy (about -lr times it for
        a softmax policy: Cui et al. 2025, arXiv 2505.22617, the mechanism the RiskPO paper invokes)."""
        sums: dict[str, float] = {}
        for s in stats:
            for name, value in s.token_sums.items():
                sums[name] = sums.get(name, 0.0) + value
        count = {name: (split or {}).get(name, tokens) for name in sums}
        out = {name: value / count[name] if count[name] else float("nan") for name, value in sums.items()}
        diffs = [s.logprob_diff_max for s in stats if s.logprob_diff_max is not None]
        if diffs:
            out["rollout/logprob_diff_max"] = max(max(diffs), 0.0)
        out["train/grad_norm"] = sum(grad_norms) / len(grad_norms)
        out["train/loss"] = sum(s.loss for s in stats) / len(grad_norms)
        measured = [s for s in stats if s.seq_logp_b is not None]  # the first epoch: every row once
        seq_b = torch.cat([s.seq_logp_b for s in measured])
        a_b = adv_b.detach().double().cpu()[torch.cat([s.rows for s in measured])]
        out["train/cov_logp_adv"] = ((seq_b - seq_b.mean()) * (a_b - a_b.mean())).mean().item()
        return out

    def kl_from_initial(self, r: Rollouts) -> torch.Tensor:
        return measures.kl_from(self.initial, self.model, r, rows=self.t.micro_batch_size,
                                chunk=self.config.model.logprob_chunk, temperature=self.config.rollout.temperature)

    def logprobs(self, model: Any, r: Rollouts) -> torch.Tensor:
        return token_logprobs(model, r.input_ids, r.attention_mask, self.config.model.logprob_chunk,
                              with_entropy=False, temperature=self.config.rollout.temperature)[0].detach()

    def samples(self, batch: Collected, adv_b: torch.Tensor) -> list[dict[str, Any]]:
        n, keep = self.config.rollout.n, self.t.samples_per_step
        picks = range(0, len(batch.verdicts), max(1, len(batch.verdicts) // max(keep, 1)))
        return [{"uid": batch.problems[i // n].uid, "completion": batch.rollouts.texts[i],
                 "reward": batch.verdicts[i].reward, "correct": batch.verdicts[i].correct,
                 "extracted": batch.verdicts[i].extracted, "reason": batch.verdicts[i].reason,
                 "advantage": float(adv_b[i])} for i in list(picks)[:keep]]

    # --- evaluation, checkpoints ----------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """pass@k on every eval benchmark at the current step; returns pass@1 per benchmark."""
        with self.clock("eval"):
            evaluation = self.evaluator.evaluate(self.step, self.sampling(self.step, seeds.EVAL_ROUND))
            self.sinks.log_eval(self.step, evaluation.rows, evaluation.problems)
        return evaluation.pass_at(1)

    def checkpoint(self) -> Path:
        """Save everything a resume needs; a kill at any moment leaves the previous checkpoint usable
        (the new one is written under a temporary name and moved into place, then ``latest`` is switched)."""
        path = checkpoint_dir(self.run_dir, self.step)
        if latest_checkpoint(self.run_dir) == path:  # resumed from it: written once, never over itself
            return path
        with self.clock("checkpoint"):
            write_atomically(path, self._save)
            write_atomically(path.parent / "latest", lambda tmp: tmp.write_text(path.name))
        return path

    def _save(self, directory: Path) -> None:
        self.model.save_pretrained(directory / "model")
        self.tokenizer.save_pretrained(directory / "model")
        torch.save({"step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "algorithm_state": self.algo.save_state(self.state), "sampler": self.sampler.position,
                    "budget": self.budget, "rng": seeds.rng_state()}, directory / "trainer.pt")

    def _restore(self, run_dir: Path) -> None:
        weights, saved = load_intact(run_dir, type(self.model))
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = self.algo.restore_state(saved["algorithm_state"])
        self.sampler.position, self.budget, self.step = saved["sampler"], saved["budget"], saved["step"]
        seeds.set_rng_state(saved["rng"])
        self.engine.sync_weights(self.model)

    def close(self) -> None:
        try:
            self.evaluator.close()
            if self.owned_scorer is not None:
                self.owned_scorer.close()
            self.sinks.close()
        finally:
            self.lock.release()

