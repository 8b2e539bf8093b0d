"""The understanding side of the imbalance metric: the model answers its prompt's question about each image.

Answers are greedy; correctness comes from an answer matcher `(tag, metadata, answer) -> score in [0, 1]`
(by default `unirl_cli.data.matching.match_answer`), an answer being correct when it scores 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from unirl_cli.eval.geneval.layout import load_image
from unirl_cli.eval.geneval.prompts import question_and_answer

AnswerMatcher = Callable[[str, dict, str], float]


def default_matcher() -> AnswerMatcher:
    """unirl's deterministic answer matcher (all facts stated, nothing extra claimed)."""
    from unirl_cli.data.matching import match_answer

    return match_answer


def answer_images(model, jobs: Sequence[tuple[Path, dict]], matcher: AnswerMatcher, batch_size: int = 8,
                  max_new_tokens: int = 48, on_images: Optional[Callable[[int], None]] = None) -> list[dict]:
    """One record per (image path, metadata) job: question, reference, the model's answer, score, correct."""
    records = []
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        questions = [question_and_answer(metadata) for _, metadata in batch]
        images = [load_image(path) for path, _ in batch]
        answers = model.answer_questions(images, [q for q, _ in questions], max_new_tokens=max_new_tokens,
                                         greedy=True)
        for (path, metadata), (question, reference), answer in zip(batch, questions, answers):
            score = float(matcher(metadata["tag"], metadata, answer))
            records.append({"filename": str(path), "tag": metadata["tag"], "prompt": metadata["prompt"],
                            "question": question, "reference": reference, "answer": answer,
                            "score": score, "correct": score >= 1.0})
        if on_images is not None:
            on_images(len(batch))
    return records
