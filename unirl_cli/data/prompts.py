"""GenEval-style training prompts: a seeded generator, and JSONL files users can write by hand.

A record is GenEval's metadata line plus UniRL's question and answer:

    {"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}],
     "prompt": "a photo of two clocks", "question": "How many items in this image?", "answer": "two clocks"}

The generator never returns a GenEval test prompt, nor a prompt whose metadata equals a test prompt's
(UniRL keeps the two sets apart), so a model trained on its output can still be scored on GenEval fairly.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from unirl_cli.data.qa import TAGS, QaStyle, count_phrase, with_question_answer
from unirl_cli.data.vocab import RELATIONS, Vocabulary, custom_vocabulary, default_vocabulary, with_article
from unirl_cli.errors import UnirlError
from unirl_cli.fileio import atomic_path
from unirl_cli.resources import resolve_data_file

# Clause counts and per-clause keys each tag needs, so a hand-written file fails at load, not mid-training.
CLAUSES_PER_TAG = {"single_object": 1, "two_object": 2, "counting": 1, "colors": 1, "position": 2, "color_attr": 2}
REQUIRED_KEYS = ("tag", "include", "prompt")
GENEVAL_MAX_COUNT = 4


@lru_cache(maxsize=1)
def geneval_test_records() -> tuple[dict, ...]:
    """GenEval's 553 test records with UniRL's question and answer (`evaluation_metadata_qa.jsonl`)."""
    text = resources.files("unirl_cli.data").joinpath("geneval/evaluation_metadata_qa.jsonl").read_text()
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def records_by_tag(records: Iterable[dict]) -> dict[str, list[dict]]:
    """Prompt records grouped by their `tag`, tags in order of first appearance, records in their order."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record["tag"], []).append(record)
    return groups


def metadata_key(record: Mapping) -> str:
    """A canonical string for a record's tag and clauses; two prompts with the same key test the same thing."""
    clauses = {"tag": record["tag"], "include": record["include"], "exclude": record.get("exclude", [])}
    return json.dumps(clauses, sort_keys=True)


def _single_object(rng: random.Random, vocab: Vocabulary, style: QaStyle) -> dict:
    name = rng.choice(vocab.objects)
    return {"tag": "single_object", "include": [{"class": name, "count": 1}],
            "prompt": f"a photo of {with_article(name)}"}


def _two_object(rng: random.Random, vocab: Vocabulary, style: QaStyle) -> dict:
    first, second = rng.sample(vocab.objects, 2)
    return {"tag": "two_object", "include": [{"class": first, "count": 1}, {"class": second, "count": 1}],
            "prompt": f"a photo of {with_article(first)} and {with_article(second)}"}


def _counting(rng: random.Random, vocab: Vocabulary, style: QaStyle) -> dict:
    name, count = rng.choice(vocab.objects), rng.randint(2, GENEVAL_MAX_COUNT)
    return {"tag": "counting", "include": [{"class": name, "count": count}],
            "exclude": [{"class": name, "count": count + 1}],
            "prompt": f"a photo of {count_phrase(name, count, style, vocab.irregular_plurals)}"}


def _colors(rng: random.Random, vocab: Vocabulary, style: QaStyle) -> dict:
    name, color = rng.choice(vocab.colorable_objects()), rng.choice(vocab.colors)
    return {"tag": "colors", "include": [{"class": name, "count": 1, "color": color}],
            "prompt": f"a photo of {with_article(color)} {name}"}


def _position(rng: random.Random, vocab: Vocabulary, style: QaStyle) -> dict:
    subject, target = rng.sample(vocab.objects, 2)
    relation = rng.choice(RELATIONS)
    return {"tag": "position",
            "include": [{"class": target, "count": 1}, {"class": subject, "count": 1, "position": [relation, 0]}],
            "prompt": f"a photo of {with_article(subject)} {relation} {with_article(target)}"}


def _color_attr(rng: random.Random, vocab: Vocabulary, style: QaStyle) -> dict:
    first, second = rng.sample(vocab.colorable_objects(), 2)
    first_color, second_color = rng.sample(vocab.colors, 2)
    return {"tag": "color_attr",
            "include": [{"class": first, "count": 1, "color": first_color},
                        {"class": second, "count": 1, "color": second_color}],
            "prompt": f"a photo of {with_article(first_color)} {first} and {with_article(second_color)} {second}"}


SAMPLERS = {"single_object": _single_object, "two_object": _two_object, "counting": _counting,
            "colors": _colors, "position": _position, "color_attr": _color_attr}


def _tag_weights(tags: Sequence[str] | Mapping[str, float] | None) -> tuple[list[str], list[float]]:
    if tags is None:
        tags = {tag: 1.0 for tag in TAGS}
    elif not isinstance(tags, Mapping):
        tags = {tag: 1.0 for tag in tags}
    unknown = [tag for tag in tags if tag not in SAMPLERS]
    if unknown:
        raise UnirlError(f"unknown prompt tag(s) {unknown}; known: {', '.join(TAGS)}")
    if not tags or any(weight < 0 for weight in tags.values()) or sum(tags.values()) <= 0:
        raise UnirlError(f"tag weights must be non-negative with a positive sum, got {dict(tags)}")
    names = [tag for tag, weight in tags.items() if weight > 0]
    return names, [float(tags[tag]) for tag in names]


def generate_prompts(num_prompts: int, seed: int, objects: Iterable[str] | None = None,
                     colors: Iterable[str] | None = None, tags: Sequence[str] | Mapping[str, float] | None = None,
                     exclude_prompts: Iterable[str] = (), qa_style: QaStyle = "english",
                     vocabulary: Vocabulary | None = None) -> list[dict]:
    """`num_prompts` distinct GenEval-style records with question and answer, the same for the same arguments.

    `tags` is a list (equal mixture) or a {tag: weight} mapping. `objects`/`colors` replace the default
    160-object world (or pass a whole `vocabulary`). GenEval's test prompts and `exclude_prompts` are never
    returned; raises UnirlError when the world has too few distinct prompts left to reach `num_prompts`.
    """
    if num_prompts < 0:
        raise UnirlError(f"num_prompts must be >= 0, got {num_prompts}")
    vocab = vocabulary or _vocabulary_from(objects, colors)
    tag_names, weights = _tag_weights(tags)
    forbidden_prompts = {record["prompt"] for record in geneval_test_records()} | set(exclude_prompts)
    forbidden_keys = {metadata_key(record) for record in geneval_test_records()}
    rng = random.Random(seed)
    records, seen_prompts = [], set()
    # A world that has run out of unseen prompts shows up as a long run of rejected draws.
    rejected_in_a_row, max_rejected_in_a_row = 0, 20_000
    while len(records) < num_prompts:
        if rejected_in_a_row > max_rejected_in_a_row:
            raise UnirlError(f"only {len(records)} distinct prompts of tags {tag_names} could be drawn from "
                             f"{len(vocab.objects)} objects after excluding test prompts; ask for fewer "
                             f"prompts or add objects/colours")
        tag = rng.choices(tag_names, weights)[0]
        record = SAMPLERS[tag](rng, vocab, qa_style)
        prompt = record["prompt"]
        if prompt in forbidden_prompts or prompt in seen_prompts or metadata_key(record) in forbidden_keys:
            rejected_in_a_row += 1
            continue
        rejected_in_a_row = 0
        seen_prompts.add(prompt)
        records.append(with_question_answer(record, qa_style, vocab.irregular_plurals))
    return records


def _vocabulary_from(objects: Iterable[str] | None, colors: Iterable[str] | None) -> Vocabulary:
    default = default_vocabulary()
    if objects is None and colors is None:
        return default
    return custom_vocabulary(default.objects if objects is None else objects,
                             default.colors if colors is None else colors)


def validate_record(record: object, where: str) -> None:
    """Raise UnirlError, prefixed with `where` (file:line), unless `record` is a usable prompt record."""
    if not isinstance(record, dict):
        raise UnirlError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise UnirlError(f"{where}: missing key(s) {missing}; each line needs {list(REQUIRED_KEYS)}")
    tag, include = record["tag"], record["include"]
    if tag not in CLAUSES_PER_TAG:
        raise UnirlError(f"{where}: unknown tag {tag!r}; known: {', '.join(TAGS)}")
    if not isinstance(record["prompt"], str) or not record["prompt"].strip():
        raise UnirlError(f"{where}: 'prompt' must be a non-empty string")
    if not isinstance(include, list) or len(include) != CLAUSES_PER_TAG[tag]:
        raise UnirlError(f"{where}: tag {tag!r} needs 'include' to be a list of {CLAUSES_PER_TAG[tag]} "
                         f"clause(s), got {include!r}")
    for clause in include + list(record.get("exclude", [])):
        _validate_clause(clause, len(include), where)
    needs_color = {"colors": [0], "color_attr": [0, 1]}.get(tag, [])
    if any("color" not in include[index] for index in needs_color):
        raise UnirlError(f"{where}: tag {tag!r} needs a 'color' in its include clause(s)")
    if tag == "position" and "position" not in include[1]:
        raise UnirlError(f"{where}: tag 'position' needs \"position\": [relation, 0] in its second clause")
    for key in ("question", "answer"):
        if key in record and not isinstance(record[key], str):
            raise UnirlError(f"{where}: {key!r} must be a string")


def _validate_clause(clause: object, num_include: int, where: str) -> None:
    if not isinstance(clause, dict) or not isinstance(clause.get("class"), str) or not clause["class"].strip():
        raise UnirlError(f"{where}: each clause needs a 'class' name, got {clause!r}")
    count = clause.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise UnirlError(f"{where}: clause {clause['class']!r} needs an integer 'count' >= 1, got {count!r}")
    if "color" in clause and not isinstance(clause["color"], str):
        raise UnirlError(f"{where}: clause {clause['class']!r} has a non-string 'color'")
    if "position" in clause:
        position = clause["position"]
        if (not isinstance(position, list) or len(position) != 2 or position[0] not in RELATIONS
                or not isinstance(position[1], int) or not 0 <= position[1] < num_include):
            raise UnirlError(f"{where}: clause {clause['class']!r} needs 'position' as [relation, index] with "
                             f"relation in {list(RELATIONS)} and a valid clause index, got {position!r}")


def read_prompts(path: str | Path, qa_style: QaStyle = "english") -> list[dict]:
    """Read and validate a prompt JSONL file; lines without `question`/`answer` get them from the templates.

    Blank lines are skipped. Any bad line raises UnirlError naming the file and its 1-based line number.
    """
    path = resolve_data_file(path)
    if not path.is_file():
        raise UnirlError(f"prompt file {path} does not exist; write one with `unirl prompts generate` or pass another path")
    records = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UnirlError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
        validate_record(record, where)
        records.append(with_question_answer(record, qa_style))
    if not records:
        raise UnirlError(f"prompt file {path} holds no prompts")
    return records


def write_prompts(path: str | Path, records: Iterable[Mapping]) -> Path:
    """Validate, then write records as JSONL, one per line, atomically; returns the path."""
    path = Path(path)
    records = [dict(record) for record in records]
    for index, record in enumerate(records):
        validate_record(record, f"record {index} for {path}")
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def geneval_overlap(records: Iterable[Mapping]) -> list[str]:
    """Prompts in `records` that are GenEval test prompts (by text or by metadata); empty when the sets are apart.

    Use it on hand-written prompt files: training on test prompts makes GenEval scores meaningless.
    """
    test_prompts = {record["prompt"] for record in geneval_test_records()}
    test_keys = {metadata_key(record) for record in geneval_test_records()}
    return [record["prompt"] for record in records
            if record["prompt"] in test_prompts or metadata_key(record) in test_keys]
