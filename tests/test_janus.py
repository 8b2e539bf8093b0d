"""The Janus backend on the tiny random model, loaded through the user's path (`JanusModel.load`)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from unirl_cli.config import SamplingConfig
from unirl_cli.errors import UnirlError
from unirl_cli.models.janus import JanusModel
from unirl_cli.models.janus.understanding import pixels_from_soft_tokens

PROMPTS = ["a red cube", "two blue circles on a long wooden table in the park", "a dog"]


@pytest.fixture(autouse=True)
def _no_leftover_grads(tiny_janus):
    yield
    tiny_janus.zero_grad(set_to_none=True)


def test_tiny_folder_round_trips_generation_config_and_processor(tiny_janus_dir, tiny_janus):
    saved = json.loads((tiny_janus_dir / "generation_config.json").read_text())
    assert saved["generation_kwargs"] == {"boi_token_id": tiny_janus.tokenizer.boi_token_id}
    assert "_from_model_config" not in saved or saved["_from_model_config"] is False
    assert list(tiny_janus.processor.image_processor.image_mean) == [0.5, 0.5, 0.5]
    assert tiny_janus.tokenizer.convert_ids_to_tokens(tiny_janus.tokenizer("two red circles").input_ids) == [
        "<｜begin▁of▁sentence｜>", "two", "Ġred", "Ġcircles"]
    assert (tiny_janus.num_image_tokens, tiny_janus.image_size, tiny_janus.codebook_size) == (16, 64, 16384)


def test_chat_template_matches_generation_prompt(tiny_janus):
    messages = [{"role": "user", "content": [{"type": "text", "text": "a red cube"}]}]
    templated = tiny_janus.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert templated + "<begin_of_image>" == tiny_janus.prompt_format.generation_prompt("a red cube")
    assert templated == "<|User|>: a red cube\n\n<|Assistant|>:"


def test_rows_are_reproducible_from_their_seed_alone(tiny_janus):
    batch = tiny_janus.generate_images(PROMPTS, seeds=[5, 6, 7])
    again = tiny_janus.generate_images(PROMPTS, seeds=[5, 6, 7])
    alone = tiny_janus.generate_images(PROMPTS[1:2], seeds=[6])
    assert batch.image_tokens.shape == (3, 16) and batch.token_logprobs.shape == (3, 16)
    assert torch.equal(batch.image_tokens, again.image_tokens)
    assert torch.equal(alone.image_tokens[0], batch.image_tokens[1])
    torch.testing.assert_close(alone.token_logprobs[0], batch.token_logprobs[1], atol=1e-5, rtol=0)
    other_seed = tiny_janus.generate_images(PROMPTS[1:2], seeds=[60])
    assert not torch.equal(other_seed.image_tokens[0], batch.image_tokens[1])
    assert (batch.guidance_scale, batch.temperature) == (5.0, 1.0)  # Janus-Pro defaults filled in


@pytest.mark.parametrize("sampling", [
    SamplingConfig(guidance_scale=5.0, temperature=1.3),
    SamplingConfig(guidance_scale=1.0, temperature=0.7, top_k=40, top_p=0.9),
])
def test_sampler_logprobs_equal_teacher_forcing(tiny_janus, sampling):
    rollout = tiny_janus.generate_images(PROMPTS, seeds=[1, 2, 3], sampling=sampling)
    rescored = tiny_janus.image_logprobs(rollout)
    assert rescored.requires_grad
    assert (rescored.detach() - rollout.token_logprobs).abs().max() < 1e-4
    assert torch.allclose(tiny_janus.image_logprobs(rollout, micro_batch_size=2).detach(), rescored.detach(), atol=1e-5)
    # Through the forward dispatch that DDP wrappers call.
    assert torch.allclose(tiny_janus("image_logprobs", rollout).detach(), rescored.detach(), atol=1e-6)


def test_top_k_truncation_restricts_samples(tiny_janus):
    greedy = tiny_janus.generate_images(PROMPTS, seeds=[1, 2, 3], sampling=SamplingConfig(greedy=True))
    top_one = tiny_janus.generate_images(PROMPTS, seeds=[4, 5, 6], sampling=SamplingConfig(top_k=1))
    assert torch.equal(greedy.image_tokens, top_one.image_tokens)


def test_greedy_tokens_equal_transformers_generate(tiny_janus):
    rollout = tiny_janus.generate_images(PROMPTS, seeds=[0, 0, 0], sampling=SamplingConfig(guidance_scale=3.0, greedy=True))
    encoded = tiny_janus.tokenizer([tiny_janus.prompt_format.generation_prompt(p) for p in PROMPTS], padding=True,
                                   padding_side="left",
                                   return_tensors="pt")
    reference = tiny_janus.hf_model.generate(**encoded, generation_mode="image", do_sample=False, guidance_scale=3.0)
    assert torch.equal(rollout.image_tokens, reference)


def test_conditional_logprobs_are_log_softmax_of_image_logits(tiny_janus):
    rollout = tiny_janus.generate_images(PROMPTS[:2], seeds=[3, 4], sampling=SamplingConfig(temperature=0.8))
    logits = tiny_janus.image_logits(rollout.prompts, rollout.image_tokens)
    assert logits.shape == (2, 16, 16384) and logits.requires_grad
    expected = F.log_softmax(logits.float() / 0.8, -1).gather(-1, rollout.image_tokens[..., None]).squeeze(-1)
    torch.testing.assert_close(tiny_janus.image_logprobs(rollout, guidance_scale=1.0), expected, atol=1e-5, rtol=0)


def test_decode_and_encode_shapes(tiny_janus):
    tokens = tiny_janus.generate_images(PROMPTS[:2], seeds=[1, 2]).image_tokens
    images = tiny_janus.decode_images(tokens)
    assert [(im.mode, im.size) for im in images] == [("RGB", (64, 64))] * 2
    codes = tiny_janus.encode_images(images)
    assert codes.shape == (2, 16) and codes.dtype == torch.long and 0 <= int(codes.min()) <= int(codes.max()) < 16384
    with pytest.raises(UnirlError, match="expected"):
        tiny_janus.decode_images(tokens[:, :5])


def test_one_hot_soft_tokens_decode_like_hard_codes(tiny_janus):
    tokens = tiny_janus.generate_images(PROMPTS[:2], seeds=[1, 2]).image_tokens
    with torch.no_grad():
        soft = pixels_from_soft_tokens(tiny_janus.hf_model, F.one_hot(tokens, 16384).float())
        hard = tiny_janus.hf_model.model.vqmodel.decode(tokens)
    torch.testing.assert_close(soft, hard, atol=1e-4, rtol=0)


def test_answer_questions_returns_batch_independent_text(tiny_janus):
    tokens = tiny_janus.generate_images(PROMPTS[:2], seeds=[1, 2]).image_tokens
    images = tiny_janus.decode_images(tokens)
    questions = ["How many cubes are there?", "What color is the circle?"]
    answers = tiny_janus.answer_questions(images, questions, max_new_tokens=6)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert tiny_janus.answer_questions(images[1:], questions[1:], max_new_tokens=6) == answers[1:]
    sampled = tiny_janus.answer_questions(tokens, questions, max_new_tokens=6, greedy=False, seeds=[3, 4])
    assert sampled == tiny_janus.answer_questions(tokens, questions, max_new_tokens=6, greedy=False, seeds=[3, 4])


def test_answer_logprobs_equal_transformers_forward(tiny_janus):
    image = tiny_janus.decode_images(tiny_janus.generate_images(PROMPTS[:1], seeds=[1]).image_tokens)[0]
    question, answer = "What color is the cube?", "red"
    scores = tiny_janus.answer_logprobs([image, image], [question, "How many?"], [answer, "two red circles"])
    assert torch.isfinite(scores.total_logprob).all() and scores.total_logprob.requires_grad
    # "red" + EOS = 2 tokens, "two red circles" + EOS = 4 tokens.
    assert scores.token_mask.sum(1).tolist() == [2.0, 4.0]
    # Reference: transformers' own multimodal forward on the full conversation.
    text = f"<|User|>: <image_placeholder>\n{question}\n\n<|Assistant|>: {answer}<｜end▁of▁sentence｜>"
    inputs = tiny_janus.processor(text=[text], images=[image], return_tensors="pt")
    with torch.no_grad():
        logits = tiny_janus.hf_model(**inputs).logits[0, -3:-1].float()
    targets = inputs["input_ids"][0, -2:]
    reference = F.log_softmax(logits, -1).gather(-1, targets[:, None]).sum()
    torch.testing.assert_close(scores.total_logprob[0].detach(), reference, atol=1e-4, rtol=0)


def test_soft_tokens_carry_understanding_gradients_to_generation_head(tiny_janus):
    rollout = tiny_janus.generate_images(PROMPTS[:2], seeds=[1, 2])
    logits = tiny_janus.image_logits(rollout.prompts, rollout.image_tokens)
    soft = F.gumbel_softmax(logits.float(), tau=1.0, hard=True)  # straight-through one-hot
    scores = tiny_janus("answer_logprobs", soft, ["How many?", "What color?"], ["two", "red"])
    hard_scores = tiny_janus.answer_logprobs(soft.argmax(-1), ["How many?", "What color?"], ["two", "red"])
    torch.testing.assert_close(scores.total_logprob.detach(), hard_scores.total_logprob.detach(), atol=1e-4, rtol=0)
    scores.total_logprob.sum().backward()
    head_grad = tiny_janus.hf_model.model.generation_head.vision_head.weight.grad
    assert head_grad is not None and head_grad.abs().sum() > 0


def test_freeze_for_training_freezes_vq_and_optionally_understanding(tiny_janus_dir):
    model = JanusModel.load(str(tiny_janus_dir))
    model.freeze_for_training(train_understanding=False)
    trainable = {name.split(".")[0] for name, p in model.hf_model.model.named_parameters() if p.requires_grad}
    assert trainable == {"generation_embeddings", "generation_aligner", "generation_head", "language_model"}
    model.freeze_for_training(train_understanding=True)
    assert all(p.requires_grad for p in model.hf_model.model.vision_model.parameters())
    assert not any(p.requires_grad for p in model.hf_model.model.vqmodel.parameters())


def test_save_and_load_round_trip(tiny_janus, tmp_path):
    tiny_janus.save(str(tmp_path / "saved"))
    reloaded = JanusModel.load(str(tmp_path / "saved"))
    original_state, reloaded_state = tiny_janus.hf_model.state_dict(), reloaded.hf_model.state_dict()
    assert original_state.keys() == reloaded_state.keys()
    assert all(torch.equal(original_state[k], reloaded_state[k]) for k in original_state)
    assert reloaded.hf_model.generation_config.generation_kwargs == {"boi_token_id": tiny_janus.tokenizer.boi_token_id}
    assert torch.equal(reloaded.generate_images(PROMPTS, [1, 2, 3]).image_tokens,
                       tiny_janus.generate_images(PROMPTS, [1, 2, 3]).image_tokens)
    assert not [p.name for p in (tmp_path).iterdir() if p.name.startswith(".")]  # no staging folder left


def test_default_guidance_is_the_checkpoints_own_or_janus_pros_5(tiny_janus_dir, tmp_path):
    import json
    import shutil

    assert JanusModel.load(str(tiny_janus_dir)).default_sampling().guidance_scale == 5.0
    for written, expected in [(2.5, 2.5), (None, 5.0)]:
        folder = tmp_path / f"guidance-{written}"
        shutil.copytree(tiny_janus_dir, folder)
        config = json.loads((folder / "generation_config.json").read_text())
        config["guidance_scale"] = written
        (folder / "generation_config.json").write_text(json.dumps(config))
        assert JanusModel.load(str(folder)).default_sampling().guidance_scale == expected


def test_user_mistakes_raise_one_line_errors(tiny_janus, tmp_path):
    with pytest.raises(UnirlError, match="one seed per prompt"):
        tiny_janus.generate_images(PROMPTS, seeds=[1])
    with pytest.raises(UnirlError, match="below 1"):
        tiny_janus.generate_images(PROMPTS[:1], seeds=[1], sampling=SamplingConfig(guidance_scale=0.5))
    with pytest.raises(UnirlError, match="no config.json"):
        JanusModel.load(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"language_config": {}, "gen_vision_config": {}}))
    with pytest.raises(UnirlError, match="convert"):
        JanusModel.load(str(tmp_path))
