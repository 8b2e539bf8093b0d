"""The focused reading stage (`unirl world read`, the last stage of `unirl world pretrain`)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter

import pytest
import torch

from unirl_cli.data.shapes.prompts import eval_prompts, scene_key
from unirl_cli.world.reading import ReadingSettings, check_reading_settings, reading_pool, weighted_question_scenes


def test_training_scope_holds_no_evaluation_scene_and_world_scope_holds_all():
    eval_keys = {scene_key(r) for r in eval_prompts()}
    training = [r for records in reading_pool("training").values() for r in records if r["tag"] != "single_object"]
    assert training and not any(scene_key(r) in eval_keys for r in training)
    world = {r["prompt"] for records in reading_pool("world").values() for r in records}
    assert {r["prompt"] for r in eval_prompts()} <= world


def test_truthful_questions_reach_evaluation_scenes_only_when_asked_to():
    from unirl_cli.data.shapes.describe import is_eval_scene, truthful_qa

    def eval_share(exclude_eval: bool) -> float:
        rng = random.Random(0)
        pairs = [truthful_qa(rng, ["position", "two_object"], max_objects=2, exclude_eval=exclude_eval)
                 for _ in range(600)]
        return sum(is_eval_scene(objects, record["tag"]) for objects, record in pairs) / len(pairs)

    assert eval_share(True) == 0.0 and eval_share(False) > 0.01


@pytest.mark.parametrize("settings, message", [
    (ReadingSettings(scope="all"), "not one of training, world"),
    (ReadingSettings(tag_weights={"pose": 1.0}), "unknown tag(s) pose"),
    (ReadingSettings(tag_weights={"position": 0.0}), "at least one above 0"),
    (ReadingSettings(truthful_share=1.5), "must lie in [0, 1]"),
    (ReadingSettings(truthful_share=0.6, own_share=0.6), "add up to at most 1"),
    (ReadingSettings(answer_order="sideways"), "not one of prompt, reading"),
])
def test_bad_reading_settings_are_refused_by_name(settings, message):
    from unirl_cli.errors import UnirlError

    with pytest.raises(UnirlError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        check_reading_settings(settings)


@pytest.fixture(scope="module")
def untrained_mini():
    from unirl_cli.models.janus import JanusModel
    from unirl_cli.models.janus.mini import build_untrained_mini

    hf_model, processor = build_untrained_mini(0)
    return JanusModel(hf_model.eval(), processor)


def test_question_scenes_follow_the_tag_weights_and_the_truthful_share(untrained_mini):
    settings = ReadingSettings(tag_weights={"position": 3.0, "counting": 1.0}, truthful_share=0.25, num_scenes=200)
    scenes = weighted_question_scenes(untrained_mini, settings, random.Random(0))
    assert len(scenes) == 200 and all(s.codes.shape == (64,) for s in scenes)
    drawn = Counter(s.record["tag"] for s in scenes[:150])
    # 3:1 weights: 112.5 position questions expected (sd 5.3); equal weights would give 75.
    assert set(drawn) == {"position", "counting"} and drawn["position"] > 95
    truthful = scenes[150:]
    assert all("prompt" not in s.record and s.record["answer"] for s in truthful)


@pytest.mark.parametrize("answer_order", ["prompt", "reading"])
def test_answers_name_the_objects_in_the_order_asked_for(untrained_mini, answer_order):
    from unirl_cli.eval.shapes.detector import detect_objects

    settings = ReadingSettings(tag_weights={"color_attr": 1.0}, truthful_share=0.0, num_scenes=60,
                               answer_order=answer_order)
    scenes = weighted_question_scenes(untrained_mini, settings, random.Random(1))
    templates = {r["question"] + r["prompt"]: r["answer"] for r in reading_pool("training")["color_attr"]}
    first_named_first = 0
    for scene in scenes:
        detections = sorted(detect_objects(scene.image), key=lambda d: (d.box[1] // 16, d.box[0] // 16))
        assert len(detections) == 2  # a correct render of the record
        first_named_first += scene.record["answer"].startswith(f"The {detections[0].class_name} is {detections[0].color}")
        if answer_order == "prompt":
            assert scene.record["answer"] == templates[scene.record["question"] + scene.record["prompt"]]
    # Reading order always names the top-left object first; the prompt's order does so about half the time.
    assert first_named_first == 60 if answer_order == "reading" else 15 < first_named_first < 45


def test_focused_reading_trains_the_model_within_its_step_cap(untrained_mini):
    from unirl_cli.world.reading import focused_reading

    settings = ReadingSettings(num_scenes=16, num_caption_scenes=8, num_prompt_scenes=8, qa_batch_size=2,
                               t2i_batch_size=2, max_steps=2, minutes=1.0)
    language = untrained_mini.hf_model.model.language_model
    before = [p.detach().clone() for p in language.parameters()]
    steps, seconds, _ = focused_reading(untrained_mini, settings, log=lambda _: None)
    assert steps == 2 and seconds < 60
    assert any(not torch.equal(old, new) for old, new in zip(before, language.parameters()))
    assert not untrained_mini.hf_model.training


@pytest.mark.parametrize("fixture", ["tiny_janus", "tiny_showo"])
def test_reading_refuses_a_model_outside_the_shapes_world(fixture, request):
    from unirl_cli.errors import UnirlError
    from unirl_cli.world.reading import focused_reading

    model = request.getfixturevalue(fixture)  # 64 px / 16 tokens and 32 px / 16 tokens: not the world's 64 tokens
    with pytest.raises(UnirlError, match="a reading stage continues a shapes-world model .64 px, 64 image tokens.: "
                                         "pass --model mini, --model mini-showo"):
        focused_reading(model, ReadingSettings(num_scenes=4, max_steps=1), log=lambda _: None)


def test_read_cli_refuses_bad_input_in_one_line(tmp_path):
    def unirl(*args: str):
        return subprocess.run([sys.executable, "-m", "unirl_cli", "world", "read", "--out", "x", *args],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})

    for args, message in [(("--scope", "everything"), "not one of training, world"),
                          (("--weights", "position=lots"), "is not tag=number"),
                          (("--minutes", "0"), "--minutes must be > 0"),
                          (("--answer-order", "sideways"), "not one of prompt, reading"),
                          (("--model", "no-such-model"), "no-such-model")]:
        result = unirl(*args)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_own_sample_questions_are_answered_with_what_the_grid_shows():
    from unirl_cli.data.qa import question_for
    from unirl_cli.data.shapes.describe import describe, in_reading_order
    from unirl_cli.models.loading import load_model
    from unirl_cli.world.reading import own_sample_scenes
    from unirl_cli.world.vq_train import grid_objects

    model = load_model("mini-showo")
    settings = ReadingSettings(tag_weights={"position": 1.0, "counting": 1.0}, own_share=0.5)
    scenes = own_sample_scenes(model, 12, settings, random.Random(0))
    assert 0 < len(scenes) <= 12
    for scene in scenes:
        tag = scene.record["tag"]
        assert tag in ("position", "counting") and scene.record["question"] == question_for(tag)
        assert scene.record["answer"] == describe(tag, in_reading_order(grid_objects(scene.codes)))
        assert scene.codes.shape == (64,) and scene.image.size == (64, 64)
