"""How well a shapes-world model understands correct renders: greedy answers to each evaluation prompt's
question about its rendered scene, matched with unirl's answer matcher, per tag.

    OMP_NUM_THREADS=1 python benchmarks/world_mini.py [--model mini] [--renders 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from unirl_cli.data.matching import match_answer
from unirl_cli.models.loading import load_model
from unirl_cli.world.prompts import eval_prompts
from unirl_cli.world.render import render_scene


def understanding_accuracy(model, renders_per_prompt: int = 2, batch_size: int = 32) -> dict[str, float]:
    """Per tag, the share of rendered evaluation scenes whose greedy answer states every required fact."""
    jobs = [(record, render_scene(record, seed)[0]) for record in eval_prompts() for seed in range(renders_per_prompt)]
    scores: dict[str, list[float]] = {}
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        answers = model.answer_questions([image for _, image in batch], [r["question"] for r, _ in batch],
                                         max_new_tokens=16)
        for (record, _), answer in zip(batch, answers):
            scores.setdefault(record["tag"], []).append(match_answer(record["tag"], record, answer))
    return {tag: sum(values) / len(values) for tag, values in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--renders", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model, device="cpu", dtype="float32")
    start = time.time()
    accuracy = understanding_accuracy(model, args.renders)
    print(f"{'tag':<16}{'QA accuracy on renders':>24}")
    for tag, value in accuracy.items():
        print(f"{tag:<16}{value:>24.3f}")
    print(f"{'mean':<16}{sum(accuracy.values()) / len(accuracy):>24.3f}   ({time.time() - start:.0f}s)")


if __name__ == "__main__":
    main()
