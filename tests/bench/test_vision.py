"""Vision-language policies: prompts with images are encoded as the Qwen2-VL processor would,
rollouts carry their pixels, and log-probs recompute the vision features exactly."""

import dataclasses

import pytest
import torch

from bench.config import ModelConfig, Sampling
from bench.engines import HFEngine, Rollouts
from bench.engines.base import encode_prompts
from bench.models.policy import load_image_processor, load_policy, token_kl, token_logprobs
from bench.models.tiny import TINY_MODELS, build_image_processor, build_model, build_tokenizer
from bench.models.vision import IMAGE_TOKEN, Images, forward_kwargs, vision_tower
from tasks.dots import DotsConfig, DotsTask

CONFIG = dataclasses.replace(TINY_MODELS["dots"], task=DotsConfig(train_size=200))


@pytest.fixture(scope="module")
def vlm():
    """A freshly initialised tiny Qwen2-VL (not warm-started), its tokenizer and image processor."""
    torch.manual_seed(0)
    return build_model(CONFIG).eval(), build_tokenizer(CONFIG), build_image_processor(CONFIG)


@pytest.fixture(scope="module")
def task():
    return DotsTask(DotsConfig(eval_size=6))


@pytest.fixture(scope="module")
def rollouts(vlm, task):
    model, tokenizer, processor = vlm
    problems = task.load("dots")[:3]
    sampling = Sampling(temperature=1.0, max_new_tokens=6, seed=1)
    return HFEngine(model, tokenizer, processor).generate([task.prompt(p) for p in problems], 2, sampling)


def naive_logprobs(model, r: Rollouts) -> torch.Tensor:
    """Every logit at once from the model's own forward (its head included), float64."""
    logits = model(input_ids=r.input_ids, attention_mask=r.attention_mask,
                   **forward_kwargs(model, r.input_ids, r.images_of())).logits.double()
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, r.input_ids[:, 1:, None]).squeeze(-1)
    valid = (r.attention_mask[:, 1:] > 0) & (r.attention_mask[:, :-1] > 0)
    return torch.cat([torch.zeros(len(r), 1, dtype=torch.float64), logp * valid], dim=1)


def test_prompt_placeholders_expand_to_the_image_tokens(vlm, task):
    _, tokenizer, processor = vlm
    ids, images = encode_prompts(tokenizer, [task.prompt(p) for p in task.load("dots")[:2]], processor)
    pad = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    side = CONFIG.vision.image_size // CONFIG.vision.patch
    for row, image in zip(ids, images):
        assert image.grid_thw.tolist() == [[1, side, side]]
        assert image.pixel_values.shape[0] == side * side  # one flattened patch per 14 x 14 pixels
        assert row.count(pad) == side * side // CONFIG.vision.merge**2  # one token per merged 2 x 2 patches


@pytest.mark.parametrize("chunk", [1, 4, 256])
def test_chunked_logprobs_with_images_equal_the_naive_forward(vlm, rollouts, chunk):
    model = vlm[0]
    logp, entropy = token_logprobs(model, rollouts.input_ids, rollouts.attention_mask, chunk, with_entropy=True,
                                   images=rollouts.images_of())
    with torch.no_grad():
        reference = naive_logprobs(model, rollouts)
    torch.testing.assert_close(logp.double(), reference, atol=2e-5, rtol=1e-5)
    assert (entropy[rollouts.response_mask > 0] > 0).all()


def test_a_row_scores_the_same_alone_and_left_padded_in_a_batch(vlm, rollouts):
    model = vlm[0]
    batch, _ = token_logprobs(model, rollouts.input_ids, rollouts.attention_mask, 8, with_entropy=False,
                              images=rollouts.images_of())
    for row in range(len(rollouts)):
        keep = rollouts.attention_mask[row] > 0
        alone, _ = token_logprobs(model, rollouts.input_ids[row : row + 1, keep],
                                  rollouts.attention_mask[row : row + 1, keep], 8, with_entropy=False,
                                  images=rollouts.images_of([row]))
        torch.testing.assert_close(batch[row, keep][1:], alone[0, 1:], atol=2e-5, rtol=1e-5)


def test_images_follow_their_rows_through_select_and_cat(rollouts):
    picked = rollouts.select([3, 0])
    assert picked.images == (rollouts.images[3], rollouts.images[0])
    joined = Rollouts.cat([picked, rollouts.select([5])], renumber=True)
    assert joined.images == (rollouts.images[3], rollouts.images[0], rollouts.images[5])
    both = joined.images_of([0, 2])
    assert torch.equal(both.pixel_values, torch.cat([rollouts.images[3].pixel_values,
                                                     rollouts.images[5].pixel_values]))
    assert rollouts.images[0] is rollouts.images[1]  # the n rows of a prompt share its pixels


def test_a_prompt_samples_the_same_whatever_else_shares_its_call(vlm, task):
    model, tokenizer, processor = vlm
    engine, problems = HFEngine(model, tokenizer, processor), task.load("dots")[:3]
    sampling = Sampling(temperature=1.0, max_new_tokens=6, seed=4)
    together = engine.generate([task.prompt(p) for p in problems], 2, sampling)
    last = engine.generate([task.prompt(problems[2])], 2, sampling, first=2)
    assert together.texts[4:] == last.texts


def test_gradients_reach_the_decoder_not_a_frozen_tower(vlm, rollouts):
    model = vlm[0]
    copy = build_model(CONFIG)
    copy.load_state_dict(model.state_dict())
    tower = vision_tower(copy)
    tower.requires_grad_(False)
    logp, _ = token_logprobs(copy, rollouts.input_ids, rollouts.attention_mask, 8, with_entropy=False,
                             images=rollouts.images_of())
    (logp * rollouts.response_mask).sum().backward()
    assert all(p.grad is None for p in tower.parameters())
    assert copy.lm_head.weight.grad is not None and copy.lm_head.weight.grad.abs().sum() > 0
    tower.requires_grad_(True)
    logp, _ = token_logprobs(copy, rollouts.input_ids, rollouts.attention_mask, 8, with_entropy=False,
                             images=rollouts.images_of())
    (logp * rollouts.response_mask).sum().backward()
    assert all(p.grad is not None for p in tower.parameters())


def test_kl_from_itself_is_zero_with_images(vlm, rollouts):
    model = vlm[0]
    kl = token_kl(model, model, rollouts.input_ids, rollouts.attention_mask, 8, images=rollouts.images_of())
    assert kl.abs().max() < 1e-6


def test_load_policy_freezes_the_vision_tower_by_default(vlm, tmp_path):
    model, tokenizer, processor = vlm
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_policy(ModelConfig(path=str(tmp_path)))
    assert type(loaded).__name__ == "Qwen2VLForConditionalGeneration"
    assert not any(p.requires_grad for p in vision_tower(loaded).parameters())
    assert all(p.requires_grad for p in loaded.model.language_model.parameters())
    trainable, _ = load_policy(ModelConfig(path=str(tmp_path), freeze_vision=False))
    assert all(p.requires_grad for p in vision_tower(trainable).parameters())
    again = load_image_processor(ModelConfig(path=str(tmp_path)), loaded)
    assert again.to_dict() == processor.to_dict()
    assert loaded_tokenizer.chat_template == tokenizer.chat_template


def test_text_models_have_no_image_processor_and_refuse_image_prompts(task):
    from bench.models.tiny import TINY_MODELS as models

    text_tokenizer = build_tokenizer(dataclasses.replace(models["arith"], arith=dataclasses.replace(
        models["arith"].arith, train_size=100)))
    with pytest.raises(ValueError, match="text model"):
        encode_prompts(text_tokenizer, [task.prompt(task.load("dots")[0])])
    model = build_model(models["arith"])
    assert load_image_processor(ModelConfig(), model) is None
    with pytest.raises(ValueError, match="text model"):
        token_logprobs(model, torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long), 4, False,
                       images=Images(torch.zeros(4, 1176), torch.tensor([[1, 2, 2]])))


def test_activation_checkpointing_gives_the_same_gradients_with_images(vlm, rollouts, tmp_path):
    model, tokenizer, processor = vlm
    for part in (model, tokenizer, processor):
        part.save_pretrained(tmp_path)
    grads = []
    for checkpointing in (False, True):
        loaded, _ = load_policy(ModelConfig(path=str(tmp_path), gradient_checkpointing=checkpointing,
                                            freeze_vision=False))
        assert loaded.is_gradient_checkpointing == checkpointing  # both towers (model.gradient_checkpointing)
        loaded.train()
        logp, entropy = token_logprobs(loaded, rollouts.input_ids, rollouts.attention_mask, 8, with_entropy=True,
                                       images=rollouts.images_of())
        ((logp * rollouts.response_mask).sum() + 0.1 * entropy.sum()).backward()
        grads.append({name: p.grad.clone() for name, p in loaded.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(k.startswith("model.visual") for k in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)
