"""How well a shapes-world model understands correct renders: greedy answers to each prompt's question about
its rendered scene, matched with unirl's answer matcher, per tag; on the evaluation prompts (scenes no stage of
pretraining saw) and on the training prompts (scenes the understanding stages saw, new renders).

    OMP_NUM_THREADS=1 python benchmarks/world_mini.py [--model mini] [--renders 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from unirl_cli.data.matching import match_answer
from unirl_cli.models.loading import load_model
from unirl_cli.world.prompts import eval_prompts, train_prompts
from unirl_cli.world.render import render_scene


def understanding_accuracy(model, records, renders_per_prompt: int = 2, batch_size: int = 32) -> dict[str, float]:
    """Per tag, the share of rendered scenes of `records` whose greedy answer states every required fact."""
    jobs = [(record, render_scene(record, 10_000 + seed)[0]) for record in records for seed in range(renders_per_prompt)]
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
    evaluation = understanding_accuracy(model, eval_prompts(), args.renders)
    training = understanding_accuracy(model, train_prompts(), args.renders)
    print(f"{'tag':<16}{'evaluation scenes':>20}{'training scenes':>18}")
    for tag in evaluation:
        seen = f"{training[tag]:.3f}" if tag in training else "-"
        print(f"{tag:<16}{evaluation[tag]:>20.3f}{seen:>18}")
    print(f"{'mean':<16}{sum(evaluation.values()) / len(evaluation):>20.3f}"
          f"{sum(training.values()) / len(training):>18.3f}   ({time.time() - start:.0f}s)")


if __name__ == "__main__":
    main()
