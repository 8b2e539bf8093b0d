"""The shapes world's prompts: a fixed evaluation set (like GenEval's 553) and the disjoint training pool.

Records have GenEval's metadata format plus UniRL's question and answer, made by the shared prompt generator
(`unirl_cli.data.prompts`) over this world's vocabulary. Disjointness is by *scene*, not only by string: the
training pool never holds an evaluation prompt, nor the same request worded the other way round ("a square
and a circle", "a circle right of a square"). With six shapes, that leaves every single-object prompt to
the evaluation set; training sees the shapes only inside the other five tags.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Mapping

from unirl_cli.data.prompts import generate_prompts, validate_record
from unirl_cli.data.qa import with_question_answer
from unirl_cli.data.vocab import INVERSE_RELATION, Vocabulary, custom_vocabulary, with_article
from unirl_cli.data.shapes.spec import COLOR_NAMES, SHAPES

EVAL_FILE = "evaluation_metadata.jsonl"
TRAIN_FILE = "train_prompts.jsonl"
# Prompts per tag in the evaluation set; single_object holds all six shapes.
EVAL_PROMPTS_PER_TAG = {"single_object": 6, "two_object": 6, "counting": 8, "colors": 24, "position": 30,
                        "color_attr": 60}
EVAL_SEED = 553
TRAIN_TAGS = ("two_object", "counting", "colors", "position", "color_attr")


def shapes_vocabulary() -> Vocabulary:
    """The prompt vocabulary of the shapes world: its six shapes and GenEval's ten colours."""
    return custom_vocabulary(SHAPES, COLOR_NAMES)


def build_eval_prompts(seed: int = EVAL_SEED) -> list[dict]:
    """The evaluation set as first built (the shipped JSONL is this list); ordered by tag like GenEval's."""
    vocab, records = shapes_vocabulary(), []
    for tag, count in EVAL_PROMPTS_PER_TAG.items():
        records += generate_prompts(count, seed, tags=[tag], vocabulary=vocab)
    return records


def scene_key(record: Mapping) -> str:
    """A key equal for two records asking for the same scene, whatever the wording order."""
    include, tag = record["include"], record["tag"]
    if tag == "position":
        target, subject = include
        relation = subject["position"][0]
        pair = sorted([(subject["class"], relation, target["class"]),
                       (target["class"], INVERSE_RELATION[relation], subject["class"])])
        return json.dumps([tag, pair[0]])
    clauses = sorted(json.dumps({k: v for k, v in c.items() if k != "position"}, sort_keys=True) for c in include)
    return json.dumps([tag, clauses, record.get("exclude", [])], sort_keys=True)


def reworded_prompts(record: Mapping) -> list[str]:
    """The record's prompt and its other word order (two objects, colour pairs, an inverted relation)."""
    include, tag, prompts = record["include"], record["tag"], [record["prompt"]]
    if tag == "two_object":
        prompts.append(f"a photo of {with_article(include[1]['class'])} and {with_article(include[0]['class'])}")
    elif tag == "color_attr":
        second, first = include
        prompts.append(f"a photo of {with_article(first['color'])} {first['class']} and "
                       f"{with_article(second['color'])} {second['class']}")
    elif tag == "position":
        target, subject = include
        inverse = INVERSE_RELATION[subject["position"][0]]
        prompts.append(f"a photo of {with_article(target['class'])} {inverse} {with_article(subject['class'])}")
    return prompts


# Distinct prompts per tag in the whole world (ordered pairs, counts 2-4, colour pairs of distinct colours).
WORLD_PROMPTS_PER_TAG = {"two_object": 30, "counting": 18, "colors": 60, "position": 120, "color_attr": 2700}
TRAIN_COLOR_ATTR_PROMPTS = 400
TRAIN_SEED = 7


def forbidden_training_prompts() -> dict[str, set[str]]:
    """Per tag, every wording of every evaluation scene (what training must never ask for)."""
    forbidden: dict[str, set[str]] = {}
    for record in eval_prompts():
        forbidden.setdefault(record["tag"], set()).update(reworded_prompts(record))
    return forbidden


def build_train_prompts(seed: int = TRAIN_SEED, color_attr_prompts: int = TRAIN_COLOR_ATTR_PROMPTS) -> list[dict]:
    """Every training prompt of the small tags plus `color_attr_prompts` colour-pair prompts, none asking
    for an evaluation scene (the shipped `train_prompts.jsonl` is this list)."""
    vocab, forbidden, records = shapes_vocabulary(), forbidden_training_prompts(), []
    all_forbidden = set().union(*forbidden.values())
    for tag in TRAIN_TAGS:
        available = WORLD_PROMPTS_PER_TAG[tag] - len(forbidden.get(tag, ()))
        count = min(available, color_attr_prompts) if tag == "color_attr" else available
        records += generate_prompts(count, seed, tags=[tag], vocabulary=vocab, exclude_prompts=all_forbidden)
    return records


def _read_packaged(name: str) -> tuple[dict, ...]:
    text = resources.files("unirl_cli.data").joinpath("shapes", name).read_text(encoding="utf-8")
    records = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            record = json.loads(line)
            validate_record(record, f"shapes/{name}:{line_number}")
            records.append(with_question_answer(record))
    return tuple(records)


@lru_cache(maxsize=1)
def understanding_prompts() -> tuple[dict, ...]:
    """Every scene of the five training tags that the evaluation set does not ask for (any wording).

    Understanding learns to read the whole world outside the evaluation scenes, the way a real model's
    captioning data is broader than its text-to-image prompts; text-to-image still sees only `train_prompts`.
    """
    return tuple(build_train_prompts(color_attr_prompts=WORLD_PROMPTS_PER_TAG["color_attr"]))


@lru_cache(maxsize=1)
def eval_prompts() -> tuple[dict, ...]:
    """The fixed shapes-world evaluation prompts (`unirl_cli/data/shapes/evaluation_metadata.jsonl`)."""
    return _read_packaged(EVAL_FILE)


@lru_cache(maxsize=1)
def train_prompts() -> tuple[dict, ...]:
    """The shipped training prompts (`unirl_cli/data/shapes/train_prompts.jsonl`), disjoint from evaluation."""
    return _read_packaged(TRAIN_FILE)
