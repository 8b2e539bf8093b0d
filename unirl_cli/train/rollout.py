"""One step's experience: G images per prompt, the model's answers about them, and their rewards.

Everything here runs without gradients on the unwrapped policy (DDP only needs to see the passes that
produce the loss), in chunks of `micro_batch_size` images so memory stays bounded.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator, Sequence

import torch

from unirl_cli.config import SamplingConfig
from unirl_cli.models.base import ImageRollout, UnifiedModel
from unirl_cli.train.rewards import RewardFunction, RolloutBatch


class StepTimer:
    """Wall-clock seconds per named phase of a step (rollout, answering, reward, logprob, optimizer)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@contextmanager
def evaluation_mode(module: torch.nn.Module) -> Iterator[None]:
    """Run a block in eval mode (KV cache on even with gradient checkpointing), then restore the mode."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def concat_rollouts(parts: Sequence[ImageRollout]) -> ImageRollout:
    """Join rollouts sampled with the same settings into one (rows in order)."""
    first = parts[0]
    commit = None if first.commit_step is None else torch.cat([p.commit_step for p in parts])
    threshold = None if first.remask_threshold is None else torch.cat([p.remask_threshold for p in parts])
    return replace(first, prompts=[p for part in parts for p in part.prompts],
                   seeds=[s for part in parts for s in part.seeds],
                   image_tokens=torch.cat([p.image_tokens for p in parts]),
                   token_logprobs=torch.cat([p.token_logprobs for p in parts]), commit_step=commit,
                   remask_threshold=threshold)


def chunks(count: int, size: int) -> list[range]:
    """Consecutive index ranges of at most `size` covering range(count)."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def sample_images(policy: UnifiedModel, prompts: list[str], seeds: list[int], sampling: SamplingConfig,
                  micro_batch_size: int) -> ImageRollout:
    """Sample one image per (prompt, seed), `micro_batch_size` at a time, with the KV cache, no gradients."""
    with evaluation_mode(policy), torch.no_grad():
        parts = [policy.generate_images([prompts[i] for i in part], [seeds[i] for i in part], sampling)
                 for part in chunks(len(prompts), micro_batch_size)]
    return concat_rollouts(parts)


def answer_images(policy: UnifiedModel, image_tokens: torch.Tensor, questions: list[str], max_new_tokens: int,
                  micro_batch_size: int) -> list[str]:
    """The policy's greedy answer to `questions[i]` about image i."""
    answers: list[str] = []
    with evaluation_mode(policy), torch.no_grad():
        for part in chunks(len(questions), micro_batch_size):
            answers.extend(policy.answer_questions(image_tokens[part.start:part.stop],
                                                   [questions[i] for i in part], max_new_tokens=max_new_tokens))
    return answers


def collect_experience(policy: UnifiedModel, records: list[dict], group_size: int, seeds: list[int],
                       sampling: SamplingConfig, reward_fn: RewardFunction, max_new_tokens: int,
                       micro_batch_size: int, timer: StepTimer,
                       always_answer: bool = False) -> tuple[RolloutBatch, torch.Tensor]:
    """Images for each record (`group_size` each, contiguous), answers if needed, and rewards (batch,)."""
    image_records = [record for record in records for _ in range(group_size)]
    with timer.phase("rollout"):
        rollout = sample_images(policy, [r["prompt"] for r in image_records], seeds, sampling, micro_batch_size)
    batch = RolloutBatch(records=image_records, rollout=rollout)
    if reward_fn.needs_answers or always_answer:
        with timer.phase("answering"):
            batch.answers = answer_images(policy, rollout.image_tokens, [r["question"] for r in image_records],
                                          max_new_tokens, micro_batch_size)
    with timer.phase("reward"):
        if getattr(reward_fn, "needs_images", False):
            with evaluation_mode(policy):
                batch.images = policy.decode_images(rollout.image_tokens)
        rewards = reward_fn(batch).float().cpu()
    return batch, rewards
