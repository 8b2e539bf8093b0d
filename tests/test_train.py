"""Training engine on the tiny Janus: steps change the policy, gradients flow, GRPO learns, resume is exact."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unirl_cli.config import build_config
from unirl_cli.data.prompts import generate_prompts
from unirl_cli.errors import UnirlError
from unirl_cli.train.config import TrainConfig
from unirl_cli.train.loop import build_run, make_accelerator, train


class LowTokenReward:
    """A programmatic reward: the fraction of image tokens in the lower half of the codebook."""

    needs_answers = False

    def __init__(self, codebook_size: int = 16384) -> None:
        self.threshold = codebook_size // 2

    def __call__(self, batch):
        return (batch.rollout.image_tokens < self.threshold).float().mean(dim=1).cpu()


class BelowMedianReward:
    """A programmatic reward with spread in every group: the fraction of tokens below the batch median."""

    needs_answers = False

    def __call__(self, batch):
        tokens = batch.rollout.image_tokens.float()
        return (tokens < tokens.median()).float().mean(dim=1).cpu()


def make_config(model_dir, output_dir=None, **values) -> TrainConfig:
    data = {"model": str(model_dir), "steps": 2, "prompts_per_step": 2, "group_size": 4, "micro_batch_size": 4,
            "output_dir": str(output_dir or "unused"), "prompts": {"num_generated": 12},
            "log": {"live": False, "plots": False}, "optim": {"lr": 1e-3}}
    for key, value in values.items():
        node = data
        *parents, leaf = key.split("__")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return build_config(TrainConfig, data)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def changed_names(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, p in module.named_parameters() if not torch.equal(p.detach(), before[name])}


RECORDS = generate_prompts(4, seed=3)


def sft_micro_batch(policy, rollout, record, seeds):
    """An end-to-end SFT micro-batch: every image of `rollout` asked `record`'s question, weight 1 each."""
    from unirl_cli.train.sft import SFTMicroBatch, SFTSettings

    rows = len(seeds)
    settings = SFTSettings(tau=1.0, hard_from_rollout=True, und_weight=1.0, gen_weight=1.0, generation_total=rows,
                           understanding_total=rows, no_guidance_scale=policy.no_guidance_scale)
    return SFTMicroBatch(rollout, [record["question"]] * rows, [record["answer"]] * rows, list(seeds),
                         torch.ones(rows), torch.ones(rows), settings)


def test_one_grpo_step_changes_policy_and_leaves_reference_untouched(tiny_janus_dir):
    from unirl_cli.train.grpo import grpo_step

    config = make_config(tiny_janus_dir, grpo__beta=0.1)
    ctx = build_run(config, make_accelerator(config), None, None, LowTokenReward())
    start = snapshot(ctx.policy)
    metrics, batch = grpo_step(ctx, RECORDS[:2], step=0, first_image_index=0)
    changed = changed_names(ctx.policy, start)
    assert any("generation_head" in name for name in changed)
    assert any("language_model" in name for name in changed)
    assert not any("vqmodel" in name or "vision_model" in name for name in changed)
    reference = dict(ctx.reference.frozen.named_parameters())
    assert all(torch.equal(reference[name], start[name]) for name in start)
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)  # the first step starts at the reference
    assert batch.rollout.image_tokens.shape == (8, 16) and 0.0 <= metrics["reward/mean"] <= 1.0


def test_one_sft_step_end_to_end_changes_generation_and_understanding(tiny_janus_dir):
    from unirl_cli.train.sft import sft_step

    config = make_config(tiny_janus_dir, method="sft", group_size=2)
    ctx = build_run(config, make_accelerator(config), None, None, LowTokenReward())
    start = snapshot(ctx.policy)
    metrics, _ = sft_step(ctx, RECORDS[:2], step=0, first_image_index=0)
    changed = changed_names(ctx.policy, start)
    assert any("generation_head" in name for name in changed)
    assert any("vision_model" in name or "aligner" in name for name in changed)
    assert not any("vqmodel" in name for name in changed)
    assert metrics["und_nll"] > 0 and ctx.reference is None


def test_straight_through_gumbel_reaches_the_generation_head(tiny_janus_dir):
    from unirl_cli.models.janus import JanusModel
    from unirl_cli.train.sft import end_to_end_objective

    policy = JanusModel.load(str(tiny_janus_dir))
    policy.freeze_for_training(train_understanding=True)
    seeds = [1, 2]
    rollout = policy.generate_images([RECORDS[0]["prompt"]] * 2, seeds)
    out = end_to_end_objective(policy, sft_micro_batch(policy, rollout, RECORDS[0], seeds))
    out["loss"].backward()
    head_grads = [p.grad for p in policy.hf_model.model.generation_head.parameters()]
    assert all(g is not None and float(g.abs().sum()) > 0 for g in head_grads)
    assert all(p.grad is None for p in policy.hf_model.model.vqmodel.parameters())


def test_straight_through_forward_is_one_hot_of_the_sample():
    from unirl_cli.train.sft import straight_through_tokens

    logits = torch.randn(1, 3, 5, requires_grad=True)
    hard = torch.tensor([[4, 0, 2]])
    tokens = straight_through_tokens(logits, torch.zeros(1, 3, 5), tau=0.5, hard_indices=hard)
    assert torch.equal(tokens.detach().argmax(-1), hard) and torch.allclose(tokens.detach().sum(-1), torch.ones(1, 3))
    (tokens * torch.arange(5.0)).sum().backward()
    assert float(logits.grad.abs().sum()) > 0


@pytest.mark.slow
def test_grpo_raises_a_programmatic_reward_in_30_steps(tiny_janus_dir, tmp_path):
    config = make_config(tiny_janus_dir, tmp_path, steps=30, group_size=8, micro_batch_size=16, optim__lr=1e-4,
                         prompts__num_generated=20)
    result = train(config, reward_fn=LowTokenReward())
    rewards = [row["reward/mean"] for row in result.metrics]
    assert len(rewards) == 30
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.25, rewards


@pytest.mark.slow
def test_grpo_on_per_step_logprobs_of_a_masked_model_raises_the_reward(tiny_showo_dir, tiny_showo, tmp_path):
    config = make_config(tiny_showo_dir, tmp_path, steps=15, group_size=6, micro_batch_size=12, optim__lr=3e-4,
                         prompts__num_generated=20, rollout__num_steps=4, rollout__guidance_scale=0.0)
    result = train(config, reward_fn=LowTokenReward(tiny_showo.codebook_size))
    rewards = [row["reward/mean"] for row in result.metrics]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:3]) / 3 + 0.15, rewards


class CrashingReward(LowTokenReward):
    """Raises during the rollout of step `crash_at` (0-based), as if the process were killed mid-step."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.calls, self.crash_at = 0, crash_at

    def __call__(self, batch):
        if self.calls == self.crash_at:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        return super().__call__(batch)


RESUME_VARIANTS = {
    "full": dict(grpo__beta=0.05, grpo__num_iterations=2, optim__warmup_steps=3, optim__schedule="linear"),
    "lora": dict(grpo__beta=0.05, lora__r=4, lora__alpha=8, optim__schedule="cosine"),
}


@pytest.mark.parametrize("variant", sorted(RESUME_VARIANTS))
def test_resume_after_a_kill_equals_the_uninterrupted_run(tiny_janus_dir, tmp_path, variant):
    if variant == "lora":
        pytest.importorskip("peft")
    options = dict(steps=4, save_every=2, keep_last=3, **RESUME_VARIANTS[variant])
    straight = train(make_config(tiny_janus_dir, tmp_path / "straight", **options), reward_fn=LowTokenReward())
    interrupted = make_config(tiny_janus_dir, tmp_path / "resumed", **options)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, reward_fn=CrashingReward(crash_at=2))
    resumed = train(interrupted, resume="", reward_fn=LowTokenReward())
    assert resumed.last_checkpoint.name == "step-000004"
    expected = load_file(str(straight.last_checkpoint / "model.safetensors"))
    actual = load_file(str(resumed.last_checkpoint / "model.safetensors"))
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert [r["loss"] for r in straight.metrics] == [r["loss"] for r in resumed.metrics]
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == ["step-000002", "step-000004"]


def test_checkpoint_loads_as_a_model_and_resume_rejects_another_model(tiny_janus_dir, tmp_path):
    from unirl_cli.models.loading import load_model

    result = train(make_config(tiny_janus_dir, tmp_path / "run", steps=1), reward_fn=LowTokenReward())
    model = load_model(str(result.last_checkpoint), device="cpu")
    assert model.generate_images(["a photo of a cat"], [0]).image_tokens.shape == (1, 16)
    with pytest.raises(UnirlError, match="was trained from model"):
        train(make_config("janus-pro-7b", tmp_path / "run", steps=2), resume="", reward_fn=LowTokenReward())


def test_lora_step_uses_disabled_adapters_as_reference_and_saves_merged_weights(tiny_janus_dir, tmp_path):
    pytest.importorskip("peft")
    from unirl_cli.models.loading import load_model

    config = make_config(tiny_janus_dir, tmp_path / "lora", steps=1, lora__r=4, lora__alpha=8, grpo__beta=0.1)
    result = train(config, reward_fn=LowTokenReward())
    assert (result.last_checkpoint / "training_state" / "adapter.safetensors").is_file()
    base = dict(load_model(str(tiny_janus_dir), device="cpu").named_parameters())
    merged = dict(load_model(str(result.last_checkpoint), device="cpu").named_parameters())
    assert merged.keys() == base.keys()
    changed = [name for name in base if not torch.equal(base[name], merged[name])]
    assert changed and all("proj" in name for name in changed)
    assert result.metrics[0]["kl"] == pytest.approx(0.0, abs=1e-6)


def test_filtered_sft_runs_and_checkpoints(tiny_janus_dir, tmp_path):
    config = make_config(tiny_janus_dir, tmp_path / "sft", method="sft", steps=1, sft__mode="filtered", group_size=2)
    result = train(config)
    row = result.metrics[0]
    assert {"gen_nll", "und_nll", "correct_fraction"} <= row.keys() and row["und_nll"] > 0
    assert (result.last_checkpoint / "model.safetensors").is_file()
    assert Path(tmp_path / "sft" / "config.yaml").is_file()


def test_answer_grpo_term_trains_understanding_only(tiny_janus_dir):
    from unirl_cli.models.janus import JanusModel
    from unirl_cli.train.answer_grpo import AnswerPart, answer_loss
    from unirl_cli.train.grpo_loss import ClipSettings, LossNormalizer

    policy = JanusModel.load(str(tiny_janus_dir))
    policy.freeze_for_training(train_understanding=True)
    tokens = policy.generate_images([RECORDS[0]["prompt"]], [5]).image_tokens.repeat(2, 1)
    part = AnswerPart(tokens, [RECORDS[0]["question"]] * 2, ["a cat", "two red dogs"], torch.tensor([1.0, -1.0]),
                      None, LossNormalizer(2, 8.0, 8, 8.0), weight=0.5)
    out = answer_loss(policy, part, ClipSettings(), "bnpo")
    out["answer_loss"].backward()
    model = policy.hf_model.model
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.aligner.parameters())
    assert all(p.grad is None for p in model.generation_head.parameters())


def test_grpo_with_answer_term_runs_end_to_end(tiny_janus_dir, tmp_path):
    config = make_config(tiny_janus_dir, tmp_path / "answers", steps=1, group_size=2, grpo__answer_weight=0.5,
                         grpo__answers_per_image=2, grpo__num_iterations=2)
    row = train(config).metrics[0]
    assert {"answer_loss", "answer_reward/mean"} <= row.keys() and row["time/answering"] > 0


@pytest.mark.parametrize("method", ["grpo", "sft"])
def test_showo_steps_change_the_shared_transformer(tiny_showo_dir, method):
    from unirl_cli.train.grpo import grpo_step
    from unirl_cli.train.sft import sft_step

    config = make_config(tiny_showo_dir, method=method, group_size=3, micro_batch_size=6, grpo__beta=0.1)
    ctx = build_run(config, make_accelerator(config), None, None, BelowMedianReward())
    start = snapshot(ctx.policy)
    (grpo_step if method == "grpo" else sft_step)(ctx, RECORDS[:2], step=0, first_image_index=0)
    changed = changed_names(ctx.policy, start)
    assert any("embed_tokens" in name for name in changed) and any("layers" in name for name in changed)
    if method == "grpo":
        reference = dict(ctx.reference.frozen.named_parameters())
        assert all(torch.equal(reference[name], start[name]) for name in start)


@pytest.mark.parametrize("family_dir", ["tiny_janus_dir", "tiny_showo_dir"])
def test_end_to_end_sft_gradient_reaches_generation_logits(family_dir, request):
    from unirl_cli.models.loading import load_model
    from unirl_cli.train.sft import end_to_end_objective

    policy = load_model(str(request.getfixturevalue(family_dir)), device="cpu")
    policy.freeze_for_training(train_understanding=True)
    captured = {}
    original = policy.image_logits

    def recording_image_logits(prompts, image_tokens):
        captured["logits"] = original(prompts, image_tokens)
        captured["logits"].retain_grad()
        return captured["logits"]

    policy.image_logits = recording_image_logits
    seeds = [3, 4]
    rollout = policy.generate_images([RECORDS[1]["prompt"]] * 2, seeds)
    end_to_end_objective(policy, sft_micro_batch(policy, rollout, RECORDS[1], seeds))["loss"].backward()
    assert float(captured["logits"].grad.abs().sum()) > 0


def test_tensorboard_tracker_writes_events(tiny_janus_dir, tmp_path):
    pytest.importorskip("tensorboard")
    config = make_config(tiny_janus_dir, tmp_path / "tb", steps=1, group_size=2, log__report_to="tensorboard")
    train(config, reward_fn=LowTokenReward())
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_detector_reward_mixes_with_the_self_reward(tiny_janus_dir, tmp_path):
    from unirl_cli.eval.geneval.tiny_judge import build_tiny_clip, build_tiny_detector
    from unirl_cli.train.rewards import RolloutBatch, build_reward

    detector = build_tiny_detector(tmp_path / "detector", favourite_class=0)
    clip = build_tiny_clip(tmp_path / "clip")
    config = make_config(tiny_janus_dir, tmp_path / "mix", steps=1, group_size=2, reward__self_weight=0.25,
                         reward__detector_weight=0.75, reward__detector_path=str(detector),
                         reward__clip_path=str(clip), reward__detector_partial=True)
    reward = build_reward(config.reward, partial_credit=False)
    assert reward.needs_answers and reward.needs_images
    result = train(config)
    assert 0.0 <= result.metrics[0]["reward/mean"] <= 1.0
    records = [RECORDS[0], RECORDS[0]]
    policy = result.policy
    rollout = policy.generate_images([r["prompt"] for r in records], [0, 1])
    batch = RolloutBatch(records, rollout, answers=[RECORDS[0]["answer"], "nothing"],
                         images=policy.decode_images(rollout.image_tokens))
    (self_weight, self_reward), (detector_weight, detector_reward) = reward.parts
    expected = 0.25 * self_reward(batch) + 0.75 * detector_reward(batch)
    torch.testing.assert_close(reward(batch), expected)
    assert self_reward(batch).tolist() == [1.0, 0.0]


def test_end_to_end_sft_lowers_the_answer_nll(tiny_janus_dir, tmp_path):
    config = make_config(tiny_janus_dir, tmp_path / "sft-learns", method="sft", steps=8, prompts_per_step=1,
                         group_size=4, prompts__num_generated=1)
    nll = [row["und_nll"] for row in train(config, reward_fn=LowTokenReward()).metrics]
    assert nll[-1] < nll[0] - 0.5, nll


def test_lora_adapters_on_frozen_modules_stay_frozen(tiny_janus_dir):
    pytest.importorskip("peft")
    from unirl_cli.models.janus import JanusModel
    from unirl_cli.train.config import LoraConfig
    from unirl_cli.train.policy import apply_lora

    policy = JanusModel.load(str(tiny_janus_dir))
    policy.freeze_for_training(train_understanding=False)
    apply_lora(policy, LoraConfig(r=2, target_modules=["q_proj", "v_proj", "qkv"]))
    trainable = [name for name, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert not any("vision_model" in name or "vqmodel" in name for name in trainable)
    assert any("language_model" in name for name in trainable)


def test_gradient_checkpointing_gives_the_same_update(tiny_janus_dir):
    from unirl_cli.train.grpo import grpo_step

    updated = []
    for checkpointing in (False, True):
        config = make_config(tiny_janus_dir, gradient_checkpointing=checkpointing, group_size=2)
        ctx = build_run(config, make_accelerator(config), None, None, LowTokenReward())
        grpo_step(ctx, RECORDS[:2], step=0, first_image_index=0)
        updated.append(snapshot(ctx.policy))
    assert all(torch.allclose(updated[0][name], updated[1][name], atol=1e-6) for name in updated[0])


def test_balance_tags_draws_every_tag_equally_often():
    from unirl_cli.train.config import PromptsConfig
    from unirl_cli.train.prompts import balanced_by_tag, load_training_prompts

    records = [{"tag": "a", "id": i} for i in range(5)] + [{"tag": "b", "id": 10}, {"tag": "b", "id": 11}]
    balanced = balanced_by_tag(records)
    assert [r["id"] for r in balanced] == [0, 1, 2, 3, 4, 10, 11, 10, 11, 10]
    shapes_file = "unirl_cli/data/shapes/train_prompts.jsonl"
    plain = load_training_prompts(PromptsConfig(file=shapes_file))
    even = load_training_prompts(PromptsConfig(file=shapes_file, balance_tags=True))
    counts = {tag: sum(r["tag"] == tag for r in even) for tag in {r["tag"] for r in plain}}
    assert len(set(counts.values())) == 1 and len(even) == 5 * max(counts.values())
    assert {r["prompt"] for r in even} == {r["prompt"] for r in plain}


def moved_policy_micro_batches(model_dir, step_chunk: int, loss_type: str = "grpo", **overrides):
    """A GRPO run's context and one step's micro-batches (old log-probs stored), with the policy then moved
    away from its rollout: ratios away from 1 (some clipped) and a non-zero KL to the reference."""
    from unirl_cli.train.grpo import _image_micro_batches, step_experience
    from unirl_cli.train.grpo_loss import group_advantages
    from unirl_cli.train.rollout import StepTimer

    config = make_config(model_dir, group_size=3, micro_batch_size=6, grpo__beta=0.1, grpo__num_iterations=2,
                         grpo__loss_type=loss_type, grpo__step_chunk=step_chunk, **overrides)
    ctx = build_run(config, make_accelerator(config), None, None, BelowMedianReward())
    batch, rewards = step_experience(ctx, RECORDS[:2], 0, 0, StepTimer())
    advantages = group_advantages(rewards, 3, "group", rewards.std())
    micro_batches = _image_micro_batches(ctx, batch.rollout, advantages, StepTimer())
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in ctx.trainable:
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=noise))
    return ctx, micro_batches


def chunked_step_gradient(model_dir, step_chunk: int, loss_type: str, **overrides):
    """Gradient, loss and mean ratio of one GRPO accumulation on a policy moved away from its rollout."""
    from unirl_cli.train.context import accumulate_gradients, summed, weighted_mean
    from unirl_cli.train.grpo import image_grpo_objective

    ctx, micro_batches = moved_policy_micro_batches(model_dir, step_chunk, loss_type, **overrides)
    outputs = accumulate_gradients(ctx, image_grpo_objective, micro_batches)
    grads = {name: p.grad.clone() for name, p in ctx.policy.named_parameters() if p.grad is not None}
    return len(micro_batches), grads, summed(outputs, "loss"), weighted_mean(outputs, "ratio")


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_showo_step_chunks_add_up_to_the_whole_step(tiny_showo_dir, loss_type):
    parts_whole, grads_whole, loss_whole, ratio_whole = chunked_step_gradient(tiny_showo_dir, 0, loss_type)
    parts_chunked, grads_chunked, loss_chunked, ratio_chunked = chunked_step_gradient(tiny_showo_dir, 2, loss_type)
    assert parts_chunked > parts_whole
    assert ratio_whole != pytest.approx(1.0, abs=1e-3)
    assert loss_chunked == pytest.approx(loss_whole, rel=1e-4, abs=1e-7)
    assert ratio_chunked == pytest.approx(ratio_whole, rel=1e-5)
    assert grads_chunked.keys() == grads_whole.keys()
    for name, grad in grads_whole.items():
        assert torch.allclose(grads_chunked[name], grad, rtol=1e-4, atol=1e-7), name


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo"])
def test_showo_step_fraction_estimates_the_whole_step_without_bias(tiny_showo_dir, loss_type):
    """Averaged over every subset of sampling steps it can draw, a `grpo.step_fraction` update's loss and
    gradient are the whole step's; a single draw scores only its share of the steps."""
    from itertools import combinations

    from unirl_cli.train.context import accumulate_gradients, summed
    from unirl_cli.train.grpo import image_grpo_objective

    num_steps = 4  # every 2 of 4 steps: 6 subsets
    _, grads_whole, loss_whole, _ = chunked_step_gradient(tiny_showo_dir, 0, loss_type, rollout__num_steps=num_steps)
    _, whole_parts = moved_policy_micro_batches(tiny_showo_dir, 0, loss_type, rollout__num_steps=num_steps)
    ctx, micro_batches = moved_policy_micro_batches(tiny_showo_dir, 0, loss_type, rollout__num_steps=num_steps,
                                                    grpo__step_fraction=0.5)
    assert micro_batches[0].rollout.token_logprobs.shape[1] == num_steps
    assert all(len(micro.steps) == num_steps // 2 for micro in micro_batches)
    for micro in micro_batches:  # the stored old and reference log-probs replay only the drawn steps
        undrawn = [step for step in range(num_steps) if step not in micro.steps]
        assert (micro.old_logprobs[:, undrawn] == 0).all() and (micro.ref_logprobs[:, undrawn] == 0).all()
        assert (micro.old_logprobs[:, list(micro.steps)] != 0).any()
    subsets = list(combinations(range(num_steps), num_steps // 2))
    grads_sum, loss_sum = {}, 0.0
    for subset in subsets:  # every subset, with the whole step's stored log-probs
        ctx.optimizer.zero_grad()
        parts = [replace(m, steps=subset, old_logprobs=w.old_logprobs, ref_logprobs=w.ref_logprobs)
                 for m, w in zip(micro_batches, whole_parts)]
        outputs = accumulate_gradients(ctx, image_grpo_objective, parts)
        loss_sum += float(summed(outputs, "loss"))
        for name, p in ctx.policy.named_parameters():
            if p.grad is not None:
                grads_sum[name] = grads_sum.get(name, 0) + p.grad.clone()
    assert loss_sum / len(subsets) == pytest.approx(float(loss_whole), rel=1e-4, abs=1e-7)
    assert grads_sum.keys() == grads_whole.keys()
    for name, grad in grads_whole.items():
        assert torch.allclose(grads_sum[name] / len(subsets), grad, rtol=1e-4, atol=1e-7), name


def test_step_fraction_is_refused_for_an_autoregressive_model_and_out_of_range(tiny_janus_dir):
    config = make_config(tiny_janus_dir, grpo__step_fraction=0.5)
    with pytest.raises(UnirlError, match="grpo.step_fraction applies to masked"):
        build_run(config, make_accelerator(config), None, None, LowTokenReward())
    for bad in (0.0, 1.5):
        with pytest.raises(UnirlError, match=r"grpo.step_fraction must be in \(0, 1\]"):
            make_config(tiny_janus_dir, grpo__step_fraction=bad)


def test_step_chunk_is_refused_for_an_autoregressive_model_under_deepspeed_and_below_zero(
        tiny_janus_dir, tiny_showo_dir, monkeypatch):
    config = make_config(tiny_janus_dir, grpo__step_chunk=2)
    with pytest.raises(UnirlError, match="grpo.step_chunk applies to masked"):
        build_run(config, make_accelerator(config), None, None, LowTokenReward())
    config = make_config(tiny_showo_dir, grpo__step_chunk=2)
    accelerator = make_accelerator(config)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # as `accelerate launch` with a DeepSpeed config sets it
    with pytest.raises(UnirlError, match="grpo.step_chunk does not run under DeepSpeed"):
        build_run(config, accelerator, None, None, BelowMedianReward())
    with pytest.raises(UnirlError, match="grpo.step_chunk must be >= 0"):
        make_config(tiny_janus_dir, grpo__step_chunk=-1)


def test_a_step_chunk_does_not_depend_on_the_old_logprobs_of_other_steps(tiny_showo_dir):
    """A real model's step log-prob sums to hundreds of nats: a ratio against them outside the chunk would be
    inf, and inf * mask 0 is NaN."""
    from unirl_cli.train.grpo import image_grpo_objective

    ctx, micro_batches = moved_policy_micro_batches(tiny_showo_dir, step_chunk=2)
    first = micro_batches[0]
    chunk = list(first.steps)
    far_old, far_ref = torch.full_like(first.old_logprobs, -1e4), torch.full_like(first.ref_logprobs, -1e4)
    far_old[:, chunk], far_ref[:, chunk] = first.old_logprobs[:, chunk], first.ref_logprobs[:, chunk]
    loss = image_grpo_objective(ctx.policy, first)["loss"]
    loss_far = image_grpo_objective(ctx.policy, replace(first, old_logprobs=far_old, ref_logprobs=far_ref))["loss"]
    assert torch.isfinite(loss_far) and float(loss_far.detach()) == pytest.approx(float(loss.detach()), rel=1e-6)


def test_step_chunks_count_the_answer_term_once(tiny_showo_dir, tmp_path):
    rows = [train(make_config(tiny_showo_dir, tmp_path / f"chunk{chunk}", steps=1, group_size=2, grpo__answer_weight=0.5,
                              grpo__answers_per_image=2, grpo__step_chunk=chunk)).metrics[0] for chunk in (0, 1)]
    assert rows[1]["answer_loss"] == pytest.approx(rows[0]["answer_loss"], rel=1e-5, abs=1e-7)
    assert rows[1]["loss"] == pytest.approx(rows[0]["loss"], rel=1e-5, abs=1e-7)


def test_the_shapes_detector_is_a_reward_suite():
    from unirl_cli.data.shapes.prompts import train_prompts
    from unirl_cli.data.shapes.render import render_scene
    from unirl_cli.train.config import RewardConfig
    from unirl_cli.train.rewards import RolloutBatch, build_reward

    reward = build_reward(RewardConfig(self_weight=0.0, detector_weight=1.0, detector_suite="shapes"))
    assert reward.needs_images and not reward.needs_answers
    two_objects = [r for r in train_prompts() if r["tag"] == "two_object"][:2]
    counting = [r for r in train_prompts() if r["tag"] == "counting"][0]
    images = [render_scene(record, seed=0)[0] for record in two_objects]
    # Each render scores 1 against its own prompt; against a counting prompt (two or more of one shape) a
    # two-object render, one of each, scores 0.
    batch = RolloutBatch(records=two_objects + [counting], rollout=None, images=images + images[:1])
    scores = reward(batch).tolist()
    assert scores[:2] == [1.0, 1.0]
    assert scores[2] == 0.0


def test_exact_count_detector_reward_does_not_forgive_extra_objects():
    from unirl_cli.data.shapes.prompts import train_prompts
    from unirl_cli.data.shapes.render import render_scene
    from unirl_cli.train.config import RewardConfig
    from unirl_cli.train.rewards import RolloutBatch, build_reward

    two_objects = [r for r in train_prompts() if r["tag"] == "two_object"][0]
    image = render_scene(two_objects, seed=0)[0]
    shape = two_objects["include"][0]["class"]
    single = {"tag": "single_object", "prompt": f"a photo of a {shape}", "include": [{"class": shape, "count": 1}]}
    batch = RolloutBatch(records=[single, two_objects], rollout=None, images=[image, image])
    config = dict(self_weight=0.0, detector_weight=1.0, detector_suite="shapes")
    # GenEval's verdict forgives the second object on the single-object prompt; the exact count does not.
    assert build_reward(RewardConfig(**config))(batch).tolist() == [1.0, 1.0]
    assert build_reward(RewardConfig(**config, detector_exact_count=True))(batch).tolist() == [0.0, 1.0]
