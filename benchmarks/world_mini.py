"""How well a shapes-world model understands correct renders: greedy answers to each prompt's question about its
rendered scene, matched with unirl's answer matcher (the world's vocabulary), per tag; on the evaluation prompts
(scenes no stage of pretraining saw) and on the training prompts (scenes the understanding stages saw, new
renders); and on random scenes of 1-6 shapes that match no prompt (what generated images often are), where the
answer must be the scene's truthful description (`data.shapes.describe`) word for word, naming the objects in any
order. A second table splits the position answers into the axis (horizontal or vertical) and the direction along
it, on renders of their own (other seeds than the first table's, so its "relation right" is a second sample of
that table's position cell): a reader can get the axis from geometry alone, but the direction only by telling
which object is where. A last line says how well linear (ridge) probes read each patch's row, column and shape
from the image embeddings the language model receives (Llama's rotary positions reach attention scores, not the
values a token reads, so "where is the ring" must be in these).

    OMP_NUM_THREADS=1 python benchmarks/world_mini.py [--model mini] [--renders 2]
"""

from __future__ import annotations

import argparse
import itertools
import random
import time

import torch
import torch.nn.functional as F

from unirl_cli.data.matching import match_answer
from unirl_cli.models.loading import load_model
from unirl_cli.data.qa import TAGS
from unirl_cli.data.vocab import RELATIONS
from unirl_cli.data.shapes.describe import describe, truthful_qa
from unirl_cli.data.shapes.prompts import eval_prompts, shapes_vocabulary, train_prompts
from unirl_cli.data.shapes.render import draw_scene, render_scene


def answer_accuracy(model, jobs, is_right, batch_size: int = 32, max_new_tokens: int = 16) -> dict[str, float]:
    """Per tag, the share of (record, image) jobs whose greedy answer `is_right(record, answer)` accepts."""
    scores: dict[str, list[float]] = {}
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        answers = model.answer_questions([image for _, image in batch], [r["question"] for r, _ in batch],
                                         max_new_tokens=max_new_tokens)
        for (record, _), answer in zip(batch, answers):
            scores.setdefault(record["tag"], []).append(float(is_right(record, answer)))
    return {tag: sum(scores[tag]) / len(scores[tag]) for tag in TAGS if tag in scores}


def understanding_accuracy(model, records, renders_per_prompt: int = 2) -> dict[str, float]:
    """Per tag, the share of rendered scenes of `records` whose greedy answer states every required fact."""
    jobs = [(record, render_scene(record, 10_000 + seed)[0]) for record in records for seed in range(renders_per_prompt)]
    vocabulary = shapes_vocabulary()
    return answer_accuracy(model, jobs, lambda record, answer: match_answer(
        record["tag"], record, answer, vocabulary=vocabulary))


def truthful_accuracy(model, num_scenes: int = 300, seed: int = 123) -> dict[str, float]:
    """Per tag, the share of random scenes whose greedy answer is their truthful description word for word, the
    objects named in any order (the image does not show the order they were drawn in)."""
    rng = random.Random(seed)
    jobs = []
    for objects, record in (truthful_qa(rng, TAGS) for _ in range(num_scenes)):
        wordings = {describe(record["tag"], list(order)) for order in itertools.permutations(objects)}
        jobs.append(({**record, "wordings": wordings}, draw_scene(objects)))
    return answer_accuracy(model, jobs, lambda record, answer: answer.strip() in record["wordings"], max_new_tokens=24)


def stated_relation(record: dict, answer: str) -> str | None:
    """The relation `answer` states between the record's two objects (either word order), or None."""
    vocabulary = shapes_vocabulary()
    target, subject = record["include"]
    for relation in RELATIONS:
        candidate = {**record, "include": [target, {**subject, "position": [relation, 0]}]}
        if match_answer("position", candidate, answer, vocabulary=vocabulary) == 1.0:
            return relation
    return None


def position_breakdown(model, records, renders_per_prompt: int = 2) -> tuple[float, float, float]:
    """(relation right, axis right, direction right when the axis is) over renders of the position records."""
    jobs = [(r, render_scene(r, 20_000 + seed)[0]) for r in records if r["tag"] == "position"
            for seed in range(renders_per_prompt)]
    answers = model.answer_questions([image for _, image in jobs], [r["question"] for r, _ in jobs],
                                     max_new_tokens=16)
    horizontal = {"left of", "right of"}
    axis_right = direction_right = 0
    for (record, _), answer in zip(jobs, answers):
        truth, stated = record["include"][1]["position"][0], stated_relation(record, answer)
        if stated is not None and (stated in horizontal) == (truth in horizontal):
            axis_right += 1
            direction_right += stated == truth
    return direction_right / len(jobs), axis_right / len(jobs), direction_right / max(axis_right, 1)


def ridge_fit(inputs: torch.Tensor, targets: torch.Tensor, penalty: float = 1e-3) -> torch.Tensor:
    """Weights of a ridge regression in float64 (the embeddings' covariance is near singular, and plain least
    squares then gives answers that move with the thread count)."""
    gram = inputs.T @ inputs + penalty * torch.eye(inputs.shape[1], dtype=inputs.dtype)
    return torch.linalg.solve(gram, inputs.T @ targets.to(inputs.dtype))


def patch_probes(model, num_scenes: int = 400) -> dict[str, float]:
    """Accuracy of linear (ridge) probes on the LM's image embeddings of random scenes, fitted on half the
    scenes and read on the object patches of the other half: each patch's row and column (chance 1/8) and the
    shape it is part of (chance 1/6)."""
    from unirl_cli.data.shapes.spec import COLOR_NAMES
    from unirl_cli.world.vision_train import labelled_scenes
    from unirl_cli.world.vq_train import NUM_PATCH_KINDS

    pixels, kinds = labelled_scenes(random.Random(0), num_scenes)
    with torch.no_grad():
        features = model.hf_model.model.get_image_features(pixels)
    features = getattr(features, "pooler_output", features)
    inputs = torch.cat([features.flatten(0, 1), torch.ones(features.shape[0] * features.shape[1], 1)], 1).double()
    side = round(features.shape[1] ** 0.5)
    places = torch.arange(features.shape[1]).repeat(features.shape[0])
    kinds = kinds.flatten()
    shapes = (kinds - 1).clamp(min=0) // (len(COLOR_NAMES) * 4)  # kind = 1 + (shape, colour, quarter) index
    half, on_object = len(inputs) // 2, kinds[len(inputs) // 2:] > 0
    scores = {}
    for name, target, classes in (("row", places // side, side), ("column", places % side, side),
                                  ("shape", shapes, (NUM_PATCH_KINDS - 1) // (len(COLOR_NAMES) * 4))):
        fitted = kinds[:half] > 0 if name == "shape" else torch.ones(half, dtype=torch.bool)
        weights = ridge_fit(inputs[:half][fitted], F.one_hot(target[:half][fitted], classes))
        right = (inputs[half:] @ weights).argmax(1) == target[half:]
        scores[name] = float(right[on_object].float().mean())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--renders", type=int, default=2)
    parser.add_argument("--random-scenes", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model, device="cpu", dtype="float32")
    start = time.time()
    evaluation = understanding_accuracy(model, eval_prompts(), args.renders)
    training = understanding_accuracy(model, train_prompts(), args.renders)
    truthful = truthful_accuracy(model, args.random_scenes)
    print(f"{'tag':<16}{'evaluation scenes':>20}{'training scenes':>18}{'random scenes':>16}")
    for tag in evaluation:
        seen = f"{training[tag]:.3f}" if tag in training else "-"
        print(f"{tag:<16}{evaluation[tag]:>20.3f}{seen:>18}{truthful[tag]:>16.3f}")
    print(f"{'mean':<16}{sum(evaluation.values()) / len(evaluation):>20.3f}"
          f"{sum(training.values()) / len(training):>18.3f}{sum(truthful.values()) / len(truthful):>16.3f}"
          f"   ({time.time() - start:.0f}s)")
    print(f"\n{'position':<16}{'relation right':>16}{'axis right':>12}{'direction | axis':>18}   (other renders)")
    for split, records in (("evaluation", eval_prompts()), ("training", train_prompts())):
        relation, axis, direction = position_breakdown(model, records, args.renders)
        print(f"{split:<16}{relation:>16.3f}{axis:>12.3f}{direction:>18.3f}")
    probes = patch_probes(model)
    print(f"\nread linearly from the LM's image embeddings of an object patch: row {probes['row']:.3f}, "
          f"column {probes['column']:.3f} (chance 0.125), shape {probes['shape']:.3f} (chance 0.167)")


if __name__ == "__main__":
    main()
