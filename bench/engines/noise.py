"""Sampling noise that is a function of (sampling seed, prompt index, sample index) alone.

A response must not depend on which other prompts share its ``generate`` call, nor on how a
step's prompts are split across data-parallel ranks. So no generator is drawn from in call
order: each row has a key (``row_keys``), and its noise at a decoding position is a
counter-based hash of (key, position, vocabulary index) (``gumbel_noise``), the same whatever
batch the row is in. The hash is 32-bit integer arithmetic held in int64 tensors (no intermediate
value reaches 2^49), so the CPU and CUDA compute the same bits; the two logs of the Gumbel transform
are taken in float64 and rounded to float32, so their last-bit differences between devices
vanish too (but for a value at a float32 rounding boundary).

The Gumbel-max trick (Gumbel 1954; e.g. Maddison et al. 2014, "A* Sampling"): with g_v drawn
independently from Gumbel(0, 1), argmax_v (z_v / T + g_v) is distributed exactly as
softmax(z / T). Top-k and top-p set the logits they drop to -inf first, so the argmax is then an
exact sample of the truncated, renormalised distribution. ``GumbelNoiseProcessor`` adds the noise
after transformers' own temperature / top-k / top-p warpers, and greedy decoding (the argmax)
makes the draw (bench/engines/hf.py).

The vLLM engine samples with its own per-request generators; ``prompt_seeds`` gives each prompt
a seed that is a hash of (sampling seed, prompt index), and vLLM gives the k-th of a prompt's n
responses that seed + k. (Two prompts of a call whose seeds lie less than n apart share some
streams: with P prompts, a chance of about P^2 n / 2^31.)
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import LogitsProcessor

__all__ = ["GumbelNoiseProcessor", "gumbel_noise", "prompt_seeds", "row_keys"]

MASK32 = 0xFFFFFFFF
# salts, so no two chains (the row key's two halves, the vLLM seed, the noise and the vocabulary
# index) start from the same word: fractional digits of the golden ratio, pi, e, sqrt 2 and sqrt 3
SALT_HIGH, SALT_LOW, SALT_SEED, SALT_VOCAB, SALT_NOISE = 0x9E3779B9, 0x243F6A88, 0xB7E15162, 0x6A09E667, 0xBB67AE85


def _mul32_(x: Tensor, constant: int) -> Tensor:
    """x <- x * constant mod 2^32, in place, for x in [0, 2^32): the constant in 16-bit halves, so
    every product stays under 2^48 (int64 never overflows)."""
    low, high = constant & 0xFFFF, constant >> 16
    carry = torch.mul(x, high).bitwise_and_(0xFFFF).bitwise_left_shift_(16)
    return x.mul_(low).add_(carry).bitwise_and_(MASK32)


def _lowbias32_(x: Tensor) -> Tensor:
    """Chris Wellons' ``lowbias32`` integer finaliser (github.com/skeeto/hash-prospector), in place
    (callers pass a fresh tensor: in place halves the time on the CPU's [B, V] noise): a bijection
    of [0, 2^32) with near-ideal avalanche."""
    x.bitwise_xor_(x >> 16)
    _mul32_(x, 0x7FEB352D)
    x.bitwise_xor_(x >> 15)
    _mul32_(x, 0x846CA68B)
    return x.bitwise_xor_(x >> 16)


def _chain(salt: int, words: list[Tensor | int]) -> Tensor:
    """Each 32-bit word absorbed in turn: h <- lowbias32(h xor word), from h = lowbias32(salt)."""
    h = _lowbias32_(torch.tensor(salt, dtype=torch.long))
    for word in words:
        h = _lowbias32_(h ^ word)
    return h


def _seed_words(seed: int) -> list[int]:
    """A Python int seed (any sign, up to 64 bits) as two 32-bit words."""
    seed %= 2**64
    return [seed & MASK32, seed >> 32]


def _indices(first: int, count: int) -> Tensor:
    if first < 0 or first + count > 2**32:
        raise ValueError(f"prompt indices {first}..{first + count - 1} must lie in [0, 2^32)")
    return torch.arange(first, first + count, dtype=torch.long)


def row_keys(seed: int, first: int, prompts: int, n: int) -> Tensor:
    """[prompts * n] long, in [0, 2^63): the key of (seed, prompt index first + i, sample j) for
    each row, prompt-major (a prompt's n samples contiguous, as in ``Rollouts``).

    Two 32-bit hash chains over (seed, prompt index, sample index), one 31 bits of the key and the
    other 32, so two rows of a run share a key with probability about 2^-63."""
    prompt_r = _indices(first, prompts).repeat_interleave(n)
    sample_r = torch.arange(n, dtype=torch.long).repeat(prompts)
    words = [*_seed_words(seed), prompt_r, sample_r]
    return ((_chain(SALT_HIGH, words) >> 1) << 32) | _chain(SALT_LOW, words)


def prompt_seeds(seed: int, first: int, prompts: int) -> Tensor:
    """[prompts] long, in [0, 2^31 - 1): one seed per prompt, a hash of (seed, prompt index first + i),
    for engines that take a seed per request (vLLM)."""
    return (_chain(SALT_SEED, [*_seed_words(seed), _indices(first, prompts)]) >> 1) % (2**31 - 1)


def gumbel_noise(keys_b: Tensor, position: int, vocab: int, device: torch.device | str) -> Tensor:
    """[B, V] float32: standard Gumbel noise of each row's key at decoding ``position`` (0 for the
    first generated token) and each vocabulary index, identical on the CPU and CUDA.

    u = (h + 1/2) / 2^32 in float64 lies strictly inside (0, 1), so g = -log(-log u) is finite
    (within about [-3.1, 22.9])."""
    keys_b = keys_b.to(device)
    row_b = _chain(SALT_NOISE, []).to(device)
    for word in (keys_b >> 32, keys_b & MASK32, position):
        row_b = _lowbias32_(row_b ^ word)
    # the vocabulary index is hashed on its own first, so rows differ from each other in every bit
    vocab_v = _lowbias32_(torch.arange(vocab, dtype=torch.long, device=device) ^ SALT_VOCAB)
    u_bv = _lowbias32_(row_b[:, None] ^ vocab_v[None, :]).double().add_(0.5).div_(2.0**32)
    return u_bv.log_().neg_().log_().neg_().float()


class GumbelNoiseProcessor(LogitsProcessor):
    """Adds each row's Gumbel noise (``gumbel_noise``) to the scores of its next token; with the
    argmax as the pick, an exact sample of the scores' softmax.

    ``keys_b``: the rows' keys (``row_keys``); ``prompt_width``: the columns of the (left-padded)
    prompts, so a row's position is the number of tokens generated so far."""

    def __init__(self, keys_b: Tensor, prompt_width: int) -> None:
        self.keys_b, self.prompt_width = keys_b, prompt_width

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        noise_bv = gumbel_noise(self.keys_b, input_ids.shape[1] - self.prompt_width, scores.shape[-1], scores.device)
        return scores + noise_bv
