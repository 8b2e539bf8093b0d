"""The shared language-model stage of the shapes-world mini: scenes (renders, truthful random scenes, captions)
tokenised by the model's own VQ tokenizer, the text-to-image and answer losses through the `UnifiedModel` prompt
formats, and one time-budgeted training loop. `world.pretrain` runs it as stages 3-6, `world.reading` as the
focused reading stages, `world.guidance` with its own text-to-image loss; keeping it here lets them import it
without importing each other.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable

import torch

from unirl_cli.data.prompts import records_by_tag
from unirl_cli.data.shapes.prompts import train_prompts, understanding_prompts
from unirl_cli.data.shapes.render import draw_scene, render_scene
from unirl_cli.data.shapes.spec import SHAPES

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
    by_tag = records_by_tag(records)
    tags = sorted(by_tag)
    chosen = [rng.choice(by_tag[rng.choice(tags)]) for _ in range(count)]
    return tokenised_scenes(model, chosen, [render_scene(record, rng.randrange(1 << 30))[0] for record in chosen])


def build_truthful_scenes(model, count: int, rng: random.Random, exclude_eval: bool = True,
                          reading_order: bool = False) -> list[Scene]:
    """`count` random scenes (1-6 shapes; no evaluation scene of its question's tag unless `exclude_eval` is
    False), each with one of the six questions answered with what it shows (`data.shapes.describe`; objects named in
    reading order if `reading_order`), so that understanding reads images that do not match any prompt, as
    generated ones do."""
    from unirl_cli.data.qa import TAGS
    from unirl_cli.data.shapes.describe import truthful_qa

    pairs = [truthful_qa(rng, TAGS, exclude_eval=exclude_eval, reading_order=reading_order) for _ in range(count)]
    return tokenised_scenes(model, [record for _, record in pairs], [draw_scene(objects) for objects, _ in pairs])


def build_caption_scenes(model, count: int, phase: CaptionPhase, rng: random.Random) -> list[Scene]:
    """`count` random scenes of `phase.min_objects`-4 shapes (no evaluation scene of any tag) with their
    captions as prompts."""
    from unirl_cli.data.shapes.describe import captioned_scene

    pairs = [captioned_scene(rng, phase.monochrome, phase.min_objects) for _ in range(count)]
    return tokenised_scenes(model, [{"prompt": text} for _, text in pairs], [draw_scene(objects) for objects, _ in pairs])


def tokenised_scenes(model, records: list[dict], images: list) -> list[Scene]:
    """Scenes of `records` and their `images`, with VQ codes from the model's own tokenizer (64 at a time)."""
    if not images:
        return []
    codes = torch.cat([model.encode_images(images[i:i + 64]) for i in range(0, len(images), 64)])
    return [Scene(record, image, code) for record, image, code in zip(records, images, codes)]


def image_token_loss(model, prompts: list[str], codes: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """The family's text-to-image loss on `codes` (`UnifiedModel.image_token_loss`); a share of the prompts
    become the CFG unconditional prompt."""
    drop = torch.tensor([rng.random() < UNCONDITIONAL_SHARE for _ in prompts])
    return model.image_token_loss(prompts, codes, drop)


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
    """The language model's parameters, and the understanding encoder's and aligner's (Janus) with their own
    scale; Show-o reads its own image codes, so it has no such modules."""
    inner = model.hf_model.model
    modules = [getattr(inner, name) for name in ("vision_model", "aligner") if hasattr(inner, name)]
    understanding = {id(p) for module in modules for p in module.parameters()}
    return [{"params": [p for p in params if id(p) not in understanding], "lr_scale": 1.0},
            {"params": [p for p in params if id(p) in understanding], "lr_scale": understanding_lr_scale}]


ImageLoss = Callable[[object, list, torch.Tensor, random.Random], torch.Tensor]


def train_language_model(model, t2i_scenes: list[Scene], qa_scenes: list[Scene], stage: LmStage,
                         rng: random.Random, log: Callable[[str], None],
                         image_loss: ImageLoss = image_token_loss) -> tuple[int, float, list[dict]]:
    """Train everything but the VQ model on both tasks (AdamW, warm-up then cosine) until the stage's time or
    step budget is spent; `image_loss(model, prompts, codes, rng)` is the text-to-image term (default: the
    family's own loss). Returns (steps, seconds, loss history every 50 steps)."""
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
        t2i_loss = image_loss(model, [s.record["prompt"] for s in t2i_batch],
                              torch.stack([s.codes for s in t2i_batch]), rng)
        text_loss = answer_loss(model, qa_batch, use_codes=step % 2 == 1)
        optimizer.zero_grad(set_to_none=True)
        (t2i_loss + text_loss).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        recent.append((float(t2i_loss.detach()), float(text_loss.detach())))
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
