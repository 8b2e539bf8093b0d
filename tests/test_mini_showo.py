"""mini-showo: the shapes-world Show-o, its pretraining, its training loss, and (when shipped) the trained weights."""

from __future__ import annotations

import json
import random

import pytest
import torch

from unirl_cli.data.shapes.spec import COLOR_NAMES, SHAPES


def _shipped() -> bool:
    from unirl_cli.models.registry import packaged_model_dir

    try:
        packaged_model_dir("mini-showo")
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def untrained():
    from unirl_cli.models.showo.mini import build_untrained_mini_showo

    return build_untrained_mini_showo(seed=0)


def test_architecture_is_a_64px_show_o_with_words_as_single_tokens(untrained):
    assert untrained.family == "showo"
    assert untrained.image_size == 64 and untrained.num_image_tokens == 64 and untrained.codebook_size == 256
    assert untrained.config.vocab_size == untrained.vocab.image_offset + 256 + 1  # text + Show-o tokens, codes, mask
    for word in list(SHAPES) + list(COLOR_NAMES) + ["circles", "crosses", "three", "above", "ASSISTANT"]:
        assert len(untrained.tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1, word
    assert untrained.default_sampling().num_steps == 8 and untrained.default_sampling().guidance_scale == 1.0


def test_masked_token_loss_scores_only_masked_slots_and_drops_prompts(untrained):
    codes = torch.randint(0, 241, (4, 64))
    prompts = ["a photo of a red circle"] * 4
    keep = torch.zeros(4, dtype=torch.bool)
    torch.manual_seed(0)
    loss = untrained.image_token_loss(prompts, codes, keep)
    # By hand: the same draws, the masked slots' cross-entropy under the model's own t2i logits.
    torch.manual_seed(0)
    ratios = torch.cos(torch.rand(4) * torch.pi / 2)
    masked = torch.rand(4, 64).argsort(dim=-1) < (ratios * 64).round().clamp(min=1)[:, None]
    logits = untrained.image_logits(prompts, codes)  # all-masked logits differ from a partly masked grid ...
    assert masked.sum() >= 4 and not masked.all()
    from unirl_cli.models.showo.prompting import t2i_text_blocks, t2i_with_image

    vocab = untrained.vocab
    blocks = t2i_text_blocks(untrained._text_ids(prompts), vocab, untrained.max_text_length)
    ids = t2i_with_image(blocks, torch.where(masked, vocab.mask_id, vocab.image_ids(codes)), vocab)
    logits = untrained._image_code_logits(ids)  # ... so score the grid the loss saw
    expected = torch.nn.functional.cross_entropy(logits[masked], codes[masked])
    assert torch.allclose(loss, expected, atol=1e-6)
    torch.manual_seed(0)
    dropped = untrained.image_token_loss(prompts, codes, torch.ones(4, dtype=torch.bool))
    torch.manual_seed(0)
    empty = untrained.image_token_loss([""] * 4, codes, keep)
    assert torch.allclose(dropped, empty) and not torch.allclose(dropped, loss)


def test_sampling_defaults_round_trip_and_bad_ones_are_named(untrained, tmp_path):
    from unirl_cli.errors import UnirlError
    from unirl_cli.models.loading import load_model

    untrained.save(str(tmp_path / "m"))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["unirl_sampling"] == {"guidance_scale": 1.0, "num_steps": 8, "temperature": 1.0}
    assert load_model(str(tmp_path / "m")).default_sampling().num_steps == 8
    config["unirl_sampling"] = {"steps": 8}
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnirlError, match="unirl_sampling must map guidance_scale, num_steps, temperature"):
        load_model(str(tmp_path / "m"))


def test_magvit_stage_learns_patch_codes_in_seconds(untrained):
    import copy

    from unirl_cli.world.magvit_train import code_accuracy, train_magvit

    magvit = copy.deepcopy(untrained.magvit)
    before = code_accuracy(magvit, random.Random(1))
    result = train_magvit(magvit, max_steps=60, max_seconds=60, seed=0, log=lambda _: None)
    assert result.steps >= 1 and result.code_accuracy > before + 0.2, (before, result)


def test_decoder_stage_trains_the_decoder_alone_and_lowers_its_loss(untrained):
    import copy

    from unirl_cli.world.magvit_train import train_magvit_decoder
    from unirl_cli.world.vq_train import labelled_crops, weighted_reconstruction_loss

    magvit = copy.deepcopy(untrained.magvit)
    pixels, kinds = labelled_crops(random.Random(5), 16, 64)

    def loss() -> float:
        with torch.no_grad():
            return float(weighted_reconstruction_loss(magvit.decode(kinds.view(16, -1)), pixels))

    encoder = {k: v.clone() for k, v in magvit.encoder.state_dict().items()}
    before = loss()
    result = train_magvit_decoder(magvit, max_seconds=600, max_steps=60, seed=0, log=lambda _: None)  # steps bind
    assert result.steps == 60 and loss() < 0.9 * before, (before, loss())  # 2.33 -> 1.89 here
    assert all(torch.equal(encoder[k], v) for k, v in magvit.encoder.state_dict().items())  # the codes stay
    assert 0.0 <= result.decoded_scene_accuracy <= 1.0


def test_pretrain_smoke_writes_a_show_o_folder_that_loads_by_path(tmp_path):
    from unirl_cli.models.loading import load_model
    from unirl_cli.world.pretrain import pretrain_mini, showo_settings
    from unirl_cli.world.reading import ReadingSettings

    focus = ReadingSettings(minutes=0.05, num_scenes=8, num_caption_scenes=4, num_prompt_scenes=4, qa_batch_size=2,
                            t2i_batch_size=2, max_steps=2, answer_order="prompt")
    settings = showo_settings(reading_focus=focus, reading_order=focus, minutes=0.3, vq_share=0.3,
                              reading_share=0.1, truthful_share=0.1, caption_share=0.1, num_caption_scenes=24,
                              caption_t2i_batch_size=4, caption_qa_batch_size=2, num_scenes=24, batch_size=4,
                              max_vq_steps=3, max_lm_steps=3, num_reading_scenes=24, reading_qa_batch_size=4,
                              reading_t2i_batch_size=2, max_reading_steps=2, decoder_minutes=0.01)
    report = pretrain_mini(tmp_path / "mini-showo", settings, log=lambda _: None)
    steps = {record.name: record.steps for record in report.stages}
    caps = {"magvit": 3, "lm": 3, "reading": 2, "truthful": 2, "captions": 4, "focused reading": 2, "reading order": 2,
            "decoder": 10_000}
    assert 0 <= report.stage("decoder").metrics["decoded_scene_accuracy"] <= 1
    assert list(steps) == list(caps) and all(1 <= steps[name] <= cap for name, cap in caps.items()), steps
    saved = json.loads((tmp_path / "mini-showo" / "pretrain_report.json").read_text())
    assert saved["settings"]["family"] == "showo" and [s["name"] for s in saved["stages"]] == list(caps)
    for part in ("config.json", "model.safetensors", "magvit/model.safetensors", "phi/config.json"):
        assert (tmp_path / "mini-showo" / part).is_file(), part  # showlab/show-o's layout
    model = load_model(str(tmp_path / "mini-showo"), device="cpu", dtype="float32")
    assert model.family == "showo" and model.image_size == 64
    rollout = model.generate_images(["a photo of a red circle"], seeds=[0])
    assert rollout.image_tokens.shape == (1, 64) and rollout.token_logprobs.shape == (1, 8)
    assert model.decode_images(rollout.image_tokens)[0].size == (64, 64)


@pytest.mark.skipif(not _shipped(), reason="the mini-showo weights are not packaged in this checkout")
def test_shipped_mini_showo_loads_by_name_and_reads_rendered_scenes():
    from unirl_cli.models.loading import load_model
    from unirl_cli.world.lm_stage import reading_records
    from unirl_cli.data.shapes.render import render_scene

    model = load_model("mini-showo", device="cpu", dtype="float32")
    assert model.family == "showo" and model.image_size == 64
    rng = random.Random(0)
    records = rng.sample(reading_records(), 48)
    images = [render_scene(record, seed)[0] for seed, record in enumerate(records)]
    answers = model.answer_questions(images, [r["question"] for r in records], max_new_tokens=16)
    right = sum(a.strip().lower() == r["answer"].strip().lower() for a, r in zip(answers, records))
    assert right / len(records) > 0.5, list(zip(answers, [r["answer"] for r in records]))[:5]


@pytest.mark.skipif(not _shipped(), reason="the mini-showo weights are not packaged in this checkout")
def test_a_few_grpo_steps_change_mini_showo_and_write_a_checkpoint_generate_loads(tmp_path):
    from safetensors.torch import load_file

    from tests.test_cli import run_console_script
    from unirl_cli.models.registry import packaged_model_dir

    run = tmp_path / "run"
    trained = run_console_script("train", "grpo", "--config", "mini-showo-grpo", "--out", str(run), "--steps", "2",
                                 "prompts_per_step=4", "group_size=4", "log.live=false")
    assert trained.returncode == 0, trained.stderr[-2000:]
    checkpoint = run / "checkpoints" / "step-000002"
    before = load_file(packaged_model_dir("mini-showo") / "model.safetensors")
    after = load_file(checkpoint / "model.safetensors")
    assert before.keys() == after.keys()
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert len(changed) > len(before) // 2, f"only {len(changed)} of {len(before)} tensors changed"
    images = tmp_path / "images"
    generated = run_console_script("generate", "a photo of a red circle", "--model", str(checkpoint), "--out",
                                   str(images), "--seed", "1")
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert len(list(images.rglob("*.png"))) >= 1


def test_world_improve_picks_the_recipe_of_the_model_family(tiny_showo_dir):
    from unirl_cli.world.improve import default_recipe

    assert default_recipe(None, "grpo") == "mini-grpo"
    assert default_recipe("mini", "sft") == "mini-sft"
    assert default_recipe("mini-showo", "grpo") == "mini-showo-grpo"
    assert default_recipe(str(tiny_showo_dir), "sft") == "mini-showo-sft"


def test_state_logits_at_w_are_shows_guided_mix_of_the_two_branches(untrained):
    from unirl_cli.models.showo.sampling import MASKED

    prompts = ["a photo of a red circle", "a photo of two blue squares"]
    states = torch.randint(0, 241, (2, 64))
    states[:, ::3] = MASKED
    with torch.no_grad():
        cond = untrained.state_logits(prompts, states)
        uncond = untrained.state_logits(["", ""], states)
        guided = untrained.state_logits(prompts, states, guidance_scale=1.5)
    assert torch.allclose(guided, 2.5 * cond - 1.5 * uncond, atol=1e-4)
    assert not torch.allclose(cond, uncond, atol=1e-3)


def test_guided_teacher_loss_is_the_kl_to_the_guided_mix_on_masked_slots(untrained):
    import copy

    from unirl_cli.models.showo.model import cosine_masked_slots
    from unirl_cli.models.showo.sampling import MASKED
    from unirl_cli.world.guidance import guided_teacher_loss

    teacher = copy.deepcopy(untrained).requires_grad_(False)
    prompts, codes = ["a photo of a green ring"] * 3, torch.randint(0, 241, (3, 64))
    torch.manual_seed(4)
    with torch.no_grad():
        loss = guided_teacher_loss(teacher, 2.0)(untrained, prompts, codes, random.Random(0))
        assert float(guided_teacher_loss(teacher, 0.0)(untrained, prompts, codes, random.Random(0))) < 1e-6
        torch.manual_seed(4)  # by hand: the same mask, KL(guided teacher || conditional student) per masked slot
        masked = cosine_masked_slots(3, 64)
        states = torch.where(masked, MASKED, codes)
        target = torch.log_softmax(3 * untrained.state_logits(prompts, states) - 2 * untrained.state_logits([""] * 3, states), -1)
        student = torch.log_softmax(untrained.state_logits(prompts, states), -1)
    expected = (target.exp() * (target - student)).sum(-1)[masked].mean()
    assert float(loss) > 1e-3 and torch.allclose(loss, expected, atol=1e-5)


def test_distillation_pulls_the_conditional_branch_toward_the_guided_one_and_samples_at_w0(untrained, tmp_path):
    import copy

    from unirl_cli.models.loading import load_model
    from unirl_cli.world.guidance import DistillSettings, distill_guidance, guided_teacher_loss

    student = copy.deepcopy(untrained)
    teacher = copy.deepcopy(untrained).requires_grad_(False)
    prompts = ["a photo of a red circle", "a photo of a blue square above a yellow cross"] * 4
    codes = torch.randint(0, 241, (8, 64))

    def kl() -> float:
        torch.manual_seed(9)
        with torch.no_grad():
            return float(guided_teacher_loss(teacher, 8.0)(student, prompts, codes, random.Random(0)))

    before = kl()
    settings = DistillSettings(minutes=5, guidance_scale=8.0, learning_rate=3e-3, warmup_steps=1, t2i_batch_size=4, qa_batch_size=2,
                               num_caption_scenes=16, num_prompt_scenes=16, num_question_scenes=8, max_steps=25)
    steps, _, _ = distill_guidance(student, settings, log=lambda _: None)
    after = kl()  # 0.035 -> 0.021 here; the answer batches alone move it up (0.0005 -> 0.006 at w 1)
    assert steps == 25 and after < 0.8 * before, (before, after)
    assert untrained.default_sampling().guidance_scale == 1.0 and student.default_sampling().guidance_scale == 0.0
    student.save(str(tmp_path / "distilled"))
    assert load_model(str(tmp_path / "distilled"), device="cpu", dtype="float32").default_sampling().guidance_scale == 0.0


def test_distill_cli_writes_a_model_that_samples_at_w0_and_its_report(untrained, tmp_path, monkeypatch):
    import dataclasses

    from typer.testing import CliRunner

    from unirl_cli.cli import app
    from unirl_cli.models.loading import load_model
    from unirl_cli.world import guidance

    untrained.save(str(tmp_path / "teacher"))
    small = dataclasses.make_dataclass("SmallDistillSettings", [
        ("t2i_batch_size", int, 2), ("qa_batch_size", int, 2), ("num_caption_scenes", int, 4),
        ("num_prompt_scenes", int, 4), ("num_question_scenes", int, 4), ("max_steps", int, 3)],
        bases=(guidance.DistillSettings,))
    monkeypatch.setattr(guidance, "DistillSettings", small)  # the CLI's own path, on a seconds-sized budget
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(app, ["world", "distill", "-m", str(tmp_path / "teacher"), "-o", str(tmp_path / "out"),
                                          "--guidance", "2", "--minutes", "1", "--threads", str(threads)])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "distill_report.json").read_text())
    assert report["steps"] == 3 and report["settings"]["guidance_scale"] == 2.0
    assert report["teacher"] == str(tmp_path / "teacher")
    assert load_model(str(tmp_path / "out"), device="cpu", dtype="float32").default_sampling().guidance_scale == 0.0
