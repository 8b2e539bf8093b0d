"""Truthful answers to UniRL's six questions about *any* scene of the shapes world, not only a correct one.

UniRL's questions are generic ("What are two items in this image?"), so a model whose understanding only ever
saw correct renders learns to recite the prompt's template: asked about a one-object image, it still names
two objects. A generator trained on that self-reward learns to draw whatever the reader misreads (measured:
a single orange circle answered "There is a circle and a cross" 99% of the time). Here every question gets
the answer the scene really supports: the template's sentence when the scene has the shape the question
presumes, otherwise a list of what is there, which the answer matcher scores as wrong (missing or extra objects).
"""

from __future__ import annotations

import random
from collections import Counter
from functools import lru_cache
from typing import Sequence

from unirl_cli.data.qa import answer_for, count_phrase, question_for
from unirl_cli.data.vocab import with_article
from unirl_cli.data.shapes.render import RELATION_STEPS, SceneObject, random_scene

MAX_SAME_CLASS = 4  # the mini's tokenizer knows number words up to four


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def object_list(objects: Sequence[SceneObject]) -> str:
    """The scene's objects counted by class, in order of first appearance: "two circles and a cross"."""
    counts = Counter(obj.class_name for obj in objects)
    return _join([count_phrase(name, count) for name, count in counts.items()])


def colored_list(objects: Sequence[SceneObject]) -> str:
    """Each object with its colour: "a red circle, a blue cross and a green square"."""
    return _join([with_article(f"{obj.color} {obj.class_name}") for obj in objects])


def in_reading_order(objects: Sequence[SceneObject]) -> list[SceneObject]:
    """`objects` as a reader meets them: top row first, left to right within a row (raster order)."""
    return sorted(objects, key=lambda obj: (obj.row, obj.col))


def caption(objects: Sequence[SceneObject]) -> str:
    """A text-to-image caption of any scene, objects counted by colour and class in reading order:
    "a photo of two yellow diamonds and a yellow circle"."""
    groups = Counter((obj.color, obj.class_name) for obj in in_reading_order(objects))
    return "a photo of " + _join([count_phrase(f"{color} {name}", count) for (color, name), count in groups.items()])


def relations(subject: SceneObject, target: SceneObject) -> list[str]:
    """Every relation `subject` has to `target`, the horizontal one first (a diagonal pair has two)."""
    d_row, d_col = subject.row - target.row, subject.col - target.col
    steps = ([(0, 1 if d_col > 0 else -1)] if d_col else []) + ([(1 if d_row > 0 else -1, 0)] if d_row else [])
    return [name for step in steps for name, value in RELATION_STEPS.items() if value == step]


def _there_is(objects: Sequence[SceneObject], text: str) -> str:
    return f"There {'is' if len(objects) == 1 else 'are'} {text}"


def describe(tag: str, objects: Sequence[SceneObject]) -> str:
    """The truthful answer to `tag`'s question about a scene holding `objects` (at least one)."""
    if not objects:
        raise ValueError("a scene to describe needs at least one object")
    first = objects[0]
    classes = {obj.class_name for obj in objects}
    if tag == "counting":  # "three circles" when the scene is one class, as the template says
        return object_list(objects)
    if len(objects) == 1 and tag in ("single_object", "colors"):
        record = {"tag": tag, "include": [{"class": first.class_name, "count": 1, "color": first.color}]}
        return answer_for(record)
    if len(objects) == 2 and tag in ("two_object", "position", "color_attr") and len(classes) == 2:
        target, subject = objects
        include = [{"class": target.class_name, "count": 1, "color": target.color},
                   {"class": subject.class_name, "count": 1, "color": subject.color,
                    "position": [relations(subject, target)[0], 0]}]
        return answer_for({"tag": tag, "include": include})
    if tag in ("colors", "color_attr"):
        return _there_is(objects, colored_list(objects))
    return _there_is(objects, object_list(objects))


def scene_records(objects: Sequence[SceneObject]) -> list[dict]:
    """The prompt records (any tag but single-object) for which `objects` is exactly a correct scene."""
    counts = Counter(obj.class_name for obj in objects)
    records = []
    if len(objects) == 1:
        obj = objects[0]
        records.append({"tag": "colors", "include": [{"class": obj.class_name, "count": 1, "color": obj.color}]})
    if len(counts) == 1 and 2 <= len(objects) <= MAX_SAME_CLASS:
        name, count = next(iter(counts.items()))
        records.append({"tag": "counting", "include": [{"class": name, "count": count}],
                        "exclude": [{"class": name, "count": count + 1}]})
    if len(objects) == 2 and len(counts) == 2:
        target, subject = objects
        for first, second in ((target, subject), (subject, target)):
            records.append({"tag": "two_object", "include": [{"class": first.class_name, "count": 1},
                                                             {"class": second.class_name, "count": 1}]})
            records.append({"tag": "color_attr", "include": [
                {"class": first.class_name, "count": 1, "color": first.color},
                {"class": second.class_name, "count": 1, "color": second.color}]})
            records += [{"tag": "position", "include": [
                {"class": first.class_name, "count": 1},
                {"class": second.class_name, "count": 1, "position": [name, 0]}]} for name in relations(second, first)]
    return records


@lru_cache(maxsize=1)
def _eval_scene_keys() -> frozenset[str]:
    from unirl_cli.data.shapes.prompts import eval_prompts, scene_key

    return frozenset(scene_key(record) for record in eval_prompts())


def is_eval_scene(objects: Sequence[SceneObject], tag: str) -> bool:
    """True when `objects` is a correct scene for an evaluation prompt of `tag`: the same rule as the
    understanding pool (`prompts.understanding_prompts`), which is disjoint from evaluation scenes tag by tag.
    Single objects are never excluded (all six are evaluation prompts; reading one shape stays allowed)."""
    from unirl_cli.data.shapes.prompts import scene_key

    keys = _eval_scene_keys()
    return any(scene_key(record) in keys for record in scene_records(objects) if record["tag"] == tag)


def captioned_scene(rng: random.Random, monochrome_share: float, min_objects: int = 2,
                    max_objects: int = 4) -> tuple[list[SceneObject], str]:
    """A random scene of `min_objects`..`max_objects` shapes that is no evaluation scene of any tag, with its
    caption; a `monochrome_share` of them in one colour. A one-colour scene needs no binding of words to
    objects, so its colour word is plainly what every object's first image token must show: this is what
    teaches the generator colour apart from shape. (One-object scenes of the evaluation's colour pairs are
    evaluation scenes, so with `min_objects=1` only trained pairs appear alone, which a generator also learns.)"""
    from unirl_cli.data.qa import TAGS

    while True:
        objects = random_scene(rng, max_objects)
        if len(objects) < min_objects or max(Counter(o.class_name for o in objects).values()) > MAX_SAME_CLASS:
            continue
        if rng.random() < monochrome_share:
            color = rng.choice(objects).color
            objects = [SceneObject(obj.class_name, color, obj.row, obj.col) for obj in objects]
        if not any(is_eval_scene(objects, tag) for tag in TAGS):
            return objects, caption(objects)


def truthful_qa(rng: random.Random, tags: Sequence[str], max_objects: int = 6, exclude_eval: bool = True,
                reading_order: bool = False) -> tuple[list[SceneObject], dict]:
    """A random scene (1..`max_objects` shapes, at most four of a class; no evaluation scene of the question's
    tag unless `exclude_eval` is False) and a question record for one of `tags` whose answer is what it shows,
    naming the objects in reading order if `reading_order` (else in the order they were drawn)."""
    tag = rng.choice(list(tags))
    while True:
        objects = random_scene(rng, max_objects)
        if max(Counter(o.class_name for o in objects).values()) <= MAX_SAME_CLASS and not (
                exclude_eval and is_eval_scene(objects, tag)):
            break
    described = in_reading_order(objects) if reading_order else objects
    return objects, {"tag": tag, "question": question_for(tag), "answer": describe(tag, described)}
