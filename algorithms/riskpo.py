"""RiskPO: risk-based policy optimization with a Mixed Value-at-Risk objective over bundles.

Paper: Ren, Jiang et al., "RiskPO: Risk-based Policy Optimization via Verifiable Reward for LLM
Post-Training", arXiv 2510.00911. Reference code: github RTkenny/RiskPO (a verl fork),
``compute_grpo_bundle_rvar_outcome_advantage_quantile_tracking`` in verl/trainer/ppo/core_algos.py.

Equations implemented (R: a paper's score, a/b: the alpha/beta quantiles of paper scores):
- bundles: ``bundle_size`` (B) consecutive prompts; the last bundle may be smaller;
- papers: paper j of a bundle takes one response of each of its questions, by a seeded random
  permutation per question (``pairing=random``, the paper) or the j-th in batch order
  (``ordered``, the code); every response is in exactly one paper; R = sum of its rewards;
- ``formulation=paper``: A = -(1+omega)(a - R)^+ + g(R, a, b),
  g(z, a, b) = (z-a)^+ - (z-b)^+ + a - b = clamp(z, a, b) - b (the "+a-b" is the natural
  baseline, so every A <= 0 and papers above b get 0);
- ``formulation=reference``: rvar = g / (beta - alpha), cvar = -(a - R)^+ / alpha,
  A = (w_mix cvar + rvar) / (w_mix + 1);
- ``risk_seeking``: the upper tail replaces the lower one: paper form
  A = upper_weight (R - b)^+ + g; reference form upper = (R - b)^+ / (1 - beta),
  A = (upper_weight upper + rvar) / (upper_weight + 1) (the paper's Figure 6 variant);
- ``natural_baseline=false`` drops the "+a-b" term of g; ``normalize_std`` divides A by
  std + 1e-6, std the unbiased std of the bundle's paper scores, taken as 1 for a single paper
  (as the code) and when <= 1e-3 (see Deviations);
- quantiles: ``batch`` = torch.quantile of the bundle's paper scores (linear interpolation, as
  the code); ``tracked`` = stochastic approximation q <- q + tracker_lr (level - mean 1{R < q})
  over the batch's pooled paper scores; the first batch sets it to its empirical quantiles
  (pooled, linear interpolation) and uses them, every later batch takes one SA step;
  ``mix`` = the average of the two;
- credit of A_j to the responses of paper j: ``uniform`` (the paper), ``std`` (divide by the
  question's unbiased reward std + 1e-6, std taken as 1 when <= 1e-3), ``score`` (0.5 A_j if
  the response's reward > 0 else 1.5 A_j), ``sum_mean`` (A_j (r_i - mean_q) / sum over the
  paper of (r - mean_q); A_j / B_k, B_k the bundle's questions, when that sum is within
  1e-6 of 0).

Deviations:
- The tracker is carried forward: the quantiles this step's advantage uses are the state
  returned by the previous step, and this step's papers update it for the next. The reference
  code updates its tracker after the advantage and keeps it in the step's batch metadata, which
  is rebuilt every step, so its tracked values never reach an advantage: its published results
  use per-bundle batch quantiles (``quantile_source=batch``, see conf/algorithm/riskpo_reference.yaml
  for its MATH/GSM8K script and riskpo_reference_hard.yaml for its DAPO-Math script).
- The tracker follows two levels (alpha, beta), not the code's 19; the pair is kept ordered
  (a <= b) after each update, since the two SA updates could cross on ties.
- The tracker lives in units of a full bundle's score. A smaller last bundle uses it scaled by
  B_k / B, and contributes its scores scaled by B / B_k to the update.
- ``normalize_std`` takes a bundle std <= 1e-3 as 1, the rule the code applies to question
  stds. The code divides by 0 + 1e-6 there; with batch quantiles such a bundle's advantage is 0
  either way, but with tracked quantiles it is not, and would be multiplied by a million.
- The reference divides by (beta - alpha + 1e-6), (alpha + 1e-6) and (1 - beta + 1e-6); here the
  divisions are exact (changes the 6th significant digit).
- Every question of a riskpo batch must have the same number of responses; the code silently
  leaves responses past the smallest group out of every paper (advantage 0).
- Policy loss defaults follow the released code (token-level ratio, clip 0.2, ``token_mean``),
  because the paper does not give the clip range of its sequence-level ratio and its numbers
  come from that code; ``algorithm.ratio=sequence algorithm.loss_agg=seq_mean_token_mean`` gives
  the paper's surrogate. The code's dual-clip 3 is in the riskpo_reference presets.

What the paper reports (easy math, Qwen2.5-1.5B-Instruct; third-party notes on the ICLR version):
- Fig. 5: nearly identical mean-reward curves for GRPO and RiskPO; RiskPO ahead on the lower-tail
  (RVaR/MVaR) curves and keeping entropy higher;
- entropy: risk-averse MVaR keeps it near 0.2, while the risk-seeking variant (``risk_seeking``)
  drops it sharply and plateaus after about 50 steps;
- ablations (average over the easy-math benchmarks): (alpha, beta) = (0.1, 0.8) 66.90,
  (0.2, 0.9) 66.95, B = 1 65.80, B = 10 66.65, the full method (0.2, 0.8, B = 5) 68.25. The
  released MATH/GSM8K script nevertheless sets beta 0.9 (riskpo_reference.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional

import torch
from torch import Tensor

from algorithms import ops
from algorithms.base import Advantages, Algorithm, AlgorithmConfig, Groups, LossAgg, RewardBatch

EPS = 1e-6  # the reference code's epsilon in std divisions
MIN_STD = 1e-3  # a std at or below this counts as 1 (the code's rule for question stds)


class Pairing(str, Enum):
    random = "random"
    ordered = "ordered"


class QuantileSource(str, Enum):
    tracked = "tracked"
    batch = "batch"
    mix = "mix"


class Formulation(str, Enum):
    paper = "paper"
    reference = "reference"


class Credit(str, Enum):
    uniform = "uniform"
    std = "std"
    score = "score"
    sum_mean = "sum_mean"


@dataclass(frozen=True)
class RiskPOConfig(AlgorithmConfig):
    name: str = "riskpo"
    loss_agg: LossAgg = LossAgg.token_mean
    bundle_size: int = 5  # B, questions per bundle
    pairing: Pairing = Pairing.random
    alpha: float = 0.2  # lower quantile level
    beta: float = 0.8  # upper quantile level
    quantile_source: QuantileSource = QuantileSource.tracked
    tracker_lr: float = 0.1  # step size gamma of the quantile tracker
    formulation: Formulation = Formulation.paper
    omega: float = 0.5  # extra weight on the lower tail (paper form)
    w_mix: float = 1.5  # weight of the CVaR term (reference form)
    natural_baseline: bool = True  # keep the "+a-b" of g
    normalize_std: bool = False  # divide by the bundle's paper-score std (the code: true)
    credit: Credit = Credit.uniform
    risk_seeking: bool = False  # upper tail instead of the lower one
    upper_weight: float = 1.5  # weight of the upper tail when risk_seeking

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bundle_size < 1:
            raise ValueError(f"bundle_size={self.bundle_size} must be >= 1 (1 turns bundling off)")
        if not 0.0 < self.alpha < self.beta < 1.0:
            raise ValueError(f"need 0 < alpha < beta < 1, got alpha={self.alpha} beta={self.beta}")
        for name in ("tracker_lr", "omega", "w_mix", "upper_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")


@dataclass(frozen=True)
class QuantileTracker:
    """The tracked (a, b), in units of a full bundle's paper score; None before the first batch."""

    a: Optional[float] = None
    b: Optional[float] = None
    updates: int = 0  # stochastic-approximation steps taken since initialisation


@dataclass(frozen=True)
class Papers:
    paper_b: Tensor  # [N] paper of each response, bundle * G + j
    score_kg: Tensor  # [K, G] paper scores
    size_k: Tensor  # [K] questions per bundle


class RiskPO(Algorithm):
    config_type = RiskPOConfig
    config: RiskPOConfig

    def init_state(self) -> QuantileTracker:
        return QuantileTracker()

    def group(self, num_prompts: int) -> Groups:
        return Groups(bundle_p=torch.arange(num_prompts) // self.config.bundle_size)

    def advantages(self, batch: RewardBatch, groups: Groups, state: QuantileTracker) -> Advantages:
        c = self.config
        groups = Groups(bundle_p=groups.bundle_p.to(batch.rewards_b.device))
        papers = make_papers(batch, groups, c.pairing)
        full = float(c.bundle_size)
        scale_k = papers.size_k.double() / full  # 1 for a full bundle
        pooled = (papers.score_kg.double() / scale_k[:, None]).flatten()
        if state.a is None:  # first batch: start the tracker at its empirical quantiles
            a0, b0 = torch.quantile(pooled, pooled.new_tensor([c.alpha, c.beta])).tolist()
            state = new_state = QuantileTracker(a=a0, b=b0, updates=0)
        else:
            new_state = track(state, pooled, c.alpha, c.beta, c.tracker_lr)
        ab_k2 = self._quantiles(papers, state, scale_k)
        adv_kg = paper_advantage(papers.score_kg.double(), ab_k2[:, :1], ab_k2[:, 1:], c)
        adv_b = adv_kg.flatten()[papers.paper_b] * credit_weights(batch, groups, papers, c.credit)
        metrics = {"a": ab_k2[:, 0].mean().item(), "b": ab_k2[:, 1].mean().item(),
                   "tracker_a": new_state.a, "tracker_b": new_state.b,
                   "paper_score_mean": papers.score_kg.double().mean().item()}
        details = {"paper_b": papers.paper_b, "paper_score_kg": papers.score_kg,
                   "paper_adv_kg": adv_kg, "quantiles_k2": ab_k2, "bundle_p": groups.bundle_p}
        return Advantages(adv_b=adv_b.to(batch.rewards_b.dtype), state=new_state, metrics=metrics, details=details)

    def describe(self, batch: RewardBatch, groups: Groups, out: Advantages) -> dict[str, Any]:
        """Bundles, their papers (as [prompt, response] pairs), scores, quantiles, advantages."""
        d = out.details
        rank_b = ops.group_rank(batch.prompt_b, groups.num_prompts).tolist()
        num_papers = d["paper_score_kg"].shape[1]
        members: dict[int, list[list[int]]] = {}
        for i, paper in enumerate(d["paper_b"].tolist()):
            members.setdefault(paper, []).append([int(batch.prompt_b[i]), rank_b[i]])
        bundles = []
        for k in range(groups.num_bundles):
            papers = [{"responses": sorted(members[k * num_papers + j]),
                       "score": float(d["paper_score_kg"][k, j]),
                       "advantage": float(d["paper_adv_kg"][k, j])} for j in range(num_papers)]
            bundles.append({"prompts": (groups.bundle_p == k).nonzero().flatten().tolist(),
                            "quantiles": {"a": float(d["quantiles_k2"][k, 0]), "b": float(d["quantiles_k2"][k, 1])},
                            "papers": papers})
        return {"bundles": bundles}

    def _quantiles(self, papers: Papers, state: QuantileTracker, scale_k: Tensor) -> Tensor:
        """[K, 2] the (a, b) each bundle's advantage uses."""
        c = self.config
        tracked_k2 = scale_k.new_tensor([state.a, state.b])[None, :] * scale_k[:, None]
        if c.quantile_source is QuantileSource.tracked:
            return tracked_k2
        levels = scale_k.new_tensor([c.alpha, c.beta])
        batch_k2 = torch.quantile(papers.score_kg.double(), levels, dim=1).T
        return batch_k2 if c.quantile_source is QuantileSource.batch else (batch_k2 + tracked_k2) / 2


def make_papers(batch: RewardBatch, groups: Groups, pairing: Pairing) -> Papers:
    """Deal each bundle's responses into G disjoint papers, one response per question each."""
    num_prompts = groups.num_prompts
    count_p = torch.bincount(batch.prompt_b, minlength=num_prompts)
    if count_p.numel() == 0 or bool((count_p != count_p[0]).any()) or int(count_p[0]) == 0:
        raise ValueError("riskpo needs the same number of responses (>= 1) for every prompt; "
                         f"got {sorted(set(count_p.tolist()))}")
    g = int(count_p[0])
    rank_b = ops.group_rank(batch.prompt_b, num_prompts)
    if pairing is Pairing.random:
        gen = torch.Generator().manual_seed(batch.seed)
        perm_pg = torch.argsort(torch.rand(num_prompts, g, generator=gen), dim=1)
        j_b = perm_pg.to(rank_b.device)[batch.prompt_b, rank_b]
    else:
        j_b = rank_b
    paper_b = groups.bundle_p[batch.prompt_b] * g + j_b
    num_bundles = groups.num_bundles
    score = torch.zeros(num_bundles * g, dtype=batch.rewards_b.dtype, device=batch.rewards_b.device)
    score.index_add_(0, paper_b, batch.rewards_b)
    size_k = torch.bincount(groups.bundle_p, minlength=num_bundles)
    return Papers(paper_b=paper_b, score_kg=score.view(num_bundles, g), size_k=size_k)


def paper_advantage(r_kg: Tensor, a_k1: Tensor, b_k1: Tensor, c: RiskPOConfig) -> Tensor:
    """[K, G] the MVaR advantage of each paper (see the module docstring)."""
    band_kg = torch.minimum(torch.maximum(r_kg, a_k1), b_k1) - (b_k1 if c.natural_baseline else a_k1)
    if c.risk_seeking:
        tail_kg, tail_level, weight = (r_kg - b_k1).clamp(min=0), 1.0 - c.beta, c.upper_weight
    else:
        tail_kg, tail_level = -(a_k1 - r_kg).clamp(min=0), c.alpha
        weight = 1.0 + c.omega if c.formulation is Formulation.paper else c.w_mix
    if c.formulation is Formulation.paper:
        adv_kg = weight * tail_kg + band_kg
    else:
        adv_kg = (weight * tail_kg / tail_level + band_kg / (c.beta - c.alpha)) / (weight + 1.0)
    if c.normalize_std:
        std_k1 = r_kg.std(dim=1, keepdim=True) if r_kg.shape[1] > 1 else torch.ones_like(a_k1)
        std_k1 = torch.where(std_k1 > MIN_STD, std_k1, torch.ones_like(std_k1))
        adv_kg = adv_kg / (std_k1 + EPS)
    return adv_kg


def credit_weights(batch: RewardBatch, groups: Groups, papers: Papers, credit: Credit) -> Tensor:
    """[N] the factor on A_j for each response of paper j."""
    r_b = batch.rewards_b.double()
    if credit is Credit.uniform:
        return torch.ones_like(r_b)
    if credit is Credit.score:
        return torch.where(r_b > 0, 0.5, 1.5).to(r_b)
    stats = ops.group_stats(r_b, batch.prompt_b, groups.num_prompts)
    if credit is Credit.std:
        std_p = torch.where(stats.std_g > MIN_STD, stats.std_g, torch.ones_like(stats.std_g))
        return 1.0 / (std_p[batch.prompt_b] + EPS)
    dev_b = r_b - stats.mean_g[batch.prompt_b]
    dev_paper = torch.zeros(papers.score_kg.numel(), dtype=r_b.dtype, device=r_b.device)
    dev_paper = dev_paper.index_add_(0, papers.paper_b, dev_b)[papers.paper_b]
    size_b = papers.size_k[groups.bundle_p[batch.prompt_b]].to(r_b)
    safe = dev_paper.abs() > 1e-6
    return torch.where(safe, dev_b / torch.where(safe, dev_paper, torch.ones_like(dev_paper)), 1.0 / size_b)


def track(state: QuantileTracker, scores: Tensor, alpha: float, beta: float, lr: float) -> QuantileTracker:
    """One stochastic-approximation step of the (alpha, beta) quantiles on a batch of scores."""
    a = state.a + lr * (alpha - (scores < state.a).double().mean().item())
    b = state.b + lr * (beta - (scores < state.b).double().mean().item())
    return QuantileTracker(a=min(a, b), b=max(a, b), updates=state.updates + 1)
