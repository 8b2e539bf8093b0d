"""The mini model: its config, tokenizer and pretraining, and (when shipped) the trained weights."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from unirl_cli.models.janus.mini import NUM_IMAGE_TOKENS, build_mini_tokenizer, mini_config, packaged_mini_dir
from unirl_cli.data.shapes.spec import COLOR_NAMES, SHAPES


def _shipped() -> bool:
    try:
        packaged_mini_dir()
    except Exception:
        return False
    return True


def test_mini_config_keeps_janus_constraints():
    tokenizer = build_mini_tokenizer()
    config = mini_config(tokenizer)
    vision, vq = config.vision_config, config.vq_config
    assert vision.num_image_tokens == (vision.image_size // vision.patch_size) ** 2 == NUM_IMAGE_TOKENS == 64
    assert vq.num_patches ** 2 == NUM_IMAGE_TOKENS
    assert all(vq.base_channels * m % 32 == 0 for m in vq.channel_multiplier)
    assert vq.num_patches * 2 ** (len(vq.channel_multiplier) - 1) == 64


def test_mini_tokenizer_keeps_world_words_whole():
    tokenizer = build_mini_tokenizer()
    for word in list(SHAPES) + list(COLOR_NAMES) + ["circles", "crosses", "three", "above"]:
        assert len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1, word
    assert tokenizer.decode(tokenizer("The ring is left of the cross")["input_ids"], skip_special_tokens=True) \
        == "The ring is left of the cross"


def test_vq_training_learns_patch_codes():
    from unirl_cli.models.janus.mini import build_untrained_mini
    from unirl_cli.world.vq_train import code_accuracy, train_vq

    model, _ = build_untrained_mini(seed=0)
    vqmodel = model.model.vqmodel
    before = code_accuracy(vqmodel, random.Random(1))
    result = train_vq(vqmodel, max_steps=60, max_seconds=60, batch_size=16, encoder_share=1.0, log=lambda _: None)
    assert result.steps == 60
    assert result.code_accuracy > max(0.5, before + 0.3)


def test_vision_encoder_training_learns_the_kind_of_object_patches():
    from unirl_cli.models.janus.mini import build_untrained_mini
    from unirl_cli.world.vision_train import train_vision_encoder

    model, _ = build_untrained_mini(seed=0)
    result = train_vision_encoder(model.model.vision_model, model.model.vqmodel, max_seconds=120, max_steps=60,
                                  batch_size=16, log=lambda _: None)
    assert result.steps == 60
    assert result.patch_accuracy > 0.3  # chance over the 240 object-patch kinds is 0.004


def test_whitening_folded_into_the_aligner_keeps_its_output_statistics_but_whitens_its_input():
    from unirl_cli.models.janus.mini import build_untrained_mini
    from unirl_cli.world.vision_train import labelled_scenes, whiten_into_aligner

    model, _ = build_untrained_mini(seed=0)
    vision, fc1 = model.model.vision_model, model.model.aligner.fc1
    old_weight, old_bias = fc1.weight.detach().clone().double(), fc1.bias.detach().clone().double()
    pixels, _ = labelled_scenes(random.Random(0), 256)  # the scenes the whitening is fitted on

    def fc1_outputs():
        with torch.no_grad():
            return fc1(vision(pixel_values=pixels).last_hidden_state).flatten(0, 1).double()

    expected = old_weight @ old_weight.T  # fc1(W (x - mean)) with cov(W x) = I has covariance A A^T, mean b
    before = (torch.cov(fc1_outputs().T) - expected).abs().max() / expected.diagonal().max()
    whiten_into_aligner(vision, model.model.aligner, num_scenes=256, seed=0)
    outputs = fc1_outputs()
    after = (torch.cov(outputs.T) - expected).abs().max() / expected.diagonal().max()
    assert torch.allclose(outputs.mean(0), old_bias, atol=1e-3)
    # Not exact: LayerNorm leaves one direction without variance, and eps keeps it (and near-empty ones) finite.
    assert after < 0.15 < 0.5 < before, (before, after)


def test_pretrain_smoke_saves_a_model_that_loads_by_path(tmp_path):
    from unirl_cli.models.loading import load_model
    from unirl_cli.world.pretrain import PretrainSettings, pretrain_mini
    from unirl_cli.world.reading import ReadingSettings

    focus = ReadingSettings(minutes=0.05, num_scenes=8, num_caption_scenes=4, num_prompt_scenes=4, qa_batch_size=2,
                            t2i_batch_size=2, max_steps=2, answer_order="prompt")
    settings = PretrainSettings(reading_focus=focus, reading_order=replace(focus, answer_order="reading"), minutes=0.4, vq_share=0.4, vision_share=0.2, reading_share=0.1,
                                truthful_share=0.1, caption_share=0.1, num_caption_scenes=24, caption_t2i_batch_size=4,
                                caption_qa_batch_size=2, num_scenes=24,
                                batch_size=4, max_vq_steps=3,
                                max_vision_steps=3, max_lm_steps=3, num_reading_scenes=24, reading_qa_batch_size=4,
                                reading_t2i_batch_size=2, max_reading_steps=2)
    report = pretrain_mini(tmp_path / "mini", settings, log=lambda _: None)
    # Stages stop at their step cap or time share, whichever comes first (a loaded machine gets fewer steps).
    steps = {record.name: record.steps for record in report.stages}
    caps = {"vq": 3, "vision": 3, "lm": 3, "reading": 2, "truthful": 2, "captions": 4, "focused reading": 2,
            "reading order": 2}  # captions: two phases
    assert list(steps) == list(caps) and all(1 <= steps[name] <= cap for name, cap in caps.items()), steps
    assert (tmp_path / "mini" / "pretrain_report.json").is_file()
    model = load_model(str(tmp_path / "mini"), device="cpu", dtype="float32")
    assert model.num_image_tokens == 64 and model.image_size == 64
    rollout = model.generate_images(["a photo of a red circle"], seeds=[0])
    assert rollout.image_tokens.shape == (1, 64)
    assert model.decode_images(rollout.image_tokens)[0].size == (64, 64)


@pytest.mark.parametrize("args, message", [
    (("--order-minutes", "-1"), "--order-minutes must be >= 0"),
    (("--reading-minutes", "-2"), "--reading-minutes must be >= 0"),
    (("--minutes", "0"), "--minutes must be > 0"),
])
def test_pretrain_cli_refuses_bad_budgets_in_one_line_before_any_compute(tmp_path, args, message):
    result = subprocess.run([sys.executable, "-m", "unirl_cli", "world", "pretrain", "--out", str(tmp_path / "m"), *args],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


@pytest.mark.skipif(not _shipped(), reason="the mini weights are not packaged in this checkout")
def test_shipped_mini_loads_by_name_and_answers_rendered_scenes_above_chance():
    from unirl_cli.data.matching import match_answer
    from unirl_cli.models.loading import load_model
    from unirl_cli.data.shapes.prompts import eval_prompts, understanding_prompts
    from unirl_cli.data.shapes.render import render_scene

    model = load_model("mini", device="cpu", dtype="float32")
    seen = [r for r in understanding_prompts() if r["tag"] in ("two_object", "counting")]
    records = [r for r in eval_prompts() if r["tag"] in ("single_object", "colors") for _ in range(4)]
    records += seen * 2
    images = [render_scene(r, seed=i)[0] for i, r in enumerate(records)]
    answers = model.answer_questions(images, [r["question"] for r in records], max_new_tokens=12)
    accuracy = {}
    for tag in ("single_object", "colors", "two_object", "counting"):
        scores = [match_answer(r["tag"], r, a) for r, a in zip(records, answers) if r["tag"] == tag]
        accuracy[tag] = sum(scores) / len(scores)
    # Chance: 1/6 shapes, 1/10 colours, 1/15 shape pairs, 1/18 count x shape. Two objects and counting are
    # checked on scenes the reading stage saw (its evaluation-scene accuracy is lower: docs/shapes-world.md).
    assert accuracy["single_object"] > 0.6 and accuracy["colors"] > 0.8, accuracy
    assert accuracy["two_object"] > 0.4 and accuracy["counting"] > 0.3, accuracy


@pytest.mark.skipif(not _shipped(), reason="the mini weights are not packaged in this checkout")
def test_shipped_mini_generates_detectable_shapes():
    from unirl_cli.models.loading import load_model
    from unirl_cli.eval.shapes.detector import detect_objects

    model = load_model("mini", device="cpu", dtype="float32")
    torch.manual_seed(0)
    rollout = model.generate_images(["a photo of a red circle"] * 4, seeds=[0, 1, 2, 3])
    found = [d for image in model.decode_images(rollout.image_tokens) for d in detect_objects(image) if d.score > 0.3]
    assert found, "the mini model drew no detectable object"


@pytest.mark.skipif(not _shipped(), reason="the mini weights are not packaged in this checkout")
def test_detector_reads_the_shipped_vq_reconstructions():
    from unirl_cli.models.loading import load_model
    from unirl_cli.eval.shapes.detector import detect_objects
    from unirl_cli.data.shapes.render import draw_scene, random_scene

    model = load_model("mini", device="cpu", dtype="float32")
    rng = random.Random(0)
    scenes = [random_scene(rng, max_objects=6) for _ in range(24)]
    reconstructions = model.decode_images(model.encode_images([draw_scene(s) for s in scenes]))
    right = total = 0
    for objects, image in zip(scenes, reconstructions):
        found = sorted((d.class_name, d.color) for d in detect_objects(image) if d.score > 0.9)
        wanted = sorted((o.class_name, o.color) for o in objects)
        right += sum(min(found.count(w), wanted.count(w)) for w in set(wanted))
        total += max(len(found), len(wanted))
    assert right / total >= 0.99


@pytest.mark.skipif(not _shipped(), reason="the mini weights are not packaged in this checkout")
def test_shipped_mini_says_what_a_one_shape_image_shows_when_asked_for_two_items():
    # The reward hack the truthful reading stage removed: a reader that recites the prompt's template names two
    # objects in any image, so a generator can earn the two-object reward with one shape (docs/shapes-world.md).
    import random

    from unirl_cli.data.qa import question_for
    from unirl_cli.models.loading import load_model
    from unirl_cli.data.shapes.describe import describe
    from unirl_cli.data.shapes.render import draw_scene, random_scene

    rng = random.Random(1)
    scenes = [random_scene(rng, max_objects=1) for _ in range(24)]
    model = load_model("mini", device="cpu", dtype="float32")
    answers = model.answer_questions([draw_scene(s) for s in scenes], [question_for("two_object")] * 24,
                                     max_new_tokens=16)
    truthful = sum(answer.strip() == describe("two_object", scene) for answer, scene in zip(answers, scenes))
    assert truthful >= 20, list(zip(answers, scenes))


@pytest.mark.skipif(not _shipped(), reason="the mini weights are not packaged in this checkout")
def test_shipped_mini_draws_held_out_colour_pairs_in_the_asked_colour():
    """The caption stage's point: a colour word composes with a shape it never came with in a prompt
    (docs/shapes-world.md, 'Why step 6 exists': 0.79 at 8 samples per prompt; 0.03 before the stage)."""
    from unirl_cli.eval.geneval.config import GenevalThresholds
    from unirl_cli.eval.geneval.evaluate import judge_images
    from unirl_cli.models.loading import load_model
    from unirl_cli.data.shapes.prompts import eval_prompts
    from unirl_cli.eval.shapes.suite import build_shapes_judge

    model = load_model("mini", device="cpu", dtype="float32")
    held_out = [r for r in eval_prompts() if r["tag"] == "colors" for _ in range(4)]
    rollout = model.generate_images([r["prompt"] for r in held_out], seeds=list(range(len(held_out))))
    verdicts = judge_images(build_shapes_judge(None), model.decode_images(rollout.image_tokens), held_out,
                            GenevalThresholds())
    assert sum(verdict.correct for verdict, _ in verdicts) / len(held_out) >= 0.6


def test_language_model_stage_trains_the_understanding_path_at_its_own_rate():
    from unirl_cli.models.janus import JanusModel
    from unirl_cli.models.janus.mini import build_untrained_mini
    from unirl_cli.world.lm_stage import LmStage, build_scenes, train_language_model, understanding_records

    hf_model, processor = build_untrained_mini(0)
    model = JanusModel(hf_model.eval(), processor)
    rng = random.Random(0)
    scenes = build_scenes(model, understanding_records(), 8, rng)
    encoder, language = hf_model.model.vision_model, hf_model.model.language_model
    before = [p.detach().clone() for p in (*encoder.parameters(), *language.parameters())]
    frozen = LmStage("lm", 2, 2, 1e-3, 1, 60.0, 2, understanding_lr_scale=0.0)
    train_language_model(model, scenes, scenes, frozen, rng, log=lambda _: None)
    after = list(encoder.parameters()) + list(language.parameters())
    moved = [not torch.equal(old, new) for old, new in zip(before, after)]
    num_encoder = len(list(encoder.parameters()))
    assert not any(moved[:num_encoder]) and any(moved[num_encoder:])
    train_language_model(model, scenes, scenes, LmStage("lm", 2, 2, 1e-3, 1, 60.0, 2), rng, log=lambda _: None)
    assert any(not torch.equal(old, new) for old, new in zip(before[:num_encoder], encoder.parameters()))


def test_a_grid_of_patch_kinds_parses_back_into_objects_and_fragments():
    import random

    from unirl_cli.data.shapes.render import random_scene
    from unirl_cli.world.vq_train import count_objects_and_fragments, patch_kinds

    scene = random_scene(random.Random(3), max_objects=4)
    kinds = patch_kinds(scene)
    assert count_objects_and_fragments(kinds) == (len(scene), 0)
    torn = kinds.clone()
    background = (torn == 0).nonzero()[0]
    torn[background[0], background[1]] = 5  # a stray quarter
    occupied = (kinds > 0).nonzero()[0]
    torn[occupied[0], occupied[1]] = 0  # one object loses a quarter: its other three are fragments now
    assert count_objects_and_fragments(torn.view(-1)) == (len(scene) - 1, 1 + 3)


def test_a_grid_reads_as_the_detector_reads_it_three_quarters_in_place_make_an_object():
    import random

    from unirl_cli.data.shapes.render import random_scene
    from unirl_cli.world.vq_train import grid_objects, patch_kinds

    rng = random.Random(5)
    for _ in range(50):  # an exact grid reads back as its scene
        scene = random_scene(rng, max_objects=6)
        assert set(grid_objects(patch_kinds(scene))) == set(scene)
    scene = random_scene(random.Random(3), max_objects=4)
    kinds = patch_kinds(scene)
    first, second = scene[0], scene[1]
    kinds[first.row * 2, first.col * 2] = 0  # three quarters of the first object stay
    kinds[second.row * 2, second.col * 2] = 0
    kinds[second.row * 2, second.col * 2 + 1] = 0  # two of the second
    read = grid_objects(kinds)
    assert first in read and second not in read and len(read) == len(scene) - 1
    turned = patch_kinds(scene)
    cell = turned[second.row * 2:second.row * 2 + 2, second.col * 2:second.col * 2 + 2]
    turned[second.row * 2:second.row * 2 + 2, second.col * 2:second.col * 2 + 2] = cell.flip(0).flip(1)
    assert second not in grid_objects(turned) and len(grid_objects(turned)) == len(scene) - 1  # quarters out of place
