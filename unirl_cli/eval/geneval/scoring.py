"""GenEval's correctness rules as pure functions of (prompt metadata, kept detections with colour labels).

Rules (djghosh13/geneval `evaluation/evaluate_images.py`, `evaluate` L160-220): include clauses are ANDed in
order; each looks only at the top-`count` detections of its class; a colour clause needs every one of them to
have the colour; a position clause compares every pair of them with the objects its target clause matched;
exclude clauses fail when `count` or more detections of the class are kept (so counting is exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from unirl_cli.eval.geneval.detections import Detection
from unirl_cli.eval.geneval.prompts import COLORS


@dataclass(frozen=True)
class ImageVerdict:
    """Whether one image satisfies its prompt, why not, and how many of the clauses it meets."""

    correct: bool
    reason: str
    clauses_met: int
    clauses_total: int

    @property
    def fraction_met(self) -> float:
        """Share of include and exclude clauses met (1.0 when there are none)."""
        return self.clauses_met / self.clauses_total if self.clauses_total else 1.0


def relative_position(box_a: Sequence[float], box_b: Sequence[float], margin: float = 0.1) -> set[str]:
    """Where box A lies relative to box B: a subset of {"left of", "right of", "above", "below"}.

    The centre offset is shrunk by `margin` times the summed widths (heights) of both boxes; what is left,
    divided by the full offset's length, must exceed 0.5 along an axis. Image y grows downwards, so "above"
    means a smaller y. Empty when the shrunk offset vanishes (overlapping objects).
    """
    boxes = np.asarray([box_a[:4], box_b[:4]], dtype=np.float64).reshape(2, 2, 2)  # (object, corner, xy)
    center_a, center_b = boxes.mean(axis=1)
    size_a, size_b = np.abs(boxes[:, 1] - boxes[:, 0])
    offset = center_a - center_b
    shrunk = np.maximum(np.abs(offset) - margin * (size_a + size_b), 0) * np.sign(offset)
    if np.all(np.abs(shrunk) < 1e-3):
        return set()
    dx, dy = shrunk / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def color_requests(metadata: Mapping, kept: Mapping[str, list[Detection]]) -> list[Detection]:
    """The detections whose colour `score_image` will read: the top-`count` of each colour clause's class."""
    wanted: list[Detection] = []
    for clause in metadata.get("include", []):
        if clause.get("color") is None:
            continue
        found = kept.get(clause["class"], [])[: clause["count"]]
        if len(found) == clause["count"]:
            wanted.extend(d for d in found if all(d is not w for w in wanted))
    return wanted


def score_image(metadata: Mapping, kept: Mapping[str, list[Detection]], position_margin: float = 0.1) -> ImageVerdict:
    """GenEval's verdict for one image, given the detections `keep_confident` kept (best first per class).

    Detections inspected by a colour clause must already carry `color` (see `color_requests`); a missing
    colour is a bug and raises ValueError rather than silently failing the clause.
    """
    reasons: list[str] = []
    matched_groups: list[Optional[list[Detection]]] = []
    met = 0
    for clause in metadata.get("include", []):
        found = kept.get(clause["class"], [])[: clause["count"]]
        failure = _clause_failure(clause, found, matched_groups, position_margin)
        if failure is None:
            met += 1
            matched_groups.append(found)
        else:
            reasons.append(failure)
            matched_groups.append(None)
    for clause in metadata.get("exclude", []):
        present = len(kept.get(clause["class"], []))
        if present >= clause["count"]:
            reasons.append(f"expected {clause['class']}<{clause['count']}, found {present}")
        else:
            met += 1
    total = len(metadata.get("include", [])) + len(metadata.get("exclude", []))
    return ImageVerdict(correct=not reasons, reason="\n".join(reasons), clauses_met=met, clauses_total=total)


def _clause_failure(clause: Mapping, found: list[Detection], matched_groups: list[Optional[list[Detection]]],
                    position_margin: float) -> Optional[str]:
    class_name, count = clause["class"], clause["count"]
    if len(found) < count:
        return f"expected {class_name}>={count}, found {len(found)}"
    if clause.get("color") is not None:
        failure = _color_failure(clause["color"], class_name, count, found)
        if failure is not None:
            return failure
    if clause.get("position") is not None:
        return _position_failure(clause["position"], class_name, found, matched_groups, position_margin)
    return None


def _color_failure(color: str, class_name: str, count: int, found: list[Detection]) -> Optional[str]:
    colors = [d.color for d in found]
    if any(c is None for c in colors):
        raise ValueError(f"a {class_name} detection has no colour label; label color_requests() before scoring")
    if colors.count(color) >= count:
        return None
    summary = ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
    return f"expected {color} {class_name}>={count}, found {colors.count(color)} {color}; and {summary}"


def _position_failure(position: Sequence, class_name: str, found: list[Detection],
                      matched_groups: list[Optional[list[Detection]]], margin: float) -> Optional[str]:
    expected, target_index = position
    targets = matched_groups[target_index]
    if targets is None:
        return f"no target for {class_name} to be {expected}"
    for obj in found:
        for target in targets:
            actual = relative_position(obj.box, target.box, margin)
            if expected not in actual:
                return f"expected {class_name} {expected} target, found {' and '.join(actual)} target"
    return None
