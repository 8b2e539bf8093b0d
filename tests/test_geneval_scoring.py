"""GenEval's scoring rules on hand-built detections: every tag, exact counting, the position rule's edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from unirl_cli.eval.geneval.config import GenevalThresholds
from unirl_cli.eval.geneval.detections import Detection, box_iou, keep_confident
from unirl_cli.eval.geneval.prompts import GENEVAL_TAGS, geneval_metadata, object_names
from unirl_cli.eval.geneval.scoring import color_requests, relative_position, score_image
from unirl_cli.eval.geneval.summary import summarize

THRESHOLDS = GenevalThresholds()


def det(name, box=(0, 0, 10, 10), score=0.95, color=None):
    return Detection(class_name=name, box=tuple(float(v) for v in box), score=score, color=color)


def verdict(metadata, detections):
    kept = keep_confident(detections, metadata["tag"], THRESHOLDS)
    return score_image(metadata, kept, THRESHOLDS.position_threshold)


# ---- the packaged data --------------------------------------------------------------------------------------


def test_packaged_metadata_matches_geneval():
    metadata = geneval_metadata()
    assert len(metadata) == 553 and len({m["prompt"] for m in metadata}) == 553
    counts = {tag: sum(m["tag"] == tag for m in metadata) for tag in GENEVAL_TAGS}
    assert counts == {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                      "color_attr": 100}
    names = object_names()
    assert len(names) == 80 and names[0] == "person"
    assert {"computer mouse", "tv remote", "computer keyboard"} <= set(names)
    assert all(c["class"] in names for m in metadata for c in m["include"])


# ---- the position rule: the four test vectors run against the original code ----------------------------------


@pytest.mark.parametrize("box_a, box_b, expected", [
    ((300, 100, 400, 200), (0, 100, 100, 200), {"right of"}),
    ((300, 300, 400, 400), (0, 0, 100, 100), {"right of", "below"}),
    ((40, 0, 140, 100), (0, 0, 100, 100), set()),
    ((0, 0, 100, 100), (0, 150, 100, 250), {"above"}),
])
def test_relative_position_vectors(box_a, box_b, expected):
    assert relative_position(box_a, box_b, 0.1) == expected


def test_relative_position_margin_and_symmetry():
    # Centres 110 px apart, sizes 100 + 100: the 0.1 margin removes 20 px, 90/110 > 0.5.
    assert relative_position((110, 0, 210, 100), (0, 0, 100, 100)) == {"right of"}
    # A margin of 0.6 swallows the whole offset.
    assert relative_position((110, 0, 210, 100), (0, 0, 100, 100), margin=0.6) == set()
    assert relative_position((0, 0, 100, 100), (300, 300, 400, 400)) == {"left of", "above"}


# ---- thresholds, caps and NMS -----------------------------------------------------------------------------------


def test_threshold_is_strict_and_counting_uses_its_own():
    assert keep_confident([det("dog", score=0.3)], "single_object", THRESHOLDS) == {}
    assert len(keep_confident([det("dog", score=0.3001)], "single_object", THRESHOLDS)["dog"]) == 1
    assert keep_confident([det("dog", score=0.9)], "counting", THRESHOLDS) == {}
    assert len(keep_confident([det("dog", score=0.85)], "two_object", THRESHOLDS)["dog"]) == 1


def test_at_most_16_per_class_best_first_and_no_nms_by_default():
    found = [det("cup", score=0.4 + i * 0.01) for i in range(20)]  # 20 identical boxes
    kept = keep_confident(found, "single_object", THRESHOLDS)["cup"]
    assert len(kept) == 16 and [d.score for d in kept] == sorted((d.score for d in kept), reverse=True)
    assert kept[0].score == pytest.approx(0.59)
    with_nms = keep_confident(found, "single_object", GenevalThresholds(max_overlap=0.5))["cup"]
    assert len(with_nms) == 1


def test_box_iou_uses_plus_one_pixels():
    assert box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert box_iou((0, 0, 9, 9), (10, 0, 19, 9)) == 0.0
    assert box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)


# ---- each tag --------------------------------------------------------------------------------------------------


def test_single_and_two_object():
    single = {"tag": "single_object", "prompt": "a photo of a bench", "include": [{"class": "bench", "count": 1}]}
    assert verdict(single, [det("bench", score=0.5), det("dog")]).correct  # extra objects are ignored
    failed = verdict(single, [det("bench", score=0.2)])
    assert not failed.correct and failed.reason == "expected bench>=1, found 0"
    two = {"tag": "two_object", "prompt": "p", "include": [{"class": "bench", "count": 1},
                                                          {"class": "sports ball", "count": 1}]}
    assert verdict(two, [det("bench"), det("sports ball")]).correct
    half = verdict(two, [det("bench")])
    assert not half.correct and (half.clauses_met, half.clauses_total) == (1, 2) and half.fraction_met == 0.5


@pytest.mark.parametrize("present, correct", [(1, False), (2, True), (3, False), (5, False)])
def test_counting_is_exact(present, correct):
    metadata = {"tag": "counting", "prompt": "a photo of two clocks", "include": [{"class": "clock", "count": 2}],
                "exclude": [{"class": "clock", "count": 3}]}
    detections = [det("clock", score=0.95) for _ in range(present)] + [det("clock", score=0.85)]  # below 0.9
    result = verdict(metadata, detections)
    assert result.correct is correct
    if present == 3:
        assert result.reason == "expected clock<3, found 3"


def test_colors_need_every_top_count_object_in_colour():
    metadata = {"tag": "colors", "prompt": "a photo of a blue fire hydrant",
                "include": [{"class": "fire hydrant", "count": 1, "color": "blue"}]}
    best, second = det("fire hydrant", score=0.9), det("fire hydrant", score=0.8)
    kept = keep_confident([second, best], "colors", THRESHOLDS)
    assert color_requests(metadata, kept) == [best]  # only the top-count detection is inspected
    best.color = "red"
    result = score_image(metadata, kept)
    assert not result.correct and result.reason == "expected blue fire hydrant>=1, found 0 blue; and 1 red"
    best.color = "blue"
    assert score_image(metadata, kept).correct
    with pytest.raises(ValueError):
        score_image(metadata, {"fire hydrant": [det("fire hydrant")]})


def test_color_attr_binds_each_colour_to_its_object():
    metadata = {"tag": "color_attr", "prompt": "p", "include": [{"class": "wine glass", "count": 1, "color": "purple"},
                                                               {"class": "apple", "count": 1, "color": "black"}]}
    assert verdict(metadata, [det("wine glass", color="purple"), det("apple", color="black")]).correct
    swapped = verdict(metadata, [det("wine glass", color="black"), det("apple", color="purple")])
    assert not swapped.correct and swapped.clauses_met == 0


def test_position_compares_with_the_matched_target():
    metadata = {"tag": "position", "prompt": "a photo of a dog right of a teddy bear",
                "include": [{"class": "teddy bear", "count": 1},
                            {"class": "dog", "count": 1, "position": ["right of", 0]}]}
    bear = det("teddy bear", box=(0, 100, 100, 200))
    assert verdict(metadata, [bear, det("dog", box=(300, 100, 400, 200))]).correct
    wrong = verdict(metadata, [bear, det("dog", box=(0, 300, 100, 400))])
    assert not wrong.correct and wrong.reason == "expected dog right of target, found below target"
    overlapping = verdict(metadata, [bear, det("dog", box=(40, 100, 140, 200))])
    assert overlapping.reason == "expected dog right of target, found  target"
    no_target = verdict(metadata, [det("dog", box=(300, 100, 400, 200))])
    assert no_target.reason == "expected teddy bear>=1, found 0\nno target for dog to be right of"
    # Only the best dog is compared: a worse-scoring dog on the wrong side does not matter.
    assert verdict(metadata, [bear, det("dog", box=(300, 100, 400, 200), score=0.9),
                              det("dog", box=(0, 300, 100, 400), score=0.5)]).correct


# ---- aggregation as summary_scores.py -------------------------------------------------------------------------


def _record(tag, correct, prompt):
    return {"tag": tag, "correct": correct, "metadata": json.dumps({"prompt": prompt})}


def test_summary_is_mean_over_images_then_unweighted_over_tasks():
    records = ([_record("single_object", True, f"s{i // 4}") for i in range(8)]
               + [_record("counting", i == 0, f"c{i // 4}") for i in range(4)])
    summary = summarize(records)
    assert summary["tasks"]["single_object"]["score"] == 1.0 and summary["tasks"]["counting"]["score"] == 0.25
    assert summary["overall"] == pytest.approx(0.625)  # not 9/12, the mean over images
    assert summary["correct_images"] == pytest.approx(9 / 12) and summary["correct_prompts"] == 1.0
    assert not summary["complete"]


def test_summary_matches_pandas_groupby_logic():
    rng = np.random.default_rng(0)
    tags = list(GENEVAL_TAGS)
    records = [_record(tags[i % 6], bool(rng.random() < 0.5), f"p{i // 4}") for i in range(240)]
    summary = summarize(records)
    task_scores = [np.mean([r["correct"] for r in records if r["tag"] == t]) for t in tags]
    assert summary["overall"] == pytest.approx(float(np.mean(task_scores))) and summary["complete"]


def test_reads_the_official_evaluators_results_file(tmp_path):
    from unirl_cli.eval.geneval.summary import load_summary

    # pandas' to_json(orient="records", lines=True): no spaces, "/" escaped as "\/".
    lines = [
        '{"filename":"imgs\\/00000\\/samples\\/00000.png","tag":"single_object","prompt":"a photo of a bench",'
        '"correct":true,"reason":"","metadata":"{\\"tag\\": \\"single_object\\"}","details":"{}"}',
        '{"filename":"imgs\\/00080\\/samples\\/00000.png","tag":"two_object","prompt":"p","correct":false,'
        '"reason":"expected cow>=1, found 0","metadata":"{\\"tag\\": \\"two_object\\"}","details":"{}"}',
    ]
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    summary = load_summary(tmp_path)
    assert summary["tasks"]["single_object"]["score"] == 1.0 and summary["overall"] == 0.5
