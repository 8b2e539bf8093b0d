"""The GenEval detector and scorer as a training reward: images and their prompt metadata -> one float each.

Per image, 1.0 when GenEval judges it correct, else 0.0; with `partial=True`, the fraction of the prompt's
include and exclude clauses met (a denser signal; note that GRPO against the detector invites reward hacking
of its blind spots, e.g. yifan123/flow_grpo#230). With `exact_count=True` an image that GenEval judges
correct still scores 0 when the detector keeps more objects than the prompt asks for: GenEval forgives
extra copies of an asked-for object outside its counting prompts, and an update on its verdict learns them.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from PIL import Image

from unirl_cli.eval.geneval.config import EvalGenevalConfig, GenevalThresholds
from unirl_cli.eval.geneval.evaluate import judge_images

DetectorReward = Callable[[Sequence[Image.Image], Sequence[dict]], list[float]]


def objects_asked(metadata: dict) -> int:
    """How many objects a GenEval prompt asks for: the sum of its include clauses' counts."""
    return sum(int(clause.get("count", 1)) for clause in metadata.get("include", []))


def reward_from_judge(judge, thresholds: Optional[GenevalThresholds] = None, partial: bool = False,
                      exact_count: bool = False) -> DetectorReward:
    """A reward callable over an already built judge (any suite's, or a test double)."""
    thresholds = thresholds or GenevalThresholds()

    def score(verdict, kept: dict, metadata: dict) -> float:
        value = verdict.fraction_met if partial else float(verdict.correct)
        if exact_count and sum(len(found) for found in kept.values()) > objects_asked(metadata):
            return 0.0
        return value

    def reward(images: Sequence[Image.Image], metadatas: Sequence[dict]) -> list[float]:
        if len(images) != len(metadatas):
            raise ValueError(f"{len(images)} images but {len(metadatas)} metadata records")
        if not images:
            return []
        rgb = [image.convert("RGB") for image in images]
        verdicts = judge_images(judge, rgb, list(metadatas), thresholds)
        return [score(verdict, kept, metadata) for (verdict, kept), metadata in zip(verdicts, metadatas)]

    return reward


def make_detector_reward(detector_path: Optional[str] = None, clip_path: Optional[str] = None,
                         device: str = "auto", partial: bool = False, suite: str = "geneval",
                         thresholds: Optional[GenevalThresholds] = None, batch_size: int = 4,
                         exact_count: bool = False) -> DetectorReward:
    """Load the suite's judge once (GenEval: Mask2Former + CLIP) and return `reward(images, metadatas)`.

    Missing weights raise a `UnirlError` naming `unirl download geneval-models`. Images may be any size; the
    metadata records are GenEval's (`tag`, `include`, optional `exclude`).
    """
    from unirl_cli.eval.suites import get_suite

    config = EvalGenevalConfig(detector_path=detector_path, clip_path=clip_path, eval_device=device,
                               eval_batch_size=batch_size, suite=suite, thresholds=thresholds or GenevalThresholds())
    judge = get_suite(suite).build_judge(config)
    return reward_from_judge(judge, config.thresholds, partial, exact_count)


def load_image_scorer(**kwargs) -> DetectorReward:
    """`make_detector_reward` under the name `unirl_cli.train.rewards.DetectorReward` imports."""
    return make_detector_reward(**kwargs)
