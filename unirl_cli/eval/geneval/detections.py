"""What a detector hands to the scorer, and GenEval's per-class filtering of it (threshold, cap, optional NMS).

Every suite's detector returns, per image, a list of `Detection`s in the image's own pixel coordinates; the
scorer never sees tensors or models, so it can be tested on hand-built detections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from unirl_cli.eval.geneval.config import GenevalThresholds


@dataclass
class Detection:
    """One detected object.

    `box` is (x1, y1, x2, y2) in pixels of the original image, with x2/y2 one past the last mask pixel (mmdet's
    `mask2bbox`). `mask` is a (height, width) bool array at the image's size, or None when the detector gives
    no mask (the colour crop then keeps the whole box). `color` is filled in before scoring, only for the
    detections a colour clause inspects.
    """

    class_name: str
    box: tuple[float, float, float, float]
    score: float
    mask: Optional[np.ndarray] = None
    color: Optional[str] = None

    def box_and_score(self) -> list[float]:
        """[x1, y1, x2, y2, score], the row GenEval writes into `details`."""
        return [float(v) for v in self.box] + [float(self.score)]


def box_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """IoU with GenEval's +1 pixel convention on widths and heights (evaluate_images.py `compute_iou`)."""

    def area(box: Sequence[float]) -> float:
        return max(box[2] - box[0] + 1, 0) * max(box[3] - box[1] + 1, 0)

    inter = area((max(box_a[0], box_b[0]), max(box_a[1], box_b[1]), min(box_a[2], box_b[2]), min(box_a[3], box_b[3])))
    union = area(box_a) + area(box_b) - inter
    return inter / union if union else 0.0


def keep_confident(detections: Sequence[Detection], tag: str,
                   thresholds: GenevalThresholds) -> dict[str, list[Detection]]:
    """Per class, the detections GenEval keeps: score strictly above the tag's cut-off, best first, at most
    `max_objects`, then greedy NMS unless `max_overlap` is 1. Classes with nothing left are absent.

    The cap is applied before NMS, as in GenEval, so NMS can leave fewer than `max_objects` even when more
    candidates exist.
    """
    cutoff = thresholds.for_tag(tag)
    by_class: dict[str, list[Detection]] = {}
    for detection in detections:
        if detection.score > cutoff:
            by_class.setdefault(detection.class_name, []).append(detection)
    kept: dict[str, list[Detection]] = {}
    for class_name, candidates in by_class.items():
        ranked = sorted(candidates, key=lambda d: d.score, reverse=True)[: thresholds.max_objects]
        kept[class_name] = _suppress_overlaps(ranked, thresholds.max_overlap)
    return kept


def _suppress_overlaps(ranked: list[Detection], max_overlap: float) -> list[Detection]:
    if max_overlap >= 1.0:
        return ranked
    survivors: list[Detection] = []
    remaining = list(ranked)
    while remaining:
        best = remaining.pop(0)
        survivors.append(best)
        remaining = [d for d in remaining if box_iou(best.box, d.box) < max_overlap]
    return survivors
