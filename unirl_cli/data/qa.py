"""The question asked about each generated image and its ground-truth answer, one template per GenEval tag.

The questions are UniRL's, verbatim (including their odd capitals and the missing full stop of color_attr),
because the released checkpoints were trained and evaluated on them. Answers follow from the metadata:

| tag           | answer                                              |
|---------------|-----------------------------------------------------|
| single_object | `bench`                                             |
| two_object    | `There is a bench and a sports ball`                |
| counting      | `two clocks`                                        |
| colors        | `blue`                                              |
| position      | `The dog is right of the teddy bear`                |
| color_attr    | `The wine glass is purple and the apple is black`   |

Style "unirl" rebuilds the released `evaluation_metadata_qa.jsonl` exactly, quirks included: "a" before every
noun ("There is a toaster and a oven") and GenEval's naive plural ("two sheeps", "four knifes"). Style "english"
(the default for new prompts) fixes both: "an oven", "two sheep", "four knives".
"""

from __future__ import annotations

from typing import Literal, Mapping

from unirl_cli.data.vocab import IRREGULAR_PLURALS, NUMBER_WORDS, english_plural, geneval_plural, with_article

QaStyle = Literal["unirl", "english"]
QA_STYLES = ("unirl", "english")

QUESTIONS = {
    "single_object": "What is the main item in this image?",
    "two_object": "What are two items in this image?",
    "counting": "How many items in this image?",
    "colors": "What is the color of the object?",
    "position": "What are two objects and What is position relationship between two main items? "
                "Use one sentence.",
    "color_attr": "What are two objects and the colors of two objects in the image? Use one sentence",
}
TAGS = tuple(QUESTIONS)


def count_phrase(class_name: str, count: int, style: QaStyle = "english",
                 irregular_plurals: Mapping[str, str] | None = None) -> str:
    """`count` objects in words: "two clocks"; "a clock" for one; digits past twelve."""
    if count == 1:
        return with_article(class_name)
    number = NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else str(count)
    if style == "unirl":
        return f"{number} {geneval_plural(class_name)}"
    irregular = dict(IRREGULAR_PLURALS if irregular_plurals is None else irregular_plurals)
    return f"{number} {english_plural(class_name, irregular)}"


def question_for(tag: str) -> str:
    """UniRL's fixed question for a GenEval tag."""
    return QUESTIONS[tag]


def answer_for(record: Mapping, style: QaStyle = "english",
               irregular_plurals: Mapping[str, str] | None = None) -> str:
    """The ground-truth answer for a prompt record (`tag` and `include` as in GenEval's metadata).

    The record must already be valid for its tag (see `prompts.validate_record`): a wrong clause count raises
    IndexError here, not a friendly error.
    """
    tag, include = record["tag"], record["include"]

    def article(word: str) -> str:
        return f"a {word}" if style == "unirl" else with_article(word)

    if tag == "single_object":
        return include[0]["class"]
    if tag == "two_object":
        return f"There is {article(include[0]['class'])} and {article(include[1]['class'])}"
    if tag == "counting":
        return count_phrase(include[0]["class"], include[0]["count"], style, irregular_plurals)
    if tag == "colors":
        return include[0]["color"]
    if tag == "position":
        target, subject = include[0], include[1]
        return f"The {subject['class']} is {subject['position'][0]} the {target['class']}"
    if tag == "color_attr":
        first, second = include
        return f"The {first['class']} is {first['color']} and the {second['class']} is {second['color']}"
    raise ValueError(f"unknown tag {tag!r}; known: {', '.join(TAGS)}")


def with_question_answer(record: Mapping, style: QaStyle = "english",
                         irregular_plurals: Mapping[str, str] | None = None) -> dict:
    """A copy of `record` with `question` and `answer` filled in from the templates where missing."""
    filled = dict(record)
    filled.setdefault("question", question_for(record["tag"]))
    filled.setdefault("answer", answer_for(record, style, irregular_plurals))
    return filled
