"""The GenEval detector and scorer as a training reward: images and their prompt metadata -> one float each.

Per image, 1.0 when GenEval judges it correct, else 0.0; with `partial=True`, the fraction of the prompt's
include and exclude clauses met (a denser signal; note that GRPO against the detector invites reward hacking
of its blind spots, e.g. yifan123/flow_grpo#230).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from PIL import Image

from unirl_cli.eval.geneval.config import EvalGenevalConfig, GenevalThresholds
from unirl_cli.eval.geneval.evaluate import judge_images

DetectorReward = Callable[[Sequence[Image.Image], Sequence[dict]], list[float]]


def reward_from_judge(judge, thresholds: Optional[GenevalThresholds] = None, partial: bool = False) -> DetectorReward:
    """A reward callable over an already built judge (any suite's, or a test double)."""
    thresholds = thresholds or GenevalThresholds()

    def reward(images: Sequence[Image.Image], metadatas: Sequence[dict]) -> list[float]:
        if len(images) != len(metadatas):
            raise ValueError(f"{len(images)} images but {len(metadatas)} metadata records")
        if not images:
            return []
        rgb = [image.convert("RGB") for image in images]
        verdicts = judge_images(judge, rgb, list(metadatas), thresholds)
        return [verdict.fraction_met if partial else float(verdict.correct) for verdict, _ in verdicts]

    return reward


def make_detector_reward(detector_path: Optional[str] = None, clip_path: Optional[str] = None,
                         device: str = "auto", partial: bool = False, suite: str = "geneval",
                         thresholds: Optional[GenevalThresholds] = None, batch_size: int = 4) -> DetectorReward:
    """Load the suite's judge once (GenEval: Mask2Former + CLIP) and return `reward(images, metadatas)`.

    Missing weights raise a `UnirlError` naming `unirl download geneval-models`. Images may be any size; the
    metadata records are GenEval's (`tag`, `include`, optional `exclude`).
    """
    from unirl_cli.eval.suites import get_suite

    config = EvalGenevalConfig(detector_path=detector_path, clip_path=clip_path, eval_device=device,
                               eval_batch_size=batch_size, suite=suite, thresholds=thresholds or GenevalThresholds())
    judge = get_suite(suite).build_judge(config)
    return reward_from_judge(judge, config.thresholds, partial)


def load_image_scorer(**kwargs) -> DetectorReward:
    """`make_detector_reward` under the name `unirl_cli.train.rewards.DetectorReward` imports."""
    return make_detector_reward(**kwargs)
