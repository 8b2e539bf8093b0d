"""GenEval's prompt metadata, class names and UniRL's questions, read from the copies shipped in the package.

`evaluation_metadata.jsonl` line i is prompt i (553 prompts, six tags in file order); `object_names.txt` line i is
detector class i (COCO order, with GenEval's three renamed classes), so classes are mapped by index, never by name.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from unirl_cli.errors import UnirlError

# The six tasks in the order GenEval's README reports them.
GENEVAL_TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
POSITION_RELATIONS = ("left of", "right of", "above", "below")


def _data_text(name: str) -> str:
    return resources.files("unirl_cli.data").joinpath("geneval", name).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _metadata_lines() -> tuple[str, ...]:
    return tuple(line for line in _data_text("evaluation_metadata.jsonl").splitlines() if line.strip())


def geneval_metadata() -> list[dict]:
    """The 553 prompt records (`tag`, `prompt`, `include`, maybe `exclude`), fresh copies in file order."""
    return [json.loads(line) for line in _metadata_lines()]


@lru_cache(maxsize=None)
def object_names() -> tuple[str, ...]:
    """The 80 detector class names; index i is the detector's class i."""
    return tuple(line.strip() for line in _data_text("object_names.txt").splitlines() if line.strip())


@lru_cache(maxsize=None)
def _questions_by_prompt() -> dict[str, tuple[str, str]]:
    rows = [json.loads(line) for line in _data_text("evaluation_metadata_qa.jsonl").splitlines() if line.strip()]
    return {row["prompt"]: (row["question"], row["answer"]) for row in rows}


def question_and_answer(metadata: dict) -> tuple[str, str]:
    """UniRL's question about an image of this prompt and its reference answer.

    GenEval prompts use UniRL's released QA file verbatim; any other prompt gets the same templates.
    """
    known = _questions_by_prompt().get(metadata.get("prompt", ""))
    if known is not None:
        return known
    from unirl_cli.data.qa import answer_for, question_for

    try:
        return question_for(metadata["tag"]), answer_for(metadata, style="unirl")
    except (KeyError, IndexError, ValueError) as err:
        raise UnirlError(f"no question can be asked about prompt {metadata.get('prompt')!r} (tag "
                         f"{metadata.get('tag')!r}); --understanding supports the six GenEval tags") from err


def validate_metadata(metadata: object, where: str) -> dict:
    """`metadata` if it is a GenEval prompt record; a `UnirlError` naming `where` otherwise."""
    if not isinstance(metadata, dict):
        raise UnirlError(f"{where} must hold one JSON object (a GenEval prompt record), not {type(metadata).__name__}")
    missing = [key for key in ("tag", "prompt", "include") if key not in metadata]
    if missing:
        raise UnirlError(f"{where} lacks {', '.join(missing)}; a GenEval record has tag, prompt and include")
    for key in ("include", "exclude"):
        for index, clause in enumerate(metadata.get(key, [])):
            if not isinstance(clause, dict) or "class" not in clause or "count" not in clause:
                raise UnirlError(f"{where}: every '{key}' clause needs 'class' and 'count', got {clause!r}")
            if clause.get("color") is not None and clause["color"] not in COLORS:
                raise UnirlError(f"{where}: colour {clause['color']!r} is not one of {', '.join(COLORS)}")
            position = clause.get("position")
            if position is not None and not _valid_position(position, index):
                raise UnirlError(f"{where}: position {position!r} needs a relation among "
                                 f"{', '.join(POSITION_RELATIONS)} and the index of an earlier include clause")
    return metadata


def _valid_position(position: object, clause_index: int) -> bool:
    return (isinstance(position, (list, tuple)) and len(position) == 2 and position[0] in POSITION_RELATIONS
            and isinstance(position[1], int) and 0 <= position[1] < clause_index)
