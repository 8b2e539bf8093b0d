"""The generation/understanding imbalance of shapes-world models on training prompts and on evaluation prompts.

The shapes suite's imbalance (right images whose own answer is wrong, over right images) is measured on the
evaluation prompts, whose compositions no stage trains on. This prints it next to the same measure on training
prompts, so one can tell a reader that cannot read what the generator draws from one that cannot read unseen
compositions. 16 prompts per tag (all tags with training prompts), 4 images each at the model's own sampling
settings; GenEval verdicts from the suite's detector, answers matched with the world's vocabulary.

    OMP_NUM_THREADS=2 python benchmarks/world_imbalance.py --model mini outputs/improve/train/checkpoints/step-000150
"""

from __future__ import annotations

import argparse

from unirl_cli.data.matching import match_answer
from unirl_cli.eval.geneval.config import GenevalThresholds
from unirl_cli.eval.geneval.evaluate import judge_images
from unirl_cli.eval.geneval.imbalance import imbalance_report
from unirl_cli.models.loading import load_model
from unirl_cli.data.shapes.prompts import TRAIN_TAGS, eval_prompts, shapes_vocabulary, train_prompts
from unirl_cli.eval.shapes.suite import build_shapes_judge


def tag_sample(records, per_tag: int) -> list[dict]:
    """The first `per_tag` records of each training tag, in tag order."""
    return [r for tag in TRAIN_TAGS for r in [x for x in records if x["tag"] == tag][:per_tag]]


def imbalance_row(model, records: list[dict], images_per_prompt: int) -> tuple[float, float, float]:
    """(GenEval accuracy, own-answer accuracy, imbalance) over the model's images of `records`."""
    jobs = [r for r in records for _ in range(images_per_prompt)]
    rollout = model.generate_images([r["prompt"] for r in jobs], seeds=[7000 + i for i in range(len(jobs))])
    verdicts = judge_images(build_shapes_judge(None), model.decode_images(rollout.image_tokens), jobs,
                            GenevalThresholds())
    answers = model.answer_questions(rollout.image_tokens, [r["question"] for r in jobs], max_new_tokens=16)
    vocabulary = shapes_vocabulary()
    results = [{"filename": i, "tag": r["tag"], "correct": verdict.correct}
               for i, (r, (verdict, _)) in enumerate(zip(jobs, verdicts))]
    read = [{"filename": i, "correct": match_answer(r["tag"], r, answer, vocabulary=vocabulary) == 1.0}
            for i, (r, answer) in enumerate(zip(jobs, answers))]
    pooled = imbalance_report(results, read)["overall"]
    return pooled["generation_accuracy"], pooled["understanding_accuracy"], pooled["imbalance"] or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["mini"])
    parser.add_argument("--per-tag", type=int, default=16)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    print("| model | prompts | GenEval | QA acc. | imbalance |")
    print("|---|---|---|---|---|")
    for name in args.model:
        model = load_model(name, device="cpu", dtype="float32")
        for split, records in (("training", train_prompts()), ("evaluation", eval_prompts())):
            geneval, qa, imbalance = imbalance_row(model, tag_sample(records, args.per_tag), args.images)
            print(f"| {name} | {split} | {geneval:.3f} | {qa:.3f} | {imbalance:.3f} |", flush=True)


if __name__ == "__main__":
    main()
