"""Throughput of GenEval's evaluation stage on CPU: detector + colour check + scoring, batched vs one by one.

A mid-size random Mask2Former (Swin 48-dim, [2, 2, 6, 2] blocks, 100 queries; the real Swin-S is 96-dim with
[2, 2, 18, 2]) and a tiny CLIP, built from their config classes, score Janus-sized (384 px) images of GenEval
colour prompts at GenEval's 800 px detector input. Run: `python benchmarks/geneval.py [--images 8]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from unirl_cli.eval.geneval.colors import load_color_classifier
from unirl_cli.eval.geneval.config import GenevalThresholds
from unirl_cli.eval.geneval.detector import load_detector
from unirl_cli.eval.geneval.evaluate import evaluate_images
from unirl_cli.eval.geneval.generate import image_seed
from unirl_cli.eval.geneval.layout import sample_path, save_sample, write_prompt_metadata
from unirl_cli.eval.geneval.prompts import geneval_metadata, object_names
from unirl_cli.eval.geneval.suites import ModelJudge
from unirl_cli.eval.geneval.tiny_judge import build_tiny_clip, build_tiny_detector


def write_images(root: Path, count: int, side: int) -> list[tuple[Path, dict]]:
    """`count` noise images of GenEval colour prompts in GenEval's layout; the (path, metadata) jobs."""
    prompts = [m for m in geneval_metadata() if m["tag"] == "colors"][:count]
    jobs = []
    for index, metadata in enumerate(prompts):
        write_prompt_metadata(root, index, metadata)
        rng = np.random.default_rng(image_seed(0, index, 0))
        path = sample_path(root, index, 0)
        save_sample(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)), path)
        jobs.append((path, metadata))
    return jobs


def images_per_second(judge, jobs, batch_size: int) -> float:
    judge.detector.batch_size = batch_size
    start = time.perf_counter()
    evaluate_images(judge, jobs, GenevalThresholds(), batch_size)
    return len(jobs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jobs = write_images(root / "images", args.images, args.image_size)
        favourite = object_names().index(jobs[0][1]["include"][0]["class"])
        detector_dir = build_tiny_detector(root / "detector", size="mid", favourite_class=favourite)
        detector = load_detector(str(detector_dir), object_names(), torch.device("cpu"), min_score=0.3)
        params = sum(p.numel() for p in detector.model.parameters()) / 1e6
        judge = ModelJudge(detector, load_color_classifier(str(build_tiny_clip(root / "clip")), torch.device("cpu")))
        evaluate_images(judge, jobs[:1], GenevalThresholds())  # warm-up (lazy initialisation, caches)
        # The CPU is shared: alternate the modes and keep each one's best round, so load spikes hit both alike.
        one_by_one = batched = 0.0
        for _ in range(args.rounds):
            one_by_one = max(one_by_one, images_per_second(judge, jobs, 1))
            batched = max(batched, images_per_second(judge, jobs, args.batch_size))
    table = Table(title=f"GenEval evaluation stage on CPU ({args.threads} threads, {params:.1f}M-param detector, "
                        f"{args.image_size} px images -> 800 px input, {args.images} images, best of {args.rounds} rounds)")
    table.add_column("mode")
    table.add_column("images/s", justify="right")
    table.add_column("s/image", justify="right")
    table.add_column("speed-up", justify="right")
    table.add_row("one by one", f"{one_by_one:.3f}", f"{1 / one_by_one:.2f}", "1.00x")
    table.add_row(f"batched ({args.batch_size})", f"{batched:.3f}", f"{1 / batched:.2f}", f"{batched / one_by_one:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
