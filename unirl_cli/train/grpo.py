"""One GRPO step on image tokens: rollout, self-reward, group advantages, clipped updates with k3 KL."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from unirl_cli.models.base import ImageRollout, UnifiedModel
from unirl_cli.train.answer_grpo import AnswerPart, answer_loss, answer_parts, sample_answer_groups, score_answer_parts
from unirl_cli.train.context import (RunContext, accumulate_gradients, gathered_reward_std, optimizer_update, summed,
                                     weighted_mean)
from unirl_cli.train.distributed import full_parameters
from unirl_cli.train.grpo_loss import ClipSettings, LossNormalizer, group_advantages, grpo_loss, nan_std
from unirl_cli.train.prompts import image_seed
from unirl_cli.train.rewards import RolloutBatch, SelfAnswerReward
from unirl_cli.train.rollout import StepTimer, chunks, collect_experience


@dataclass
class ImageMicroBatch:
    """A slice of the step's rollout with what its loss needs."""

    rollout: ImageRollout
    advantages: torch.Tensor  # (rows,)
    old_logprobs: torch.Tensor | None  # (rows, num_actions); None = on-policy (detached current)
    ref_logprobs: torch.Tensor | None  # (rows, num_actions); None when beta == 0
    guidance_scale: float | None  # None = the rollout's own CFG
    settings: ClipSettings
    loss_type: str
    sizes: LossNormalizer
    answers: AnswerPart | None = None  # the answer-GRPO rows of these images (grpo.answer_weight > 0)
    steps: tuple[int, ...] | None = None  # masked models (grpo.step_chunk, step_fraction): the steps this part scores
    first_part: bool = True  # the first step chunk of its images (their answer term rides on it)


def image_grpo_objective(policy: UnifiedModel, micro: ImageMicroBatch) -> dict:
    """The GRPO loss share of one micro-batch; runs inside the prepared module's forward."""
    step_kwargs = {} if micro.steps is None else {"steps": list(micro.steps)}
    logprobs = policy("image_logprobs", micro.rollout, guidance_scale=micro.guidance_scale, **step_kwargs).float()
    old = logprobs.detach() if micro.old_logprobs is None else micro.old_logprobs
    ref, mask, rows = micro.ref_logprobs, None, float(len(micro.rollout))
    if micro.steps is not None:
        mask = torch.zeros_like(logprobs, dtype=torch.bool)
        mask[:, list(micro.steps)] = True
        # Steps outside the chunk come back as 0. A step's old log-prob sums hundreds of nats, so a ratio
        # against it would be inf there, and inf * mask 0 is NaN: zero old and ref outside the chunk too.
        old = torch.where(mask, old, 0.0)
        ref = None if ref is None else torch.where(mask, ref, 0.0)
        rows *= len(micro.steps) / logprobs.shape[1]  # this part's share of its images' actions, for the stats
    out = grpo_loss(logprobs, old, micro.advantages, micro.settings, micro.loss_type, mask=mask,
                    ref_logprobs=ref, sizes=micro.sizes)
    stats = {"loss": out.loss, "clip_fraction": out.clip_fraction, "low_clip_fraction": out.low_clip_fraction,
             "high_clip_fraction": out.high_clip_fraction, "ratio": out.mean_ratio, "rows": rows}
    if out.mean_kl is not None:
        stats["kl"] = out.mean_kl
    if micro.answers is not None:
        answer_stats = answer_loss(policy, micro.answers, micro.settings, micro.loss_type)
        stats["loss"] = stats["loss"] + answer_stats["answer_loss"]
        stats.update(answer_stats)
    return stats


def reward_metrics(ctx: RunContext, batch: RolloutBatch, rewards: torch.Tensor) -> dict:
    """Reward mean/std over all processes, per tag, and the fraction of groups with no reward spread."""
    from unirl_cli.data.qa import TAGS

    tag_ids = torch.tensor([TAGS.index(r["tag"]) if r["tag"] in TAGS else -1 for r in batch.records])
    all_rewards = ctx.accelerator.gather(rewards.to(ctx.device)).float().cpu()
    all_tags = ctx.accelerator.gather(tag_ids.to(ctx.device)).cpu()
    groups = all_rewards.view(-1, ctx.config.group_size)
    metrics = {"reward/mean": float(all_rewards.nanmean()), "reward/std": float(nan_std(all_rewards)),
               "frac_reward_zero_std": float((groups.std(dim=1) == 0).float().mean()) if groups.shape[1] > 1 else 1.0}
    for index, tag in enumerate(TAGS):
        selected = all_rewards[all_tags == index]
        if selected.numel():
            metrics[f"reward/tag/{tag}"] = float(selected.nanmean())
    metrics["_all_rewards"] = all_rewards
    return metrics


def no_grad_logprobs(score, rollout: ImageRollout, guidance_scale: float | None, micro_batch_size: int,
                     steps_per_part: list[tuple[int, ...] | None] | None = None) -> torch.Tensor:
    """`score(part, guidance_scale)` over the rollout in micro-batches, without gradients, as one float tensor.
    `steps_per_part` (masked models; one entry per micro-batch, None = all): replay only those sampling steps,
    the others come back 0."""
    parts = chunks(len(rollout), micro_batch_size)
    with torch.no_grad():
        return torch.cat([score(rollout.select(part), guidance_scale,
                                **({} if steps is None else {"steps": list(steps)})).float()
                          for part, steps in zip(parts, steps_per_part or [None] * len(parts))])


def step_experience(ctx: RunContext, records: list[dict], step: int, first_image_index: int, timer: StepTimer,
                    always_answer: bool = False) -> tuple[RolloutBatch, torch.Tensor]:
    """Sample G images per record (seeded by step and global image index), answer and reward them."""
    config = ctx.config
    num_images = len(records) * config.group_size
    seeds = [image_seed(config.seed, step, first_image_index + i) for i in range(num_images)]
    with full_parameters(ctx.accelerator, ctx.module):
        return collect_experience(ctx.policy, records, config.group_size, seeds, ctx.sampling, ctx.reward_fn,
                                  config.answer.max_new_tokens, config.micro_batch_size, timer,
                                  always_answer=always_answer)


def grpo_step(ctx: RunContext, records: list[dict], step: int, first_image_index: int) -> tuple[dict, RolloutBatch]:
    """Run one GRPO step for this process's `records`; returns (metrics, the rollout batch)."""
    config, timer = ctx.config, StepTimer()
    batch, rewards = step_experience(ctx, records, step, first_image_index, timer)
    metrics = reward_metrics(ctx, batch, rewards)
    all_rewards = metrics.pop("_all_rewards")
    # An image the reward cannot score (NaN) is left out of the spread, as of its group's mean.
    batch_std = nan_std(all_rewards)
    advantages = group_advantages(rewards, config.group_size, config.grpo.scale_rewards, batch_std).to(ctx.device)
    draws = torch.Generator().manual_seed(image_seed(config.seed, step, first_image_index))
    micro_batches = _image_micro_batches(ctx, batch.rollout.to(ctx.device), advantages, timer, draws)
    if config.grpo.answer_weight > 0:
        with timer.phase("answering"), full_parameters(ctx.accelerator, ctx.module):
            metrics["answer_reward/mean"] = _attach_answer_parts(ctx, batch, micro_batches)
    metrics.update(_optimize(ctx, micro_batches, timer))
    metrics.update({f"time/{name}": seconds for name, seconds in timer.seconds.items()})
    return metrics, batch


def _image_micro_batches(ctx: RunContext, rollout: ImageRollout, advantages: torch.Tensor, timer: StepTimer,
                         draws: torch.Generator | None = None) -> list[ImageMicroBatch]:
    """Slice the rollout into micro-batches with stored old (num_iterations > 1) and reference log-probs; for
    masked models, each scores the sampling steps that `grpo.step_fraction` draws from `draws`, step_chunk at a time."""
    config = ctx.config
    num_images, num_actions = rollout.token_logprobs.shape
    guidance = None if config.grpo.logprob_branch == "cfg" else ctx.policy.no_guidance_scale
    global_tokens = float(ctx.accelerator.gather(torch.tensor([float(num_images * num_actions)], device=ctx.device)).sum())
    kept_steps = steps_to_score(num_actions, config.grpo.step_fraction)
    # Scoring k of the S steps estimates the loss over all of them: every size it is divided by shrinks by k / S.
    share = kept_steps / num_actions
    sizes = LossNormalizer(num_sequences=num_images, num_tokens=num_images * num_actions * share,
                           max_length=num_actions * share,
                           tokens_per_process=global_tokens / ctx.accelerator.num_processes * share,
                           actions_per_sequence=num_actions * share)
    settings = ClipSettings(config.grpo.eps_low, config.grpo.eps_high, config.grpo.beta, config.grpo.kl_ratio_correction)
    parts = chunks(num_images, config.micro_batch_size)
    drawn = [None if kept_steps == num_actions else
             tuple(sorted(torch.randperm(num_actions, generator=draws)[:kept_steps].tolist())) for _ in parts]
    # Same autocast as the training forward, so precision noise does not show up as KL or ratio != 1.
    with timer.phase("logprob_fwd_bwd"), full_parameters(ctx.accelerator, ctx.module), ctx.accelerator.autocast():
        old = ref = None
        if config.grpo.num_iterations > 1:
            old = no_grad_logprobs(lambda r, g, **steps: ctx.policy.image_logprobs(r, guidance_scale=g, **steps),
                                   rollout, guidance, config.micro_batch_size, drawn)
        if ctx.reference is not None:
            ref = no_grad_logprobs(ctx.reference.image_logprobs, rollout, guidance, config.micro_batch_size, drawn)
    micro_batches = [ImageMicroBatch(rollout.select(part), advantages[part.start:part.stop],
                                     None if old is None else old[part.start:part.stop],
                                     None if ref is None else ref[part.start:part.stop],
                                     guidance, settings, config.grpo.loss_type, sizes, steps=steps)
                     for part, steps in zip(parts, drawn)]
    return split_by_steps(micro_batches, config.grpo.step_chunk, num_actions)


def steps_to_score(num_steps: int, step_fraction: float) -> int:
    """How many of an image's `num_steps` sampling steps one update back-propagates through (at least one)."""
    return max(1, min(num_steps, round(step_fraction * num_steps)))


def split_by_steps(micro_batches: list[ImageMicroBatch], step_chunk: int, num_steps: int) -> list[ImageMicroBatch]:
    """Each micro-batch once per `step_chunk` of its sampling steps (masked models; all `num_steps` unless
    `micro.steps` holds a drawn subset), so one backward holds only that many steps' graphs; the loss is a sum
    over steps, so the parts' gradients add up to the whole. Chunks in which none of the micro-batch's images
    committed a token are left out (their loss is a constant with nothing to back-propagate). `step_chunk` 0
    (or >= the steps scored) leaves the micro-batches as they are."""
    parts = []
    for micro in micro_batches:
        steps = tuple(range(num_steps)) if micro.steps is None else micro.steps
        if step_chunk <= 0 or step_chunk >= len(steps):
            parts.append(micro)
            continue
        committed = set(micro.rollout.commit_step.flatten().tolist())
        chunked = [steps[start:start + step_chunk] for start in range(0, len(steps), step_chunk)]
        kept = [chunk for chunk in chunked if committed.intersection(chunk)]
        parts += [replace(micro, steps=chunk, first_part=index == 0) for index, chunk in enumerate(kept)]
    return parts


def _optimize(ctx: RunContext, micro_batches: list[ImageMicroBatch], timer: StepTimer) -> dict:
    """`num_iterations` optimizer updates over the same micro-batches; returns loss and clipping statistics."""
    losses, grad_norm, outputs = [], 0.0, []
    for _ in range(ctx.config.grpo.num_iterations):
        with timer.phase("logprob_fwd_bwd"):
            outputs = accumulate_gradients(ctx, image_grpo_objective, micro_batches)
        with timer.phase("optimizer"):
            grad_norm = optimizer_update(ctx)
        losses.append(summed(outputs, "loss"))
    metrics = {"loss": sum(losses) / len(losses), "grad_norm": grad_norm}
    for key in ("clip_fraction", "low_clip_fraction", "high_clip_fraction", "ratio", "kl", "answer_clip_fraction"):
        value = weighted_mean(outputs, key)
        if value is not None:
            metrics[key] = value
    if any("answer_loss" in out for out in outputs):
        metrics["answer_loss"] = summed(outputs, "answer_loss")
    return metrics


def _attach_answer_parts(ctx: RunContext, batch: RolloutBatch, micro_batches: list[ImageMicroBatch]) -> float:
    """Sample and score K answers per image, hang them on the image micro-batches; returns the answers' mean reward."""
    config = ctx.config
    groups = sample_answer_groups(ctx.policy, batch, config.grpo.answers_per_image, config.grpo.answer_temperature,
                                  config.answer.max_new_tokens, config.micro_batch_size, config.grpo.scale_rewards,
                                  SelfAnswerReward(config.answer.partial_credit, config.reward.vocabulary),
                                  batch_std_of=lambda rewards: gathered_reward_std(ctx.accelerator, rewards))
    image_ranges = chunks(len(batch.records), config.micro_batch_size)
    parts = answer_parts(groups, image_ranges, config.grpo.answers_per_image, config.grpo.answer_weight, ctx.device)
    with ctx.accelerator.autocast():
        local_tokens, longest = score_answer_parts(ctx.policy, parts, keep_old=config.grpo.num_iterations > 1)
    global_tokens = float(ctx.accelerator.gather(torch.tensor([local_tokens], device=ctx.device)).sum())
    sizes = LossNormalizer(num_sequences=len(groups.answers), num_tokens=local_tokens,
                           max_length=max(longest, config.answer.max_new_tokens + 1),
                           tokens_per_process=global_tokens / ctx.accelerator.num_processes)
    first_parts = [micro for micro in micro_batches if micro.first_part]
    for micro, part in zip(first_parts, parts):  # a micro-batch's answers go with its first step chunk only
        part.sizes = sizes
        micro.answers = part
    return float(ctx.accelerator.gather(groups.rewards.to(ctx.device)).mean())
