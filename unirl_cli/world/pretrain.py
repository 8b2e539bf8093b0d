"""`unirl world pretrain`: train the mini Janus from scratch on rendered scenes (VQ tokenizer, understanding
encoder, the LM on both tasks, a reading stage that widens understanding to the whole world, then a truthful
reading stage in which half the questions are about random scenes, answered with what they show, then a
caption stage: text-to-image on captions of random scenes, most of them in one colour, which is what makes
the generator compose a colour word with a shape it never saw it with; and last two focused reading stages,
`world.reading`, mostly position and colour-attribution questions, each on its own budget: answers in the
prompt's order, then in reading order).

The language model learns both directions through the `UnifiedModel` interface itself, so pretraining uses
exactly the prompt formats that generation, understanding and RL use later: text-to-image is cross-entropy of
the generation head on the VQ codes of a correct render (10% of prompts dropped to the unconditional prompt,
which classifier-free guidance needs); understanding is the answer likelihood (`answer_logprobs`) of the
prompt's question about its render or about the VQ reconstruction of it (what the model sees of its own images).
The reading stage asks about every non-evaluation scene of the world (not only the training prompts), with
more questions than images per step, so that the model can judge its own multi-object images.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from unirl_cli.world.prompts import train_prompts, understanding_prompts
from unirl_cli.world.reading import ReadingSettings
from unirl_cli.world.render import draw_scene, render_scene
from unirl_cli.world.spec import SHAPES
from unirl_cli.world.vision_train import train_vision_encoder, whiten_into_aligner
from unirl_cli.world.vq_train import train_vq

UNCONDITIONAL_SHARE = 0.1


@dataclass(frozen=True)
class CaptionPhase:
    """One run of the caption stage: its share of the stage's time and what its captions hold."""

    time_share: float
    min_objects: int  # 1 lets one-object captions in (only training colour pairs: the others are evaluation scenes)
    monochrome: float  # of the captioned scenes: all objects in one colour
    caption_share: float  # of the text-to-image scenes; the rest are training-prompt renders
    learning_rate: float


# The shipped mini's: first all scene sizes, mostly one colour; then no one-object scenes (the held-out colour
# pairs never appear alone, and the model learns that absence) and more of them in one colour.
CAPTION_PHASES = (CaptionPhase(0.45, 1, 0.6, 0.8, 2e-3), CaptionPhase(0.55, 2, 0.8, 0.9, 1e-3))


@dataclass
class PretrainSettings:
    """Budget and optimiser of one pretraining run (defaults: the shipped `mini`)."""

    seed: int = 0
    minutes: float = 62.0  # the shares below give the stages the minutes the shipped mini's had
    vq_share: float = 0.16  # of the time budget
    vision_share: float = 0.024
    reading_share: float = 0.129  # the LM on both tasks gets what the other stages leave
    truthful_share: float = 0.097  # the fifth stage: reading again, half of it questions about random scenes
    caption_share: float = 0.29  # the last stage: text-to-image on captions of random scenes (18 min)
    num_scenes: int = 3000  # per task for the LM stage
    batch_size: int = 16
    learning_rate: float = 2e-3
    # The LM stage trains the fresh encoder and aligner at this share of `learning_rate`: at the full rate the
    # image path lost shape within minutes in a fresh run (README, 'The mini model').
    understanding_lr_scale: float = 0.1
    num_reading_scenes: int = 12000
    reading_qa_batch_size: int = 32
    reading_t2i_batch_size: int = 8  # keeps text-to-image from drifting while understanding trains
    reading_learning_rate: float = 1e-3
    truthful_questions: float = 0.5  # of the last stage's scenes: random scenes, answered with what they show
    max_lm_steps: int = 100_000
    max_vq_steps: int = 100_000
    max_vision_steps: int = 100_000
    max_reading_steps: int = 100_000
    num_caption_scenes: int = 12000  # text-to-image scenes per caption phase
    caption_phases: tuple = field(default_factory=lambda: CAPTION_PHASES)
    caption_t2i_batch_size: int = 32
    caption_qa_batch_size: int = 8  # keeps understanding from drifting while the generator trains
    # The seventh stage (`world.reading`), its own budget on top of `minutes`; its seed is offset by `seed`.
    # Its answers name objects in the prompt's order, as in the run that made the shipped mini's stages 1-7.
    reading_focus: ReadingSettings = field(
        default_factory=lambda: ReadingSettings(minutes=12.0, seed=21, answer_order="prompt"))
    # The eighth stage: the same mix with answers naming objects in reading order (README, finding 11).
    reading_order: ReadingSettings = field(default_factory=ReadingSettings)


@dataclass
class PretrainReport:
    """What a pretraining run did, written next to the weights as `pretrain_report.json`."""

    settings: dict
    vq_steps: int = 0
    vq_seconds: float = 0.0
    vq_code_accuracy: float = 0.0
    vision_steps: int = 0
    vision_seconds: float = 0.0
    vision_patch_accuracy: float = 0.0
    lm_steps: int = 0
    lm_seconds: float = 0.0
    image_loss: float = float("nan")
    answer_loss: float = float("nan")
    reading_steps: int = 0
    reading_seconds: float = 0.0
    reading_answer_loss: float = float("nan")
    truthful_steps: int = 0
    truthful_seconds: float = 0.0
    truthful_answer_loss: float = float("nan")
    caption_steps: int = 0
    caption_seconds: float = 0.0
    caption_image_loss: float = float("nan")
    focus_steps: int = 0
    focus_seconds: float = 0.0
    focus_answer_loss: float = float("nan")
    order_steps: int = 0
    order_seconds: float = 0.0
    order_answer_loss: float = float("nan")
    history: list = field(default_factory=list)


def understanding_records() -> list[dict]:
    """Question records understanding trains on: the training prompts plus one single-object record per
    shape (single-object prompts all belong to the evaluation set; asking what one shape is stays allowed)."""
    from unirl_cli.data.qa import with_question_answer

    singles = [with_question_answer({"tag": "single_object", "include": [{"class": shape, "count": 1}],
                                     "prompt": f"a photo of a {shape}"}) for shape in SHAPES]
    return list(train_prompts()) + singles


def reading_records() -> list[dict]:
    """Question records of the reading stage: every non-evaluation scene of the world, and the single objects."""
    return list(understanding_prompts()) + [r for r in understanding_records() if r["tag"] == "single_object"]


@dataclass
class Scene:
    """One training example: its record, render and VQ codes."""

    record: dict
    image: object
    codes: torch.Tensor


def build_scenes(model, records: list[dict], count: int, rng: random.Random) -> list[Scene]:
    """`count` renders of records drawn tag-balanced, with their VQ codes from the model's own tokenizer."""
    by_tag: dict[str, list[dict]] = {}
    for record in records:
        by_tag.setdefault(record["tag"], []).append(record)
    tags = sorted(by_tag)
    chosen = [rng.choice(by_tag[rng.choice(tags)]) for _ in range(count)]
    return tokenised_scenes(model, chosen, [render_scene(record, rng.randrange(1 << 30))[0] for record in chosen])


def build_truthful_scenes(model, count: int, rng: random.Random, exclude_eval: bool = True,
                          reading_order: bool = False) -> list[Scene]:
    """`count` random scenes (1-6 shapes; no evaluation scene of its question's tag unless `exclude_eval` is
    False), each with one of the six questions answered with what it shows (`world.describe`; objects named in
    reading order if `reading_order`), so that understanding reads images that do not match any prompt, as
    generated ones do."""
    from unirl_cli.data.qa import TAGS
    from unirl_cli.world.describe import truthful_qa

    pairs = [truthful_qa(rng, TAGS, exclude_eval=exclude_eval, reading_order=reading_order) for _ in range(count)]
    return tokenised_scenes(model, [record for _, record in pairs], [draw_scene(objects) for objects, _ in pairs])


def build_caption_scenes(model, count: int, phase: CaptionPhase, rng: random.Random) -> list[Scene]:
    """`count` random scenes of `phase.min_objects`-4 shapes (no evaluation scene of any tag) with their
    captions as prompts."""
    from unirl_cli.world.describe import captioned_scene

    pairs = [captioned_scene(rng, phase.monochrome, phase.min_objects) for _ in range(count)]
    return tokenised_scenes(model, [{"prompt": text} for _, text in pairs], [draw_scene(objects) for objects, _ in pairs])


def tokenised_scenes(model, records: list[dict], images: list) -> list[Scene]:
    """Scenes of `records` and their `images`, with VQ codes from the model's own tokenizer (64 at a time)."""
    if not images:
        return []
    codes = torch.cat([model.encode_images(images[i:i + 64]) for i in range(0, len(images), 64)])
    return [Scene(record, image, code) for record, image, code in zip(records, images, codes)]


def image_token_loss(model, prompts: list[str], codes: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """Mean cross-entropy of the generation head on `codes`; some prompts become the CFG unconditional prompt."""
    from unirl_cli.models import janus_sampling

    tokenizer, generation_config = model.tokenizer, model.hf_model.generation_config
    encoded = tokenizer([model.prompt_format.generation_prompt(p) for p in prompts], padding=True, padding_side="left",
                        return_tensors="pt")
    input_ids, attention_mask = encoded["input_ids"], encoded["attention_mask"]
    unconditional = janus_sampling.unconditional_prompt_ids(
        input_ids, generation_config.bos_token_id, generation_config.generation_kwargs["boi_token_id"],
        generation_config.pad_token_id)
    drop = torch.tensor([rng.random() < UNCONDITIONAL_SHARE for _ in prompts])[:, None]
    input_ids = torch.where(drop, unconditional, input_ids)
    logits = janus_sampling.teacher_forced_head_logits(model.hf_model, input_ids, attention_mask, codes)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), codes.reshape(-1))


def answer_loss(model, scenes: list[Scene], use_codes: bool) -> torch.Tensor:
    """Mean per-token negative log-likelihood of each scene's answer to its question."""
    images = torch.stack([s.codes for s in scenes]) if use_codes else [s.image for s in scenes]
    scores = model.answer_logprobs(images, [s.record["question"] for s in scenes],
                                   [s.record["answer"] for s in scenes])
    return -(scores.token_logprobs.sum() / scores.token_mask.sum())


@dataclass
class LmStage:
    """One LM training stage: its batches, peak learning rate, warm-up and budget."""

    name: str
    t2i_batch_size: int
    qa_batch_size: int
    learning_rate: float
    warmup_steps: int
    max_seconds: float
    max_steps: int
    understanding_lr_scale: float = 1.0  # encoder and aligner learn at this share of the stage's learning rate


def _param_groups(model, params: list, understanding_lr_scale: float) -> list[dict]:
    """The language model's parameters, and the understanding encoder's and aligner's with their own scale."""
    understanding = {id(p) for module in (model.hf_model.model.vision_model, model.hf_model.model.aligner)
                     for p in module.parameters()}
    return [{"params": [p for p in params if id(p) not in understanding], "lr_scale": 1.0},
            {"params": [p for p in params if id(p) in understanding], "lr_scale": understanding_lr_scale}]


def train_language_model(model, t2i_scenes: list[Scene], qa_scenes: list[Scene], stage: LmStage,
                         rng: random.Random, log: Callable[[str], None]) -> tuple[int, float, list[dict]]:
    """Train everything but the VQ model on both tasks (AdamW, warm-up then cosine) until the stage's time or
    step budget is spent; returns (steps, seconds, loss history every 50 steps)."""
    model.freeze_for_training(train_understanding=True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(_param_groups(model, params, stage.understanding_lr_scale), lr=stage.learning_rate,
                                  weight_decay=0.01, betas=(0.9, 0.98))
    start, step, recent, history = time.time(), 0, [], []
    while step < stage.max_steps and time.time() - start < stage.max_seconds:
        progress = (time.time() - start) / stage.max_seconds
        warmup = min(1.0, (step + 1) / stage.warmup_steps)
        schedule = warmup * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        for group in optimizer.param_groups:
            group["lr"] = stage.learning_rate * group["lr_scale"] * schedule
        t2i_batch = rng.sample(t2i_scenes, stage.t2i_batch_size)
        qa_batch = rng.sample(qa_scenes, stage.qa_batch_size)
        image_loss = image_token_loss(model, [s.record["prompt"] for s in t2i_batch],
                                      torch.stack([s.codes for s in t2i_batch]), rng)
        text_loss = answer_loss(model, qa_batch, use_codes=step % 2 == 1)
        optimizer.zero_grad(set_to_none=True)
        (image_loss + text_loss).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        recent.append((float(image_loss.detach()), float(text_loss.detach())))
        if step % 50 == 0:
            image_mean = sum(r[0] for r in recent) / len(recent)
            text_mean = sum(r[1] for r in recent) / len(recent)
            recent = []
            history.append({"stage": stage.name, "step": step, "seconds": round(time.time() - start, 1),
                            "image_loss": round(image_mean, 4), "answer_loss": round(text_mean, 4)})
            log(f"{stage.name} step {step} ({time.time() - start:.0f}s): image-token loss {image_mean:.3f}, "
                f"answer loss {text_mean:.3f}")
    model.eval()
    return step, time.time() - start, history


def read_stage(model, t2i_scenes: list[Scene], settings: PretrainSettings, seconds: float, truthful_share: float,
               name: str, log: Callable[[str], None]) -> tuple[int, float, list[dict]]:
    """A reading stage: questions about the whole non-evaluation world (a `truthful_share` of them about random
    scenes, answered with what they show), a few text-to-image examples; returns (steps, seconds, history)."""
    rng = random.Random(settings.seed + 2)
    truthful = round(settings.num_reading_scenes * truthful_share)
    reading_scenes = (build_scenes(model, reading_records(), settings.num_reading_scenes - truthful, rng)
                      + build_truthful_scenes(model, truthful, rng))
    stage = LmStage(name, settings.reading_t2i_batch_size, settings.reading_qa_batch_size,
                    settings.reading_learning_rate, 30, max(seconds, 1.0), settings.max_reading_steps)
    return train_language_model(model, t2i_scenes, reading_scenes, stage, rng, log)


def caption_stage(model, settings: PretrainSettings, seconds: float,
                  log: Callable[[str], None]) -> tuple[int, float, list[dict]]:
    """Text-to-image on captions of random scenes (and some training prompts), with reading questions (half
    about random scenes) so understanding stays, in `settings.caption_phases`; returns (steps, seconds, history)."""
    steps, spent, history = 0, 0.0, []
    for index, phase in enumerate(settings.caption_phases):
        rng = random.Random(settings.seed + 3 + index)
        captions = round(settings.num_caption_scenes * phase.caption_share)
        t2i_scenes = (build_caption_scenes(model, captions, phase, rng)
                      + build_scenes(model, list(train_prompts()), settings.num_caption_scenes - captions, rng))
        qa_count = settings.num_caption_scenes // 4
        qa_scenes = build_scenes(model, reading_records(), qa_count, rng) + build_truthful_scenes(model, qa_count, rng)
        stage = LmStage(f"caption{index + 1}", settings.caption_t2i_batch_size, settings.caption_qa_batch_size,
                        phase.learning_rate, 30, max(seconds * phase.time_share, 1.0), settings.max_reading_steps)
        phase_steps, phase_seconds, phase_history = train_language_model(model, t2i_scenes, qa_scenes, stage, rng, log)
        steps, spent, history = steps + phase_steps, spent + phase_seconds, history + phase_history
    return steps, spent, history


def _last_loss(history: list[dict], key: str) -> float:
    return history[-1][key] if history else float("nan")


def pretrain_mini(out_dir: str | Path, settings: PretrainSettings | None = None,
                  log: Callable[[str], None] = print) -> PretrainReport:
    """Build the mini Janus; train its VQ tokenizer, its understanding encoder (then whitened into the aligner),
    then its LM, within `settings.minutes`; then the two focused reading stages in their own minutes (answers in
    the prompt's order, then in reading order); save to `out_dir`."""
    from unirl_cli.models.janus import JanusModel
    from unirl_cli.world.mini import build_untrained_mini

    settings = settings or PretrainSettings()
    report = PretrainReport(settings=asdict(settings))
    total_seconds = settings.minutes * 60
    torch.manual_seed(settings.seed)
    hf_model, processor = build_untrained_mini(settings.seed)
    vq_result = train_vq(hf_model.model.vqmodel, settings.max_vq_steps, settings.vq_share * total_seconds,
                         seed=settings.seed, log=log)
    report.vq_steps, report.vq_seconds, report.vq_code_accuracy = vq_result.steps, vq_result.seconds, vq_result.code_accuracy
    log(f"vq tokenizer: {vq_result.steps} steps in {vq_result.seconds:.0f}s, codes right {vq_result.code_accuracy:.4f}")
    vision_result = train_vision_encoder(hf_model.model.vision_model, hf_model.model.vqmodel,
                                         settings.vision_share * total_seconds, settings.max_vision_steps,
                                         seed=settings.seed, log=log)
    report.vision_steps, report.vision_seconds = vision_result.steps, vision_result.seconds
    report.vision_patch_accuracy = vision_result.patch_accuracy
    whiten_into_aligner(hf_model.model.vision_model, hf_model.model.aligner, seed=settings.seed)
    log(f"understanding encoder: {vision_result.steps} steps in {vision_result.seconds:.0f}s, "
        f"patch kinds right {vision_result.patch_accuracy:.4f}")
    model = JanusModel(hf_model.eval(), processor)
    rng = random.Random(settings.seed)
    data_start = time.time()
    t2i_scenes = build_scenes(model, list(train_prompts()), settings.num_scenes, rng)
    qa_scenes = build_scenes(model, understanding_records(), settings.num_scenes, rng)
    log(f"rendered and tokenised {2 * settings.num_scenes} scenes in {time.time() - data_start:.0f}s")
    reading_seconds = settings.reading_share * total_seconds
    truthful_seconds = settings.truthful_share * total_seconds
    caption_seconds = settings.caption_share * total_seconds
    remaining = (total_seconds - vq_result.seconds - vision_result.seconds - (time.time() - data_start)
                 - reading_seconds - truthful_seconds - caption_seconds)
    lm = LmStage("lm", settings.batch_size, settings.batch_size, settings.learning_rate, 50, max(remaining, 1.0),
                 settings.max_lm_steps, settings.understanding_lr_scale)
    report.lm_steps, report.lm_seconds, history = train_language_model(
        model, t2i_scenes, qa_scenes, lm, random.Random(settings.seed + 1), log)
    report.history += history
    report.image_loss, report.answer_loss = _last_loss(history, "image_loss"), _last_loss(history, "answer_loss")
    report.reading_steps, report.reading_seconds, history = read_stage(
        model, t2i_scenes, settings, reading_seconds, 0.0, "reading", log)
    report.reading_answer_loss, report.history = _last_loss(history, "answer_loss"), report.history + history
    report.truthful_steps, report.truthful_seconds, history = read_stage(
        model, t2i_scenes, settings, truthful_seconds, settings.truthful_questions, "truthful", log)
    report.truthful_answer_loss, report.history = _last_loss(history, "answer_loss"), report.history + history
    if caption_seconds > 0:
        report.caption_steps, report.caption_seconds, history = caption_stage(model, settings, caption_seconds, log)
        report.caption_image_loss, report.history = _last_loss(history, "image_loss"), report.history + history
    from unirl_cli.world.reading import focused_reading

    if settings.reading_focus.minutes > 0:
        focus = replace(settings.reading_focus, seed=settings.seed + settings.reading_focus.seed)
        report.focus_steps, report.focus_seconds, history = focused_reading(model, focus, log)
        report.focus_answer_loss, report.history = _last_loss(history, "answer_loss"), report.history + history
    if settings.reading_order.minutes > 0:
        stage = replace(settings.reading_order, seed=settings.seed + settings.reading_order.seed)
        report.order_steps, report.order_seconds, history = focused_reading(model, stage, log, "reading order")
        report.order_answer_loss, report.history = _last_loss(history, "answer_loss"), report.history + history
    model.save(str(out_dir))
    (Path(out_dir) / "pretrain_report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report
