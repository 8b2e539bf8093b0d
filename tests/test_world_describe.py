"""Truthful answers about any scene (`data.shapes.describe`): what the reading stage teaches the mini to say."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from unirl_cli.data.matching import match_answer
from unirl_cli.data.qa import TAGS, question_for
from unirl_cli.data.shapes.describe import (caption, captioned_scene, describe, in_reading_order, is_eval_scene, relations,
                                      truthful_qa)
from unirl_cli.data.shapes.prompts import eval_prompts, shapes_vocabulary, train_prompts, understanding_prompts
from unirl_cli.data.shapes.render import SceneObject, layout_scene

TWO = {"tag": "two_object", "include": [{"class": "circle", "count": 1}, {"class": "cross", "count": 1}]}


def test_a_correct_scene_gets_the_template_answer_for_every_prompt():
    for record in [*train_prompts(), *eval_prompts()]:
        answer = describe(record["tag"], layout_scene(record, seed=3))
        assert match_answer(record["tag"], record, answer, vocabulary=shapes_vocabulary()) == 1.0, answer


def test_the_answer_names_what_is_there_so_a_wrong_or_cluttered_image_scores_zero():
    one_circle = [SceneObject("circle", "orange", 0, 0)]
    assert describe("two_object", one_circle) == "There is a circle"
    shapes = shapes_vocabulary()  # the matcher must know every shape to count an extra one against the answer
    assert match_answer("two_object", TWO, describe("two_object", one_circle), vocabulary=shapes) == 0.0
    clutter = [SceneObject("circle", "red", 0, 0), SceneObject("cross", "blue", 0, 2),
               SceneObject("ring", "green", 2, 1), SceneObject("circle", "pink", 3, 3)]
    assert describe("counting", clutter) == "two circles, a cross and a ring"
    assert match_answer("two_object", TWO, describe("two_object", clutter), vocabulary=shapes) == 0.0
    assert match_answer("two_object", TWO, describe("two_object", clutter)) == 1.0  # "ring" is not a COCO word
    assert describe("color_attr", clutter[:3]) == "There are a red circle, a blue cross and a green ring"
    assert describe("colors", one_circle) == "orange"


def test_relations_follow_the_grid_and_a_diagonal_pair_has_two():
    target = SceneObject("square", "red", 1, 1)
    assert relations(SceneObject("circle", "red", 1, 3), target) == ["right of"]
    assert relations(SceneObject("circle", "red", 0, 1), target) == ["above"]
    assert relations(SceneObject("circle", "red", 3, 0), target) == ["left of", "below"]
    assert describe("position", [target, SceneObject("circle", "red", 3, 0)]) == "The circle is left of the square"


def test_evaluation_scenes_are_recognised_tag_by_tag_as_in_the_understanding_pool():
    for record in eval_prompts():
        if record["tag"] != "single_object":
            assert is_eval_scene(layout_scene(record, seed=1), record["tag"]), record["prompt"]
    assert not any(is_eval_scene(layout_scene(r, seed=1), r["tag"]) for r in understanding_prompts())


@pytest.mark.parametrize("seed", [0, 1])
def test_truthful_questions_avoid_evaluation_scenes_and_ask_every_tag(seed):
    rng, tags = random.Random(seed), Counter()
    for _ in range(300):
        objects, record = truthful_qa(rng, TAGS)
        tags[record["tag"]] += 1
        assert 1 <= len(objects) <= 6 and max(Counter(o.class_name for o in objects).values()) <= 4
        assert not is_eval_scene(objects, record["tag"])
        assert record["question"] == question_for(record["tag"])
        assert record["answer"] == describe(record["tag"], objects)
    assert set(tags) == set(TAGS)


def test_a_caption_counts_by_colour_and_class_in_raster_order():
    scene = [SceneObject("circle", "yellow", 2, 0), SceneObject("diamond", "yellow", 0, 3),
             SceneObject("diamond", "yellow", 1, 1), SceneObject("circle", "orange", 3, 3)]
    assert caption(scene) == "a photo of two yellow diamonds, a yellow circle and an orange circle"
    assert caption(scene[:1]) == "a photo of a yellow circle"


def test_reading_order_names_the_top_left_object_first_and_stays_truthful():
    ring, cross = SceneObject("ring", "red", 2, 3), SceneObject("cross", "blue", 0, 1)
    assert in_reading_order([ring, cross]) == [cross, ring]
    assert in_reading_order([SceneObject("ring", "red", 1, 3), SceneObject("cross", "blue", 1, 0)])[0].col == 0
    assert describe("color_attr", in_reading_order([ring, cross])) == "The cross is blue and the ring is red"
    rng, seen_first = random.Random(4), Counter()
    for _ in range(300):
        objects, record = truthful_qa(rng, ["color_attr", "position"], max_objects=2, reading_order=True)
        assert record["answer"] == describe(record["tag"], in_reading_order(objects))
        if record["tag"] == "color_attr" and len({o.class_name for o in objects}) == 2:
            first = in_reading_order(objects)[0]
            assert record["answer"].startswith(f"The {first.class_name} is {first.color}")
            seen_first[objects[0] == first] += 1
    assert seen_first[True] and seen_first[False]  # drawn in either order, always named top-left first


@pytest.mark.parametrize("seed", [0, 1])
def test_captioned_scenes_avoid_every_evaluation_scene_and_are_mostly_one_colour(seed):
    rng, one_colour = random.Random(seed), 0
    for _ in range(400):
        objects, text = captioned_scene(rng, monochrome_share=0.8)
        assert 2 <= len(objects) <= 4 and max(Counter(o.class_name for o in objects).values()) <= 4
        assert not any(is_eval_scene(objects, tag) for tag in TAGS), text
        assert text == caption(objects)
        one_colour += len({o.color for o in objects}) == 1
    assert 0.75 < one_colour / 400 < 0.9  # 0.8 made one colour, plus the few random scenes that already were
    evaluation_scene = layout_scene(next(r for r in eval_prompts() if r["tag"] == "color_attr"), seed=0)
    assert any(is_eval_scene(evaluation_scene, tag) for tag in TAGS)  # the kind of scene the loop above rejects


def test_the_self_reward_and_the_shapes_suite_count_extra_shapes_against_an_answer():
    from unirl_cli.eval.geneval.pipeline import _suite_matcher
    from unirl_cli.eval.suites import get_suite
    from unirl_cli.train.rewards import RolloutBatch, SelfAnswerReward

    record = {**TWO, "question": question_for("two_object"), "answer": "There is a circle and a cross"}
    answers = ["There is a circle and a cross", "There are a circle, a cross and a ring"]
    batch = RolloutBatch(records=[record, record], rollout=None, answers=answers)
    assert SelfAnswerReward(vocabulary="shapes")(batch).tolist() == [1.0, 0.0]
    assert SelfAnswerReward()(batch).tolist() == [1.0, 1.0]
    matcher = _suite_matcher(get_suite("shapes"))
    assert [matcher("two_object", record, answer) for answer in answers] == [1.0, 0.0]
    assert _suite_matcher(get_suite("geneval")) is None
