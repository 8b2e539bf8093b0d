"""The words training prompts are built from: objects, colours, relations and numbers.

The default world has 160 objects: GenEval's 80 COCO classes (its names, so `tv remote`, not `remote`) and 80
everyday objects of our own, which is the size UniRL reports for its unreleased prompt set. Another world (say,
coloured shapes) passes its own `Vocabulary` to the prompt generator and the answer matcher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from unirl_cli.errors import UnirlError

GENEVAL_COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
RELATIONS = ("left of", "right of", "above", "below")
INVERSE_RELATION = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
# GenEval indexes this list by count, so "zero" must stay at index 0.
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")

# Our own 80 everyday objects, chosen to be drawable, countable and free of clashes with COCO names.
EVERYDAY_OBJECTS = (
    # animals
    "rabbit", "duck", "goose", "fox", "wolf", "deer", "owl", "penguin", "turtle", "frog", "butterfly", "fish",
    # food
    "strawberry", "lemon", "pear", "pineapple", "watermelon", "tomato", "potato", "egg", "cookie", "cupcake",
    "peach", "cherry",
    # household
    "lamp", "candle", "pillow", "blanket", "basket", "bucket", "broom", "ladder", "mirror", "shelf", "teapot",
    "kettle", "mug", "plate", "jar", "frying pan",
    # tools
    "hammer", "wrench", "screwdriver", "shovel", "paintbrush", "flashlight",
    # music
    "guitar", "violin", "drum", "piano", "trumpet",
    # clothes
    "hat", "shoe", "boot", "sock", "scarf", "jacket", "dress", "shirt", "sweater",
    # small things
    "key", "coin", "wallet", "pencil", "pen", "notebook", "envelope", "camera", "watch", "balloon", "flag",
    # outdoors and vehicles
    "tree", "flower", "leaf", "mushroom", "tent", "mailbox", "scooter", "tractor", "helicopter",
)

# Plurals that the English rule in `english_plural` gets wrong. GenEval itself only appends "s"/"es".
IRREGULAR_PLURALS = {
    "person": "people", "sheep": "sheep", "skis": "skis", "knife": "knives", "computer mouse": "computer mice",
    "goose": "geese", "wolf": "wolves", "deer": "deer", "fish": "fish", "shelf": "shelves", "leaf": "leaves",
    "tomato": "tomatoes", "potato": "potatoes", "scissors": "scissors",
}

# GenEval never asks for the colour of a person; we keep that rule for the default world.
UNCOLORABLE_OBJECTS = frozenset({"person"})

# Other names an answer may use for a class: COCO's original names for GenEval's renamed ones, and common synonyms.
# Not "table" or "plant": they name background things ("two clocks on a table") more often than the COCO class.
OBJECT_ALIASES = {
    "mouse": "computer mouse", "keyboard": "computer keyboard", "remote": "tv remote",
    "remote control": "tv remote", "television": "tv", "tv set": "tv", "phone": "cell phone",
    "cellphone": "cell phone", "mobile phone": "cell phone", "smartphone": "cell phone", "sofa": "couch",
    "hair dryer": "hair drier", "hairdryer": "hair drier", "motorbike": "motorcycle", "aeroplane": "airplane",
    "plane": "airplane", "bike": "bicycle", "ball": "sports ball", "doughnut": "donut", "hotdog": "hot dog", "racket": "tennis racket",
    "fridge": "refrigerator", "teddy": "teddy bear", "man": "person", "woman": "person", "boy": "person",
    "girl": "person", "child": "person", "kid": "person", "glass of wine": "wine glass",
}
ALIAS_PLURALS = {"mouse": "mice", "man": "men", "woman": "women", "child": "children",
                 "glass of wine": "glasses of wine"}


@lru_cache(maxsize=1)
def geneval_object_names() -> tuple[str, ...]:
    """GenEval's 80 COCO class names, in detector order (line i is class index i)."""
    text = resources.files("unirl_cli.data").joinpath("geneval/object_names.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def with_article(word: str) -> str:
    """`word` with "a" or "an" in front, by GenEval's rule (first letter a vowel)."""
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def geneval_plural(name: str) -> str:
    """GenEval's plural: "es" after a final "s", else "s" (so "knifes", "sheeps", "benchs")."""
    return f"{name}es" if name.endswith("s") else f"{name}s"


def english_plural(name: str, irregular: dict[str, str] | None = None) -> str:
    """The English plural of an object name; multi-word names inflect their last word ("wine glasses")."""
    irregular = IRREGULAR_PLURALS if irregular is None else irregular
    if name in irregular:
        return irregular[name]
    head, _, last = name.rpartition(" ")
    if last in irregular:
        return f"{head} {irregular[last]}".strip()
    if last.endswith(("s", "x", "z", "ch", "sh")):
        plural = f"{last}es"
    elif last.endswith("y") and last[-2:-1] not in tuple("aeiou"):
        plural = f"{last[:-1]}ies"
    else:
        plural = f"{last}s"
    return f"{head} {plural}".strip()


@dataclass(frozen=True)
class Vocabulary:
    """The objects and colours of one prompt world, with the grammar the generator needs for them."""

    objects: tuple[str, ...]
    colors: tuple[str, ...] = GENEVAL_COLORS
    irregular_plurals: dict[str, str] = field(default_factory=lambda: dict(IRREGULAR_PLURALS))
    uncolorable: frozenset[str] = UNCOLORABLE_OBJECTS
    aliases: dict[str, str] = field(default_factory=dict)

    def plural(self, name: str) -> str:
        """The English plural of `name` in this world."""
        return english_plural(name, self.irregular_plurals)

    def colorable_objects(self) -> tuple[str, ...]:
        """Objects that colour prompts may use."""
        return tuple(name for name in self.objects if name not in self.uncolorable)


def default_vocabulary() -> Vocabulary:
    """The 160-object world: GenEval's 80 COCO classes plus our 80 everyday objects, GenEval's 10 colours."""
    objects = geneval_object_names() + EVERYDAY_OBJECTS
    assert len(set(objects)) == len(objects), "an everyday object duplicates a COCO class"
    return Vocabulary(objects=objects, aliases=dict(OBJECT_ALIASES))


def custom_vocabulary(objects, colors=GENEVAL_COLORS, irregular_plurals=None) -> Vocabulary:
    """A world of the caller's own objects and colours (no aliases, every object colourable)."""
    objects, colors = tuple(objects), tuple(colors)
    if len(objects) < 2 or len(set(objects)) != len(objects):
        raise UnirlError(f"a prompt world needs at least two distinct objects, got {list(objects)}")
    if len(colors) < 2 or len(set(colors)) != len(colors):
        raise UnirlError(f"a prompt world needs at least two distinct colours, got {list(colors)}")
    plurals = dict(IRREGULAR_PLURALS if irregular_plurals is None else irregular_plurals)
    return Vocabulary(objects=objects, colors=colors, irregular_plurals=plurals, uncolorable=frozenset())
