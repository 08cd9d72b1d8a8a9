"""Chunked log-probs and entropy equal the full-logits computation; the policy loads or fails in one line."""

import time

import pytest
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

import bench.compose  # noqa: F401  (registers the config schemas with Hydra)
from bench.config import DType, ModelConfig
from bench.models.policy import load_policy, token_kl, token_logprobs

WORDS = [f"w{i}" for i in range(40)]
CHAT_TEMPLATE = ("{% for m in messages %}<user> {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


def make_tokenizer(pad: bool = True) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: <pad> 0, <eos> 1, <user> 2, <assistant> 3, <unk> 4, then w0..w39."""
    specials = ["<pad>", "<eos>", "<user>", "<assistant>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>",
                                        pad_token="<pad>" if pad else None,
                                        additional_special_tokens=["<user>", "<assistant>"])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make_model(vocab: int = len(WORDS) + 5, seed: int = 0, tie: bool = False) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=tie, eos_token_id=1, pad_token_id=0, bos_token_id=None)
    return Qwen2ForCausalLM(config).eval()


def full_logits_reference(model, input_ids, attention_mask, temperature=1.0):
    """The obvious computation: every logit at once, one position at a time, float64."""
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits.double()
    B, T = input_ids.shape
    logp = torch.zeros(B, T, dtype=torch.float64)
    entropy = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        for t in range(1, T):
            if attention_mask[b, t] and attention_mask[b, t - 1]:
                dist = torch.log_softmax(logits[b, t - 1] / temperature, -1)
                logp[b, t] = dist[input_ids[b, t]]
                entropy[b, t] = -(dist.exp() * dist).sum()
    return logp, entropy


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(3)
    return torch.randint(0, 45, (3, 11), generator=gen), torch.ones(3, 11, dtype=torch.long)


@pytest.mark.parametrize("chunk", [1, 3, 10, 11, 64])
@pytest.mark.parametrize("tie", [False, True])
def test_chunked_equals_full_logits(batch, chunk, tie):
    model = make_model(tie=tie)
    ids, mask = batch
    logp, entropy = token_logprobs(model, ids, mask, chunk, with_entropy=True)
    ref_logp, ref_entropy = full_logits_reference(model, ids, mask)
    assert logp.dtype == torch.float32 and logp.shape == ids.shape
    torch.testing.assert_close(logp.double(), ref_logp, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(entropy.double(), ref_entropy, atol=2e-5, rtol=1e-5)
    assert (logp[:, 0] == 0).all() and (entropy[:, 0] == 0).all()


def test_temperature_scores_under_the_sampling_distribution(batch):
    model = make_model()
    ids, mask = batch
    logp, entropy = token_logprobs(model, ids, mask, 4, with_entropy=True, temperature=0.7)
    ref_logp, ref_entropy = full_logits_reference(model, ids, mask, temperature=0.7)
    torch.testing.assert_close(logp.double(), ref_logp, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(entropy.double(), ref_entropy, atol=2e-5, rtol=1e-5)


def test_without_entropy(batch):
    model = make_model()
    logp, entropy = token_logprobs(model, *batch, 4, with_entropy=False)
    assert entropy is None
    torch.testing.assert_close(logp.double(), full_logits_reference(model, *batch)[0], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_left_padding_gives_the_unpadded_values(batch, chunk):
    model = make_model()
    ids, mask = batch
    alone_logp, alone_entropy = token_logprobs(model, ids[:1, :6], mask[:1, :6], chunk, with_entropy=True)
    pad = 5  # row 0: 5 pads + 6 tokens; rows 1, 2: full length
    padded_ids = ids.clone()
    padded_ids[0, :pad] = 0
    padded_ids[0, pad:] = ids[0, :6]
    padded_mask = mask.clone()
    padded_mask[0, :pad] = 0
    logp, entropy = token_logprobs(model, padded_ids, padded_mask, chunk, with_entropy=True)
    torch.testing.assert_close(logp[0, pad:], alone_logp[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy[0, pad:], alone_entropy[0], atol=1e-5, rtol=1e-5)
    assert (logp[0, : pad + 1] == 0).all() and (entropy[0, : pad + 1] == 0).all()
    # the other rows are unaffected by row 0's padding
    full_logp, _ = token_logprobs(model, ids[1:], mask[1:], chunk, with_entropy=True)
    torch.testing.assert_close(logp[1:], full_logp, atol=1e-5, rtol=1e-5)


def test_right_padding_scores_zero(batch):
    model = make_model()
    ids, mask = batch
    mask = mask.clone()
    mask[1, 8:] = 0
    logp, entropy = token_logprobs(model, ids, mask, 3, with_entropy=True)
    assert (logp[1, 8:] == 0).all() and (entropy[1, 8:] == 0).all()
    torch.testing.assert_close(logp[1, :8], token_logprobs(model, ids[1:2, :8], mask[1:2, :8], 3, False)[0][0])


def kl_reference(model, initial, input_ids, attention_mask, temperature=1.0):
    """The obvious computation of KL(p || q) per position: every logit of both models, float64."""
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    kl = torch.zeros(input_ids.shape, dtype=torch.float64)
    logits = [m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits.double()
              for m in (model, initial)]
    for b in range(input_ids.shape[0]):
        for t in range(1, input_ids.shape[1]):
            if attention_mask[b, t] and attention_mask[b, t - 1]:
                logp, logq = (torch.log_softmax(z[b, t - 1] / temperature, -1) for z in logits)
                kl[b, t] = (logp.exp() * (logp - logq)).sum()
    return kl


@pytest.mark.parametrize("chunk, temperature", [(1, 1.0), (4, 0.7), (64, 1.0)])
def test_token_kl_equals_the_full_logits_kl(batch, chunk, temperature):
    model, initial = make_model(seed=0), make_model(seed=1)
    ids, mask = batch
    mask = mask.clone()
    mask[0, :3] = 0  # left padding
    mask[2, 9:] = 0  # right padding
    kl = token_kl(model, initial, ids, mask, chunk, temperature=temperature)
    expected = kl_reference(model, initial, ids, mask, temperature)
    torch.testing.assert_close(kl.double(), expected, atol=2e-5, rtol=1e-4)
    assert (kl[0, :4] == 0).all() and (kl[2, 9:] == 0).all() and (expected[1, 1:] > 0).all()
    assert (token_kl(model, make_model(seed=0), ids, mask, chunk) == 0).all()  # the same weights: no distance


def parameter_grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("entropy_weight", [0.0, 0.3])
@pytest.mark.parametrize("tie", [False, True])
def test_gradients_equal_full_logits_gradients(batch, entropy_weight, tie):
    """Through log-probs and (as an entropy bonus) entropies, with left padding in the batch."""
    model = make_model(tie=tie).double()
    ids, mask = batch
    mask = mask.clone()
    mask[0, :3] = 0
    gen = torch.Generator().manual_seed(5)
    w_logp, w_entropy = torch.randn(ids.shape, generator=gen).double(), torch.randn(ids.shape, generator=gen).double()
    logp, entropy = token_logprobs(model, ids, mask, 4, with_entropy=True)
    chunked = parameter_grads(model, (logp * w_logp).sum() + entropy_weight * (entropy * w_entropy).sum())
    ref_logp, ref_entropy = full_logits_reference(model, ids, mask)
    reference = parameter_grads(model, (ref_logp * w_logp).sum() + entropy_weight * (ref_entropy * w_entropy).sum())
    assert chunked.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(chunked[name], reference[name], atol=1e-9, rtol=1e-7, msg=name)


def test_gradients_without_entropy_and_with_temperature(batch):
    model = make_model().double()
    ids, mask = batch
    weights = torch.randn(ids.shape, generator=torch.Generator().manual_seed(6)).double()
    chunked = parameter_grads(model, (token_logprobs(model, ids, mask, 5, False, temperature=0.6)[0] * weights).sum())
    reference = parameter_grads(model, (full_logits_reference(model, ids, mask, temperature=0.6)[0] * weights).sum())
    for name in reference:
        torch.testing.assert_close(chunked[name], reference[name], atol=1e-9, rtol=1e-7, msg=name)


def test_activation_checkpointing_gives_the_same_gradients(batch, tmp_path):
    save_policy(tmp_path)
    plain, _ = load_policy(ModelConfig(path=str(tmp_path)))
    recomputed, _ = load_policy(ModelConfig(path=str(tmp_path), gradient_checkpointing=True))
    grads = []
    for model in (plain.train(), recomputed.train()):
        logp, entropy = token_logprobs(model, *batch, 4, with_entropy=True)
        grads.append(parameter_grads(model, logp.sum() + 0.1 * entropy.sum()))
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)


def test_padding_adds_no_gradient(batch):
    """A padded row's gradient equals its unpadded gradient (no NaN from fully masked pad rows)."""
    model = make_model()
    ids, mask = batch
    alone = parameter_grads(model, token_logprobs(model, ids[:1, :6], mask[:1, :6], 2, False)[0].sum())
    padded_ids = torch.cat([torch.zeros(1, 4, dtype=torch.long), ids[:1, :6]], 1)
    padded_mask = torch.cat([torch.zeros(1, 4, dtype=torch.long), mask[:1, :6]], 1)
    padded = parameter_grads(model, token_logprobs(model, padded_ids, padded_mask, 2, False)[0].sum())
    for name in alone:
        torch.testing.assert_close(padded[name], alone[name], atol=1e-5, rtol=1e-4, msg=name)


def test_bfloat16_model_gives_float32_log_probs_close_to_float32(batch):
    model = make_model()
    exact, _ = token_logprobs(model, *batch, 4, with_entropy=False)
    logp, entropy = token_logprobs(model.to(torch.bfloat16), *batch, 4, with_entropy=True)
    assert logp.dtype == torch.float32 and entropy.dtype == torch.float32
    torch.testing.assert_close(logp, exact, atol=0.1, rtol=0.05)
    logp.sum().backward()
    assert model.lm_head.weight.grad.dtype == torch.bfloat16 and torch.isfinite(model.lm_head.weight.grad.float()).all()


def test_no_grad_path_and_bad_chunk(batch):
    model = make_model()
    with torch.no_grad():
        logp, _ = token_logprobs(model, *batch, 5, with_entropy=True)
    assert not logp.requires_grad
    with pytest.raises(ValueError, match="chunk=0"):
        token_logprobs(model, *batch, 0, with_entropy=False)


# --- loading ---------------------------------------------------------------------------------


def save_policy(directory, pad: bool = True):
    model, tokenizer = make_model(seed=7), make_tokenizer(pad=pad)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


def test_load_policy_from_a_directory(tmp_path):
    saved = save_policy(tmp_path)
    model, tokenizer = load_policy(ModelConfig(path=str(tmp_path), device="cpu"))
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "<pad>"
    assert next(model.parameters()).dtype == torch.float32  # auto on the CPU
    for (name, a), b in zip(saved.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name


def test_pad_token_falls_back_to_eos_and_dtype_is_honoured(tmp_path):
    save_policy(tmp_path, pad=False)
    model, tokenizer = load_policy(ModelConfig(path=str(tmp_path), dtype=DType.bfloat16, gradient_checkpointing=True))
    assert tokenizer.pad_token == "<eos>" and tokenizer.pad_token_id == 1
    # on the CPU bf16 is autocast over float32 weights (bench/models/precision.py)
    assert next(model.parameters()).dtype == torch.float32 and model.bench_autocast_dtype == torch.bfloat16
    assert model.is_activation_checkpointing


def test_unknown_path_fails_at_once_in_one_line():
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as info:
        load_policy(ModelConfig(path="/nonexistent/model"))
    assert time.monotonic() - start < 5
    assert str(info.value) == "model.path=/nonexistent/model does not exist; set model.path=<a model directory> or a hub name"
    with pytest.raises(FileNotFoundError,
                       match=r"^some-org/not-cached-model not found locally; set model.path=<dir> \(\w+\)$"):
        load_policy(ModelConfig(path="some-org/not-cached-model"))


def test_directory_without_a_model_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_policy(ModelConfig(path=str(tmp_path)))


def test_model_schema_is_registered_with_hydra():
    node = ConfigStore.instance().repo["model"]["model_schema.yaml"].node
    cfg = OmegaConf.to_object(OmegaConf.merge(node, {"logprob_chunk": 64, "dtype": "bfloat16"}))
    assert cfg == ModelConfig(logprob_chunk=64, dtype=DType.bfloat16)
    with pytest.raises(OmegaConfBaseException, match="dtyp"):
        OmegaConf.merge(node, {"dtyp": "bfloat16"})
    with pytest.raises(ValueError, match="logprob_chunk=0"):
        ModelConfig(logprob_chunk=0)
    with pytest.raises(ValueError, match="dtype='float16' is not one of"):
        ModelConfig(dtype="float16")
