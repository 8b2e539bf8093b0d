"""Turn a free-text answer into mentions: objects, colours, numbers, relations and sides.

The answer is lower-cased, punctuation becomes a clause separator, articles are dropped, and the tokens are
matched longest-first against a lexicon built from the vocabulary (every object in singular, English plural,
GenEval's naive plural and its aliases; "wine glass" wins over "glass", "hot dog" over "dog"). Words that are
both an object and a colour ("orange") are decided from context afterwards (see `_resolve_color_or_object`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from unirl_cli.data.vocab import (ALIAS_PLURALS, IRREGULAR_PLURALS, NUMBER_WORDS, english_plural,
                                  geneval_plural)

ARTICLES = frozenset({"a", "an", "the"})
NEGATIONS = frozenset({"no", "not", "without", "none", "nor"})
SEPARATOR = ","
CLAUSE_BREAKS = frozenset({SEPARATOR, "and", "while", "whereas", "but"})
COPULAS = frozenset({"is", "are", "was", "were", "be", "being", "looks", "look", "appears", "appear", "seems",
                     "color", "colour", "colored", "coloured", "painted", "in"})
# Words allowed between a colour adjective and its noun: "purple colored wine glass", "dark blue cup".
COLOR_MODIFIERS = frozenset({"colored", "coloured", "color", "colour", "light", "dark", "bright", "pale", "deep"})

# Colour words outside GenEval's ten: recognised so that "gray" or "blue and silver" counts as a (wrong) colour
# claim instead of being ignored. They are not mapped onto the ten ("violet" is not "purple").
OTHER_COLOR_WORDS = ("gray", "grey", "silver", "gold", "golden", "beige", "violet", "magenta", "cyan", "turquoise",
                     "navy", "maroon", "teal", "tan")

RELATION_PHRASES = {
    "left of": [("left", "of"), ("left", "side", "of"), ("left", "hand", "side", "of")],
    "right of": [("right", "of"), ("right", "side", "of"), ("right", "hand", "side", "of")],
    "above": [("above",), ("over",), ("on", "top", "of"), ("atop",), ("higher", "than")],
    "below": [("below",), ("under",), ("underneath",), ("beneath",), ("lower", "than")],
}
# A side without "of" ("the dog is on the right") only counts when the other object takes the opposite side.
SIDE_PHRASES = {"right of": [("right",), ("right", "side")], "left of": [("left",), ("left", "side")],
                "above": [("top",)], "below": [("bottom",)]}


@dataclass(frozen=True)
class Mention:
    """One recognised phrase: `kind` is object/color/number/relation/side/ambiguous, `value` its meaning."""

    kind: str
    value: str
    start: int
    end: int
    plural: bool | None = None  # objects: True/False, None where singular and plural are spelled alike
    negated: bool = False


def normalize_tokens(answer: str) -> list[str]:
    """Lower-case word tokens of `answer` with articles removed and punctuation kept as a separator token."""
    text = answer.lower().replace("n't", " not").replace("'s", "")
    text = re.sub(r"[-_/]", " ", text)
    text = re.sub(r"[,.;:!?()\[\]\"]", f" {SEPARATOR} ", text)
    text = re.sub(r"[^a-z0-9, ]", " ", text)
    return [token for token in text.split() if token not in ARTICLES]


def _object_forms(name: str, irregular: dict[str, str]) -> dict[str, bool | None]:
    """Spellings of `name` -> plural flag; GenEval's naive plural ("knifes", "sheeps") is accepted too."""
    plurals = {english_plural(name, irregular), geneval_plural(name)}
    forms: dict[str, bool | None] = {plural: True for plural in plurals}
    forms[name] = None if name in plurals else False
    return forms


@lru_cache(maxsize=256)
def build_lexicon(objects: tuple[str, ...], colors: tuple[str, ...],
                  aliases: tuple[tuple[str, str], ...]) -> dict[tuple[str, ...], list[tuple[str, str, bool | None]]]:
    """Phrase (token tuple) -> candidate meanings (kind, value, plural). Cached per vocabulary."""
    lexicon: dict[tuple[str, ...], list[tuple[str, str, bool | None]]] = {}

    def add(phrase: str | tuple[str, ...], kind: str, value: str, plural: bool | None = None) -> None:
        key = tuple(phrase.split()) if isinstance(phrase, str) else phrase
        if (kind, value, plural) not in lexicon.setdefault(key, []):
            lexicon[key].append((kind, value, plural))

    irregular = {**IRREGULAR_PLURALS, **ALIAS_PLURALS}
    for name in objects:
        for form, plural in _object_forms(name, irregular).items():
            add(form, "object", name, plural)
    for alias, name in aliases:
        if name in objects:
            for form, plural in _object_forms(alias, irregular).items():
                add(form, "object", name, plural)
    for color in colors + tuple(word for word in OTHER_COLOR_WORDS if word not in colors):
        add(color, "color", color)
    for relation, phrases in RELATION_PHRASES.items():
        for phrase in phrases:
            add(phrase, "relation", relation)
    for relation, phrases in SIDE_PHRASES.items():
        for phrase in phrases:
            add(phrase, "side", relation)
    return lexicon


NUMBER_SYNONYMS = {"pair": 2, "couple": 2, "single": 1}


def _number_value(token: str) -> int | None:
    if token.isdigit():
        return int(token)
    if token in NUMBER_SYNONYMS:
        return NUMBER_SYNONYMS[token]
    return NUMBER_WORDS.index(token) if token in NUMBER_WORDS else None


def lex_answer(tokens: list[str], lexicon: dict, longest_phrase: int = 5) -> list[Mention]:
    """Longest-first match of `tokens` against `lexicon`; numbers are recognised on their own."""
    mentions, index = [], 0
    while index < len(tokens):
        for length in range(min(longest_phrase, len(tokens) - index), 0, -1):
            candidates = lexicon.get(tuple(tokens[index:index + length]))
            if candidates:
                mentions.append(_mention_from(candidates, index, index + length, tokens))
                index += length
                break
        else:
            number = _number_value(tokens[index])
            if number is not None:
                mentions.append(Mention("number", str(number), index, index + 1))
            index += 1
    return mentions


def _is_negated(start: int, tokens: list[str], window: int = 2) -> bool:
    """True when "no"/"not"/"without" comes at most `window` words before, in the same clause ("not a red cup")."""
    for token in reversed(tokens[max(0, start - window):start]):
        if token in CLAUSE_BREAKS:
            return False
        if token in NEGATIONS:
            return True
    return False


def _mention_from(candidates: list, start: int, end: int, tokens: list[str]) -> Mention:
    negated = _is_negated(start, tokens)
    kinds = {kind for kind, _, _ in candidates}
    if kinds == {"object", "color"}:
        return Mention("ambiguous", candidates[0][1], start, end, negated=negated)
    objects = [candidate for candidate in candidates if candidate[0] == "object"]
    if objects:
        # A form can be plural of one reading and singular of none ("skis"); any plural reading marks it plural.
        plurals = {plural for _, _, plural in objects}
        plural = True if True in plurals else (None if None in plurals else False)
        return Mention("object", objects[0][1], start, end, plural=plural, negated=negated)
    kind, value, _ = candidates[0]
    return Mention(kind, value, start, end, negated=negated)


def _resolve_color_or_object(mention: Mention, following: Mention | None, earlier: list[Mention],
                             tokens: list[str], expected_classes: set[str]) -> Mention:
    """Decide whether an "orange" is the colour or the fruit.

    A colour if it comes right before a noun ("orange cup") or after "is" with a subject before it in the same
    clause ("the cup is orange"); otherwise the object if the prompt has that object ("there is an orange"),
    else the colour.
    """
    before = tokens[mention.start - 1] if mention.start > 0 else ""
    adjective = (following is not None and following.kind in ("object", "ambiguous")
                 and words_between_are_modifiers(mention, following, tokens))
    has_subject = any(m.kind == "object" and not set(tokens[m.end:mention.start]) & CLAUSE_BREAKS
                      for m in earlier)
    if adjective or (before in COPULAS and has_subject) or mention.value not in expected_classes:
        return Mention("color", mention.value, mention.start, mention.end, negated=mention.negated)
    return Mention("object", mention.value, mention.start, mention.end, plural=False, negated=mention.negated)


def words_between_are_modifiers(left: Mention, right: Mention, tokens: list[str]) -> bool:
    """True when only colour modifiers ("dark", "colored") or nothing separate the two mentions."""
    between = tokens[left.end:right.start]
    return all(token in COLOR_MODIFIERS for token in between)


def parse_answer(answer: str, lexicon: dict, expected_classes: set[str]) -> tuple[list[str], list[Mention]]:
    """Tokens and resolved mentions of `answer` (no "ambiguous" mentions remain)."""
    tokens = normalize_tokens(answer)
    mentions = lex_answer(tokens, lexicon)
    resolved = []
    for position, mention in enumerate(mentions):
        if mention.kind == "ambiguous":
            following = mentions[position + 1] if position + 1 < len(mentions) else None
            mention = _resolve_color_or_object(mention, following, resolved, tokens, expected_classes)
        resolved.append(mention)
    return tokens, resolved
