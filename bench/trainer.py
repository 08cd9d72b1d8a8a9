"""The RL loop: one direction of data, every algorithm through the same hooks.

    problems  = sampler.take(P)                              # seeded, same for every algorithm
    rollouts  = engine.generate(prompts, n)                  # + more rounds while select drops groups
    verdicts  = scorer.score(...)                            # the task's verifier, in worker processes
    keep_p    = algo.select(rewards_b, prompt_b, P)          # DAPO dynamic sampling
    adv       = algo.advantages(batch, algo.group(P), state) # state feeds the next step
    for epoch, mini-batch: norm over the mini-batch; for micro-batch: loss.backward()
    optimizer.step(); engine.sync_weights(model); sinks.log(...)

The trainer never tests an algorithm's name: what differs lives in the algorithm's hooks.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

import algorithms
import tasks
from algorithms import ops
from algorithms.base import LossNorm, PolicyBatch, RewardBatch
from bench.evaluate import Evaluator, load_benchmarks
from bench.policy import load_policy, token_logprobs
from bench.rollout import Rollouts, Sampling, build_engine
from bench.sampler import PromptSampler, rng_state, seed_everything, set_rng_state
from bench.sinks import Sinks, checkpoint_dir, latest_checkpoint, write_atomically
from tasks.base import Problem, Verdict
from tasks.scoring import Scorer


@dataclass(frozen=True)
class TrainerConfig:
    steps: int = 40
    prompts_per_step: int = 20  # P, before the n responses each
    lr: float = 3e-5  # the tiny model collapses at 5e-4 (all algorithms); the paper uses 1e-6 at 1.5B
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    ppo_epochs: int = 1
    mini_batches: int = 1  # optimizer steps per epoch
    micro_batch_size: int = 80  # responses per forward/backward
    entropy_coef: float = 0.0
    # truncated importance sampling of the rollout engine's mismatch: each token's policy-gradient
    # term weighted by min(pi_old / pi_engine, tis_cap) (ops.truncated_is_weight); None: off.
    # Needs an engine that reports its sampling log-probs (rollout=vllm)
    tis_cap: Optional[float] = None
    max_resample: int = 4  # extra generation rounds while select drops groups (DAPO)
    eval_every: int = 10  # evaluate (the eval group's settings) every this many steps; 0: only before and after
    checkpoint_every: int = 0  # 0: only at the end
    resume: Optional[str] = None  # a run directory to continue
    threads: int = 0  # torch threads of this run; 0: torch's default (every core). Parallel sweeps: cores / jobs
    samples_per_step: int = 4  # completions kept in samples.parquet per step
    output_dir: str = "results"
    experiment: str = "default"

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "ppo_epochs", "mini_batches", "micro_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name}={getattr(self, name)} must be >= 1")
        if self.tis_cap is not None and self.tis_cap <= 0.0:
            raise ValueError(f"trainer.tis_cap={self.tis_cap} must be > 0 (or null: off)")
        if self.prompts_per_step % self.mini_batches:
            raise ValueError(f"trainer.prompts_per_step={self.prompts_per_step} is not divisible into "
                             f"trainer.mini_batches={self.mini_batches}")




@dataclass
class Collected:
    """One step's training batch after selection: P prompts x n responses, judged."""

    problems: list[Problem]
    rollouts: Rollouts
    verdicts: list[Verdict]
    generated: dict[str, float]  # budget and rollout statistics over everything generated


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: Path, labels: Optional[dict[str, str]] = None) -> None:
        self.cfg = cfg
        self.t: TrainerConfig = OmegaConf.to_object(cfg.trainer)
        self.algo = algorithms.build(cfg.algorithm)
        self.task = tasks.build(cfg.task)
        self.rollout_cfg = OmegaConf.to_object(cfg.rollout)
        self.model_cfg = OmegaConf.to_object(cfg.model)
        seed_everything(cfg.seed)
        if self.t.threads:
            torch.set_num_threads(self.t.threads)
        self.model, self.tokenizer = load_policy(self.model_cfg)
        self.device = next(self.model.parameters()).device
        self.engine = build_engine(self.rollout_cfg, self.model, self.tokenizer, seed=cfg.seed)
        self.ref = copy.deepcopy(self.model).eval().requires_grad_(False) if self.algo.config.kl_coef > 0 else None
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.t.lr, weight_decay=self.t.weight_decay)
        warmup = max(self.t.warmup_steps, 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)))
        self.pool = self.task.load(self.task.config.train)
        self.sampler = PromptSampler(len(self.pool), cfg.seed)
        self.state = self.algo.init_state()
        self.step, self.budget = 0, {"prompts": 0, "samples": 0, "generated_tokens": 0, "wall_seconds": 0.0}
        if self.t.resume:
            self._restore(Path(self.t.resume))
        self.run_dir = run_dir
        self.sinks = Sinks(run_dir, OmegaConf.to_container(cfg, resolve=True), OmegaConf.to_object(cfg.logger),
                           str(self.device), resume_step=self.step, identity=identity(cfg, labels or {}))
        self.scorer = Scorer(self.task)
        eval_cfg = OmegaConf.to_object(cfg.eval)
        self.evaluator = Evaluator(eval_cfg, load_benchmarks(eval_cfg, [cfg.task]), self.engine,
                                   {self.task.config.name: self.scorer})

    # --- one step -----------------------------------------------------------------------------

    def sampling(self, step: int, salt: int = 0) -> Sampling:
        """Seeded by (run seed, step, round): a resumed run samples exactly what it would have."""
        return self.rollout_cfg.sampling(seed=self.cfg.seed * 1_000_003 + step * 101 + salt)

    def generate(self, problems: list[Problem], n: int, sampling: Sampling) -> tuple[Rollouts, list[Verdict]]:
        rollouts = self.engine.generate([self.task.prompt(p) for p in problems], n, sampling)
        verdicts = self.scorer.score([problems[int(i)] for i in rollouts.prompt_b], rollouts.texts)
        return rollouts, verdicts

    def collect(self, step: int) -> Collected:
        """Generate and judge until P prompts are kept, or ``max_resample`` extra rounds are spent."""
        P, n = self.t.prompts_per_step, self.rollout_cfg.n
        kept: list[tuple[Problem, Rollouts, list[Verdict]]] = []
        stats = {"prompts": 0, "samples": 0, "tokens": 0, "truncated": 0, "zero_var": 0}
        for round_ in range(self.t.max_resample + 1):
            problems = [self.pool[i] for i in self.sampler.take(P)]
            rollouts, verdicts = self.generate(problems, n, self.sampling(step, round_))
            rewards_b = torch.tensor([v.reward for v in verdicts], dtype=torch.float32)
            keep_p = self.algo.select(rewards_b, rollouts.prompt_b, P)
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

    def train_step(self, step: int) -> dict[str, float]:
        start = time.monotonic()
        batch = self.collect(step)
        r = batch.rollouts.to(self.device)
        rewards_b = torch.tensor([v.reward for v in batch.verdicts], dtype=torch.float32)
        reward_batch = RewardBatch(rewards_b=rewards_b, prompt_b=r.prompt_b.cpu(), lengths_b=r.lengths_b.cpu(),
                                   max_length=self.rollout_cfg.max_new_tokens, seed=self.cfg.seed * 7919 + step)
        out = self.algo.advantages(reward_batch, self.algo.group(len(batch.problems)), self.state)
        self.state = out.state
        metrics = self.update(r, out.adv_b.to(self.device, torch.float32), step)
        adv = out.adv_b.double()
        metrics.update({
            "train/reward_mean": rewards_b.mean().item(),
            "train/accuracy": sum(v.correct for v in batch.verdicts) / len(batch.verdicts),
            "train/adv_mean": adv.mean().item(), "train/adv_std": adv.std().item() if adv.numel() > 1 else 0.0,
            "train/adv_min": adv.min().item(), "train/adv_max": adv.max().item(),
            "train/lr": self.scheduler.get_last_lr()[0],
            **batch.generated,
            **{f"algo/{self.algo.config.name}/{k}": float(v) for k, v in out.metrics.items() if v is not None},
        })
        self.engine.sync_weights(self.model)
        self.budget["wall_seconds"] += time.monotonic() - start
        metrics.update({f"budget/{k}": v for k, v in self.budget.items()})
        self.sinks.log(step, metrics, self.samples(batch, out.adv_b))
        return metrics

    def update(self, r: Rollouts, adv_b: torch.Tensor, step: int) -> dict[str, float]:
        """PPO epochs over mini-batches and micro-batches; loss denominators per mini-batch."""
        chunk = self.model_cfg.logprob_chunk
        temperature = self.rollout_cfg.temperature  # the log-probs of the distribution that sampled
        # With one epoch and one mini-batch every forward pass runs at the sampling weights, so the
        # old log-probs are that pass's own, detached: a whole forward pass saved (verl does the same).
        on_policy = self.t.ppo_epochs == 1 and self.t.mini_batches == 1
        with torch.no_grad():
            old_bt = None if on_policy else self.logprobs(self.model, r, chunk, temperature)
            ref_bt = self.logprobs(self.ref, r, chunk, temperature) if self.ref is not None else None
        rows = r.input_ids.shape[0]
        sums: dict[str, float] = {}
        gen = torch.Generator().manual_seed(self.cfg.seed * 31 + step)
        for epoch in range(self.t.ppo_epochs):
            order = torch.randperm(rows, generator=gen) if self.t.mini_batches > 1 else torch.arange(rows)
            for mini in order.chunk(self.t.mini_batches):
                mask = r.response_mask[mini].float()
                norm = LossNorm.of(mask, self.rollout_cfg.max_new_tokens)
                for micro in mini.split(self.t.micro_batch_size):
                    self.micro_step(r, micro, adv_b, old_bt, ref_bt, norm, sums, first=epoch == 0)
                grad = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                sums["train/grad_norm"] = sums.get("train/grad_norm", 0.0) + grad.item()
        updates = self.t.ppo_epochs * self.t.mini_batches
        tokens = max(r.response_mask.sum().item(), 1)
        not_means = ("train/grad_norm", "train/loss", "rollout/logprob_diff_max")
        out = {k: v / tokens for k, v in sums.items() if k not in not_means}
        if "rollout/logprob_diff_max" in sums:
            out["rollout/logprob_diff_max"] = sums["rollout/logprob_diff_max"]
        out["train/grad_norm"] = sums["train/grad_norm"] / updates
        out["train/loss"] = sums["train/loss"] / updates
        return out

    def micro_step(self, r, micro, adv_b, old_bt, ref_bt, norm, sums, first: bool) -> None:
        mask = r.response_mask[micro].float()
        logp_bt, ent_bt = token_logprobs(self.model, r.input_ids[micro], r.attention_mask[micro],
                                         self.model_cfg.logprob_chunk, with_entropy=True,
                                         temperature=self.rollout_cfg.temperature)
        old = logp_bt.detach() if old_bt is None else old_bt[micro]
        engine_bt = None if r.sample_logp_bt is None else r.sample_logp_bt[micro]
        weight_bt = None
        if engine_bt is not None and self.t.tis_cap is not None:
            weight_bt = ops.truncated_is_weight(old, engine_bt, self.t.tis_cap)
        pb = PolicyBatch(logp_bt=logp_bt, old_logp_bt=old, adv_b=adv_b[micro], mask_bt=mask,
                         ref_logp_bt=None if ref_bt is None else ref_bt[micro], is_weight_bt=weight_bt)
        token_loss = self.algo.token_loss(pb)
        loss = self.algo.aggregate(token_loss.loss_bt, mask, norm)
        if self.t.entropy_coef:
            loss = loss - self.t.entropy_coef * (ent_bt * mask).sum() / norm.num_tokens
        loss.backward()
        tokens = mask.sum().item()
        sums["train/loss"] = sums.get("train/loss", 0.0) + loss.item()
        if first:  # statistics of the policy that sampled the batch (token-weighted means)
            for name, value in token_loss.metrics.items():
                sums[f"train/{name}"] = sums.get(f"train/{name}", 0.0) + value.item() * tokens
            sums["train/entropy"] = sums.get("train/entropy", 0.0) + (ent_bt.detach() * mask).sum().item()
            if engine_bt is not None:  # the engine's sampling log-probs against the policy's recomputation
                diff_bt = (old - engine_bt).abs() * mask
                sums["rollout/logprob_diff_mean"] = sums.get("rollout/logprob_diff_mean", 0.0) + diff_bt.sum().item()
                sums["rollout/logprob_diff_max"] = max(sums.get("rollout/logprob_diff_max", 0.0), diff_bt.max().item())
                if weight_bt is not None:
                    clipped = (weight_bt >= self.t.tis_cap).float() * mask  # the weights held at the cap
                    sums["train/tis_clip_frac"] = sums.get("train/tis_clip_frac", 0.0) + clipped.sum().item()

    @staticmethod
    def logprobs(model: Any, r: Rollouts, chunk: int, temperature: float) -> torch.Tensor:
        return token_logprobs(model, r.input_ids, r.attention_mask, chunk, with_entropy=False,
                              temperature=temperature)[0].detach()

    def samples(self, batch: Collected, adv_b: torch.Tensor) -> list[dict[str, Any]]:
        n = self.rollout_cfg.n
        picks = range(0, len(batch.verdicts), max(1, len(batch.verdicts) // max(self.t.samples_per_step, 1)))
        return [{"uid": batch.problems[i // n].uid, "completion": batch.rollouts.texts[i],
                 "reward": batch.verdicts[i].reward, "correct": batch.verdicts[i].correct,
                 "extracted": batch.verdicts[i].extracted, "reason": batch.verdicts[i].reason,
                 "advantage": float(adv_b[i])} for i in list(picks)[: self.t.samples_per_step]]

    # --- evaluation, checkpoints ----------------------------------------------------------------

    def evaluate(self, step: int) -> dict[str, float]:
        """pass@k on every eval benchmark (bench.evaluate); returns pass@1 per benchmark."""
        evaluation = self.evaluator.evaluate(step, self.sampling(step, salt=10_000))
        self.sinks.log_eval(step, evaluation.rows, evaluation.problems)
        return evaluation.pass_at(1)

    def checkpoint(self) -> Path:
        """Save everything a resume needs; a kill at any moment leaves the previous checkpoint usable
        (the new one is written under a temporary name, renamed, then ``latest`` is switched)."""
        path = checkpoint_dir(self.run_dir, self.step)
        root, tmp = path.parent, path.parent / f".{path.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp / "model")
        self.tokenizer.save_pretrained(tmp / "model")
        state = self.state
        torch.save({"step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "algorithm_state": asdict(state) if is_dataclass(state) else state, "sampler": self.sampler.position,
                    "budget": self.budget, "rng": rng_state()}, tmp / "trainer.pt")
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
        write_atomically(root / "latest", lambda f: f.write_text(path.name))
        return path

    def _restore(self, run_dir: Path) -> None:
        path = latest_checkpoint(run_dir)
        if path is None:
            raise FileNotFoundError(f"trainer.resume={run_dir}: no checkpoint there (checkpoints/latest is missing)")
        saved = torch.load(path / "trainer.pt", weights_only=False)
        self.model.load_state_dict(type(self.model).from_pretrained(path / "model").state_dict())
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = self.algo.restore_state(saved["algorithm_state"])
        self.sampler.position, self.budget, self.step = saved["sampler"], saved["budget"], saved["step"]
        set_rng_state(saved["rng"])
        self.engine.sync_weights(self.model)

    def close(self) -> None:
        self.evaluator.close()
        self.scorer.close()
        self.sinks.close()


def identity(cfg: DictConfig, labels: dict[str, str]) -> dict[str, Any]:
    """What a report groups runs by: the config choices (``riskpo_seeking``, not the module name
    ``riskpo``) when Hydra made them, the config's names otherwise."""
    return {"algorithm": labels.get("algorithm", cfg.algorithm.name), "task": labels.get("task", cfg.task.name),
            "model": labels.get("model", cfg.model.name), "seed": int(cfg.seed), "experiment": cfg.trainer.experiment}
