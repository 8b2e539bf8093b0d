"""Shapes-world detector accuracy on rendered scenes, perturbed scenes and a model's VQ reconstructions.

    OMP_NUM_THREADS=1 python benchmarks/world_detector.py [--scenes 300] [--model mini]

An object counts as right when exactly one detection overlaps its cell with its shape and colour; every
extra detection counts as one wrong object. Prints one table row per perturbation.
"""

from __future__ import annotations

import argparse
import random
import time


from unirl_cli.eval.geneval.scoring import relative_position
from unirl_cli.eval.shapes.detector import detect_objects
from unirl_cli.data.shapes.perturb import blur, jpeg, noise
from unirl_cli.data.shapes.render import draw_scene, random_scene


def perturbations(model=None) -> dict:
    table = {"clean": lambda image, rng: image}
    for radius in (0.7, 1.0, 1.5):
        table[f"gaussian blur r={radius}"] = blur(radius)
    for sigma in (10, 20, 30):
        table[f"gaussian noise sd={sigma}"] = noise(sigma)
    for quality in (75, 50, 25):
        table[f"jpeg q={quality}"] = jpeg(quality)
    if model is not None:
        table["VQ reconstruction (model)"] = lambda image, rng: model.decode_images(model.encode_images([image]))[0]
    return table


def object_accuracy(perturb, num_scenes: int, seed: int = 0) -> tuple[float, int, float]:
    """(accuracy, objects, milliseconds per detector call)."""
    rng = random.Random(seed)
    right = total = 0
    seconds = 0.0
    for _ in range(num_scenes):
        objects = random_scene(rng, max_objects=6)
        image = perturb(draw_scene(objects), rng)
        start = time.perf_counter()
        found = [d for d in detect_objects(image) if d.score > 0.3]
        seconds += time.perf_counter() - start
        for obj in objects:
            here = [d for d in found if relative_position(d.box, obj.box) == set()]
            right += len(here) == 1 and (here[0].class_name, here[0].color) == (obj.class_name, obj.color)
        total += len(objects) + max(0, len(found) - len(objects))
    return right / total, total, 1000 * seconds / num_scenes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--model", default=None, help="also score VQ reconstructions of this model (e.g. mini)")
    args = parser.parse_args()
    model = None
    if args.model:
        import torch

        from unirl_cli.models.loading import load_model

        torch.set_num_threads(1)
        model = load_model(args.model, device="cpu", dtype="float32")
    print(f"{'condition':<28}{'objects':>9}{'accuracy':>10}{'ms/image':>10}")
    for name, perturb in perturbations(model).items():
        accuracy, objects, milliseconds = object_accuracy(perturb, args.scenes)
        print(f"{name:<28}{objects:>9}{accuracy:>10.4f}{milliseconds:>10.1f}")


if __name__ == "__main__":
    main()
