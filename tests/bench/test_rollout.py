"""Rollouts: one padded batch whose masks cover exactly the generated tokens, reproducible by seed."""

import dataclasses

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_policy import make_model, make_tokenizer

from bench.compose import CONF_DIR
from bench.config import EngineName, RolloutConfig, Sampling
from bench.engines import Rollouts, build_engine
from bench.engines.base import encode_prompts, span_tokens
from bench.engines.hf import HFEngine
from bench.engines.vllm import VLLM_MISSING, vllm_available
from bench.models.policy import token_logprobs

EOS, PAD = 1, 0
PROMPTS = [
    [{"role": "user", "content": "w1 w2 w3"}],
    [{"role": "user", "content": "w4"}],
    [{"role": "system", "content": "w5 w6"}, {"role": "user", "content": "w7 w8 w9 w10 w11"}],
]


def biased_model(eos_logit: float, seed: int = 0):
    """A model whose next token is EOS with a fixed probability, else a uniform word (never a special token).

    The final norm is zeroed so every logit is the output head's bias.
    """
    model = make_model(seed=seed)
    with torch.no_grad():
        model.model.norm.weight.zero_()
        head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
        head.weight.zero_()
        head.bias.zero_()
        head.bias[[PAD, 2, 3, 4]] = -1e4
        head.bias[EOS] = eos_logit
    model.set_output_embeddings(head)
    return model


@pytest.fixture(scope="module")
def tokenizer():
    tok = make_tokenizer()
    tok.padding_side = "left"
    return tok


def check_layout(r: Rollouts, tokenizer, prompts, n: int, max_new_tokens: int) -> None:
    """Every row: its prompt left-padded, then its response, then padding; masks say exactly that."""
    encoded, _ = encode_prompts(tokenizer, prompts)
    N, T = r.input_ids.shape
    assert N == len(prompts) * n == len(r.texts) == len(r.finish)
    assert r.attention_mask.shape == r.response_mask.shape == (N, T)
    assert r.prompt_b.tolist() == [p for p in range(len(prompts)) for _ in range(n)]
    width = r.prompt_width
    assert width == max(len(e) for e in encoded)
    for row in range(N):
        prompt = encoded[int(r.prompt_b[row])]
        length = int(r.lengths_b[row])
        ids, attention = r.input_ids[row].tolist(), r.attention_mask[row].tolist()
        response = r.response_mask[row].tolist()
        assert ids[width - len(prompt) : width] == prompt
        assert ids[: width - len(prompt)] == [PAD] * (width - len(prompt))
        assert attention == [0] * (width - len(prompt)) + [1] * (len(prompt) + length) + [0] * (T - width - length)
        assert response == [0.0] * width + [1.0] * length + [0.0] * (T - width - length)
        generated = ids[width : width + length]
        assert ids[width + length :] == [PAD] * (T - width - length)
        assert 1 <= length <= max_new_tokens
        assert EOS not in generated[:-1]
        if r.finish[row] == "stop":
            assert generated[-1] == EOS
        else:
            assert r.finish[row] == "length" and length == max_new_tokens and generated[-1] != EOS
        assert r.texts[row] == tokenizer.decode(generated, skip_special_tokens=True)


def test_layout_masks_and_finish_reasons(tokenizer):
    model = biased_model(eos_logit=2.0)  # p(EOS) = e^2 / (e^2 + 40) = 0.16 per token
    r = HFEngine(model, tokenizer).generate(PROMPTS, 4, Sampling(max_new_tokens=5, seed=1))
    check_layout(r, tokenizer, PROMPTS, 4, 5)
    assert {"stop", "length"} == set(r.finish)
    assert r.response_mask.dtype == torch.float32 and r.attention_mask.dtype == torch.long
    assert r.input_ids.device.type == "cpu"


def test_always_eos_stops_after_one_token(tokenizer):
    r = HFEngine(biased_model(eos_logit=50.0), tokenizer).generate(PROMPTS, 2, Sampling(max_new_tokens=7))
    check_layout(r, tokenizer, PROMPTS, 2, 7)
    assert r.finish == ["stop"] * 6 and r.lengths_b.tolist() == [1] * 6 and r.texts == [""] * 6


def test_never_eos_runs_to_max_new_tokens(tokenizer):
    r = HFEngine(biased_model(eos_logit=-1e4), tokenizer).generate(PROMPTS, 2, Sampling(max_new_tokens=6))
    check_layout(r, tokenizer, PROMPTS, 2, 6)
    assert r.finish == ["length"] * 6 and r.lengths_b.tolist() == [6] * 6
    assert all(len(t.split()) == 6 for t in r.texts)


def test_random_policy_layout(tokenizer):
    """A plain random model (any token, EOS by chance): the same invariants hold."""
    model = make_model(seed=2)
    r = HFEngine(model, tokenizer).generate(PROMPTS, 3, Sampling(max_new_tokens=9, seed=4))
    check_layout(r, tokenizer, PROMPTS, 3, 9)


def test_same_seed_same_responses_and_no_side_effects(tokenizer):
    model = make_model(seed=2).train()
    engine = HFEngine(model, tokenizer)
    rng = torch.random.get_rng_state()
    first = engine.generate(PROMPTS, 3, Sampling(max_new_tokens=8, seed=11))
    assert torch.equal(torch.random.get_rng_state(), rng), "generation must not move the trainer's RNG"
    assert model.training, "the training mode is restored"
    again = engine.generate(PROMPTS, 3, Sampling(max_new_tokens=8, seed=11))
    other = engine.generate(PROMPTS, 3, Sampling(max_new_tokens=8, seed=12))
    assert again.texts == first.texts and torch.equal(again.input_ids, first.input_ids)
    assert other.texts != first.texts
    model.eval()
    engine.generate(PROMPTS[:1], 1, Sampling(max_new_tokens=2))
    assert not model.training


def test_model_generation_defaults_do_not_leak(tokenizer):
    """Only ``Sampling`` decides: a model's own generation_config (penalties, top-k) is not applied."""
    plain = make_model(seed=2)
    opinionated = make_model(seed=2)
    opinionated.generation_config.update(repetition_penalty=10.0, top_k=1, temperature=0.05, no_repeat_ngram_size=1,
                                         min_new_tokens=5)
    sampling = Sampling(max_new_tokens=8, seed=3)
    a = HFEngine(plain, tokenizer).generate(PROMPTS, 3, sampling)
    b = HFEngine(opinionated, tokenizer).generate(PROMPTS, 3, sampling)
    assert a.texts == b.texts and torch.equal(a.input_ids, b.input_ids)


def test_top_k_1_is_greedy(tokenizer):
    r = HFEngine(make_model(seed=2), tokenizer).generate(PROMPTS, 4, Sampling(top_k=1, max_new_tokens=6, seed=9))
    for p in range(len(PROMPTS)):
        assert len(set(r.texts[p * 4 : (p + 1) * 4])) == 1


def test_rollouts_score_with_token_logprobs(tokenizer):
    """The batch feeds token_logprobs as is: finite log-probs on response tokens, 0 where masked."""
    model = make_model(seed=2)
    r = HFEngine(model, tokenizer).generate(PROMPTS, 2, Sampling(max_new_tokens=6, seed=1))
    with torch.no_grad():
        logp, entropy = token_logprobs(model, r.input_ids, r.attention_mask, 4, with_entropy=True)
    response = r.response_mask.bool()
    assert torch.isfinite(logp).all() and (logp[response] < 0).all() and (entropy[response] > 0).all()
    assert (logp[r.attention_mask == 0] == 0).all()


def test_select_cat_and_to(tokenizer):
    engine = HFEngine(make_model(seed=2), tokenizer)
    a = engine.generate(PROMPTS, 2, Sampling(max_new_tokens=3, seed=1))
    b = engine.generate(PROMPTS[1:2], 2, Sampling(max_new_tokens=9, seed=2))
    picked = a.select([4, 5, 0, 1])
    assert picked.prompt_b.tolist() == [2, 2, 0, 0] and picked.texts == [a.texts[i] for i in (4, 5, 0, 1)]
    both = Rollouts.cat([picked, b], renumber=True)
    assert both.prompt_b.tolist() == [0, 0, 1, 1, 2, 2]
    assert Rollouts.cat([picked, b]).prompt_b.tolist() == [2, 2, 0, 0, 0, 0]
    assert both.prompt_width == max(a.prompt_width, b.prompt_width)
    assert both.texts == picked.texts + b.texts and both.finish == picked.finish + b.finish
    assert both.lengths_b.tolist() == picked.lengths_b.tolist() + b.lengths_b.tolist()
    for row, (part, index) in enumerate([(picked, i) for i in range(4)] + [(b, i) for i in range(2)]):
        keep = both.attention_mask[row].bool()
        assert both.input_ids[row][keep].tolist() == part.input_ids[index][part.attention_mask[index].bool()].tolist()
        assert (both.input_ids[row][~keep] == PAD).all()
        assert both.response_mask[row, both.prompt_width :].sum() == part.lengths_b[index]
    assert both.to("cpu").input_ids.device.type == "cpu"
    with pytest.raises(ValueError, match="at least one"):
        Rollouts.cat([])


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_new_tokens": 0}, "sampling.max_new_tokens=0 must be >= 1"),
        ({"temperature": -0.5}, "sampling.temperature=-0.5 must be > 0"),
        ({"top_p": 0.0}, r"sampling.top_p=0.0 must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"sampling.top_p=1.5 must be in \(0, 1\]"),
        ({"top_k": -1}, "sampling.top_k=-1 must be >= 0"),
    ],
)
def test_sampling_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sampling(**kwargs)


def compose_rollout(choice: str, *overrides: str) -> RolloutConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=f"rollout/{choice}", overrides=[f"rollout.{o}" for o in overrides])
    return OmegaConf.to_object(cfg.rollout)


@pytest.mark.parametrize("choice", ["hf", "vllm"])
def test_rollout_yamls_select_the_schema(choice):
    cfg = compose_rollout(choice)
    assert cfg == dataclasses.replace(RolloutConfig(), engine=EngineName(choice))
    assert compose_rollout(choice, "n=3", "top_k=20").sampling(seed=5) == Sampling(top_k=20, seed=5)


def test_rollout_config_errors_are_one_line():
    with pytest.raises(ValueError, match="rollout.max_new_tokens=0 must be >= 1"):
        compose_rollout("hf", "max_new_tokens=0")
    with pytest.raises(ValueError, match="rollout.n=0 must be >= 1"):
        RolloutConfig(n=0)
    with pytest.raises(ValueError, match="engine='sglang' is not one of: hf, vllm"):
        RolloutConfig(engine="sglang")


def test_build_engine_hf(tokenizer):
    model = make_model()
    engine = build_engine(RolloutConfig(), model, tokenizer)
    assert isinstance(engine, HFEngine)
    engine.sync_weights(model)  # nothing to push: it samples from the policy itself


# --- vLLM without vLLM (the engine's own tests: tests/bench/test_vllm.py) --------------------



@pytest.mark.skipif(vllm_available(), reason="vLLM is installed")
def test_vllm_engine_without_vllm_says_how_to_install(tokenizer):
    with pytest.raises(ImportError) as info:
        build_engine(RolloutConfig(engine="vllm"), make_model(), tokenizer)
    assert str(info.value) == VLLM_MISSING
    assert "make setup-vllm" in VLLM_MISSING and "\n" not in VLLM_MISSING


def test_vllm_sleep_mode_is_refused_on_the_cpu_before_anything_starts(tokenizer):
    """Checked before vLLM is imported: the same line with or without vLLM installed."""
    with pytest.raises(ValueError, match=r"^rollout.sleep_between_steps=true: vLLM's sleep mode needs a GPU "
                                         r"\(the policy is on cpu\); set rollout.sleep_between_steps=false$"):
        build_engine(RolloutConfig(engine="vllm", sleep_between_steps=True), make_model(), tokenizer)


# --- greedy decoding (evaluation only) -------------------------------------------------------


def test_training_rollouts_refuse_greedy_decoding():
    with pytest.raises(ValueError, match=r"rollout.temperature=0.0 must be > 0: a rollout samples "
                                         r"\(greedy decoding is for evaluation: eval.greedy=true\)"):
        RolloutConfig(temperature=0.0)
    with pytest.raises(ValueError, match="rollout.temperature=0.0 must be > 0"):
        compose_rollout("hf", "temperature=0")
    assert Sampling(temperature=0.0).greedy and not Sampling().greedy


def decisive_model(seed: int):
    """A random model with sharp next-token distributions, so greedy decoding has clear winners."""
    model = make_model(seed=seed)
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
    return model


def test_hf_greedy_decoding_takes_the_argmax_every_step(tokenizer):
    """Temperature 0: each token is the argmax of the model's next-token logits, whatever the seed."""
    model = decisive_model(seed=3)
    model.generation_config.update(do_sample=True, temperature=1000.0, top_k=0)  # must not turn greedy into sampling
    engine = HFEngine(model, tokenizer)
    first = engine.generate(PROMPTS, 1, Sampling(temperature=0.0, max_new_tokens=6, seed=1))
    again = engine.generate(PROMPTS, 2, Sampling(temperature=0.0, max_new_tokens=6, seed=99))
    assert again.texts == [t for t in first.texts for _ in range(2)]
    for row in range(len(PROMPTS)):
        kept = first.attention_mask[row].bool()
        tokens = first.input_ids[row][kept]  # the prompt and response without padding
        with torch.no_grad():
            logits = model(input_ids=tokens[None]).logits[0]
        start = len(tokens) - int(first.lengths_b[row])
        assert tokens[start:].tolist() == logits[start - 1 : -1].argmax(-1).tolist()
    sampled = engine.generate(PROMPTS, 2, Sampling(max_new_tokens=6, seed=1))
    assert sampled.sample_logp_bt is None  # hf samples from the policy itself: nothing to compare


def test_vllm_engine_arguments_on_the_cpu(tmp_path, tokenizer):
    """What the engine asks vLLM for (no vLLM needed): the CPU defaults, and explicit settings winning."""
    from bench.engines.vllm import CPU_BATCHED_TOKENS, engine_args

    make_model().save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    args = engine_args(RolloutConfig(engine="vllm"), model, tokenizer, seed=7)
    assert args["model"] == str(tmp_path) and args["seed"] == 7 and args["dtype"] == "float32"
    assert args["kv_cache_memory_bytes"] == 2**30 and args["enforce_eager"] is True and args["max_num_seqs"] == 1024
    assert args["enable_chunked_prefill"] is False and args["max_num_batched_tokens"] >= CPU_BATCHED_TOKENS
    assert args["logprobs_mode"] == "processed_logprobs" and args["generation_config"] == "vllm"
    chosen = engine_args(RolloutConfig(engine="vllm", kv_cache_gib=0.25, enforce_eager=False, max_num_seqs=64),
                         model, tokenizer, seed=0)
    assert (chosen["kv_cache_memory_bytes"], chosen["enforce_eager"], chosen["max_num_seqs"]) == (2**28, False, 64)
    with pytest.raises(ValueError, match="model.config._name_or_path is empty"):
        engine_args(RolloutConfig(engine="vllm"), make_model(), tokenizer, seed=0)


def test_span_tokens_marks_the_answer_tokens_of_real_responses():
    """The tiny model's byte-level tokenizer: the tokens inside each row's box spell its content;
    a row whose tokens do not decode one by one to its text (a 2-byte character) is left unmapped."""
    from bench.config import ModelConfig
    from bench.models.policy import load_policy
    from tasks.extract import last_boxed_span

    tokenizer = load_policy(ModelConfig())[1]
    texts = ["Take 23. 57-23 = 34. The answer is \\boxed{23+34}.", "no answer here", "caf\u00e9 \\boxed{5}",
             "\\boxed{ 7 } and more"]
    responses = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    r = Rollouts.build([[5, 6], [7]], responses, [0, 0, 1, 1], [tokenizer.decode(x, skip_special_tokens=True)
                                                                  for x in responses],
                       ["stop"] * 4, tokenizer.pad_token_id)
    assert r.texts == texts
    spans = [[span] if (span := last_boxed_span(t)) else [] for t in texts]
    spans[0].insert(0, (5, 7))  # "Take 23.": the 23 too
    inside_bt, mapped_b = span_tokens(tokenizer, r, spans)
    assert mapped_b.tolist() == [True, True, False, True]
    spelled = [tokenizer.decode(r.input_ids[b][inside_bt[b]]) for b in range(4)]
    assert spelled[0] == "2323+34" and spelled[1] == "" and spelled[2] == ""
    assert spelled[3].strip() == "7" and not (inside_bt & (r.response_mask == 0)).any()
