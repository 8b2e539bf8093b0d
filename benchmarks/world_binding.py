"""Does a shapes-world generator compose a colour word with a shape word it never saw it with?

The shapes suite's colour prompts ("a photo of a yellow diamond") are split by pair: 36 of the 60 colour-shape
pairs are training prompts, 24 are held out for evaluation. A generator that composes draws a held-out pair as
well as a trained one; one that memorises pairs does not. Per split, this prints the GenEval colours verdict
(the suite's detector and rule), how often the asked shape is drawn at all and in the asked colour, and, with
teacher forcing on a render of the pair, how much of the probability the model gives the ten colour variants of
the object's first image token goes to the asked colour (chance 0.10): the one token where the colour is decided.

    OMP_NUM_THREADS=2 python benchmarks/world_binding.py [--model mini [OTHER ...]] [--images 8]
"""

from __future__ import annotations

import argparse

import torch

from unirl_cli.eval.geneval.config import GenevalThresholds
from unirl_cli.eval.geneval.evaluate import judge_images
from unirl_cli.models.loading import load_model
from unirl_cli.data.shapes.prompts import eval_prompts, train_prompts
from unirl_cli.data.shapes.render import SceneObject, draw_scene
from unirl_cli.data.shapes.spec import COLOR_NAMES, GRID_SIZE
from unirl_cli.eval.shapes.suite import build_shapes_judge, detect_images

CELLS = ((0, 0), (1, 2), (2, 1), (3, 3))  # where the teacher-forced probe draws the object


def colour_records() -> dict[str, list[dict]]:
    """The world's colour prompts by split: {"training": [...], "evaluation": [...]}."""
    return {"training": [r for r in train_prompts() if r["tag"] == "colors"],
            "evaluation": [r for r in eval_prompts() if r["tag"] == "colors"]}


def drawn_scores(model, records: list[dict], images_per_prompt: int) -> dict[str, float]:
    """Sample each prompt with the model's own settings; the GenEval verdict, and how often the asked shape
    is drawn at all and in the asked colour (detector)."""
    judge, thresholds = build_shapes_judge(None), GenevalThresholds()
    jobs = [r for r in records for _ in range(images_per_prompt)]
    rollout = model.generate_images([r["prompt"] for r in jobs], seeds=list(range(len(jobs))))
    images = model.decode_images(rollout.image_tokens)
    verdicts = judge_images(judge, images, jobs, thresholds)
    shape = coloured = 0
    for record, detections in zip(jobs, detect_images(images)):
        wanted = record["include"][0]
        found = [d for d in detections if d.score > thresholds.threshold and d.class_name == wanted["class"]]
        shape += bool(found)
        coloured += any(d.color == wanted["color"] for d in found)
    return {"geneval": sum(v.correct for v, _ in verdicts) / len(jobs), "shape": shape / len(jobs),
            "coloured": coloured / len(jobs)}


def first_token_colour_share(model, records: list[dict]) -> float:
    """Mean share of the teacher-forced probability of the object's first image token, summed over its ten
    colour variants, that falls on the asked colour (renders of the pair alone in each of `CELLS`)."""
    from unirl_cli.models.janus import sampling as janus_sampling

    shares = []
    for record in records:
        wanted = record["include"][0]
        encoded = model.tokenizer([model.prompt_format.generation_prompt(record["prompt"])], return_tensors="pt")
        for row, col in CELLS:
            images = [draw_scene([SceneObject(wanted["class"], colour, row, col)]) for colour in COLOR_NAMES]
            codes = model.encode_images(images)
            side = int(codes.shape[1] ** 0.5)
            position = (row * side // GRID_SIZE) * side + col * side // GRID_SIZE
            # The object is the scene's first non-background token, so the tokens before it (all that the
            # prediction at `position` sees) are the same in every colour variant: one sequence suffices.
            with torch.no_grad():
                logits = janus_sampling.teacher_forced_head_logits(
                    model.hf_model, encoded["input_ids"], encoded["attention_mask"], codes[:1])
            variant_probs = logits[0, position].softmax(-1)[codes[:, position]]
            asked = COLOR_NAMES.index(wanted["color"])
            shares.append(float(variant_probs[asked] / variant_probs.sum()))
    return sum(shares) / len(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["mini"])
    parser.add_argument("--images", type=int, default=8, help="samples per prompt")
    args = parser.parse_args()
    print("| model | pairs | prompts | GenEval colours | asked shape drawn | in the asked colour "
          "| first-token colour share (chance 0.10) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.model:
        model = load_model(name, device="cpu", dtype="float32")
        for split, records in colour_records().items():
            drawn = drawn_scores(model, records, args.images)
            share = first_token_colour_share(model, records)
            print(f"| {name} | {split} | {len(records)} | {drawn['geneval']:.3f} | {drawn['shape']:.3f} "
                  f"| {drawn['coloured']:.3f} | {share:.3f} |", flush=True)


if __name__ == "__main__":
    main()
