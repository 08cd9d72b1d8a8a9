"""model.dtype=bfloat16 on the CPU: float32 weights and optimizer, bf16 autocast in the forward
passes, the output head's log-softmax in float32; ``auto`` picks it only with native bf16
(bench/models/precision.py)."""

import copy
from pathlib import Path

import pytest
import torch

from bench.config import DType, ModelConfig, Sampling
from bench.engines.hf import HFEngine
from bench.models.policy import load_policy, token_kl, token_logprobs
from bench.models.precision import Precision, autocast, cpu_description, mark_autocast, native_bf16, pick_precision
from tasks.arith import ArithConfig, ArithTask

TASK = ArithTask(ArithConfig())
CPU = torch.device("cpu")
# /proc/cpuinfo excerpts: this project's machine (AVX2 only), a Sapphire Rapids core, a Neoverse V1
AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\nbugs\t\t: sysret_ss_attrs\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
NEOVERSE_V1 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"


@pytest.fixture(scope="module")
def bf16_policy():
    """The tiny model with model.dtype=bfloat16, on the CPU."""
    return load_policy(ModelConfig(dtype=DType.bfloat16, device="cpu"))


@pytest.fixture(scope="module")
def fp32_twin(bf16_policy):
    """The same weights, no autocast."""
    return mark_autocast(copy.deepcopy(bf16_policy[0]), None)


@pytest.fixture(scope="module")
def rollouts(fp32_twin, bf16_policy):
    """A realistic batch: 8 arith prompts x 4 sampled responses of up to 32 tokens, from the float32 model."""
    prompts = [TASK.prompt(p) for p in TASK.load("arith")[:8]]
    return HFEngine(fp32_twin, bf16_policy[1]).generate(prompts, 4, Sampling(max_new_tokens=32, seed=1))


def output_dtypes(module: torch.nn.Module) -> tuple[list[torch.dtype], torch.utils.hooks.RemovableHandle]:
    """The dtypes of ``module``'s outputs, recorded as it runs."""
    seen: list[torch.dtype] = []
    return seen, module.register_forward_hook(lambda _module, _inputs, output: seen.append(output.dtype))


# --- detection and the choice of precision ----------------------------------------------------


def test_native_bf16_reads_the_flags_lines_of_cpuinfo():
    assert not native_bf16(AVX2_ONLY)
    assert native_bf16(SAPPHIRE_RAPIDS)
    assert native_bf16("flags\t\t: avx2 amx_bf16\n") and native_bf16("flags\t\t: avx2 avx512_bf16\n")
    assert native_bf16(NEOVERSE_V1)
    assert not native_bf16("")  # no /proc/cpuinfo (not Linux)
    assert not native_bf16("model name\t: bf16 avx512_bf16 lookalike\nflags\t\t: avx2\n")  # only the flags count
    assert not native_bf16("flags\t\t: avx512_bf16x avx512f\n")  # whole words
    assert cpu_description(AVX2_ONLY) == {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                          "native_bf16": False}
    assert cpu_description(SAPPHIRE_RAPIDS)["native_bf16"] is True


def test_env_json_says_whether_the_cpu_has_bf16_instructions(tmp_path):
    from bench.training.sinks import environment

    cpu = environment("cpu")["cpu"]
    assert cpu == {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                   "native_bf16": native_bf16(Path("/proc/cpuinfo").read_text())}


def test_auto_autocasts_on_the_cpu_only_with_native_bf16_and_cuda_keeps_bf16_weights(capsys):
    assert pick_precision(DType.auto, CPU, AVX2_ONLY) == Precision(torch.float32, None)
    assert pick_precision(DType.auto, CPU, SAPPHIRE_RAPIDS) == Precision(torch.float32, torch.bfloat16)
    assert pick_precision(DType.float32, CPU, SAPPHIRE_RAPIDS) == Precision(torch.float32, None)
    assert pick_precision(DType.bfloat16, CPU, SAPPHIRE_RAPIDS) == Precision(torch.float32, torch.bfloat16)
    cuda = torch.device("cuda")  # a device name: nothing here needs a GPU
    assert pick_precision(DType.auto, cuda, AVX2_ONLY) == Precision(torch.bfloat16, None)
    assert pick_precision(DType.bfloat16, cuda, AVX2_ONLY) == Precision(torch.bfloat16, None)
    assert pick_precision(DType.float32, cuda, AVX2_ONLY) == Precision(torch.float32, None)
    assert capsys.readouterr().err == ""
    # this machine: auto is float32 unless its CPU has bf16 instructions
    assert pick_precision(DType.auto, CPU) == Precision(torch.float32, torch.bfloat16 if native_bf16() else None)


def test_explicit_bf16_without_native_bf16_warns_in_one_line(capsys):
    assert pick_precision(DType.bfloat16, CPU, AVX2_ONLY) == Precision(torch.float32, torch.bfloat16)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bench: warning: model.dtype=bfloat16") and "emulated" in err


# --- the policy under bf16 autocast -------------------------------------------------------------


def test_bf16_on_the_cpu_keeps_float32_weights_and_autocasts_the_decoder(bf16_policy, rollouts):
    model, _ = bf16_policy
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    seen, hook = output_dtypes(model.get_decoder().layers[0].mlp.down_proj)
    try:
        logp, entropy = token_logprobs(model, rollouts.input_ids, rollouts.attention_mask, 8, with_entropy=True)
    finally:
        hook.remove()
    assert seen == [torch.bfloat16]
    assert logp.dtype == torch.float32 and entropy.dtype == torch.float32
    # deepcopy keeps the mark (the trainer's reference and initial copies), and autocast ends with the call
    assert copy.deepcopy(model).bench_autocast_dtype == torch.bfloat16 and not torch.is_autocast_enabled("cpu")


def test_the_output_head_stays_float32_under_autocast_forward_and_backward(bf16_policy, rollouts):
    """Against the head in float64 on the same (autocast) hidden states: a bf16 head would be off by
    about 1e-2; the float32 head agrees to 1e-5, even inside a caller's autocast."""
    model, _ = bf16_policy
    ids = rollouts.input_ids[:, rollouts.attention_mask.bool().all(0)]  # the columns no row pads
    mask = torch.ones_like(ids)  # so the decoder's default positions are token_logprobs'
    assert ids.shape[1] >= 8
    with autocast(model):
        hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state.detach().requires_grad_()
    weight = model.get_output_embeddings().weight
    reference = (hidden.double() @ weight.double().T).log_softmax(-1)[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
    (grad_ref,) = torch.autograd.grad(reference.sum(), hidden)

    hidden_grads: list[torch.Tensor] = []

    def keep_hidden_grad(_module, _inputs, output) -> None:
        output.last_hidden_state.register_hook(hidden_grads.append)

    hook = model.get_decoder().register_forward_hook(keep_hidden_grad)
    try:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):  # a caller's autocast, around forward and backward
            logp, _ = token_logprobs(model, ids, mask, 3, with_entropy=False)
            logp.sum().backward()
    finally:
        hook.remove()
    torch.testing.assert_close(logp[:, 1:].double(), reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden_grads[0], grad_ref, atol=1e-5, rtol=1e-4)
    model.zero_grad()


def test_bf16_logprobs_stay_within_tolerance_of_float32(bf16_policy, fp32_twin, rollouts):
    """Measured on this batch (torch 2.13, AVX2): max |diff| 0.105 (at a token of log-prob -1.68),
    mean over response tokens 0.0013, the 99th percentile 0.04. Tolerances with margin: max 0.25,
    mean 0.005. (bf16 weights, the old CPU behaviour, give max 0.08 and mean 0.0008 alike.)"""
    ids, mask, response = rollouts.input_ids, rollouts.attention_mask, rollouts.response_mask.bool()
    logp_bf16, entropy_bf16 = token_logprobs(bf16_policy[0], ids, mask, 256, with_entropy=True)
    logp_fp32, entropy_fp32 = token_logprobs(fp32_twin, ids, mask, 256, with_entropy=True)
    diff = (logp_bf16 - logp_fp32).abs()
    assert diff.max() < 0.25 and diff[response].mean() < 0.005
    assert (entropy_bf16 - entropy_fp32).abs().max() < 0.1  # measured 0.026
    # the reference's exact KL between the two precisions of the same weights: small, not zero
    assert 0 < token_kl(bf16_policy[0], fp32_twin, ids, mask, 256).max() < 0.01  # measured 0.0027
    assert token_kl(bf16_policy[0], copy.deepcopy(bf16_policy[0]), ids, mask, 256).abs().max() == 0


def test_gradients_flow_and_adamw_updates_the_float32_weights(bf16_policy, fp32_twin, rollouts):
    """One step of a policy-gradient-shaped loss (log-probs and an entropy bonus): every weight gets a
    float32 gradient in the direction of the float32 model's (cosine measured 0.996), and AdamW moves
    the float32 weights."""
    model = copy.deepcopy(bf16_policy[0])
    grads = []
    for policy in (model, copy.deepcopy(fp32_twin)):
        policy.zero_grad()
        logp, entropy = token_logprobs(policy, rollouts.input_ids, rollouts.attention_mask, 8, with_entropy=True)
        response = rollouts.response_mask
        loss = -((logp + 0.01 * entropy) * response).sum() / response.sum()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.parameters()]))
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    assert torch.isfinite(grads[0]).all()
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.98
    before = [p.detach().clone() for p in model.parameters()]
    torch.optim.AdamW(model.parameters(), lr=1e-4).step()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_hf_engine_generates_under_bf16_autocast(bf16_policy, fp32_twin):
    """Greedy answers of the bf16-autocast policy: its decoder runs in bf16, and on these 16 held-out
    problems it writes what the float32 model writes (measured 16 of 16; asked: at least 12)."""
    model, tokenizer = bf16_policy
    prompts = [TASK.prompt(p) for p in TASK.load("arith")[:16]]
    greedy = Sampling(temperature=0.0, max_new_tokens=32)
    seen, hook = output_dtypes(model.get_decoder().layers[0].self_attn.q_proj)
    try:
        texts = HFEngine(model, tokenizer).generate(prompts, 1, greedy).texts
    finally:
        hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert all(texts)
    reference = HFEngine(fp32_twin, tokenizer).generate(prompts, 1, greedy).texts
    assert sum(a == b for a, b in zip(texts, reference)) >= 12
