"""Evaluation stage: detect, colour and score every image of a GenEval folder; records in GenEval's format.

A record has exactly the fields of the official `results.jsonl` (filename, tag, prompt, correct, reason,
metadata as a JSON string, details as a JSON string of kept boxes with scores), so the official
`summary_scores.py` reads our files and we read theirs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from PIL import Image

from unirl_cli.eval.geneval.config import GenevalThresholds
from unirl_cli.eval.geneval.detections import Detection, keep_confident
from unirl_cli.eval.geneval.layout import PromptImages, load_image
from unirl_cli.eval.geneval.scoring import ImageVerdict, color_requests, score_image
from unirl_cli.fileio import atomic_path


def judge_images(judge, images: Sequence[Image.Image], metadatas: Sequence[dict],
                 thresholds: GenevalThresholds) -> list[tuple[ImageVerdict, dict[str, list[Detection]]]]:
    """Verdict and kept detections of each image; all colour crops of the batch go to CLIP together."""
    detections = judge.detect(images)
    kept = [keep_confident(found, metadata["tag"], thresholds) for found, metadata in zip(detections, metadatas)]
    requests = [(image, detection) for image, metadata, per_class in zip(images, metadatas, kept)
                for detection in color_requests(metadata, per_class)]
    for (_, detection), color in zip(requests, judge.label_colors(requests)):
        detection.color = color
    return [(score_image(metadata, per_class, thresholds.position_threshold), per_class)
            for metadata, per_class in zip(metadatas, kept)]


def result_record(filename: str, metadata: dict, verdict: ImageVerdict, kept: dict[str, list[Detection]]) -> dict:
    """One line of results.jsonl, field for field as GenEval writes it."""
    return {
        "filename": filename,
        "tag": metadata["tag"],
        "prompt": metadata["prompt"],
        "correct": verdict.correct,
        "reason": verdict.reason,
        "metadata": json.dumps(metadata),
        "details": json.dumps({name: [d.box_and_score() for d in found] for name, found in kept.items()}),
    }


def image_jobs(prompts: Iterable[PromptImages]) -> list[tuple[Path, dict]]:
    """(image path, metadata) for every image of the scanned folders, in folder then name order."""
    return [(path, prompt.metadata) for prompt in prompts for path in prompt.images]


def evaluate_images(judge, jobs: Sequence[tuple[Path, dict]], thresholds: GenevalThresholds, batch_size: int = 4,
                    on_images: Optional[Callable[[int], None]] = None) -> list[dict]:
    """Score every (image path, metadata) job in batches; return the result records in job order."""
    records = []
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        images = [load_image(path) for path, _ in batch]
        metadatas = [metadata for _, metadata in batch]
        for (path, metadata), (verdict, kept) in zip(batch, judge_images(judge, images, metadatas, thresholds)):
            records.append(result_record(str(path), metadata, verdict, kept))
        if on_images is not None:
            on_images(len(batch))
    return records


def score_resumably(judge, jobs: Sequence[tuple[Path, dict]], thresholds: GenevalThresholds, batch_size: int,
                    partial_path: Path, scoring_key: str, done: Optional[dict[str, dict]] = None,
                    on_images: Optional[Callable[[int], None]] = None) -> list[dict]:
    """`evaluate_images`, but each batch's records are appended to `partial_path` as they are made, and
    images in `done` (default: those recorded in `partial_path` under the same `scoring_key`) are not scored
    again, so a killed scoring run resumes where it stopped. Returns the records of all `jobs`, in job order.
    """
    done = dict(read_partial(partial_path, scoring_key) if done is None else done)
    todo = [job for job in jobs if str(job[0]) not in done]
    if on_images is not None and len(todo) < len(jobs):
        on_images(len(jobs) - len(todo))
    partial_path.parent.mkdir(parents=True, exist_ok=True)
    with open(partial_path, "a", encoding="utf-8") as handle:
        for start in range(0, len(todo), batch_size):
            for record in evaluate_images(judge, todo[start:start + batch_size], thresholds, batch_size, on_images):
                done[record["filename"]] = record
                handle.write(json.dumps({"key": scoring_key, "record": record}) + "\n")
            handle.flush()
    return [done[str(path)] for path, _ in jobs]


def scoring_key(config) -> str:
    """A short hash of what decides a record (suite, judge weights, thresholds), to reuse only matching ones."""
    import hashlib
    from dataclasses import asdict

    identity = {"suite": config.suite, "detector": config.detector_path, "clip": config.clip_path,
                "thresholds": asdict(config.thresholds)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


PARTIAL_GLOB = ".results.partial.*.jsonl"


def partial_results_path(out_dir: Path, rank: int) -> Path:
    """The hidden file where process `rank` appends its records while scoring."""
    return Path(out_dir) / f".results.partial.{rank}.jsonl"


def read_partials(out_dir: Path, scoring_key: str) -> dict[str, dict]:
    """filename -> record over every process's partial results file in `out_dir`."""
    merged: dict[str, dict] = {}
    for path in sorted(Path(out_dir).glob(PARTIAL_GLOB)):
        merged.update(read_partial(path, scoring_key))
    return merged


def read_partial(path: Path, scoring_key: str) -> dict[str, dict]:
    """filename -> record of a partial results file, keeping only lines scored with `scoring_key`.

    A line cut short by a kill is ignored (it is the last one, and its image is simply scored again).
    """
    records: dict[str, dict] = {}
    if not Path(path).is_file():
        return records
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("key") == scoring_key:
            records[entry["record"]["filename"]] = entry["record"]
    return records


def write_records(path: str | Path, records: Sequence[dict]) -> None:
    """Write records as JSON lines, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")


def read_records(path: str | Path) -> list[dict]:
    """The records of a results.jsonl (ours or the official evaluator's)."""
    from unirl_cli.errors import UnirlError

    path = Path(path)
    if not path.is_file():
        raise UnirlError(f"'{path}' does not exist; pass a results.jsonl or a run folder that holds one")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise UnirlError(f"'{path}' line {number} is not JSON ({err.msg}); is it a GenEval results.jsonl?") from err
    return records
