"""Does a shapes-world model's reader bind what it sees to the object it names?

(`world_binding.py` asks the generator whether it composes.) Two forced choices on random two-object scenes (two
classes, two colours), each answer scored by the model's own log-likelihood: colour attribution ("The ring is
red and the cross is blue" against the same sentence with the colours swapped) and position ("The ring is left
of the cross" against "... right of ..."). A reader that binds picks the right sentence (either object may be
named first: both orders are summed); one that only knows which shapes and colours are there (a bag of features)
is at 0.5. Scored from pixels and from the scene's VQ codes (decoded, then read by the same encoder: how the
model reads its own images in training), on scenes that are evaluation scenes of the tag and on scenes that are
not. A second table sorts the greedy colour-attribution answers on renders of the evaluation and training
prompts: right, both colours named but swapped, or anything else. A last table says where the binding is lost:
linear (ridge) probes on the language model's hidden state at the word that must be followed by the named
shape's colour ("The ring is" -> "red"), layer by layer: does it hold the shape just named, that shape's colour,
the other object's colour? And, at its input, an object patch's own colour and shape.

    OMP_NUM_THREADS=1 python benchmarks/world_reader_binding.py [--model mini] [--scenes 400]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from world_mini import ridge_fit  # the sibling benchmark's float64 ridge (scripts in benchmarks/ share a folder)

from unirl_cli.data.qa import question_for
from unirl_cli.models.janus import understanding as janus_understanding
from unirl_cli.models.loading import load_model
from unirl_cli.data.shapes.describe import describe, in_reading_order, is_eval_scene
from unirl_cli.data.shapes.prompts import eval_prompts, train_prompts
from unirl_cli.data.shapes.render import draw_scene, random_scene, render_scene
from unirl_cli.data.shapes.spec import COLOR_NAMES, SHAPES


def two_object_scenes(rng: random.Random, count: int) -> list:
    """`count` random scenes of two objects of different classes and different colours, in reading order."""
    scenes = []
    while len(scenes) < count:
        objects = random_scene(rng, 2)
        if len(objects) == 2 and len({o.class_name for o in objects}) == 2 and len({o.color for o in objects}) == 2:
            scenes.append(in_reading_order(objects))
    return scenes


def sentences(tag: str, first, second) -> tuple[str, str]:
    """(the true answer naming `first` first, the answer about the same scene with the binding flipped: the two
    colours swapped for colour attribution, the two places for position), both in the world's own wording."""
    if tag == "color_attr":
        flipped = [replace(first, color=second.color), replace(second, color=first.color)]
        return describe(tag, [first, second]), describe(tag, flipped)
    # describe() states the relation of its second object to its first
    flipped = [replace(second, row=first.row, col=first.col), replace(first, row=second.row, col=second.col)]
    return describe(tag, [second, first]), describe(tag, flipped)


def forced_choice(model, tag: str, scenes: list, from_codes: bool, batch_size: int = 50) -> float:
    """Share of `scenes` where the model gives the true answers more likelihood than the flipped ones, each
    summed over both orders of naming the two objects (the image does not say which to name first)."""
    wins = 0
    for start in range(0, len(scenes), batch_size):
        batch = scenes[start:start + batch_size]
        images = [draw_scene(objects) for objects in batch]
        log_likelihood = {}
        with torch.no_grad():
            inputs = model.encode_images(images) if from_codes else images
            questions = [question_for(tag)] * len(batch)
            for order in ((0, 1), (1, 0)):
                pairs = [sentences(tag, objects[order[0]], objects[order[1]]) for objects in batch]
                for true, column in ((True, 0), (False, 1)):
                    scores = model.answer_logprobs(inputs, questions, [p[column] for p in pairs]).total_logprob
                    so_far = log_likelihood.get(true)
                    log_likelihood[true] = scores if so_far is None else torch.logaddexp(so_far, scores)
        wins += int((log_likelihood[True] > log_likelihood[False]).sum())
    return wins / len(scenes)


def answer_kind(record: dict, answer: str) -> str:
    """'right', 'swapped' (both colours named, each on the other shape) or 'other'."""
    truth = {clause["class"]: clause["color"] for clause in record["include"]}
    stated = dict(re.findall(r"[Tt]he (\w+) is (\w+)", answer))
    if stated == truth:
        return "right"
    if set(stated) == set(truth) and sorted(stated.values()) == sorted(truth.values()):
        return "swapped"
    return "other"


def colour_answer_kinds(model, records: list, renders: int, batch_size: int = 32) -> dict[str, float]:
    """Shares of right / swapped / other greedy answers on `renders` renders of each colour-attribution record."""
    jobs = [(r, render_scene(r, 10_000 + seed)[0]) for r in records if r["tag"] == "color_attr" for seed in range(renders)]
    counts = {"right": 0, "swapped": 0, "other": 0}
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        answers = model.answer_questions([image for _, image in batch], [r["question"] for r, _ in batch],
                                         max_new_tokens=16)
        for (record, _), answer in zip(batch, answers):
            counts[answer_kind(record, answer)] += 1
    return {kind: count / len(jobs) for kind, count in counts.items()} | {"n": len(jobs)}


def probe_accuracy(inputs: torch.Tensor, targets: torch.Tensor, classes: int) -> float:
    """Accuracy on the second half of a ridge probe fitted on the first half (a bias column is added)."""
    inputs = torch.cat([inputs, torch.ones(len(inputs), 1, dtype=inputs.dtype)], 1).double()
    half = len(inputs) // 2
    weights = ridge_fit(inputs[:half], F.one_hot(targets[:half], classes), penalty=1e-2)
    return float(((inputs[half:] @ weights).argmax(1) == targets[half:]).float().mean())


def answer_position_probes(model, scenes: list) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Per layer (0 = embeddings), probe accuracies at the last word of " The <first shape> is" (the object
    first in reading order) after the colour-attribution question: the named shape, its colour, the other object's colour; and, at the LM's
    input, the top-left patch of the first object: its colour and shape."""
    hf_model, tokenizer = model.hf_model, model.tokenizer
    prompt_ids = tokenizer(model._understanding_prompts([question_for("color_attr")])[0])["input_ids"]
    states, patches = [], []
    with torch.no_grad():
        for start in range(0, len(scenes), 100):
            batch = scenes[start:start + 100]
            pixels = janus_understanding.pixels_from_images(hf_model, model.processor, [draw_scene(o) for o in batch])
            features = janus_understanding.image_features(hf_model, pixels)
            answers = [tokenizer(f" The {o[0].class_name} is", add_special_tokens=False)["input_ids"] for o in batch]
            if len({len(a) for a in answers}) != 1:
                raise SystemExit("the tokenizer splits some shape names into several tokens; this probe needs one")
            input_ids = torch.tensor([prompt_ids + a for a in answers])
            embeds = janus_understanding.embed_with_images(hf_model, input_ids, features)
            hidden = hf_model.model.language_model(inputs_embeds=embeds, output_hidden_states=True).hidden_states
            states.append(torch.stack([h[:, -1] for h in hidden], 1))
            first_patch = torch.tensor([o[0].row * 2 * 8 + o[0].col * 2 for o in batch])  # 2 x 2 patches per cell
            patches.append(features[torch.arange(len(batch)), first_patch])
    states, patches = torch.cat(states), torch.cat(patches)
    shape = torch.tensor([SHAPES.index(o[0].class_name) for o in scenes])
    colour = torch.tensor([COLOR_NAMES.index(o[0].color) for o in scenes])
    other = torch.tensor([COLOR_NAMES.index(o[1].color) for o in scenes])
    layers = [{"named shape": probe_accuracy(states[:, i], shape, len(SHAPES)),
               "its colour": probe_accuracy(states[:, i], colour, len(COLOR_NAMES)),
               "other colour": probe_accuracy(states[:, i], other, len(COLOR_NAMES))} for i in range(states.shape[1])]
    return layers, {"colour": probe_accuracy(patches, colour, len(COLOR_NAMES)),
                    "shape": probe_accuracy(patches, shape, len(SHAPES))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--scenes", type=int, default=400, help="random two-object scenes per tag")
    parser.add_argument("--renders", type=int, default=2, help="renders of each colour-attribution prompt")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model, device="cpu", dtype="float32")
    model.eval()
    start = time.time()
    print(f"{'forced choice':<14}{'scenes':<12}{'n':>5}{'from pixels':>13}{'from VQ codes':>15}   (chance 0.5)")
    for tag in ("color_attr", "position"):
        scenes = two_object_scenes(random.Random(7), args.scenes)
        for split, held_out in (("evaluation", True), ("other", False)):
            chosen = [s for s in scenes if is_eval_scene(s, tag) == held_out]
            if not chosen:
                continue
            pixels, codes = (forced_choice(model, tag, chosen, from_codes) for from_codes in (False, True))
            print(f"{tag:<14}{split:<12}{len(chosen):>5}{pixels:>13.3f}{codes:>15.3f}")
    print(f"\n{'colour attr. answers':<22}{'n':>5}{'right':>8}{'swapped':>9}{'other':>7}   (greedy, renders of the prompts)")
    for split, records in (("evaluation prompts", eval_prompts()), ("training prompts", train_prompts())):
        kinds = colour_answer_kinds(model, list(records), args.renders)
        print(f"{split:<22}{kinds['n']:>5}{kinds['right']:>8.3f}{kinds['swapped']:>9.3f}{kinds['other']:>7.3f}")
    layers, patch = answer_position_probes(model, two_object_scenes(random.Random(3), 2 * args.scenes))
    print(f"\n{'probe at is':<16}{'named shape':>13}{'its colour':>12}{'other colour':>14}   (chance 1/6, 1/10; "
          f"a bag of the two reads each colour ~0.5)")
    for index, scores in enumerate(layers):
        name = "embeddings" if index == 0 else f"layer {index}"
        print(f"{name:<16}{scores['named shape']:>13.3f}{scores['its colour']:>12.3f}{scores['other colour']:>14.3f}")
    print(f"LM input, an object's patch: its colour {patch['colour']:.3f}, its shape {patch['shape']:.3f}")
    print(f"({time.time() - start:.0f}s)")


if __name__ == "__main__":
    main()
