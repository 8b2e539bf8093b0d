"""Prompt suites: a list of GenEval-style prompt records plus the models that judge images of them.

A suite's judge detects objects (`Detection`s, any detector) and names the colours of detections the scorer
asks about; the GenEval scoring rules then apply unchanged. `GENEVAL_SUITE` is the official benchmark; the
registry of every suite (with the shapes world's, `eval.shapes.suite`) is `unirl_cli.eval.suites`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

from PIL import Image

from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.config import EvalGenevalConfig
from unirl_cli.eval.geneval.detections import Detection


class Judge(Protocol):
    """What scoring needs from a suite: detections per image, and colours of chosen detections."""

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """Per image, every candidate detection (the scorer applies the thresholds)."""

    def label_colors(self, items: Sequence[tuple[Image.Image, Detection]]) -> list[str]:
        """The colour name of each (image, detection) pair."""


@dataclass(frozen=True)
class Suite:
    """A named prompt set and a factory for its judge (built only when images are scored)."""

    name: str
    description: str
    load_metadata: Callable[[], list[dict]]
    build_judge: Callable[[EvalGenevalConfig], Judge]
    # Cheap checks run before any generation (e.g. that the judge's weights are on disk).
    preflight: Optional[Callable[[EvalGenevalConfig], None]] = None
    # The objects the answer matcher recognises (None: its default), so that naming an extra one is wrong.
    answer_vocabulary: Optional[Callable[[], object]] = None


@dataclass
class ModelJudge:
    """A judge made of two callables: a detector and a colour classifier."""

    detector: Callable[[Sequence[Image.Image]], list[list[Detection]]]
    color_classifier: Callable[[Sequence[tuple[Image.Image, Detection]]], list[str]]

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        return self.detector(images)

    def label_colors(self, items: Sequence[tuple[Image.Image, Detection]]) -> list[str]:
        return self.color_classifier(items) if items else []


def build_geneval_judge(config: EvalGenevalConfig) -> ModelJudge:
    """Mask2Former + CLIP from `config.detector_path` / `config.clip_path` or the local download."""
    from unirl_cli.eval.geneval.colors import load_color_classifier
    from unirl_cli.eval.geneval.detector import load_detector
    from unirl_cli.eval.geneval.prompts import object_names
    from unirl_cli.eval.geneval.weights import CLIP_NAME, DETECTOR_NAME, resolve_weights
    from unirl_cli.runtime import resolve_device

    detector_dir = resolve_weights(DETECTOR_NAME, config.detector_path, "--detector-path")
    clip_dir = resolve_weights(CLIP_NAME, config.clip_path, "--clip-path")
    device = resolve_device(config.eval_device)
    lowest_cutoff = min(config.thresholds.threshold, config.thresholds.counting_threshold)
    detector = load_detector(str(detector_dir), object_names(), device, config.eval_batch_size, lowest_cutoff)
    return ModelJudge(detector, load_color_classifier(str(clip_dir), device))


def check_geneval_weights(config: EvalGenevalConfig) -> None:
    """Fail early, with the download command, when the detector or CLIP weights are missing."""
    from unirl_cli.eval.geneval.weights import CLIP_NAME, DETECTOR_NAME, resolve_weights

    resolve_weights(DETECTOR_NAME, config.detector_path, "--detector-path")
    resolve_weights(CLIP_NAME, config.clip_path, "--clip-path")


def _geneval_metadata() -> list[dict]:
    from unirl_cli.eval.geneval.prompts import geneval_metadata

    return geneval_metadata()


GENEVAL_SUITE = Suite("geneval", "GenEval's 553 prompts, Mask2Former detector and CLIP colours (Ghosh et al. 2023)",
                      _geneval_metadata, build_geneval_judge, check_geneval_weights)
