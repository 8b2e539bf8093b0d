"""The "shapes" prompt suite of `unirl eval geneval`: the world's evaluation prompts and classical detector.

A `Suite` of GenEval's evaluation (listed in `unirl_cli.eval.suites`), so images are generated, laid out, scored (GenEval's rules and
thresholds, unchanged), summarised per tag with the overall score and the imbalance metric exactly like the
real benchmark; only the prompt list and the judge differ.
"""

from __future__ import annotations

from typing import Sequence

from PIL import Image

from unirl_cli.eval.geneval.config import EvalGenevalConfig
from unirl_cli.eval.geneval.detections import Detection
from unirl_cli.eval.geneval.suites import ModelJudge, Suite
from unirl_cli.data.shapes.spec import IMAGE_SIZE


def _load_metadata() -> list[dict]:
    from unirl_cli.data.shapes.prompts import eval_prompts

    return [{key: record[key] for key in ("tag", "include", "exclude", "prompt") if key in record}
            for record in eval_prompts()]


def detect_images(images: Sequence[Image.Image]) -> list[list[Detection]]:
    """Detections of each image; images of another size are resized to the world's 64 px first."""
    from unirl_cli.eval.shapes.detector import detect_objects

    return [detect_objects(_world_sized(image)) for image in images]


def label_colors(items: Sequence[tuple[Image.Image, Detection]]) -> list[str]:
    """The palette colour the detector found for each detection (it labels every blob by its colour)."""
    return [detection.color for _, detection in items]


def _world_sized(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    return image


def build_shapes_judge(config: EvalGenevalConfig) -> ModelJudge:
    """The numpy detector; it needs no weights and ignores the device options."""
    return ModelJudge(detect_images, label_colors)


def _shapes_vocabulary():
    from unirl_cli.data.shapes.prompts import shapes_vocabulary

    return shapes_vocabulary()


SHAPES_SUITE = Suite("shapes", "the shapes world: 134 prompts over 6 shapes x 10 colours, classical detector",
                     _load_metadata, build_shapes_judge, answer_vocabulary=_shapes_vocabulary)
