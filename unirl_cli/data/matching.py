"""Deterministic answer matching: does a model's answer state every fact its prompt's metadata requires?

Each tag needs a fixed list of facts (objects named, counts, colours bound to the right object, a relation in
the right direction). The score is 1.0 when all are stated and nothing else is claimed; with `partial=True`
it is the fraction satisfied / (required + extra claims), so naming five objects to hit one scores 1/5.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Mapping

from unirl_cli.data.answer_parsing import (CLAUSE_BREAKS, SEPARATOR, Mention, build_lexicon, parse_answer,
                                           words_between_are_modifiers)
from unirl_cli.data.qa import TAGS, answer_for, question_for
from unirl_cli.data.vocab import INVERSE_RELATION, Vocabulary, default_vocabulary
from unirl_cli.errors import UnirlError

if TYPE_CHECKING:
    from unirl_cli.data.judge import AnswerJudge

# Words that end the phrase a number can quantify: "two or three clocks" leaves "two" unattached.
NUMBER_BREAKS = frozenset({SEPARATOR, "and", "or", "is", "are", "but", "with", "than", "then"})
MAX_WORDS_BETWEEN_NUMBER_AND_NOUN = 3


@dataclass(frozen=True)
class Facts:
    """How many of a tag's required facts an answer states, and how many unrequested claims it makes."""

    satisfied: int
    required: int
    extras: int = 0

    def score(self, partial: bool) -> float:
        """Fraction of credit: partial credit, or all-or-nothing."""
        credit = self.satisfied / (self.required + self.extras)
        return credit if partial else float(credit == 1.0)


def _objects(mentions: list[Mention]) -> list[Mention]:
    return [mention for mention in mentions if mention.kind == "object" and not mention.negated]


def _extra_objects(mentions: list[Mention], required: set[str]) -> int:
    return len({mention.value for mention in _objects(mentions)} - required)


def _named_facts(include: list[dict], mentions: list[Mention]) -> Facts:
    required = {clause["class"] for clause in include}
    named = {mention.value for mention in _objects(mentions)}
    return Facts(len(required & named), len(required), _extra_objects(mentions, required))


def _number_binding(mentions: list[Mention], tokens: list[str]) -> dict[int, int]:
    """Number mention index -> index of the object it quantifies ("two red clocks", "3 of the clocks")."""
    bound = {}
    for index, mention in enumerate(mentions):
        if mention.kind != "number":
            continue
        for later_index in range(index + 1, len(mentions)):
            later = mentions[later_index]
            words_between = tokens[mention.end:later.start]
            if set(words_between) & NUMBER_BREAKS or len(words_between) > MAX_WORDS_BETWEEN_NUMBER_AND_NOUN:
                break
            if later.kind == "object":
                bound[index] = later_index
                break
            if later.kind != "color":
                break
    return bound


def _counting_facts(include: list[dict], mentions: list[Mention], tokens: list[str]) -> Facts:
    class_name, count = include[0]["class"], include[0]["count"]
    named = _named_facts(include, mentions)
    bound = _number_binding(mentions, tokens)
    targets = {index for index, mention in enumerate(mentions)
               if mention.kind == "object" and not mention.negated and mention.value == class_name}
    counts = {int(mentions[number].value) for number, noun in bound.items() if noun in targets}
    loose_numbers = {int(mention.value) for index, mention in enumerate(mentions)
                     if mention.kind == "number" and index not in bound}
    if not counts and len(loose_numbers) == 1:
        counts = set(loose_numbers)  # "clocks: 3", "I count 2 of them"
    elif loose_numbers - {count}:
        counts.add(-1)  # a stray different number is a hedge ("two or three clocks")
    if not counts and targets and all(mentions[index].plural is False for index in targets):
        counts = {1}  # "a clock"
    count_right = int(counts == {count})
    return Facts(named.satisfied + count_right, named.required + 1, named.extras)


def _colors_facts(include: list[dict], mentions: list[Mention]) -> Facts:
    color, class_name = include[0]["color"], include[0]["class"]
    stated = {mention.value for mention in mentions if mention.kind == "color" and not mention.negated}
    # "orange" alone, for an orange orange, reads as the object; it still names the colour asked for.
    only_the_object = color == class_name and {m.value for m in mentions if not m.negated} == {color}
    satisfied = int(color in stated or only_the_object)
    return Facts(satisfied, 1, len(stated - {color}))


def _color_bindings(mentions: list[Mention], tokens: list[str]) -> dict[str, set[str]]:
    """Object class -> colours said of it: adjectives ("purple cup") or predicates ("the cup is purple")."""
    bindings: dict[str, set[str]] = {}
    for index, mention in enumerate(mentions):
        if mention.kind != "color" or mention.negated:
            continue
        following = mentions[index + 1] if index + 1 < len(mentions) else None
        adjective = following is not None and following.kind == "object"
        if adjective and words_between_are_modifiers(mention, following, tokens):
            owner = following
        else:
            earlier = [m for m in mentions[:index] if m.kind == "object" and not m.negated]
            owner = earlier[-1] if earlier else None
        if owner is not None:
            bindings.setdefault(owner.value, set()).add(mention.value)
    return bindings


def _color_attr_facts(include: list[dict], mentions: list[Mention], tokens: list[str]) -> Facts:
    named = _named_facts(include, mentions)
    bindings = _color_bindings(mentions, tokens)
    colours_right = sum(bindings.get(clause["class"]) == {clause["color"]} for clause in include)
    return Facts(named.satisfied + colours_right, named.required + len(include), named.extras)


def _in_one_clause(left: Mention, right: Mention, tokens: list[str]) -> bool:
    return not set(tokens[left.end:right.start]) & CLAUSE_BREAKS


def _relation_triples(mentions: list[Mention], tokens: list[str]) -> list[tuple[str, str, str]]:
    """(subject, relation, landmark) statements: "A is left of B", "left of B is A", "A on the left, B on the right"."""
    objects = _objects(mentions)
    triples = []
    for relation in (m for m in mentions if m.kind == "relation" and not m.negated):
        before = [o for o in objects if o.end <= relation.start]
        after = [o for o in objects if o.start >= relation.end]
        if before and after:
            triples.append((before[-1].value, relation.value, after[0].value))
        elif len(after) >= 2:
            triples.append((after[1].value, relation.value, after[0].value))
    sides = {}
    for side in (m for m in mentions if m.kind == "side" and not m.negated):
        before = [o for o in objects if o.end <= side.start and _in_one_clause(o, side, tokens)]
        after = [o for o in objects if o.start >= side.end and _in_one_clause(side, o, tokens)]
        owner = before[-1] if before else (after[0] if after else None)
        if owner is not None:
            sides[owner.value] = side.value
    for subject, relation in sides.items():
        for landmark, other in sides.items():
            if landmark != subject and other == INVERSE_RELATION[relation]:
                triples.append((subject, relation, landmark))
    return triples


def _position_facts(include: list[dict], mentions: list[Mention], tokens: list[str]) -> Facts:
    named = _named_facts(include, mentions)
    landmark, subject = include[0]["class"], include[1]["class"]
    relation = include[1]["position"][0]
    said = []
    for first, stated, second in _relation_triples(mentions, tokens):
        if (first, second) == (subject, landmark):
            said.append(stated)
        elif (first, second) == (landmark, subject):
            said.append(INVERSE_RELATION[stated])
    relation_right = int(bool(said) and set(said) == {relation})
    return Facts(named.satisfied + relation_right, named.required + 1, named.extras)


def answer_facts(tag: str, include: list[dict], mentions: list[Mention], tokens: list[str]) -> Facts:
    """The facts an answer states for a tag's include clauses."""
    if tag in ("single_object", "two_object"):
        return _named_facts(include, mentions)
    if tag == "counting":
        return _counting_facts(include, mentions, tokens)
    if tag == "colors":
        return _colors_facts(include, mentions)
    if tag == "position":
        return _position_facts(include, mentions, tokens)
    return _color_attr_facts(include, mentions, tokens)


@lru_cache(maxsize=1)
def _default_vocabulary() -> Vocabulary:
    return default_vocabulary()


def match_answer(tag: str, metadata: Mapping, answer: str, partial: bool = False,
                 vocabulary: Vocabulary | None = None) -> float:
    """1.0 if `answer` states every fact `metadata` (GenEval's include clauses) requires for `tag`, else 0.0.

    With `partial=True`, the fraction of facts stated (extra objects or colours count against it). Classes and
    colours in `metadata` are always recognised, so another world's prompts match without passing `vocabulary`.
    """
    if tag not in TAGS:
        raise UnirlError(f"unknown tag {tag!r}; known: {', '.join(TAGS)}")
    include = list(metadata["include"])
    vocab = vocabulary or _default_vocabulary()
    classes = tuple(dict.fromkeys([*vocab.objects, *(clause["class"] for clause in include)]))
    colors = tuple(dict.fromkeys([*vocab.colors, *(c["color"] for c in include if "color" in c)]))
    lexicon = build_lexicon(classes, colors, tuple(sorted(vocab.aliases.items())))
    tokens, mentions = parse_answer(answer, lexicon, {clause["class"] for clause in include})
    return answer_facts(tag, include, mentions, tokens).score(partial)


def match_answer_with_judge(tag: str, metadata: Mapping, answer: str, judge: "AnswerJudge",
                            question: str | None = None, reference_answer: str | None = None) -> float:
    """1.0 if an LLM `judge` (see `judge.AnswerJudge.load`) says `answer` agrees with the reference, else 0.0.

    The question and reference default to the record's own `question`/`answer`, then to UniRL's templates.
    """
    if tag not in TAGS:
        raise UnirlError(f"unknown tag {tag!r}; known: {', '.join(TAGS)}")
    record = {"tag": tag, **metadata}
    question = question or record.get("question") or question_for(tag)
    reference_answer = reference_answer or record.get("answer") or answer_for(record)
    return judge.score(question, reference_answer, answer)
