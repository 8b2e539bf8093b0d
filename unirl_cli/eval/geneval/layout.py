"""GenEval's image-folder layout: writing it (atomically, resumably) and reading it back (strictly).

    <folder>/<prompt index:05d>/metadata.jsonl      one JSON object: the prompt's metadata line
    <folder>/<prompt index:05d>/samples/<k:05d>.png

The official evaluator silently skips what does not fit (JPEGs, odd names); reading here refuses instead,
naming the folder and what is wrong, so no image goes uncounted without the user knowing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.prompts import validate_metadata
from unirl_cli.fileio import atomic_path, write_text_atomic

SAMPLE_NAME = re.compile(r"\d+\.png")
OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
LAYOUT_HINT = "expected <folder>/00000/metadata.jsonl and <folder>/00000/samples/00000.png, ... (GenEval's layout)"


def prompt_folder(root: Path, index: int) -> Path:
    """`root/<index:05d>`."""
    return Path(root) / f"{index:05d}"


def sample_path(root: Path, index: int, k: int) -> Path:
    """`root/<index:05d>/samples/<k:05d>.png`."""
    return prompt_folder(root, index) / "samples" / f"{k:05d}.png"


def write_prompt_metadata(root: Path, index: int, metadata: dict) -> None:
    """Write the prompt's metadata as one JSON object (refusing to overwrite a different prompt's)."""
    path = prompt_folder(root, index) / "metadata.jsonl"
    if path.is_file():
        existing = read_metadata(path)
        if existing != metadata:
            raise UnirlError(f"'{path}' belongs to another prompt ({existing.get('prompt')!r}, not "
                             f"{metadata.get('prompt')!r}); use a fresh --out folder for another suite")
        return
    write_text_atomic(path, json.dumps(metadata) + "\n")


def save_sample(image: Image.Image, path: Path) -> None:
    """Save a PNG so that a killed process never leaves a partial file under its final name."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def missing_samples(root: Path, index: int, images_per_prompt: int) -> list[int]:
    """The sample numbers k < images_per_prompt whose PNG does not exist yet."""
    return [k for k in range(images_per_prompt) if not sample_path(root, index, k).is_file()]


def remove_stale_temporaries(root: Path, index: int) -> None:
    """Delete temporary files a killed writer left behind (they never carry a final name)."""
    samples = prompt_folder(root, index) / "samples"
    if samples.is_dir():
        for leftover in samples.glob(".*.tmp*"):
            leftover.unlink(missing_ok=True)


def read_metadata(path: Path) -> dict:
    """The single JSON object in `path`, validated as a GenEval prompt record."""
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UnirlError(f"'{path}' is not one JSON object ({err.msg} at line {err.lineno}); GenEval's layout "
                         f"puts exactly one prompt record in each metadata.jsonl") from err
    return validate_metadata(metadata, f"'{path}'")


@dataclass(frozen=True)
class PromptImages:
    """One prompt folder of an image folder: its metadata and its sample images, in name order."""

    folder: Path
    metadata: dict
    images: tuple[Path, ...]


def scan_image_folder(root: str | Path, limit: int | None = None) -> list[PromptImages]:
    """Every prompt folder under `root` (all-digit names, sorted), validated; `UnirlError` on any layout fault."""
    root = Path(root)
    if not root.is_dir():
        raise UnirlError(f"image folder '{root}' does not exist; {LAYOUT_HINT}")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: (int(p.name), p.name))
    if not folders:
        raise UnirlError(f"'{root}' has no prompt folders (00000/, 00001/, ...); {LAYOUT_HINT}")
    if limit is not None:
        folders = folders[:limit]
    return [_read_prompt_folder(folder) for folder in folders]


def _read_prompt_folder(folder: Path) -> PromptImages:
    metadata_path = folder / "metadata.jsonl"
    if not metadata_path.is_file():
        raise UnirlError(f"'{folder}' has no metadata.jsonl; each prompt folder needs its prompt's metadata "
                         f"line as one JSON object ({LAYOUT_HINT})")
    metadata = read_metadata(metadata_path)
    samples = folder / "samples"
    if not samples.is_dir():
        raise UnirlError(f"'{folder}' has no samples/ folder; put the prompt's images in {samples}/00000.png, ... "
                         f"(if an interrupted `unirl eval geneval` run made it, rerun that command to finish)")
    names = sorted(p.name for p in samples.iterdir() if p.is_file() and not p.name.startswith("."))
    others = [n for n in names if Path(n).suffix.lower() in OTHER_IMAGE_SUFFIXES]
    if others:
        raise UnirlError(f"'{samples}' holds non-PNG images ({', '.join(others[:3])}); GenEval reads only lossless "
                         f"PNGs named like 00000.png: convert them or re-generate")
    images = tuple(samples / n for n in names if SAMPLE_NAME.fullmatch(n))
    if not images:
        raise UnirlError(f"'{samples}' holds no images named like 00000.png; {LAYOUT_HINT} (if an interrupted "
                         f"`unirl eval geneval` run made it, rerun that command to finish)")
    return PromptImages(folder, metadata, images)


def check_complete(prompts: list[PromptImages], images_per_prompt: int) -> None:
    """Refuse to score a generated folder in which some prompt has fewer images than were asked for."""
    short = [p for p in prompts if len(p.images) < images_per_prompt]
    if short:
        raise UnirlError(f"'{short[0].folder}' has {len(short[0].images)} of {images_per_prompt} images "
                         f"({len(short)} prompt(s) incomplete): the generation was interrupted; rerun the "
                         f"generating command to finish it before scoring")


def load_image(path: Path) -> Image.Image:
    """An RGB image as GenEval reads it (EXIF orientation applied)."""
    try:
        with Image.open(path) as handle:
            return ImageOps.exif_transpose(handle).convert("RGB")
    except OSError as err:
        raise UnirlError(f"'{path}' is not a readable image ({err}); delete it and re-generate") from err
