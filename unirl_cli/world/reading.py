"""A focused reading stage: continue a shapes-world model with questions weighted by tag, about the scenes of
a chosen scope, plus truthful questions about random scenes and a few text-to-image examples.

`unirl world read` runs it on any model folder (or `mini`); `unirl world pretrain` runs it last, twice
(stages 7 and 8: answers in the prompt's order, then in reading order). The scope
says which scenes understanding may read: `training` keeps every evaluation scene out (as all other stages
do), `world` lets understanding read every scene of the world, evaluation compositions included, the way a
real model's captioning data covers compositions its text-to-image prompts never ask for. Text-to-image stays
on captions of non-evaluation scenes and the training prompts in both scopes, and no question's answer is
ever used as a generation target.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

from unirl_cli.errors import UnirlError

SCOPES = ("training", "world")
# How an answer orders the objects it names: as the prompt's template does ("prompt": the order the prompt
# was written in, which the image does not show) or as they appear in the image ("reading": top row first, left
# to right). A reader can only bind a colour or a place to the right shape when the order is one it can see
# (docs/shapes-world.md, finding 11).
ANSWER_ORDERS = ("prompt", "reading")
# The shipped stage's mix: position and colour attribution are what the reader fails most (docs/shapes-world.md, finding 8);
# the other tags stay in so that their answers are not forgotten.
READING_TAG_WEIGHTS = {"single_object": 0.05, "two_object": 0.05, "counting": 0.1, "colors": 0.05,
                       "position": 0.35, "color_attr": 0.4}


@dataclass
class ReadingSettings:
    """Data, budget and optimiser of one focused reading stage (defaults: the shipped mini's last stage, 8)."""

    minutes: float = 10.0
    seed: int = 22
    scope: str = "training"
    tag_weights: dict = field(default_factory=lambda: dict(READING_TAG_WEIGHTS))
    truthful_share: float = 0.2  # of the question scenes: random scenes, answered with what they show
    num_scenes: int = 16000
    num_caption_scenes: int = 3000  # text-to-image: captions of random non-evaluation scenes
    num_prompt_scenes: int = 1000  # text-to-image: renders of training prompts
    qa_batch_size: int = 32
    t2i_batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_steps: int = 30
    max_steps: int = 100_000
    answer_order: str = "reading"
    # of the question scenes: the model's own samples of training prompts (its default sampler), answered with what
    # their grids show (`grid_objects`), so that the reader reads what the generator draws
    own_share: float = 0.0


def check_reading_settings(settings: ReadingSettings) -> None:
    """UnirlError naming the first setting a run could not use."""
    from unirl_cli.data.qa import TAGS

    if settings.scope not in SCOPES:
        raise UnirlError(f"reading scope {settings.scope!r} is not one of {', '.join(SCOPES)}")
    unknown = sorted(set(settings.tag_weights) - set(TAGS))
    if unknown:
        raise UnirlError(f"unknown tag(s) {', '.join(unknown)} in the reading weights; use {', '.join(TAGS)}")
    if any(weight < 0 for weight in settings.tag_weights.values()) or not any(settings.tag_weights.values()):
        raise UnirlError("reading weights must be >= 0 with at least one above 0, e.g. position=1")
    if not 0 <= settings.truthful_share <= 1:
        raise UnirlError(f"truthful share {settings.truthful_share} must lie in [0, 1]")
    if not 0 <= settings.own_share <= 1 or settings.truthful_share + settings.own_share > 1:
        raise UnirlError(f"own-samples share {settings.own_share} must lie in [0, 1] and, with the truthful share "
                         f"{settings.truthful_share}, add up to at most 1")
    if settings.answer_order not in ANSWER_ORDERS:
        raise UnirlError(f"answer order {settings.answer_order!r} is not one of {', '.join(ANSWER_ORDERS)}")


def check_shapes_model(model) -> None:
    """UnirlError unless `model` is of the shapes world's size (64 px, 8 x 8 image tokens): mini, mini-showo or
    a model trained from them."""
    from unirl_cli.data.shapes.spec import IMAGE_SIZE, NUM_IMAGE_TOKENS

    if model.num_image_tokens != NUM_IMAGE_TOKENS or model.image_size != IMAGE_SIZE:
        raise UnirlError("a reading stage continues a shapes-world model (64 px, 64 image tokens): pass --model mini, "
                         "--model mini-showo or a folder written by `unirl world pretrain`, `unirl world read` or a "
                         "training run on them")


def reading_pool(scope: str) -> dict[str, list[dict]]:
    """Question records by tag that a reading stage of `scope` may ask about."""
    from unirl_cli.world.lm_stage import reading_records  # lazily: the CLI reads this module without torch
    from unirl_cli.data.prompts import records_by_tag
    from unirl_cli.data.shapes.prompts import eval_prompts

    return records_by_tag(reading_records() + (list(eval_prompts()) if scope == "world" else []))


def draw_by_tag_weight(pool: dict[str, list[dict]], tag_weights: dict, count: int, rng: random.Random) -> list[dict]:
    """`count` records of `pool` (tag -> records): a tag drawn by weight (those above 0 that the pool holds), then
    one of its records."""
    tags = [tag for tag, weight in tag_weights.items() if weight > 0 and tag in pool]
    return [rng.choice(pool[tag]) for tag in rng.choices(tags, [tag_weights[tag] for tag in tags], k=count)]


def weighted_question_scenes(model, settings: ReadingSettings, rng: random.Random) -> list:
    """`settings.num_scenes` question scenes: renders of pool records drawn by tag weight, then the truthful
    share of random scenes (any tag) answered with what they show; answers name objects in `answer_order`."""
    from unirl_cli.data.shapes.describe import describe, in_reading_order
    from unirl_cli.world.lm_stage import build_truthful_scenes, tokenised_scenes
    from unirl_cli.data.shapes.render import render_scene

    truthful = round(settings.num_scenes * settings.truthful_share)
    own = round(settings.num_scenes * settings.own_share)
    records = draw_by_tag_weight(reading_pool(settings.scope), settings.tag_weights,
                                 settings.num_scenes - truthful - own, rng)
    renders = [render_scene(r, rng.randrange(1 << 30)) for r in records]
    reading_order = settings.answer_order == "reading"
    if reading_order:  # a correct render's truthful answer is the template's, its objects named as they appear
        records = [{**r, "answer": describe(r["tag"], in_reading_order(objects))}
                   for r, (_, objects) in zip(records, renders)]
    scenes = tokenised_scenes(model, records, [image for image, _ in renders])
    return (scenes + build_truthful_scenes(model, truthful, rng, exclude_eval=settings.scope != "world",
                                           reading_order=reading_order)
            + own_sample_scenes(model, own, settings, rng))


def own_sample_scenes(model, count: int, settings: ReadingSettings, rng: random.Random) -> list:
    """About `count` of the model's own samples of training prompts (drawn by tag weight, its default sampler), each
    asked its prompt's question and answered with the objects its grid shows (`grid_objects`, in reading
    order); samples whose grid shows no object are left out. The codes are the generated ones."""
    from unirl_cli.data.prompts import records_by_tag
    from unirl_cli.data.qa import question_for
    from unirl_cli.data.shapes.describe import describe, in_reading_order
    from unirl_cli.data.shapes.prompts import train_prompts
    from unirl_cli.world.lm_stage import Scene
    from unirl_cli.world.vq_train import grid_objects

    if count == 0:
        return []
    prompts = draw_by_tag_weight(records_by_tag(train_prompts()), settings.tag_weights, count, rng)
    scenes = []
    for start in range(0, count, 64):
        batch = prompts[start:start + 64]
        codes = model.generate_images([r["prompt"] for r in batch], [rng.randrange(1 << 30) for _ in batch]).image_tokens
        images = model.decode_images(codes)
        for record, grid, image in zip(batch, codes, images):
            objects = in_reading_order(grid_objects(grid))
            if objects:
                answer = describe(record["tag"], objects)
                scenes.append(Scene({"tag": record["tag"], "question": question_for(record["tag"]), "answer": answer},
                                    image, grid.cpu()))
    return scenes


def focused_reading(model, settings: ReadingSettings, log: Callable[[str], None] = print,
                    stage_name: str = "focused reading") -> tuple[int, float, list[dict]]:
    """Train `model` (a shapes-world mini, in place) on the stage's questions and a few text-to-image examples for
    `settings.minutes`; returns (steps, seconds, loss history)."""
    from unirl_cli.world.lm_stage import (CAPTION_PHASES, LmStage, build_caption_scenes, build_scenes,
                                          train_language_model)
    from unirl_cli.data.shapes.prompts import train_prompts

    check_reading_settings(settings)
    check_shapes_model(model)
    rng = random.Random(settings.seed)
    started = time.time()
    t2i_scenes = (build_caption_scenes(model, settings.num_caption_scenes, CAPTION_PHASES[-1], rng)
                  + build_scenes(model, list(train_prompts()), settings.num_prompt_scenes, rng))
    question_scenes = weighted_question_scenes(model, settings, rng)
    log(f"rendered and tokenised {len(t2i_scenes)} text-to-image and {len(question_scenes)} question scenes "
        f"in {time.time() - started:.0f}s")
    stage = LmStage(stage_name, settings.t2i_batch_size, settings.qa_batch_size, settings.learning_rate,
                    settings.warmup_steps, max(settings.minutes * 60, 1.0), settings.max_steps)
    return train_language_model(model, t2i_scenes, question_scenes, stage, rng, log)
