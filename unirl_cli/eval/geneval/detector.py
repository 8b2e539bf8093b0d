"""GenEval's object detector: transformers' Mask2Former (Swin-S, COCO instances) with mmdet's post-processing.

Class indices map to `object_names.txt` by position (GenEval renames three COCO classes, so names would not
match the checkpoint's `id2label`). Images of one size are batched; different sizes run in separate passes
because mmdet sizes the padded input per image, and padding changes what the network sees.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from PIL import Image

from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.detections import Detection
from unirl_cli.eval.geneval.mmdet_postprocess import LONG_EDGE, SHORT_EDGE, instance_postprocess, preprocess


class MaskFormerDetector:
    """Callable: a list of RGB images -> per image, its detections (at most 100 (query, class) pairs).

    Only detections that can score above `min_score` are returned (pass the lowest scoring threshold: the
    others could never be kept), with masks as numpy bool arrays at the image's size. `input_scale`
    (short, long edge) is GenEval's (800, 1333); tests shrink it for speed.
    """

    def __init__(self, model: torch.nn.Module, class_names: Sequence[str], batch_size: int = 4,
                 min_score: float = 0.0, input_scale: tuple[int, int] = (SHORT_EDGE, LONG_EDGE)) -> None:
        num_labels = model.config.num_labels
        if num_labels != len(class_names):
            raise UnirlError(f"the detector predicts {num_labels} classes but the suite names {len(class_names)}; "
                             f"use the COCO instance checkpoint (unirl download geneval-models)")
        check_class_order(getattr(model.config, "id2label", {}) or {}, class_names)
        self.model = model.eval()
        self.class_names = tuple(class_names)
        self.batch_size = batch_size
        self.min_score = min_score
        self.input_scale = input_scale

    @property
    def device(self) -> torch.device:
        """Where the detector's weights live."""
        return next(self.model.parameters()).device

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        results: list[Optional[list[Detection]]] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(image.size, []).append(index)
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                for index, detections in zip(chunk, self._detect_same_size([images[i] for i in chunk])):
                    results[index] = detections
        return results  # type: ignore[return-value]

    def _detect_same_size(self, images: list[Image.Image]) -> list[list[Detection]]:
        pixel_values, geometry = preprocess(images, *self.input_scale)
        outputs = self.model(pixel_values=pixel_values.to(self.device, self.model.dtype))
        # Post-processing stays on the model's device: upsampling 100 masks to 800 px is the costly part.
        class_logits = outputs.class_queries_logits.float()  # (batch, queries, classes + 1)
        mask_logits = outputs.masks_queries_logits.float()  # (batch, queries, H/4, W/4)
        return [self._to_detections(instance_postprocess(class_logits[i], mask_logits[i], geometry,
                                                         min_score=self.min_score))
                for i in range(len(images))]

    def _to_detections(self, instances) -> list[Detection]:
        detections = []
        for label, box, score, mask in zip(instances.labels.tolist(), instances.boxes.tolist(),
                                           instances.scores.tolist(), instances.masks.cpu()):
            if score > self.min_score:
                detections.append(Detection(self.class_names[label], tuple(box), score, mask.numpy()))
        return detections


# GenEval's object_names.txt renames three COCO classes; the checkpoint keeps COCO's names.
GENEVAL_RENAMES = {"computer mouse": "mouse", "tv remote": "remote", "computer keyboard": "keyboard"}


def check_class_order(id2label: dict, class_names: Sequence[str]) -> None:
    """Refuse a checkpoint whose label names show it is not in the suite's class order (e.g. not COCO).

    Names are compared loosely (case, spaces, GenEval's renames); generic `LABEL_i` names are not checked.
    A handful of spelling differences pass, a different label set does not.
    """
    labels = [str(id2label.get(i, id2label.get(str(i), ""))) for i in range(len(class_names))]
    if not labels or all(not label or label.startswith("LABEL_") for label in labels):
        return

    def simple(name: str) -> str:
        return "".join(ch for ch in GENEVAL_RENAMES.get(name, name).lower() if ch.isalpha())

    mismatched = [i for i, (label, name) in enumerate(zip(labels, class_names)) if simple(label) != simple(name)]
    if len(mismatched) > len(class_names) // 8:
        first = mismatched[0]
        raise UnirlError(f"the detector's classes are not in the expected order (class {first} is "
                         f"'{labels[first]}', expected '{class_names[first]}'); use the COCO instance checkpoint "
                         f"from `unirl download geneval-models`")


def load_detector(folder: str, class_names: Sequence[str], device: torch.device, batch_size: int = 4,
                  min_score: float = 0.0, input_scale: tuple[int, int] = (SHORT_EDGE, LONG_EDGE)) -> MaskFormerDetector:
    """The Mask2Former in `folder` (a transformers save) as a `MaskFormerDetector` on `device`, fp32."""
    from transformers import Mask2FormerForUniversalSegmentation

    try:
        model = Mask2FormerForUniversalSegmentation.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise UnirlError(f"'{folder}' holds no loadable Mask2Former ({str(err).splitlines()[0]}); re-run "
                         f"`unirl download geneval-models` or pass the right --detector-path") from err
    return MaskFormerDetector(model.to(device), class_names, batch_size, min_score, input_scale)
