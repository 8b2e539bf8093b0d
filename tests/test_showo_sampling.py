"""Show-o's MaskGIT sampler: schedule, temperatures, seeds, guidance, and trajectory replay."""

from __future__ import annotations

import math

import pytest
import torch

from unirl_cli.config import SamplingConfig
from unirl_cli.errors import UnirlError
from unirl_cli.models.showo import ShowoModel
from unirl_cli.models.showo.sampling import gumbel_temperatures, num_masked_after_step, replay_logprobs, sample_masked


def _fixed_logits(num_tokens: int, codebook: int, seed: int = 0):
    table = torch.randn(num_tokens, codebook, generator=torch.Generator().manual_seed(seed)) * 3

    def code_logits(rows, states):
        return table.expand(len(rows), -1, -1).clone()

    return code_logits


def _run(num_tokens: int, num_steps: int, batch: int = 2, temperature: float = 1.0):
    generators = [torch.Generator().manual_seed(seed) for seed in range(batch)]
    return sample_masked(_fixed_logits(num_tokens, 8), batch, num_tokens, num_steps, temperature, generators,
                         torch.device("cpu"))


def test_cosine_schedule_commits_hand_computed_counts():
    # floor(64 * cos(pi/2 * k/8)) for k = 1..7 is 62, 59, 53, 45, 35, 24, 12; the last step commits the rest.
    assert [num_masked_after_step(64, step, 8) for step in range(7)] == [62, 59, 53, 45, 35, 24, 12]
    trajectory = _run(num_tokens=64, num_steps=8)
    per_step = [(trajectory.commit_step == step).sum(dim=1).tolist() for step in range(8)]
    assert per_step == [[c, c] for c in [2, 3, 6, 8, 10, 11, 12, 12]]


@pytest.mark.parametrize("num_tokens,num_steps", [(16, 18), (16, 1), (9, 4)])
def test_every_slot_is_committed_once(num_tokens, num_steps):
    trajectory = _run(num_tokens, num_steps)
    assert ((trajectory.commit_step >= 0) & (trajectory.commit_step < num_steps)).all()
    assert trajectory.codes.min() >= 0
    counts = torch.stack([(trajectory.commit_step == s).sum(1) for s in range(num_steps)], dim=1)
    assert counts.sum(dim=1).tolist() == [num_tokens] * 2
    assert torch.equal(trajectory.step_logprobs == 0, counts == 0)


def test_gumbel_temperature_compounds():
    assert gumbel_temperatures(1.0, 4) == pytest.approx([0.75, 0.375, 0.09375, 0.0])
    assert gumbel_temperatures(2.0, 2) == pytest.approx([1.0, 0.0])


def test_sampler_log_probs_are_the_committed_tokens_log_probs():
    trajectory = _run(num_tokens=16, num_steps=5, batch=1)
    logprobs = _fixed_logits(16, 8)(torch.tensor([0]), None).log_softmax(-1)[0]
    chosen = logprobs.gather(-1, trajectory.codes[0, :, None])[:, 0]
    expected = [chosen[trajectory.commit_step[0] == s].sum() for s in range(5)]
    assert torch.allclose(trajectory.step_logprobs[0], torch.stack(expected))
    replayed = replay_logprobs(_fixed_logits(16, 8), trajectory.codes, trajectory.commit_step, 5, micro_batch_size=2)
    assert torch.allclose(replayed, trajectory.step_logprobs)


def test_same_seed_same_image_and_rows_do_not_depend_on_the_batch(tiny_showo):
    sampling = SamplingConfig(guidance_scale=2.0, num_steps=6, temperature=1.0)
    prompts = ["a red cat", "two dogs and a very long prompt about many things", ""]
    first = tiny_showo.generate_images(prompts, [11, 12, 13], sampling)
    again = tiny_showo.generate_images(prompts, [11, 12, 13], sampling)
    assert torch.equal(first.image_tokens, again.image_tokens) and torch.equal(first.commit_step, again.commit_step)
    alone = tiny_showo.generate_images(prompts[1:2], [12], sampling)
    assert torch.equal(alone.image_tokens[0], first.image_tokens[1])
    assert torch.allclose(alone.token_logprobs[0], first.token_logprobs[1], atol=1e-4)
    other_seed = tiny_showo.generate_images(prompts[:1], [99], sampling)
    assert not torch.equal(other_seed.image_tokens[0], first.image_tokens[0])


@pytest.mark.parametrize("guidance_scale,micro_batch_size", [(0.0, None), (3.0, 5)])
def test_replay_matches_sampler_log_probs(tiny_showo, guidance_scale, micro_batch_size):
    sampling = SamplingConfig(guidance_scale=guidance_scale, num_steps=7, temperature=1.5)
    rollout = tiny_showo.generate_images(["a cat", "a bird above a car", "a red apple"], [1, 2, 3], sampling)
    replayed = tiny_showo.image_logprobs(rollout, micro_batch_size=micro_batch_size)
    assert replayed.shape == (3, 7) and replayed.requires_grad
    assert torch.allclose(replayed, rollout.token_logprobs, atol=1e-4)
    sub = tiny_showo.image_logprobs(rollout.select([2, 0]))
    assert torch.allclose(sub, rollout.token_logprobs[[2, 0]], atol=1e-4)
    if guidance_scale:
        unguided = tiny_showo.image_logprobs(rollout, guidance_scale=tiny_showo.no_guidance_scale)
        assert not torch.allclose(unguided, rollout.token_logprobs, atol=1e-3)


def test_guidance_is_one_plus_w_cond_minus_w_uncond(tiny_showo):
    guidance, prompts = 2.5, ["a cat", "a dog"]
    rollout = tiny_showo.generate_images(prompts, [5, 6], SamplingConfig(guidance_scale=guidance, num_steps=4))
    with torch.no_grad():
        cond = tiny_showo.image_logits(prompts, rollout.image_tokens)
        uncond = tiny_showo.image_logits(["", ""], rollout.image_tokens)
    logprobs = ((1 + guidance) * cond - guidance * uncond).log_softmax(-1)
    chosen = logprobs.gather(-1, rollout.image_tokens[..., None])[..., 0]
    first_step = torch.where(rollout.commit_step == 0, chosen, 0.0).sum(dim=1)
    assert torch.allclose(first_step, rollout.token_logprobs[:, 0], atol=1e-4)


def test_replay_gradient_reaches_the_language_model(tiny_showo_dir):
    model = ShowoModel.load(str(tiny_showo_dir))
    rollout = model.generate_images(["a cat"], [0], SamplingConfig(guidance_scale=1.0, num_steps=3))
    model.image_logprobs(rollout).sum().backward()
    grad = model.hf_model.model.layers[0].self_attn.q_layernorm.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_sampling_options_are_validated_before_compute(tiny_showo):
    with pytest.raises(UnirlError, match="top-k"):
        tiny_showo.generate_images(["a"], [0], SamplingConfig(top_k=5))
    with pytest.raises(UnirlError, match="one seed per prompt"):
        tiny_showo.generate_images(["a", "b"], [0])
    assert tiny_showo.default_sampling().num_steps == 18  # 16 tokens: the 256 px settings


def test_replaying_some_steps_at_a_time_adds_up_to_the_whole(tiny_showo):
    rollout = tiny_showo.generate_images(["a cat", "a dog"], [1, 2], SamplingConfig(guidance_scale=2.0, num_steps=5))
    parts = [tiny_showo.image_logprobs(rollout, steps=chunk) for chunk in ([0, 1], [2], [3, 4])]
    assert torch.allclose(sum(parts), rollout.token_logprobs, atol=1e-4)
    assert torch.equal(parts[1][:, [0, 1, 3, 4]], torch.zeros(2, 4))


def _reference_t2i_generate(model, prompt: str, seed: int, guidance_scale: float, num_steps: int) -> torch.Tensor:
    """A plain re-statement of Show-o's `t2i_generate` for one prompt: one shared generator, full-vocabulary
    logits of whole sequences, the image slice read at its own positions, the rules of the docstring."""
    import math

    from unirl_cli.models.showo.prompting import t2i_attention_mask, t2i_sequences

    vocab, n = model.vocab, model.num_image_tokens
    text = [model.tokenizer(prompt, add_special_tokens=False)["input_ids"]]
    ids = t2i_sequences(text, torch.full((1, n), vocab.mask_id), vocab, model.max_text_length)
    text_slots = model.max_text_length + 1
    uncond_prefix = t2i_sequences([[]], ids[:, -(n + 1):-1], vocab, model.max_text_length)[:, :text_slots]
    generator, temperature = torch.Generator().manual_seed(seed), 1.0
    for step in range(num_steps):
        both = torch.cat([ids, torch.cat([uncond_prefix, ids[:, text_slots:]], dim=1)])
        with torch.no_grad():
            logits = model.hf_model(input_ids=both, attention_mask=t2i_attention_mask(both, vocab)).logits.float()
        cond, uncond = logits.chunk(2)
        logits = ((1 + guidance_scale) * cond - guidance_scale * uncond)[:, -(n + 1):-1, vocab.image_offset:-1]
        probs = logits.softmax(-1)
        sampled = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)[:, 0].view(1, n)
        current = ids[:, -(n + 1):-1]
        unknown = current == vocab.mask_id
        sampled = torch.where(unknown, sampled, current - vocab.image_offset)
        ratio = (step + 1) / num_steps
        mask_len = (n * torch.cos(torch.tensor(ratio) * math.pi * 0.5)).floor().view(1, 1)
        mask_len = torch.max(torch.tensor([1]), torch.min(unknown.sum(-1, keepdim=True) - 1, mask_len))
        temperature = temperature * (1 - ratio)
        chosen = torch.where(unknown, probs.gather(-1, sampled[..., None])[..., 0], torch.finfo(torch.float32).max)
        noise = torch.zeros_like(chosen).uniform_(0, 1, generator=generator)
        gumbel = -torch.log((-torch.log(noise.clamp(min=1e-20))).clamp(min=1e-20))
        confidence = torch.log(chosen.clamp(min=1e-20)) + temperature * gumbel
        remask = confidence < confidence.sort(-1).values.gather(1, mask_len.long())
        ids[:, -(n + 1):-1] = torch.where(remask, vocab.mask_id, sampled + vocab.image_offset)
    return sampled


def test_one_image_reproduces_the_official_loop_draw_for_draw(tiny_showo):
    rollout = tiny_showo.generate_images(["a red cat"], [7], SamplingConfig(guidance_scale=3.0, num_steps=6))
    reference = _reference_t2i_generate(tiny_showo, "a red cat", seed=7, guidance_scale=3.0, num_steps=6)
    assert torch.equal(rollout.image_tokens, reference)


def test_image_block_attention_is_bidirectional_inside_the_model(tiny_showo):
    code_logits = tiny_showo._code_logits_fn(["a cat"], 0.0)
    states = torch.full((2, tiny_showo.num_image_tokens), -1)
    states[1, -1] = 3  # only the last slot differs
    with torch.no_grad():
        logits = code_logits(torch.tensor([0, 0]), states)
    assert not torch.allclose(logits[0, 0], logits[1, 0])  # slot 0 sees the last slot
    longer = tiny_showo._code_logits_fn(["a cat " * 40], 0.0)(torch.tensor([0]), states[:1])
    assert torch.isfinite(longer).all()  # prompts beyond max_text_length are cut, not an error


def test_remasked_slots_score_the_mass_below_the_lowest_committed_probability():
    num_tokens, num_steps, codebook = 16, 5, 8
    generators = [torch.Generator().manual_seed(3)]
    plain = sample_masked(_fixed_logits(num_tokens, codebook), 1, num_tokens, num_steps, 1.0, generators,
                          torch.device("cpu"))
    generators = [torch.Generator().manual_seed(3)]
    scored = sample_masked(_fixed_logits(num_tokens, codebook), 1, num_tokens, num_steps, 1.0, generators,
                           torch.device("cpu"), score_remasked=True)
    assert torch.equal(plain.codes, scored.codes) and torch.equal(plain.commit_step, scored.commit_step)
    probs = _fixed_logits(num_tokens, codebook)(torch.tensor([0]), None).softmax(-1)[0]  # (N, K): fixed per slot
    chosen = probs.gather(-1, scored.codes[0, :, None])[:, 0]
    commit = scored.commit_step[0]
    for step in range(num_steps - 1):
        threshold = chosen[commit == step].min()
        assert scored.remask_threshold[0, step] == pytest.approx(float(threshold), rel=1e-5)
        stayed = [slot for slot in range(num_tokens) if commit[slot] > step]
        by_hand = sum(math.log(float(probs[slot][probs[slot] < threshold].sum())) for slot in stayed
                      if (probs[slot] < threshold).any())
        assert float(scored.step_logprobs[0, step] - plain.step_logprobs[0, step]) == pytest.approx(by_hand, rel=1e-4)
    assert scored.step_logprobs[0, -1] == plain.step_logprobs[0, -1]  # the last step re-masks nothing
    replayed = replay_logprobs(_fixed_logits(num_tokens, codebook), scored.codes, scored.commit_step, num_steps,
                               remask_threshold=scored.remask_threshold)
    assert torch.allclose(replayed, scored.step_logprobs, atol=1e-4)


def test_remasked_transition_replays_and_reaches_the_model(tiny_showo_dir):
    model = ShowoModel.load(str(tiny_showo_dir))
    sampling = SamplingConfig(guidance_scale=2.0, num_steps=5, masked_transition="remasked")
    rollout = model.generate_images(["a cat", "a dog above a car"], [1, 2], sampling)
    assert rollout.remask_threshold.shape == (2, 5)
    committed_only = model.generate_images(["a cat", "a dog above a car"], [1, 2],
                                           SamplingConfig(guidance_scale=2.0, num_steps=5))
    assert torch.equal(rollout.image_tokens, committed_only.image_tokens)
    assert (rollout.token_logprobs[:, :-1] < committed_only.token_logprobs[:, :-1]).all()  # log-masses are < 0
    replayed = model.image_logprobs(rollout, micro_batch_size=3)
    assert torch.allclose(replayed, rollout.token_logprobs, atol=1e-3)
    parts = [model.image_logprobs(rollout.select([1]), steps=chunk) for chunk in ([0, 1], [2, 3, 4])]
    assert torch.allclose(sum(parts), rollout.token_logprobs[[1]], atol=1e-3)
    model.image_logprobs(rollout.select([0])).sum().backward()
    assert model.hf_model.lm_head.weight.grad.abs().sum() > 0


def test_masked_transition_is_refused_by_autoregressive_models():
    from unirl_cli.models.janus.model import JanusModel

    with pytest.raises(UnirlError, match="masked_transition applies to masked generators"):
        JanusModel.check_sampling_settings(SamplingConfig(masked_transition="remasked"))
