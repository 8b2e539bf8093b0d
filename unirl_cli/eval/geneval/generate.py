"""Generation stage: sample every prompt's images with a `UnifiedModel` into GenEval's folder layout.

Resumable (images already on disk are skipped; a killed run leaves only whole PNGs), shardable (process r of
w takes prompts i with i % w == r) and reproducible (image k of prompt i is sampled with its own seed, derived
from (seed, i, k), so it does not depend on batching, sharding or what was already generated).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from unirl_cli.config import SamplingConfig
from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.layout import (missing_samples, remove_stale_temporaries, sample_path, save_sample,
                                           write_prompt_metadata)
from unirl_cli.fileio import write_json_atomic

SETTINGS_FILE = "generation.json"
SEED_RULE = "sha256(f'{seed}:{prompt_index}:{k}') first 4 bytes, big-endian, & 0x7fffffff"


def image_seed(seed: int, prompt_index: int, k: int) -> int:
    """The sampling seed of image k of prompt `prompt_index` (31-bit, stable across runs and machines)."""
    digest = hashlib.sha256(f"{seed}:{prompt_index}:{k}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class GenerationSettings:
    """What determines the images; saved as generation.json and checked when a run resumes."""

    model: str
    family: str
    suite: str
    seed: int
    images_per_prompt: int
    sampling: dict
    seed_rule: str = SEED_RULE


def check_or_write_settings(out_dir: Path, settings: GenerationSettings, write: bool) -> None:
    """Refuse to resume a folder generated with other settings; record the settings on a fresh folder."""
    path = Path(out_dir) / SETTINGS_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        for key in ("model", "suite", "seed", "sampling"):
            if saved.get(key) != getattr(settings, key):
                raise UnirlError(f"'{out_dir}' was generated with {key}={saved.get(key)!r}, not "
                                 f"{getattr(settings, key)!r}; resume with the same settings or use another --out")
        if saved.get("images_per_prompt") == settings.images_per_prompt:
            return
    if write:
        write_json_atomic(path, asdict(settings))


def shard_indices(num_prompts: int, rank: int, world_size: int) -> list[int]:
    """The prompt indices process `rank` of `world_size` generates: i % world_size == rank."""
    return [i for i in range(num_prompts) if i % world_size == rank]


def pending_jobs(out_dir: Path, metadata: Sequence[dict], indices: Sequence[int],
                 images_per_prompt: int) -> list[tuple[int, int]]:
    """(prompt index, k) of every image still to sample; writes each prompt's metadata.jsonl on the way."""
    jobs = []
    for index in indices:
        write_prompt_metadata(out_dir, index, metadata[index])
        remove_stale_temporaries(out_dir, index)
        jobs.extend((index, k) for k in missing_samples(out_dir, index, images_per_prompt))
    return jobs


def generate_prompt_images(model, metadata: Sequence[dict], out_dir: str | Path, *, indices: Sequence[int],
                           images_per_prompt: int, seed: int, batch_size: int,
                           sampling: Optional[SamplingConfig] = None,
                           on_images: Optional[Callable[[int], None]] = None) -> int:
    """Sample the missing images of prompts `indices` in batches across prompts; return how many were written.

    Only `model.generate_images` and `model.decode_images` are used, so any family works. `on_images(n)` is
    called after each batch (progress bars).
    """
    out_dir = Path(out_dir)
    jobs = pending_jobs(out_dir, metadata, indices, images_per_prompt)
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        prompts = [metadata[index]["prompt"] for index, _ in batch]
        seeds = [image_seed(seed, index, k) for index, k in batch]
        rollout = model.generate_images(prompts, seeds, sampling)
        images = model.decode_images(rollout.image_tokens)
        for (index, k), image in zip(batch, images):
            save_sample(image, sample_path(out_dir, index, k))
        if on_images is not None:
            on_images(len(batch))
    return len(jobs)
