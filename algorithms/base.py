"""Types every algorithm shares: its config, the batches its hooks see, and the hook contract.

One RL step calls the hooks in this order, always through ``advantage_step`` (the trainer and
bench.explain both do, so the golden tests cover the trainer's own path):

    keep_p = algo.select(batch, P)                     # DAPO dynamic sampling
    groups = algo.group(kept P)                        # prompt groups, or RiskPO bundles, of the kept prompts
    out    = algo.advantages(kept batch, groups, state)   # out.state feeds the NEXT step
    loss   = algo.aggregate(algo.token_loss(pb).loss_bt, mask_bt, norm)

Tensors carry their shape as a suffix: ``_b`` one value per response, ``_p`` per prompt,
``_bt`` per response token, ``_kg`` per bundle and paper.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import torch
from torch import Tensor

from algorithms import ops
from algorithms.ops import KLEstimator, LossAgg, LossNorm, RatioLevel
from common import coerce_enums

__all__ = [
    "AdvantageStep", "Advantages", "Algorithm", "AlgorithmConfig", "Groups", "KLEstimator", "LossAgg", "LossNorm",
    "PolicyBatch", "RatioLevel", "RewardBatch", "TokenLoss",
]


@dataclass(frozen=True)
class AlgorithmConfig:
    """Policy-loss settings shared by every algorithm; each algorithm subclasses it.

    A subclass changes a default by redeclaring the field; that is the only place a default
    lives (Hydra's YAML files only pick the schema).
    """

    name: str = ""
    clip_low: float = 0.2  # PPO epsilon below 1 (DAPO eps_low)
    clip_high: float = 0.2  # PPO epsilon above 1 (DAPO eps_high)
    dual_clip: Optional[float] = None  # dual-clip bound c > 1 for negative advantages (Ye et al. 2020); None: off
    ratio: RatioLevel = RatioLevel.token
    loss_agg: LossAgg = LossAgg.seq_mean_token_mean
    kl_coef: float = 0.0  # weight of the KL-to-reference penalty in the loss; 0: no reference model
    kl_estimator: KLEstimator = KLEstimator.k3

    def __post_init__(self) -> None:
        coerce_enums(self)
        if not 0.0 <= self.clip_low < 1.0:
            raise ValueError(f"clip_low={self.clip_low} must be in [0, 1)")
        if self.clip_high < 0.0:
            raise ValueError(f"clip_high={self.clip_high} must be >= 0")
        if self.dual_clip is not None and self.dual_clip <= 1.0:
            raise ValueError(f"dual_clip={self.dual_clip} must be > 1 (or null to turn it off)")
        if self.kl_coef < 0.0:
            raise ValueError(f"kl_coef={self.kl_coef} must be >= 0")


@dataclass(frozen=True)
class Groups:
    """How the prompts of one step are grouped for the advantage.

    ``bundle_p[i]`` is the bundle of prompt i; per-prompt algorithms use one bundle per prompt.
    """

    bundle_p: Tensor  # [P] long, bundles numbered 0..K-1 in order of first appearance

    @property
    def num_prompts(self) -> int:
        return int(self.bundle_p.numel())

    @property
    def num_bundles(self) -> int:
        return int(self.bundle_p.max().item()) + 1 if self.bundle_p.numel() else 0


@dataclass(frozen=True)
class RewardBatch:
    """What an advantage sees: one scalar reward per response and which prompt it answers."""

    rewards_b: Tensor  # [N] float, the verifier's reward
    prompt_b: Tensor  # [N] long, the response's prompt, 0..P-1
    lengths_b: Optional[Tensor] = None  # [N] long, response length in tokens (DAPO overlong shaping)
    max_length: Optional[int] = None  # the generation cap, max_new_tokens (DAPO overlong shaping)
    seed: int = 0  # seeds any sampling inside the advantage (RiskPO's random pairing)

    def subset(self, keep_p: Tensor) -> RewardBatch:
        """The responses of the kept prompts, the prompts renumbered 0..P'-1 in order."""
        keep_b = keep_p[self.prompt_b]
        new_index_p = torch.cumsum(keep_p.long(), 0) - 1
        return RewardBatch(rewards_b=self.rewards_b[keep_b], prompt_b=new_index_p[self.prompt_b[keep_b]],
                           lengths_b=None if self.lengths_b is None else self.lengths_b[keep_b],
                           max_length=self.max_length, seed=self.seed)


@dataclass(frozen=True)
class Advantages:
    """An advantage hook's output."""

    adv_b: Tensor  # [N] one advantage per response, broadcast over its tokens by the loss
    state: Any = None  # the algorithm's state after this step; pass it to the next call
    metrics: dict[str, float] = field(default_factory=dict)  # logged as algo/<name>/<key>
    details: dict[str, Tensor] = field(default_factory=dict)  # for inspection (bench.explain)


@dataclass(frozen=True)
class PolicyBatch:
    """What the loss sees for one micro-batch of responses."""

    logp_bt: Tensor  # [b, T] log-probs of the sampled tokens under the policy being trained
    old_logp_bt: Tensor  # [b, T] the same under the policy that sampled them
    adv_b: Tensor  # [b]
    mask_bt: Tensor  # [b, T] 1.0 on response tokens, 0.0 on padding
    ref_logp_bt: Optional[Tensor] = None  # [b, T] under the frozen reference (KL penalty)
    # [b, T] weight of each token's policy-gradient term, no gradient (the truncated importance
    # correction of the rollout engine's mismatch, ops.truncated_is_weight); None: 1
    is_weight_bt: Optional[Tensor] = None


@dataclass(frozen=True)
class TokenLoss:
    loss_bt: Tensor  # [b, T] per-token loss, zero where mask is zero
    metrics: dict[str, Tensor]  # token means over the micro-batch, detached


class Algorithm:
    """Hooks with the behaviour most algorithms share; a module overrides what differs.

    Subclasses set ``config_type`` and implement ``advantages``.
    """

    config_type: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig

    def __init__(self, config: AlgorithmConfig) -> None:
        if not isinstance(config, self.config_type):
            raise TypeError(f"{type(self).__name__} needs a {self.config_type.__name__}, got {type(config).__name__}")
        self.config = config

    def init_state(self) -> Any:
        """State before the first step (None: stateless)."""
        return None

    def save_state(self, state: Any) -> Optional[dict]:
        """The state as plain data (a checkpoint's, bench.explain's output); ``restore_state`` undoes it."""
        return dataclasses.asdict(state) if dataclasses.is_dataclass(state) else state

    def restore_state(self, saved: Optional[dict]) -> Any:
        """Rebuild the state from ``save_state``'s output (checkpoint resume); None: the initial state."""
        initial = self.init_state()
        return initial if saved is None or initial is None else type(initial)(**saved)

    def group(self, num_prompts: int) -> Groups:
        """One group per prompt."""
        return Groups(bundle_p=torch.arange(num_prompts))

    def select(self, batch: RewardBatch, num_prompts: int) -> Tensor:
        """[P] bool: the prompts to train on. Default: all of them. Keeping a kept batch again
        keeps all of it (the trainer filters each generation round, then runs ``advantage_step``)."""
        return torch.ones(num_prompts, dtype=torch.bool, device=batch.rewards_b.device)

    def advantages(self, batch: RewardBatch, groups: Groups, state: Any) -> Advantages:
        raise NotImplementedError

    def token_loss(self, batch: PolicyBatch) -> TokenLoss:
        """Clipped surrogate (token or sequence ratio), weighted by ``is_weight_bt`` when given,
        plus the KL penalty when kl_coef > 0 (never weighted: it is not a sampled estimate of the
        policy gradient)."""
        c = self.config
        mask_bt = batch.mask_bt
        log_ratio_bt = ops.log_ratio(batch.logp_bt, batch.old_logp_bt, mask_bt, c.ratio)
        s = ops.clipped_surrogate(log_ratio_bt, batch.adv_b[:, None], c.clip_low, c.clip_high, c.dual_clip)
        loss_bt = s.loss_bt if batch.is_weight_bt is None else s.loss_bt * batch.is_weight_bt.detach()
        metrics = {
            "clip_frac_low": ops.masked_mean(s.clipped_low_bt, mask_bt),
            "clip_frac_high": ops.masked_mean(s.clipped_high_bt, mask_bt),
            "clip_frac_dual": ops.masked_mean(s.clipped_dual_bt, mask_bt),
            # k3 of pi_old vs pi: the usual "approx KL" to the sampling policy
            "approx_kl_old": ops.masked_mean(ops.kl(batch.logp_bt, batch.old_logp_bt, KLEstimator.k3), mask_bt),
        }
        if c.kl_coef > 0.0:
            if batch.ref_logp_bt is None:
                raise ValueError(f"{c.name}: kl_coef={c.kl_coef} needs reference log-probs (ref_logp_bt)")
            kl_bt = ops.kl(batch.logp_bt, batch.ref_logp_bt, c.kl_estimator)
            loss_bt = loss_bt + c.kl_coef * kl_bt
            metrics["kl_ref"] = ops.masked_mean(kl_bt, mask_bt)
        metrics = {k: v.detach() for k, v in metrics.items()}
        return TokenLoss(loss_bt=loss_bt * mask_bt, metrics=metrics)

    def aggregate(self, loss_bt: Tensor, mask_bt: Tensor, norm: LossNorm) -> Tensor:
        return ops.aggregate(loss_bt, mask_bt, self.config.loss_agg, norm)

    def describe(self, batch: RewardBatch, groups: Groups, out: Advantages) -> dict[str, Any]:
        """A readable account of ``out.details`` for people checking by hand (bench.explain)."""
        return {name: value.tolist() for name, value in out.details.items()}


@dataclass(frozen=True)
class AdvantageStep:
    """``advantage_step``'s result: what was kept, how it was grouped, and the advantages."""

    keep_p: Tensor  # [P] bool, ``select``'s verdict
    batch: RewardBatch  # the kept responses, prompts renumbered 0..P'-1
    groups: Groups  # of the kept prompts
    out: Advantages  # of the kept responses; out.state feeds the next step
    adv_b: Tensor  # [N] every response of the input batch, 0 where its prompt was dropped (no gradient)


def advantage_step(algo: Algorithm, batch: RewardBatch, num_prompts: int, state: Any) -> AdvantageStep:
    """select -> group -> advantages, the one hook sequence of a step (trainer and bench.explain).

    Dropped prompts keep their state untouched: with nothing kept, ``advantages`` is not called.
    """
    keep_p = algo.select(batch, num_prompts)
    kept = batch.subset(keep_p)
    groups = algo.group(int(keep_p.sum()))
    if not bool(keep_p.any()):
        adv_b = torch.zeros_like(batch.rewards_b)
        return AdvantageStep(keep_p, kept, groups, Advantages(adv_b=adv_b[:0], state=state), adv_b)
    out = algo.advantages(kept, groups, state)
    adv_b = out.adv_b.new_zeros(batch.rewards_b.shape)  # the estimator's dtype: nothing rounded on the way
    adv_b[keep_p[batch.prompt_b]] = out.adv_b
    return AdvantageStep(keep_p, kept, groups, out, adv_b)
