"""The deterministic answer matcher (hand-written right and wrong answers per tag) and the optional LLM judge."""

from __future__ import annotations

import pytest

from unirl_cli.data.judge import JUDGE_PROMPT, AnswerJudge, judge_prompt, parse_judge_reply
from unirl_cli.data.matching import match_answer, match_answer_with_judge
from unirl_cli.data.prompts import generate_prompts, geneval_test_records
from unirl_cli.data.vocab import custom_vocabulary
from unirl_cli.errors import UnirlError


def one(name, **extra):
    return {"class": name, "count": 1, **extra}


HOT_DOG = {"include": [one("hot dog")]}
PERSON = {"include": [one("person")]}
MOUSE = {"include": [one("computer mouse")]}
REMOTE = {"include": [one("tv remote")]}
SINGLE_OBJECT = [
    (HOT_DOG, "hot dog", 1), (HOT_DOG, "A hot dog.", 1), (HOT_DOG, "hot dogs", 1), (HOT_DOG, "Hot-Dog", 1),
    (HOT_DOG, "It is a hot dog", 1), (HOT_DOG, "hotdog", 1), (HOT_DOG, "The main item is a hot dog.", 1),
    (PERSON, "person", 1), (PERSON, "a man", 1), (PERSON, "People", 1), (PERSON, "persons", 1),
    (MOUSE, "mouse", 1), (MOUSE, "a computer mouse", 1), (MOUSE, "mice", 1), (REMOTE, "remote control", 1),
    (REMOTE, "TV remote", 1),
    (HOT_DOG, "dog", 0), (HOT_DOG, "a dog and a hot dog", 0), (HOT_DOG, "pizza", 0), (HOT_DOG, "", 0),
    (HOT_DOG, "There is no hot dog", 0), (HOT_DOG, "It isn't a hot dog", 0), (HOT_DOG, "a hot dog or a sandwich", 0),
    (PERSON, "a dog", 0), (MOUSE, "keyboard", 0), (MOUSE, "computer keyboard", 0), (REMOTE, "tv", 0),
]

BENCH_BALL = {"include": [one("bench"), one("sports ball")]}
TOASTER_OVEN = {"include": [one("toaster"), one("oven")]}
KNIFE_PERSON = {"include": [one("knife"), one("person")]}
TWO_OBJECT = [
    (BENCH_BALL, "There is a bench and a sports ball", 1), (BENCH_BALL, "a sports ball and a bench", 1),
    (BENCH_BALL, "bench, sports ball", 1), (BENCH_BALL, "Bench and ball.", 1),
    (BENCH_BALL, "There are a bench and two sports balls", 1), (TOASTER_OVEN, "There is a toaster and a oven", 1),
    (TOASTER_OVEN, "An oven and a toaster.", 1), (KNIFE_PERSON, "a knife and a man", 1),
    (KNIFE_PERSON, "knives and people", 1),
    (BENCH_BALL, "There is a bench", 0), (BENCH_BALL, "a bench and a dog", 0),
    (BENCH_BALL, "a bench, a sports ball and a cat", 0), (BENCH_BALL, "sports ball", 0),
    (BENCH_BALL, "There is no bench, only a sports ball", 0), (TOASTER_OVEN, "a toaster and a microwave", 0),
    (KNIFE_PERSON, "a fork and a man", 0), (KNIFE_PERSON, "a knife", 0), (BENCH_BALL, "", 0),
]


def counting(name, count):
    return {"include": [{"class": name, "count": count}], "exclude": [{"class": name, "count": count + 1}]}


KNIVES, SHEEP, PEOPLE = counting("knife", 4), counting("sheep", 2), counting("person", 3)
GLASSES, MICE = counting("wine glass", 2), counting("computer mouse", 3)
COUNTING = [
    (KNIVES, "four knives", 1), (KNIVES, "4 knives", 1), (KNIVES, "four knifes", 1),
    (KNIVES, "There are four knives.", 1), (KNIVES, "I see 4 knives in the image", 1), (KNIVES, "4 sharp knives", 1),
    (KNIVES, "knives: 4", 1), (SHEEP, "two sheep", 1), (SHEEP, "2 sheeps", 1), (PEOPLE, "three people", 1),
    (PEOPLE, "3 persons", 1), (PEOPLE, "Three men.", 1), (GLASSES, "two wine glasses", 1),
    (MICE, "three computer mice", 1),
    (MICE, "3 mice", 1), (GLASSES, "There are two red wine glasses", 1), (GLASSES, "a pair of wine glasses", 1),
    (KNIVES, "There are four knives on the table", 1),
    (KNIVES, "three knives", 0), (KNIVES, "a knife", 0), (KNIVES, "four forks", 0), (KNIVES, "two or four knives", 0),
    (KNIVES, "four", 0), (KNIVES, "five knives", 0), (KNIVES, "four knives and a fork", 0), (KNIVES, "knives", 0),
    (SHEEP, "sheep", 0), (SHEEP, "one sheep", 0), (PEOPLE, "3 people and 1 dog", 0), (GLASSES, "a wine glass", 0),
    (GLASSES, "two glasses", 0), (MICE, "three computer keyboards", 0), (PEOPLE, "There are no people", 0),
]

HYDRANT = {"include": [one("fire hydrant", color="blue")]}
ORANGE = {"include": [one("orange", color="orange")]}
CAR = {"include": [one("car", color="pink")]}
COLORS = [
    (HYDRANT, "blue", 1), (HYDRANT, "Blue.", 1), (HYDRANT, "It is blue", 1), (HYDRANT, "The fire hydrant is blue", 1),
    (HYDRANT, "a blue fire hydrant", 1), (HYDRANT, "blue color", 1), (HYDRANT, "The color is blue.", 1),
    (HYDRANT, "light blue", 1), (CAR, "pink", 1), (CAR, "The car is pink!", 1), (ORANGE, "orange", 1),
    (ORANGE, "The orange is orange", 1), (ORANGE, "an orange orange", 1),
    (HYDRANT, "red", 0), (HYDRANT, "blue and red", 0), (HYDRANT, "not blue", 0),
    (HYDRANT, "The fire hydrant is red", 0),
    (HYDRANT, "bluish", 0), (HYDRANT, "", 0), (CAR, "pink or blue", 0), (CAR, "purple", 0), (ORANGE, "yellow", 0),
    (ORANGE, "The orange is yellow", 0), (HYDRANT, "gray", 0), (HYDRANT, "blue and silver", 0),
]

DOG_RIGHT_OF_BEAR = {"include": [one("teddy bear"), one("dog", position=["right of", 0])]}
GLASS_ABOVE_KITE = {"include": [one("kite"), one("wine glass", position=["above", 0])]}
COUCH_BELOW_CUP = {"include": [one("cup"), one("couch", position=["below", 0])]}
LAPTOP_LEFT_OF_COW = {"include": [one("cow"), one("laptop", position=["left of", 0])]}
POSITION = [
    (DOG_RIGHT_OF_BEAR, "The dog is right of the teddy bear", 1),
    (DOG_RIGHT_OF_BEAR, "the dog is to the right of the teddy bear.", 1),
    (DOG_RIGHT_OF_BEAR, "The teddy bear is to the left of the dog", 1),
    (DOG_RIGHT_OF_BEAR, "The teddy bear is on the left side of the dog", 1),
    (DOG_RIGHT_OF_BEAR, "To the right of the teddy bear is a dog", 1),
    (DOG_RIGHT_OF_BEAR, "On the left is a teddy bear, on the right is a dog", 1),
    (DOG_RIGHT_OF_BEAR, "The dog is on the right and the teddy bear is on the left", 1),
    (GLASS_ABOVE_KITE, "The wine glass is above the kite", 1),
    (GLASS_ABOVE_KITE, "the kite is below the wine glass", 1),
    (GLASS_ABOVE_KITE, "The wine glass is over the kite", 1), (GLASS_ABOVE_KITE, "The kite is under the wine glass", 1),
    (GLASS_ABOVE_KITE, "The wine glass is on top of the kite", 1),
    (GLASS_ABOVE_KITE, "The kite is beneath the wine glass.", 1), (COUCH_BELOW_CUP, "The couch is below the cup", 1),
    (COUCH_BELOW_CUP, "A cup sits on top of a sofa", 1),
    (LAPTOP_LEFT_OF_COW, "The laptop is to the left of the cow", 1),
    (LAPTOP_LEFT_OF_COW, "The cow is on the right of the laptop", 1),
    (DOG_RIGHT_OF_BEAR, "The dog is left of the teddy bear", 0),
    (DOG_RIGHT_OF_BEAR, "The teddy bear is right of the dog", 0),
    (DOG_RIGHT_OF_BEAR, "The dog is above the teddy bear", 0),
    (DOG_RIGHT_OF_BEAR, "The dog is next to the teddy bear", 0),
    (DOG_RIGHT_OF_BEAR, "a dog and a teddy bear", 0), (DOG_RIGHT_OF_BEAR, "The hot dog is right of the teddy bear", 0),
    (DOG_RIGHT_OF_BEAR, "The cat is right of the teddy bear", 0),
    (DOG_RIGHT_OF_BEAR, "The dog is on the left and the teddy bear is on the right", 0),
    (DOG_RIGHT_OF_BEAR, "The dog is right of the teddy bear and the teddy bear is right of the dog", 0),
    (GLASS_ABOVE_KITE, "The wine glass is below the kite", 0),
    (GLASS_ABOVE_KITE, "The kite is above the wine glass", 0),
    (COUCH_BELOW_CUP, "The couch is above the cup", 0), (LAPTOP_LEFT_OF_COW, "The cow is left of the laptop", 0),
    (LAPTOP_LEFT_OF_COW, "The laptop is right of the cow", 0),
    (DOG_RIGHT_OF_BEAR, "The dog is not to the right of the teddy bear", 0),
    (DOG_RIGHT_OF_BEAR, "The dog isn't right of the teddy bear", 0), (LAPTOP_LEFT_OF_COW, "The laptop is left of the dog", 0),
]

GLASS_APPLE = {"include": [one("wine glass", color="purple"), one("apple", color="black")]}
BUS_MICROWAVE = {"include": [one("bus", color="green"), one("microwave", color="purple")]}
SKIS_AIRPLANE = {"include": [one("skis", color="green"), one("airplane", color="brown")]}
ORANGE_CUP = {"include": [one("orange", color="orange"), one("cup", color="blue")]}
COLOR_ATTR = [
    (GLASS_APPLE, "The wine glass is purple and the apple is black", 1),
    (GLASS_APPLE, "a purple wine glass and a black apple", 1),
    (GLASS_APPLE, "A black apple and a purple wine glass.", 1),
    (GLASS_APPLE, "The purple-colored wine glass sits next to a black apple", 1),
    (GLASS_APPLE, "The wine glass is purple, and the apple is black.", 1),
    (SKIS_AIRPLANE, "The skis is green and the airplane is brown", 1),
    (SKIS_AIRPLANE, "green skis and a brown plane", 1),
    (BUS_MICROWAVE, "The bus is green and the microwave is purple", 1),
    (BUS_MICROWAVE, "The microwave is purple, the bus is green", 1),
    (ORANGE_CUP, "The orange is orange and the cup is blue", 1),
    (ORANGE_CUP, "an orange orange and a blue cup", 1), (ORANGE_CUP, "The cup is blue and the orange is orange", 1),
    (GLASS_APPLE, "The apple is purple and the wine glass is black", 0),
    (GLASS_APPLE, "a black wine glass and a purple apple", 0),
    (GLASS_APPLE, "The wine glass is purple", 0), (GLASS_APPLE, "purple and black", 0),
    (GLASS_APPLE, "The wine glass is purple and black, the apple is black", 0),
    (GLASS_APPLE, "a purple wine glass, a black apple and a dog", 0), (GLASS_APPLE, "a wine glass and an apple", 0),
    (GLASS_APPLE, "The wine glass is purple and the apple is red", 0),
    (BUS_MICROWAVE, "a green bus and a green microwave", 0),
    (BUS_MICROWAVE, "The bus is purple and the microwave is green", 0),
    (ORANGE_CUP, "a blue orange and an orange cup", 0),
    (ORANGE_CUP, "The orange is blue and the cup is orange", 0),
    (SKIS_AIRPLANE, "The skis are brown and the airplane is green", 0),
    (BUS_MICROWAVE, "The bus is not green and the microwave is purple", 0),
    (GLASS_APPLE, "There is not a purple wine glass, but a black apple", 0),
]

TABLES = {"single_object": SINGLE_OBJECT, "two_object": TWO_OBJECT, "counting": COUNTING, "colors": COLORS,
          "position": POSITION, "color_attr": COLOR_ATTR}
CASES = [(tag, metadata, answer, expected) for tag, rows in TABLES.items() for metadata, answer, expected in rows]


@pytest.mark.parametrize("tag, metadata, answer, expected", CASES, ids=[f"{c[0]}:{c[2]}" for c in CASES])
def test_hand_written_answers(tag, metadata, answer, expected):
    assert match_answer(tag, metadata, answer) == float(expected)


@pytest.mark.parametrize("tag", TABLES)
def test_at_least_15_right_and_15_wrong_answers_per_tag(tag):
    expected = [row[2] for row in TABLES[tag]]
    assert len(expected) >= 15 and 1 in expected and 0 in expected


def test_every_released_and_generated_answer_matches_its_own_metadata():
    records = list(geneval_test_records()) + generate_prompts(2000, seed=11)
    assert all(match_answer(r["tag"], r, r["answer"]) == 1.0 for r in records)


@pytest.mark.parametrize("tag, metadata, answer, credit", [
    ("two_object", BENCH_BALL, "There is a bench", 1 / 2),
    ("single_object", HOT_DOG, "a hot dog, a dog, a pizza and a cat", 1 / 4),
    ("counting", KNIVES, "three knives", 1 / 2),
    ("colors", HYDRANT, "blue or red", 1 / 2),
    ("position", DOG_RIGHT_OF_BEAR, "The dog is left of the teddy bear", 2 / 3),
    ("color_attr", GLASS_APPLE, "The apple is purple and the wine glass is black", 2 / 4),
    ("color_attr", GLASS_APPLE, "The wine glass is purple", 2 / 4),
    ("color_attr", GLASS_APPLE, "The wine glass is purple and the apple is black", 1.0),
])
def test_partial_credit_is_the_fraction_of_facts_stated(tag, metadata, answer, credit):
    assert match_answer(tag, metadata, answer, partial=True) == pytest.approx(credit)


def test_another_worlds_classes_are_recognised_from_metadata():
    circles = counting("circle", 3)
    assert match_answer("counting", circles, "3 circles") == 1.0
    assert match_answer("counting", circles, "three squares") == 0.0
    shapes = custom_vocabulary(["circle", "square", "triangle"], ["red", "blue"])
    metadata = {"include": [one("circle", color="red"), one("square", color="blue")]}
    assert match_answer("color_attr", metadata, "a red circle and a blue square", vocabulary=shapes) == 1.0
    assert match_answer("color_attr", metadata, "a red circle, a blue square and a triangle", vocabulary=shapes) == 0.0


def test_unknown_tag_is_a_user_error():
    with pytest.raises(UnirlError, match="unknown tag"):
        match_answer("colour", HYDRANT, "blue")


@pytest.mark.parametrize("reply, score", [
    ("same", 1.0), ("Same.", 1.0), (" SAME, the answers agree", 1.0), ("not same", 0.0), ("Not the same", 0.0),
    ("different", 0.0), ("", 0.0), ("yes", 0.0),
])
def test_judge_reply_parsing(reply, score):
    assert parse_judge_reply(reply) == score


def test_judge_prompt_is_unirls():
    text = judge_prompt("How many items in this image?", "two clocks", "2 clocks")
    assert text.startswith("Please help to judge the two answers same or not.The question is How many items")
    assert "The standard answer is two clocks and the model's output is 2 clocks." in text
    assert JUDGE_PROMPT.endswith("Please only use one word to answer me same or not same")


@pytest.fixture(scope="module")
def tiny_judge_dir(tmp_path_factory):
    """A random 1-layer Llama with an offline word-level tokenizer and a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = sorted(set(JUDGE_PROMPT.replace(".", " ").split()) | {"same", "not", "user", "assistant", ":"})
    vocab = {word: index for index, word in enumerate(["<unk>", "<pad>", "<s>", "</s>", *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    template = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
                "{% if add_generation_prompt %}assistant : {% endif %}")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>", chat_template=template)
    folder = tmp_path_factory.mktemp("tiny_judge")
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         pad_token_id=1, bos_token_id=2, eos_token_id=3)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def _force_next_word(judge, word):
    """Make the judge's LM head always prefer `word`, so the whole generate-decode-parse path is checked."""
    import torch

    token_id = judge.tokenizer.convert_tokens_to_ids(word)
    head = torch.nn.Linear(judge.model.lm_head.in_features, judge.model.lm_head.out_features, bias=True)
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.fill_(-10.0)
        head.bias[token_id] = 10.0
    judge.model.lm_head = head


def test_tiny_random_judge_loads_and_scores(tiny_judge_dir):
    judge = AnswerJudge.load(str(tiny_judge_dir))
    score = match_answer_with_judge("counting", counting("clock", 2), "2 clocks", judge)
    assert score in (0.0, 1.0)
    _force_next_word(judge, "same")
    assert judge.reply("q", "two clocks", "2 clocks").split()[0] == "same"
    assert match_answer_with_judge("counting", counting("clock", 2), "2 clocks", judge) == 1.0
    _force_next_word(judge, "not")
    assert match_answer_with_judge("counting", counting("clock", 2), "2 clocks", judge) == 0.0


def test_judge_load_errors_are_user_errors(tmp_path):
    with pytest.raises(UnirlError, match="cannot load judge model"):
        AnswerJudge.load(str(tmp_path / "missing"))

    class NoTemplate:
        chat_template = None

    with pytest.raises(UnirlError, match="chat template"):
        AnswerJudge(model=None, tokenizer=NoTemplate())
