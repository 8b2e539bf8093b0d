"""Rewards: a callable from a batch of rollout images (and the model's answers) to one number per image.

UniRL's reward is self-supervised: the model answers the prompt's question about its own image and the
answer is matched to the ground truth derived from the prompt's metadata. A judge model or the GenEval
detector can be mixed in. Any callable with a `needs_answers` attribute plugs in (tests use a reward
computed from the image tokens alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from unirl_cli.errors import UnirlError
from unirl_cli.models.base import ImageRollout
from unirl_cli.train.config import RewardConfig


@dataclass
class RolloutBatch:
    """One process's images of a step: the prompt record of each image, the rollout, the answers."""

    records: list[dict]  # one per image (a prompt's record repeated group_size times)
    rollout: ImageRollout
    answers: list[str] | None = None
    images: list | None = None  # decoded PIL images, filled on demand by rewards that look at pixels


class RewardFunction(Protocol):
    """What the trainers call; returns a float tensor (batch,) with one reward per image."""

    needs_answers: bool

    def __call__(self, batch: RolloutBatch) -> torch.Tensor: ...


def answer_vocabulary(name: str):
    """The matcher's Vocabulary for a `reward.vocabulary` name (None = the matcher's default)."""
    if name == "default":
        return None
    if name == "shapes":
        from unirl_cli.data.shapes.prompts import shapes_vocabulary

        return shapes_vocabulary()
    raise UnirlError(f"unknown answer vocabulary {name!r}; use default or shapes")


class SelfAnswerReward:
    """1 if the model's own answer matches the ground truth (or the matched fraction with partial credit).

    `vocabulary` is the matcher's list of objects: an answer naming one that the prompt did not ask for is
    wrong, so it must hold every object the model can name (the shapes world's shapes are not in the default).
    """

    needs_answers = True

    def __init__(self, partial_credit: bool = False, vocabulary: str = "default") -> None:
        from unirl_cli.data.matching import match_answer

        self._match = match_answer
        self.partial_credit = partial_credit
        self.vocabulary = answer_vocabulary(vocabulary)

    def __call__(self, batch: RolloutBatch) -> torch.Tensor:
        scores = [self._match(record["tag"], record, answer, partial=self.partial_credit, vocabulary=self.vocabulary)
                  for record, answer in zip(batch.records, batch.answers)]
        return torch.tensor(scores, dtype=torch.float32)


class JudgeReward:
    """1 if a local chat model says the answer and the ground truth agree (UniRL's evaluation judge)."""

    needs_answers = True

    def __init__(self, judge_model: str, device: str = "cpu") -> None:
        from unirl_cli.data.judge import AnswerJudge

        self.judge = AnswerJudge.load(judge_model, device=device)

    def __call__(self, batch: RolloutBatch) -> torch.Tensor:
        scores = [self.judge.score(record["question"], record["answer"], answer)
                  for record, answer in zip(batch.records, batch.answers)]
        return torch.tensor(scores, dtype=torch.float32)


class DetectorReward:
    """The suite's detector verdict on the decoded image (1/0, or the fraction of clauses met)."""

    needs_answers = False
    needs_images = True

    def __init__(self, config: RewardConfig, device: str = "cpu") -> None:
        from unirl_cli.eval.geneval.reward import make_detector_reward

        self.score = make_detector_reward(config.detector_path, config.clip_path, device=device,
                                          partial=config.detector_partial, suite=config.detector_suite,
                                          exact_count=config.detector_exact_count)

    def __call__(self, batch: RolloutBatch) -> torch.Tensor:
        return torch.tensor(self.score(batch.images, batch.records), dtype=torch.float32)


class WeightedReward:
    """The weighted sum of several rewards."""

    def __init__(self, parts: Sequence[tuple[float, RewardFunction]]) -> None:
        self.parts = [(weight, fn) for weight, fn in parts if weight != 0]
        self.needs_answers = any(fn.needs_answers for _, fn in self.parts)
        self.needs_images = any(getattr(fn, "needs_images", False) for _, fn in self.parts)
        self.max_reward = sum(weight for weight, _ in self.parts)  # every source gives at most 1

    def __call__(self, batch: RolloutBatch) -> torch.Tensor:
        return sum(weight * fn(batch) for weight, fn in self.parts)


def build_reward(config: RewardConfig, partial_credit: bool = False, device: str = "cpu") -> WeightedReward:
    """The reward a config asks for; raises UnirlError for a source that cannot be loaded."""
    parts: list[tuple[float, RewardFunction]] = []
    if config.self_weight:
        parts.append((config.self_weight, SelfAnswerReward(partial_credit, config.vocabulary)))
    if config.judge_weight:
        parts.append((config.judge_weight, JudgeReward(str(config.judge_model), device)))
    if config.detector_weight:
        parts.append((config.detector_weight, DetectorReward(config, device)))
    return WeightedReward(parts)
