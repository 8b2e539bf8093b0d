"""Optional GRPO on the answers: K sampled answers per image, rewarded by the matcher, grouped per image.

The answer term is added, weighted by `grpo.answer_weight`, to the image-token loss of the same
micro-batch, so one forward through the prepared module touches both the generation and the
understanding path (DDP then sees every trainable parameter used). No KL term on answers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from unirl_cli.models.base import UnifiedModel
from unirl_cli.train.grpo_loss import ClipSettings, LossNormalizer, group_advantages, grpo_loss
from unirl_cli.train.rewards import RolloutBatch
from unirl_cli.train.rollout import chunks, evaluation_mode


@dataclass
class AnswerGroups:
    """K sampled answers for each image of the step, rows ordered image-major (image i: rows iK..iK+K-1)."""

    image_tokens: torch.Tensor  # (images * K, num_image_tokens)
    questions: list[str]
    answers: list[str]
    advantages: torch.Tensor  # (images * K,)
    rewards: torch.Tensor  # (images * K,)


@dataclass
class AnswerPart:
    """The answer rows belonging to one image micro-batch, with what their loss needs."""

    image_tokens: torch.Tensor
    questions: list[str]
    answers: list[str]
    advantages: torch.Tensor
    old_token_logprobs: torch.Tensor | None
    sizes: LossNormalizer | None
    weight: float


def sample_answer_groups(policy: UnifiedModel, batch: RolloutBatch, answers_per_image: int, temperature: float,
                         max_new_tokens: int, micro_batch_size: int, scale_rewards: str,
                         reward: Callable[[RolloutBatch], torch.Tensor],
                         batch_std_of: Callable[[torch.Tensor], torch.Tensor] | None = None) -> AnswerGroups:
    """Sample K answers per image (no gradients), score them with `reward` (UniRL: `SelfAnswerReward`, the
    matcher), group-normalise per image.

    `batch_std_of(rewards)` gives the spread that `scale_rewards: batch` divides by; with several processes
    it must cover every process's answers (as the image path does), by default it is this batch's alone.
    """
    tokens = batch.rollout.image_tokens.repeat_interleave(answers_per_image, dim=0)
    records = [record for record in batch.records for _ in range(answers_per_image)]
    seeds = [seed * answers_per_image + k for seed in batch.rollout.seeds for k in range(answers_per_image)]
    questions = [record["question"] for record in records]
    answers: list[str] = []
    with evaluation_mode(policy), torch.no_grad():
        for part in chunks(len(records), micro_batch_size):
            answers.extend(policy.answer_questions(tokens[part.start:part.stop], questions[part.start:part.stop],
                                                   max_new_tokens=max_new_tokens, greedy=False,
                                                   temperature=temperature, seeds=seeds[part.start:part.stop]))
    rewards = reward(RolloutBatch(records=records, rollout=batch.rollout, answers=answers))
    batch_std = batch_std_of(rewards) if batch_std_of is not None and scale_rewards == "batch" else None
    advantages = group_advantages(rewards, answers_per_image, scale_rewards, batch_std)
    return AnswerGroups(tokens, questions, answers, advantages, rewards)


def answer_parts(groups: AnswerGroups, image_ranges: list[range], answers_per_image: int, weight: float,
                 device: torch.device) -> list[AnswerPart]:
    """Split the answer rows along the image micro-batches (image rows a..b -> answer rows aK..bK).

    `sizes` is left unset; `score_answer_parts` measures the token counts it needs.
    """
    parts = []
    for image_range in image_ranges:
        rows = slice(image_range.start * answers_per_image, image_range.stop * answers_per_image)
        parts.append(AnswerPart(groups.image_tokens[rows].to(device), groups.questions[rows], groups.answers[rows],
                                groups.advantages[rows].to(device), None, None, weight))
    return parts


def score_answer_parts(policy: UnifiedModel, parts: list[AnswerPart], keep_old: bool) -> tuple[float, int]:
    """No-grad pass over the parts: (active answer tokens, longest answer); stores old log-probs if `keep_old`."""
    total, longest = 0.0, 1
    with torch.no_grad():
        for part in parts:
            scores = policy.answer_logprobs(part.image_tokens, part.questions, part.answers)
            total += float(scores.token_mask.sum())
            longest = max(longest, int(scores.token_mask.sum(dim=1).max()))
            if keep_old:
                part.old_token_logprobs = scores.token_logprobs.float()
    return total, longest


def answer_loss(policy: UnifiedModel, part: AnswerPart, settings: ClipSettings, loss_type: str) -> dict:
    """Weighted GRPO loss share of one part's answers (inside the prepared module's forward)."""
    scores = policy("answer_logprobs", part.image_tokens, part.questions, part.answers)
    logprobs = scores.token_logprobs.float()
    old = logprobs.detach() if part.old_token_logprobs is None else part.old_token_logprobs
    no_kl = replace(settings, beta=0.0)  # answers have no reference log-probs; every other setting carries over
    out = grpo_loss(logprobs, old, part.advantages, no_kl, loss_type, mask=scores.token_mask, sizes=part.sizes)
    return {"answer_loss": part.weight * out.loss, "answer_clip_fraction": out.clip_fraction}
