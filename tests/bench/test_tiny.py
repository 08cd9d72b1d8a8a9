"""The tiny model: tokenizer, config fingerprint, the shipped checkpoint and the warm-start loop."""

import dataclasses
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench import pretrain as pretrain_cli
from bench.models import warmstart
from bench.models.tiny import (
    CACHE_ENV,
    SHIPPED_DIR,
    TINY_MODELS,
    TinyConfig,
    build_model,
    build_tokenizer,
    demonstrations,
    imitated,
    read_meta,
)
from bench.models.warmstart import ensure_base
from tasks.arith import ArithConfig, ArithTask, demonstration

TEXTS = [
    "12+7 = 19. The answer is \\boxed{19}.",
    "5-93 = -88. The answer is \\boxed{-88}.",
    "Compute 81-95.",
    "(12+7)*3 = 57, 0123456789",
    "héllo wörld ∑ x_{i}^2 / 2\n\tend",
]


@pytest.fixture(scope="module")
def built():
    return build_tokenizer(TinyConfig())


@pytest.fixture(scope="module")
def shipped_dir():
    return ensure_base(TinyConfig())


@pytest.fixture(scope="module")
def shipped_tokenizer(shipped_dir):
    return AutoTokenizer.from_pretrained(shipped_dir)


def test_every_digit_is_its_own_token_and_text_round_trips(shipped_tokenizer):
    tok = shipped_tokenizer
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False).input_ids
        assert tok.decode(ids) == text
        pieces = [tok.decode([i]) for i in ids]
        assert not [p for p in pieces if any(c.isdigit() for c in p) and len(p.strip()) > 1], pieces
    assert len(tok("1234567890", add_special_tokens=False).input_ids) == 10


def test_chat_template_renders_user_turns_and_the_generation_prompt(shipped_tokenizer):
    tok = shipped_tokenizer
    messages = [{"role": "user", "content": "Compute 1+2."}]
    assert tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == (
        "<|user|>Compute 1+2.<|end|><|assistant|>")
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert ids[0] == tok.convert_tokens_to_ids("<|user|>") and ids[-1] == tok.convert_tokens_to_ids("<|assistant|>")
    turn = messages + [{"role": "assistant", "content": "1+2 = 3. The answer is \\boxed{3}."}]
    assert tok.apply_chat_template(turn, tokenize=False).endswith("\\boxed{3}.<|end|>")
    with pytest.raises(Exception, match="no role tool"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)
    assert (tok.eos_token, tok.pad_token) == ("<|end|>", "<|pad|>") and tok.eos_token_id != tok.pad_token_id


def test_the_shipped_tokenizer_is_what_build_tokenizer_makes_now(built, shipped_tokenizer):
    # AutoTokenizer loads qwen2 checkpoints as Qwen2Tokenizer, which rebuilds the pipeline: it must agree
    assert type(shipped_tokenizer).__name__ == "Qwen2Tokenizer"
    assert shipped_tokenizer.get_vocab() == built.get_vocab()
    task = ArithTask(ArithConfig())
    problems = task.load("arith")[:50]
    texts = TEXTS + [demonstration(p) for p in problems] + [warmstart.render(built, task, p) for p in problems]
    for text in texts:
        assert shipped_tokenizer(text).input_ids == built(text).input_ids, text


def test_fingerprint_covers_every_field():
    base = TinyConfig()
    assert base.fingerprint() == TinyConfig().fingerprint() and len(base.fingerprint()) == 10
    assert base.name == f"tiny-{base.fingerprint()}"
    changed = [
        dataclasses.replace(base, steps=base.steps + 1),
        dataclasses.replace(base, hidden_size=64),
        dataclasses.replace(base, lr=1e-3),
        dataclasses.replace(base, arith=dataclasses.replace(base.arith, digits=3)),
    ]
    assert len({c.fingerprint() for c in changed} | {base.fingerprint()}) == len(changed) + 1


def test_config_checks_shapes():
    with pytest.raises(ValueError, match="divide evenly"):
        TinyConfig(hidden_size=130)
    with pytest.raises(ValueError, match="warmup_steps"):
        TinyConfig(steps=10, warmup_steps=20)


def test_build_model_is_a_tied_qwen2_of_about_a_million_parameters(built):
    model = build_model(TinyConfig())
    assert model.config.model_type == "qwen2" and model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert 0.9e6 < sum(p.numel() for p in model.parameters()) < 1.3e6
    assert (model.config.eos_token_id, model.config.pad_token_id) == (built.eos_token_id, built.pad_token_id)
    assert len(built) <= model.config.vocab_size


def test_ensure_base_returns_the_shipped_checkpoint_and_it_loads_offline(shipped_dir, shipped_tokenizer, monkeypatch,
                                                                          tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))  # the shipped checkpoint wins over any cache
    assert ensure_base() == shipped_dir == SHIPPED_DIR / TinyConfig().name
    model = AutoModelForCausalLM.from_pretrained(shipped_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM" and not list(tmp_path.iterdir())
    task = ArithTask(ArithConfig())
    problems = task.load("arith")[:4]
    inputs = shipped_tokenizer([warmstart.render(shipped_tokenizer, task, p) for p in problems], padding=True,
                               padding_side="left", add_special_tokens=False, return_tensors="pt")
    out = model.generate(**inputs, do_sample=False, max_new_tokens=warmstart.MAX_NEW_TOKENS)
    completions = shipped_tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert all("The answer is \\boxed{" in c for c in completions), completions  # it learned the format


def test_shipped_meta_records_a_pass_at_1_that_leaves_room_for_rl(shipped_dir):
    meta = read_meta(shipped_dir)
    low, high = warmstart.PASS1_RANGE
    assert meta["fingerprint"] == TinyConfig().fingerprint() and meta["steps"] == TinyConfig().steps
    assert low <= meta["eval"]["pass1"] <= high
    assert meta["eval"]["mixed"] > 0.3 and meta["eval"]["temperature"] == 1.0


def test_pretrain_cli_leaves_an_up_to_date_checkpoint_alone(shipped_dir, capsys):
    before = (shipped_dir / "model.safetensors").stat().st_mtime_ns
    assert pretrain_cli.main([]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (shipped_dir / "model.safetensors").stat().st_mtime_ns == before


def test_pass_at_1_outside_the_range_fails_loudly():
    low, high = warmstart.PASS1_RANGE
    warmstart.check_pass1((low + high) / 2, 10)
    for pass1 in (low - 0.01, high + 0.01):
        with pytest.raises(warmstart.PretrainError, match=f"pass@1 {pass1:.3f}"):
            warmstart.check_pass1(pass1, 10)


def test_lr_warms_up_then_decays_to_the_floor():
    config = TinyConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [warmstart.lr_factor(step, config) for step in range(config.steps + 1)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert factors[-1] == pytest.approx(0.1)


def test_collate_puts_labels_on_response_tokens_only():
    ids_bt, attention_bt, labels_bt = warmstart.collate([([7, 8, 9], [4, 5, 1]), ([7, 8], [6, 1])], pad_id=0)
    assert ids_bt.tolist() == [[7, 8, 9, 4, 5, 1], [7, 8, 6, 1, 0, 0]]
    assert attention_bt.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]
    assert labels_bt.tolist() == [[-100, -100, -100, 4, 5, 1], [-100, -100, 6, 1, -100, -100]]


def test_batch_order_is_seeded_and_covers_each_epoch():
    config = TinyConfig(steps=10, warmup_steps=0, batch_size=4)
    order = warmstart.batch_order(20, config)
    assert order.shape == (10, 4) and torch.equal(order, warmstart.batch_order(20, config))
    assert sorted(order[:5].flatten().tolist()) == list(range(20))  # first epoch: each example once


SMALL = TinyConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64, steps=12,
                   lr=1e-2, batch_size=16, warmup_steps=2, arith=ArithConfig(train_size=300))


def test_a_few_warm_start_steps_lower_the_loss_and_write_a_loadable_cached_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "cache" / SMALL.name
    meta = warmstart.build(SMALL, out, check=False, progress=False, eval_problems=3, samples=2, workers=0)
    assert meta["steps"] == 12 and meta["final_loss"] < meta["initial_loss"]
    assert json.loads((out / "meta.json").read_text())["eval"]["samples"] == 2
    assert not [p for p in out.parent.iterdir() if p != out]  # the temporary directory is gone
    assert ensure_base(SMALL, cache_dir=tmp_path / "cache") == out  # cached: no rebuild
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert ensure_base(SMALL) == out
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Compute 1+2."}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=False)
    assert torch.isfinite(model(ids).logits).all()


def test_each_tiny_model_imitates_its_task_and_the_arith_name_is_unchanged():
    arith, sums = TINY_MODELS["arith"], TINY_MODELS["sums"]
    assert arith == TinyConfig() and imitated(arith).config.name == "arith"
    assert imitated(sums).config.name == "sums" and sums.name != arith.name
    # the field added for other tasks leaves arith's fingerprint (the shipped checkpoint's name) alone
    assert arith.name in {p.name for p in SHIPPED_DIR.glob("tiny-*")}
    assert dataclasses.replace(sums, task=dataclasses.replace(sums.task, min_answers=9)).name != sums.name


def test_sums_demonstrations_draw_different_right_answers():
    task = imitated(TINY_MODELS["sums"])
    problem = task.load("sums")[0]
    texts = demonstrations(task, [problem] * 40, seed=0)
    assert texts == demonstrations(task, [problem] * 40, seed=0)  # seeded
    verdicts = [task.score(problem, t) for t in texts]
    assert all(v.correct for v in verdicts) and len({v.extracted for v in verdicts}) >= 5
    arith = ArithTask(ArithConfig())
    p = arith.load("arith")[0]
    assert demonstrations(arith, [p, p], seed=3) == [demonstration(p)] * 2  # one right answer: always it


def test_model_tiny_selects_the_tiny_model():
    from bench.compose import load_run_config

    assert load_run_config(["model=tiny_sums", "task=sums"]).model.tiny.value == "sums"
    assert load_run_config([]).model.tiny.value == "arith"
