"""Prompt generation, UniRL's QA templates and the prompt JSONL format."""

from __future__ import annotations

import collections
import json

import pytest

from unirl_cli.data.prompts import (generate_prompts, geneval_overlap, geneval_test_records, metadata_key,
                                    read_prompts, write_prompts)
from unirl_cli.data.qa import QUESTIONS, TAGS, answer_for, question_for, with_question_answer
from unirl_cli.data.vocab import (EVERYDAY_OBJECTS, GENEVAL_COLORS, default_vocabulary, english_plural,
                                  geneval_object_names, geneval_plural)
from unirl_cli.errors import UnirlError

SHAPES = ["circle", "square", "triangle", "star", "hexagon"]


def test_released_qa_file_is_geneval_metadata_plus_question_and_answer():
    records = geneval_test_records()
    assert len(records) == 553
    assert collections.Counter(r["tag"] for r in records) == {
        "position": 100, "color_attr": 100, "two_object": 99, "colors": 94, "single_object": 80, "counting": 80}


@pytest.mark.parametrize("record", geneval_test_records(), ids=lambda r: r["prompt"])
def test_templates_rebuild_every_released_question_and_answer(record):
    assert question_for(record["tag"]) == record["question"]
    assert answer_for(record, style="unirl") == record["answer"]


def test_unirl_style_keeps_the_released_quirks_and_english_style_fixes_them():
    oven = {"tag": "two_object", "include": [{"class": "toaster", "count": 1}, {"class": "oven", "count": 1}]}
    assert answer_for(oven, "unirl") == "There is a toaster and a oven"
    assert answer_for(oven, "english") == "There is a toaster and an oven"
    knives = {"tag": "counting", "include": [{"class": "knife", "count": 4}]}
    assert answer_for(knives, "unirl") == "four knifes"
    assert answer_for(knives, "english") == "four knives"
    people = {"tag": "counting", "include": [{"class": "person", "count": 3}]}
    assert answer_for(people, "english") == "three people"


def test_plural_rules():
    assert [geneval_plural(n) for n in ("bus", "bench", "sheep")] == ["buses", "benchs", "sheeps"]
    assert [english_plural(n) for n in ("bus", "bench", "sheep", "wine glass", "strawberry", "computer mouse",
                                        "key", "leaf")] == [
        "buses", "benches", "sheep", "wine glasses", "strawberries", "computer mice", "keys", "leaves"]


def test_default_vocabulary_is_coco_plus_80_everyday_objects():
    vocab = default_vocabulary()
    assert len(geneval_object_names()) == 80 and geneval_object_names()[0] == "person"
    assert len(EVERYDAY_OBJECTS) == 80 and len(vocab.objects) == 160 == len(set(vocab.objects))
    assert vocab.colors == GENEVAL_COLORS and "person" not in vocab.colorable_objects()


def test_same_seed_same_prompts_other_seed_other_prompts():
    assert generate_prompts(300, seed=7) == generate_prompts(300, seed=7)
    assert generate_prompts(300, seed=7) != generate_prompts(300, seed=8)
    assert generate_prompts(50, seed=7) == generate_prompts(300, seed=7)[:50]


def test_generated_prompts_never_repeat_a_geneval_test_prompt_or_its_metadata():
    records = generate_prompts(6000, seed=0)
    test_prompts = {r["prompt"] for r in geneval_test_records()}
    test_keys = {metadata_key(r) for r in geneval_test_records()}
    assert not {r["prompt"] for r in records} & test_prompts
    assert not {metadata_key(r) for r in records} & test_keys
    assert len({r["prompt"] for r in records}) == len(records)
    assert geneval_overlap(records) == []
    test_record = dict(geneval_test_records()[300], prompt="a rephrased test prompt")
    assert geneval_overlap([*records[:5], test_record]) == ["a rephrased test prompt"]


def test_records_follow_geneval_metadata_and_qa_templates():
    for record in generate_prompts(600, seed=1):
        include, tag = record["include"], record["tag"]
        assert record["question"] == QUESTIONS[tag]
        assert record["answer"] == answer_for(record)
        assert record["prompt"].startswith("a photo of ")
        if tag == "counting":
            count = include[0]["count"]
            assert 2 <= count <= 4 and record["exclude"] == [{"class": include[0]["class"], "count": count + 1}]
        if tag == "position":
            assert include[1]["position"][0] in ("left of", "right of", "above", "below")
            assert include[1]["position"][1] == 0
            assert record["prompt"] == (f"a photo of {_article(include[1]['class'])} {include[1]['position'][0]} "
                                        f"{_article(include[0]['class'])}")
        if tag == "color_attr":
            assert include[0]["color"] != include[1]["color"] and "person" not in {c["class"] for c in include}


def _article(word):
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def test_tag_mixture_is_configurable():
    records = generate_prompts(400, seed=3, tags={"position": 3.0, "colors": 1.0})
    counts = collections.Counter(r["tag"] for r in records)
    assert set(counts) == {"position", "colors"} and 250 < counts["position"] < 350
    only_counting = generate_prompts(50, seed=3, tags=["counting"])
    assert {r["tag"] for r in only_counting} == {"counting"}
    with pytest.raises(UnirlError, match="unknown prompt tag"):
        generate_prompts(5, seed=3, tags=["counts"])


def test_another_world_reuses_the_generator_with_its_own_vocabulary():
    records = generate_prompts(60, seed=2, objects=SHAPES, colors=["red", "green", "blue"])
    classes = {c["class"] for r in records for c in r["include"]}
    colors = {c["color"] for r in records for c in r["include"] if "color" in c}
    assert classes <= set(SHAPES) and colors <= {"red", "green", "blue"}
    assert all(r["answer"] == answer_for(r) for r in records) and len({r["tag"] for r in records}) == 6
    with pytest.raises(UnirlError, match="distinct prompts"):
        generate_prompts(10, seed=2, objects=SHAPES, tags=["single_object"])


def test_exclude_prompts_are_never_generated():
    first = generate_prompts(100, seed=4)
    excluded = {r["prompt"] for r in first[:50]}
    again = generate_prompts(100, seed=4, exclude_prompts=excluded)
    assert not excluded & {r["prompt"] for r in again}


def test_write_then_read_round_trips(tmp_path):
    records = generate_prompts(40, seed=5)
    path = write_prompts(tmp_path / "prompts.jsonl", records)
    assert read_prompts(path) == records


def test_user_file_without_question_or_answer_gets_them_from_templates(tmp_path):
    path = tmp_path / "mine.jsonl"
    lines = [{"tag": "position", "prompt": "a photo of a cat above a sofa",
              "include": [{"class": "couch", "count": 1}, {"class": "cat", "count": 1, "position": ["above", 0]}]},
             {"tag": "counting", "prompt": "a photo of three mice", "include": [{"class": "computer mouse",
                                                                                "count": 3}],
              "question": "Count them."}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    first, second = read_prompts(path)
    assert first["question"] == QUESTIONS["position"] and first["answer"] == "The cat is above the couch"
    assert second["question"] == "Count them." and second["answer"] == "three computer mice"


GOOD = {"tag": "colors", "include": [{"class": "cup", "count": 1, "color": "red"}], "prompt": "a photo of a red cup"}


@pytest.mark.parametrize("bad_line, message", [
    ("{not json", "not valid JSON"),
    (json.dumps([1, 2]), "expected a JSON object"),
    (json.dumps({"tag": "colors", "prompt": "x"}), "missing key"),
    (json.dumps({**GOOD, "tag": "colour"}), "unknown tag 'colour'"),
    (json.dumps({**GOOD, "include": [{"class": "cup", "count": 1}]}), "needs a 'color'"),
    (json.dumps({**GOOD, "include": [{"class": "cup", "count": 0, "color": "red"}]}), "count"),
    (json.dumps({**GOOD, "tag": "two_object"}), "list of 2 clause"),
    (json.dumps({"tag": "position", "prompt": "p", "include": [{"class": "a", "count": 1},
                                                                {"class": "b", "count": 1, "position": ["near", 0]}]}),
     "position"),
    (json.dumps({**GOOD, "answer": 3}), "'answer' must be a string"),
])
def test_malformed_lines_name_file_and_line_number(tmp_path, bad_line, message):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + bad_line + "\n")
    with pytest.raises(UnirlError, match=message) as error:
        read_prompts(path)
    assert f"{path}:3:" in str(error.value)


def test_write_refuses_invalid_records(tmp_path):
    with pytest.raises(UnirlError, match="record 1 for .*unknown tag"):
        write_prompts(tmp_path / "out.jsonl", [GOOD, {**GOOD, "tag": "shape"}])
    assert not (tmp_path / "out.jsonl").exists()


def test_missing_or_empty_file_is_a_user_error(tmp_path):
    with pytest.raises(UnirlError, match="does not exist"):
        read_prompts(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UnirlError, match="no prompts"):
        read_prompts(tmp_path / "empty.jsonl")


def test_with_question_answer_keeps_existing_fields():
    record = {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "answer": "a bench"}
    assert with_question_answer(record) == {**record, "question": QUESTIONS["single_object"]}
    assert set(TAGS) == set(QUESTIONS)
