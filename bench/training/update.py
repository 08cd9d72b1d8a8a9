"""The update stage: PPO epochs over mini-batches and micro-batches, the loss backpropagated with
the denominators of each whole mini-batch, the step's statistics reduced over every rank.

``Updater.update`` is what ``Trainer.train_step`` calls once the batch and its advantages are
known. Under data parallelism (bench/training/distributed.py) each rank backpropagates its part
of every mini-batch; the statistics of every rank's micro-batches are gathered before reducing.

Micro-batches are ``trainer.micro_batch_size`` rows, or with ``trainer.micro_batch_tokens`` as
many rows of similar length as fit a token budget (``by_token_budget``); either way each pass is
trimmed to the columns its rows use (``trimmed``), so a batch of short responses does not pay
for one long one. ``train/padding_share`` says what share of the computed positions was padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import torch

from algorithms import ops
from algorithms.base import Algorithm, LossNorm, PolicyBatch
from bench.config import RunConfig
from bench.engines import Rollouts
from bench.models.policy import token_logprobs
from bench.training import distributed, seeds
from bench.training.distributed import World
from bench.training.measures import StageClock


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
    positions: int = 0  # token positions the forward pass computed: rows x trimmed width, padding included
    real: int = 0  # of them, prompt and response tokens


def trimmed(attention_mask_bt: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The index of ``rows`` [b, trimmed width] without the columns that are padding in all of them:
    a micro-batch's prompts are left-padded to the batch's longest prompt and its responses
    right-padded to the longest response, and the columns no row of it uses are dropped (positions
    follow the attention mask, so the log-probs are those of the untrimmed rows)."""
    used = attention_mask_bt[rows].bool().any(0).nonzero().flatten()
    columns = torch.arange(int(used[0]), int(used[-1]) + 1) if len(used) else used.new_zeros(0)
    return rows[:, None], columns.cpu()


def by_token_budget(rows: torch.Tensor, prompt_b: torch.Tensor, response_b: torch.Tensor,
                    budget: int) -> list[torch.Tensor]:
    """``rows`` in micro-batches of at most ``budget`` computed positions each: the rows sorted by
    length, longest first, and packed greedily while rows x (longest prompt + longest response of
    the micro-batch) fits, the width ``trimmed`` leaves (a row longer than the budget goes alone).
    ``prompt_b``, ``response_b``: [N] tokens of every row of the batch."""
    order = rows[torch.argsort(prompt_b[rows] + response_b[rows], descending=True, stable=True)].tolist()
    out: list[list[int]] = []
    longest = (0, 0)
    for row in order:
        grown = (max(longest[0], int(prompt_b[row])), max(longest[1], int(response_b[row])))
        if out and (len(out[-1]) + 1) * sum(grown) <= budget:
            out[-1].append(row)
            longest = grown
        else:
            out.append([row])
            longest = (int(prompt_b[row]), int(response_b[row]))
    return [torch.tensor(micro, dtype=torch.long) for micro in out]


class Updater:
    """The optimizer steps of one training step, on ``model`` (sharded or not); ``ref`` the frozen
    reference of a KL penalty (None without one)."""

    def __init__(self, config: RunConfig, algo: Algorithm, model: Any, ref: Optional[Any], optimizer: Any,
                 scheduler: Any, world: World, clock: StageClock) -> None:
        self.config, self.t, self.algo = config, config.trainer, algo
        self.model, self.ref, self.optimizer, self.scheduler = model, ref, optimizer, scheduler
        self.world, self.clock = world, clock

    def cut(self, r: Rollouts) -> Callable[[torch.Tensor], list[torch.Tensor]]:
        """How rows of ``r`` are cut into micro-batches: ``trainer.micro_batch_tokens`` or
        ``trainer.micro_batch_size``."""
        if not self.t.micro_batch_tokens:
            return lambda rows: list(rows.split(self.t.micro_batch_size))
        prompt_b = r.attention_mask[:, : r.prompt_width].sum(-1).cpu()
        response_b = r.lengths_b.cpu()
        return lambda rows: [micro.to(rows.device) for micro in
                             by_token_budget(rows.cpu(), prompt_b, response_b, self.t.micro_batch_tokens)]

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
                    grad = distributed.whole(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                                            self.t.max_grad_norm))
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    grad_norms.append(grad.item())
        stats = distributed.cat_parts(self.world.gather(stats))  # every rank's micro-batches
        split = {} if batch.answer_bt is None else {"train/entropy_answer": batch.answer_bt.sum().item(),
                                                   "train/entropy_other": batch.other_bt.sum().item()}
        return self.reduce(stats, grad_norms, r.response_mask.sum().item(), batch.adv_b, split)

    def backward(self, batch: UpdateBatch, rows: torch.Tensor, with_stats: bool = True) -> list[MicroStats]:
        """The loss of ``rows`` (one mini-batch) backpropagated micro-batch by micro-batch, its
        denominators fixed over all of ``rows`` first, so the gradient does not depend on
        ``micro_batch_size``; with_stats: token statistics of the policy that sampled the batch.
        Data-parallel ranks each take their part of ``rows``; gradients are reduced once, after the
        last micro-batch."""
        norm = LossNorm.of(batch.rollouts.response_mask[rows].float(), self.config.rollout.max_new_tokens)
        micros = self.world.micro_batches(rows, self.cut(batch.rollouts))
        out = []
        for i, micro in enumerate(micros):
            distributed.set_gradient_sync(self.model, i == len(micros) - 1)
            out.append(self.micro_step(batch, micro, norm, with_stats) if len(micro) else self.idle_step(batch, rows))
        return out

    def idle_step(self, batch: UpdateBatch, rows: torch.Tensor) -> MicroStats:
        """A pass that adds nothing to the gradient, for a rank whose part of the mini-batch is used
        up: FSDP needs every rank in every forward and backward."""
        r, one = batch.rollouts, rows[:1]
        at = trimmed(r.attention_mask, one)
        logp_bt, _ = token_logprobs(self.model, r.input_ids[at], r.attention_mask[at],
                                    self.config.model.logprob_chunk, with_entropy=False,
                                    temperature=self.config.rollout.temperature, images=r.images_of(one))
        (logp_bt.sum() * 0.0).backward()
        return MicroStats(loss=0.0)

    def micro_step(self, batch: UpdateBatch, rows: torch.Tensor, norm: LossNorm, with_stats: bool) -> MicroStats:
        r, t = batch.rollouts, self.t
        at = trimmed(r.attention_mask, rows)  # [b, trimmed width]
        mask = r.response_mask[at].float()
        logp_bt, ent_bt = token_logprobs(self.model, r.input_ids[at], r.attention_mask[at],
                                         self.config.model.logprob_chunk, with_entropy=True,
                                         temperature=self.config.rollout.temperature, images=r.images_of(rows))
        old = logp_bt.detach() if batch.old_logp_bt is None else batch.old_logp_bt[at]
        engine_bt = None if r.sample_logp_bt is None else r.sample_logp_bt[at]
        weight_bt = None
        if engine_bt is not None and t.tis_cap is not None:
            weight_bt = ops.truncated_is_weight(old, engine_bt, t.tis_cap)
        pb = PolicyBatch(logp_bt=logp_bt, old_logp_bt=old, adv_b=batch.adv_b[rows], mask_bt=mask,
                         ref_logp_bt=None if batch.ref_logp_bt is None else batch.ref_logp_bt[at],
                         is_weight_bt=weight_bt)
        token_loss = self.algo.token_loss(pb)
        loss = self.algo.aggregate(token_loss.loss_bt, mask, norm)
        if t.entropy_coef:
            loss = loss - t.entropy_coef * (ent_bt * mask).sum() / norm.num_tokens
        # FSDP averages gradients over ranks: each rank's share of the sum, times the world size
        (loss * self.world.size).backward()
        if not with_stats:
            return MicroStats(loss=loss.item())
        tokens = mask.sum().item()
        sums = {f"train/{name}": value.item() * tokens for name, value in token_loss.metrics.items()}
        sums["train/entropy"] = (ent_bt.detach() * mask).sum().item()
        if batch.answer_bt is not None:
            sums["train/entropy_answer"] = ent_bt.detach()[batch.answer_bt[at]].sum().item()
            sums["train/entropy_other"] = ent_bt.detach()[batch.other_bt[at]].sum().item()
        diff_max = None
        if engine_bt is not None:  # the engine's sampling log-probs against the policy's recomputation
            diff_bt = (old - engine_bt).abs() * mask
            sums["rollout/logprob_diff_mean"] = diff_bt.sum().item()
            diff_max = diff_bt.max().item()
            if weight_bt is not None:
                sums["train/tis_clip_frac"] = ((weight_bt >= t.tis_cap).float() * mask).sum().item()  # held at the cap
        seq_logp_b = (logp_bt.detach() * mask).sum(-1).double().cpu()
        return MicroStats(loss=loss.item(), token_sums=sums, logprob_diff_max=diff_max, rows=rows.cpu(),
                          seq_logp_b=seq_logp_b, positions=mask.numel(), real=int(r.attention_mask[at].sum()))

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
        out["train/padding_share"] = 1.0 - sum(s.real for s in stats) / max(sum(s.positions for s in stats), 1)
        out["train/grad_norm"] = sum(grad_norms) / len(grad_norms)
        out["train/loss"] = sum(s.loss for s in stats) / len(grad_norms)
        measured = [s for s in stats if s.seq_logp_b is not None]  # the first epoch: every row once
        seq_b = torch.cat([s.seq_logp_b for s in measured])
        a_b = adv_b.detach().double().cpu()[torch.cat([s.rows for s in measured])]
        out["train/cov_logp_adv"] = ((seq_b - seq_b.mean()) * (a_b - a_b.mean())).mean().item()
        return out

    def logprobs(self, model: Any, r: Rollouts) -> torch.Tensor:
        """[N, T] every row's token log-probs under ``model`` (no gradient), micro-batch by micro-batch
        as the update cuts them (every rank the whole batch, the same passes in the same order)."""
        out: Optional[torch.Tensor] = None
        for rows in self.cut(r)(torch.arange(len(r))):
            at = trimmed(r.attention_mask, rows)
            logp_bt, _ = token_logprobs(model, r.input_ids[at], r.attention_mask[at], self.config.model.logprob_chunk,
                                        with_entropy=False, temperature=self.config.rollout.temperature,
                                        images=r.images_of(rows))
            if out is None:  # float32, or float64 for a float64 model
                out = torch.zeros(r.input_ids.shape, dtype=logp_bt.dtype, device=logp_bt.device)
            out[at] = logp_bt.detach()
        return out
