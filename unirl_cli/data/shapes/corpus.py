"""The sentences of the shapes world (prompts, questions, answers, chat markers): what the minis' tokenizers
are trained on, so that every word of the world is one token."""

from __future__ import annotations

from unirl_cli.data.shapes.spec import COLOR_NAMES, SHAPES

JANUS_MARKERS = ("<|User|>:", "<|Assistant|>:", "\n\n<|Assistant|>:")


def world_sentences(markers: tuple[str, ...] = JANUS_MARKERS) -> list[str]:
    """Every sentence the world's prompts, questions and answers are made of, plus the chat `markers`
    (Janus's by default)."""
    from unirl_cli.data.qa import QUESTIONS
    from unirl_cli.data.vocab import NUMBER_WORDS, RELATIONS, english_plural

    words = list(SHAPES) + [english_plural(s) for s in SHAPES] + list(COLOR_NAMES) + list(NUMBER_WORDS[:5])
    words += [w for r in RELATIONS for w in r.split()] + "a an the of and is are there photo The There".split()
    # (the order of the marker sentences is the one the shipped mini's tokenizer was trained with)
    sentences = list(QUESTIONS.values()) + [markers[0] + " ", markers[-1], *(m + " " for m in markers[1:-1])]
    sentences += [f"a photo of a {c} {s}" for c in COLOR_NAMES for s in SHAPES]
    sentences += [f"The {s} is {r} the {t}" for s in SHAPES for t in SHAPES for r in RELATIONS]
    sentences += [f"a photo of {n} {english_plural(s)}" for n in NUMBER_WORDS[2:5] for s in SHAPES]
    return (words + [" " + w for w in words] + sentences + list(markers) * 20) * 3 + ["0123456789 .,;:!?'\"()-+*/=%&#@"]
