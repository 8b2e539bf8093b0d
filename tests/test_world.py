"""The shapes world: renderer/metadata consistency, detector accuracy, prompt sets, the suite and the CLI."""

from __future__ import annotations

import random

import pytest
from PIL import Image

from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.config import GenevalThresholds
from unirl_cli.eval.geneval.detections import Detection, keep_confident
from unirl_cli.eval.geneval.scoring import relative_position, score_image
from unirl_cli.eval.shapes.detector import detect_objects
from unirl_cli.data.shapes.perturb import blur, jpeg, noise
from unirl_cli.data.shapes.prompts import (EVAL_PROMPTS_PER_TAG, build_eval_prompts, eval_prompts, reworded_prompts,
                                     scene_key, train_prompts, understanding_prompts)
from unirl_cli.data.shapes.render import SceneObject, draw_scene, layout_scene, random_scene, render_scene
from unirl_cli.data.shapes.spec import BACKGROUND, COLOR_NAMES, SHAPES


def _score(record: dict, detections: list[Detection]) -> bool:
    kept = keep_confident(detections, record["tag"], GenevalThresholds())
    return score_image(record, kept).correct


def _truth(objects: list[SceneObject]) -> list[Detection]:
    return [Detection(o.class_name, tuple(float(v) for v in o.box), 1.0, color=o.color) for o in objects]


def _object_accuracy(perturb, num_scenes: int = 120, seed: int = 0) -> float:
    """Share of drawn objects found exactly once with the right shape and colour (and nothing extra)."""
    rng = random.Random(seed)
    right = total = 0
    for _ in range(num_scenes):
        objects = random_scene(rng, max_objects=6)
        found = [d for d in detect_objects(perturb(draw_scene(objects), rng)) if d.score > 0.3]
        for obj in objects:
            total += 1
            here = [d for d in found if relative_position(d.box, obj.box) == set()]
            right += len(here) == 1 and (here[0].class_name, here[0].color) == (obj.class_name, obj.color)
        total += max(0, len(found) - len(objects))  # a spurious detection counts as a wrong object
    return right / total


def test_every_eval_prompt_renders_a_scene_geneval_scores_correct_from_truth_and_from_the_detector():
    for index, record in enumerate(eval_prompts()):
        image, objects = render_scene(record, seed=index)
        assert image.size == (64, 64)
        assert _score(record, _truth(objects)), record["prompt"]
        assert _score(record, detect_objects(image)), record["prompt"]


def test_training_prompts_render_correct_scenes_too():
    for index, record in enumerate(train_prompts()[::7]):
        image, _ = render_scene(record, seed=index)
        assert _score(record, detect_objects(image)), record["prompt"]


def test_a_wrong_scene_fails_its_prompt():
    record = {"tag": "position", "prompt": "a photo of a circle left of a square",
              "include": [{"class": "square", "count": 1}, {"class": "circle", "count": 1, "position": ["left of", 0]}]}
    swapped = [SceneObject("square", "red", 1, 0), SceneObject("circle", "blue", 1, 2)]
    assert not _score(record, detect_objects(draw_scene(swapped)))
    counting = {"tag": "counting", "prompt": "a photo of two rings", "include": [{"class": "ring", "count": 2}],
                "exclude": [{"class": "ring", "count": 3}]}
    three = [SceneObject("ring", "red", 0, c) for c in range(3)]
    assert not _score(counting, detect_objects(draw_scene(three)))
    assert _score(counting, detect_objects(draw_scene(three[:2])))


def test_layout_is_seeded_and_respects_counts_colours_and_relations():
    record = {"tag": "color_attr", "prompt": "p", "include": [{"class": "cross", "count": 1, "color": "pink"},
                                                             {"class": "ring", "count": 1, "color": "brown"}]}
    assert layout_scene(record, 3) == layout_scene(record, 3)
    assert len({tuple(layout_scene(record, s)) for s in range(20)}) > 10
    assert sorted((o.class_name, o.color) for o in layout_scene(record, 3)) == [("cross", "pink"), ("ring", "brown")]
    for relation in ("left of", "right of", "above", "below"):
        record = {"tag": "position", "prompt": "p", "include": [
            {"class": "square", "count": 1}, {"class": "circle", "count": 1, "position": [relation, 0]}]}
        for seed in range(10):
            target, subject = layout_scene(record, seed)
            assert relative_position(subject.box, target.box) == {relation}


def test_metadata_outside_the_world_is_refused():
    with pytest.raises(UnirlError, match="not in the shapes world"):
        render_scene({"tag": "single_object", "prompt": "p", "include": [{"class": "dog", "count": 1}]}, 0)
    with pytest.raises(UnirlError, match="colour"):
        render_scene({"tag": "colors", "prompt": "p", "include": [{"class": "ring", "count": 1, "color": "teal"}]}, 0)


def test_palette_is_distinct_from_background_and_every_shape_colour_pair_is_detected():
    assert BACKGROUND not in [tuple(v) for v in __import__("unirl_cli.data.shapes.spec", fromlist=["COLORS"]).COLORS.values()]
    objects = [SceneObject(shape, color, i // 4 % 4, i % 4) for i, (shape, color) in
               enumerate((s, c) for s in SHAPES for c in COLOR_NAMES)]
    for start in range(0, len(objects), 16):
        batch = [SceneObject(o.class_name, o.color, (i // 4), i % 4) for i, o in enumerate(objects[start:start + 16])]
        found = sorted((d.class_name, d.color) for d in detect_objects(draw_scene(batch)) if d.score > 0.9)
        assert found == sorted((o.class_name, o.color) for o in batch)


@pytest.mark.parametrize("name,perturb", [
    ("clean", lambda image, rng: image), ("blur 0.7", blur(0.7)), ("blur 1.0", blur(1.0)),
    ("noise 10", noise(10)), ("noise 20", noise(20)), ("jpeg 75", jpeg(75)), ("jpeg 50", jpeg(50))])
def test_detector_gets_at_least_99_percent_of_objects_right(name, perturb):
    assert _object_accuracy(perturb) >= 0.99, name


def test_detector_rejects_wrong_image_sizes_and_finds_nothing_in_an_empty_scene():
    assert detect_objects(draw_scene([])) == []
    with pytest.raises(UnirlError, match="64x64"):
        detect_objects(Image.new("RGB", (32, 32)))


def test_eval_prompts_are_fixed_tagged_and_disjoint_from_training_by_scene():
    records = eval_prompts()
    counts = {tag: sum(r["tag"] == tag for r in records) for tag in EVAL_PROMPTS_PER_TAG}
    assert counts == EVAL_PROMPTS_PER_TAG
    assert [r["prompt"] for r in records] == [r["prompt"] for r in build_eval_prompts()]
    assert all(r["question"] and r["answer"] for r in records)
    train = train_prompts()
    assert len(train) >= 500
    assert not {r["prompt"] for r in records} & {r["prompt"] for r in train}
    assert not {scene_key(r) for r in records} & {scene_key(r) for r in train}
    assert not {p for r in records for p in reworded_prompts(r)} & {r["prompt"] for r in train}


def test_understanding_pool_holds_every_training_scene_and_no_evaluation_scene():
    pool = understanding_prompts()
    evaluation_keys = {scene_key(r) for r in eval_prompts()}
    assert not {scene_key(r) for r in pool} & evaluation_keys
    assert not {p for r in eval_prompts() for p in reworded_prompts(r)} & {r["prompt"] for r in pool}
    assert {r["prompt"] for r in train_prompts()} <= {r["prompt"] for r in pool}
    assert len(pool) > 2 * len(train_prompts())  # colour attribution: all pairs, not only the 400 trained on


def test_scene_key_identifies_rewordings():
    a = {"tag": "position", "prompt": "a photo of a circle left of a square",
         "include": [{"class": "square", "count": 1}, {"class": "circle", "count": 1, "position": ["left of", 0]}]}
    b = {"tag": "position", "prompt": "a photo of a square right of a circle",
         "include": [{"class": "circle", "count": 1}, {"class": "square", "count": 1, "position": ["right of", 0]}]}
    assert scene_key(a) == scene_key(b)
    assert reworded_prompts(a)[1] == b["prompt"]


def test_shapes_suite_is_registered_and_judges_renders():
    from unirl_cli.eval.geneval.config import EvalGenevalConfig
    from unirl_cli.eval.suites import get_suite

    suite = get_suite("shapes")
    metadata = suite.load_metadata()
    assert len(metadata) == len(eval_prompts()) and "question" not in metadata[0]
    judge = suite.build_judge(EvalGenevalConfig(suite="shapes"))
    image, objects = render_scene(metadata[0], 0)
    detections = judge.detect([image.resize((256, 256), Image.Resampling.NEAREST)])[0]
    assert [(d.class_name, d.color) for d in detections] == [(o.class_name, o.color) for o in objects]
    assert judge.label_colors([(image, detections[0])]) == [objects[0].color]


def test_cli_render_and_detect(tmp_path):
    from typer.testing import CliRunner

    from unirl_cli.cli import app

    runner = CliRunner()
    out = tmp_path / "scene.png"
    result = runner.invoke(app, ["world", "render", "a photo of a diamond", "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["world", "detect", str(out)])
    assert result.exit_code == 0 and "diamond" in result.output
    result = runner.invoke(app, ["world", "render", "a photo of a dog", "--out", str(out)])
    assert result.exit_code != 0 and "not a shapes-world prompt" in str(result.exception)
