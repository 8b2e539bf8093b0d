"""Generation and understanding to files for `unirl generate` and `unirl understand` (model-agnostic, atomic)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from unirl_cli.config import SamplingConfig
from unirl_cli.errors import UnirlError
from unirl_cli.fileio import atomic_path, write_json_atomic
from unirl_cli.models.base import UnifiedModel


def prompt_slug(prompt: str, max_len: int = 60) -> str:
    """A filesystem-safe folder name for a prompt."""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")
    return slug[:max_len] or "prompt"


def save_png(image: Image.Image, path: Path) -> None:
    """Write a PNG atomically (a killed run never leaves a truncated image under the final name)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def make_grid(images: Sequence[Image.Image], columns: int | None = None) -> Image.Image:
    """Tile equally sized images into one image, `columns` per row (default: near-square)."""
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    grid = Image.new("RGB", (columns * width, rows * height), "white")
    for index, image in enumerate(images):
        grid.paste(image, ((index % columns) * width, (index // columns) * height))
    return grid


def model_identity(model: UnifiedModel) -> dict:
    """What identifies the weights a result came from: name typed, folder, hub revision."""
    return dict(getattr(model, "source", {}) or {"family": model.family})


def generate_to_folder(model: UnifiedModel, prompt: str, num_images: int, seed: int, sampling: SamplingConfig,
                       out_dir: Path, batch_size: int = 4, grid: bool = False,
                       on_batch: Callable[[int], None] | None = None) -> list[Path]:
    """Generate `num_images` images of `prompt` (image k uses seed `seed + k`) into `out_dir`.

    Writes `{k:05d}.png`, optionally `grid.png`, and `metadata.json` (prompt, seeds, resolved sampling
    settings, model identity). Returns the PNG paths.
    """
    if not prompt.strip():
        raise UnirlError("the prompt is empty; pass the text to draw, e.g. unirl generate \"a photo of a cat\"")
    resolved = model.resolve_sampling(sampling)
    seeds = [seed + k for k in range(num_images)]
    paths, images = [], []
    for start in range(0, num_images, batch_size):
        batch_seeds = seeds[start:start + batch_size]
        rollout = model.generate_images([prompt] * len(batch_seeds), batch_seeds, resolved)
        for offset, image in enumerate(model.decode_images(rollout.image_tokens)):
            path = out_dir / f"{start + offset:05d}.png"
            save_png(image, path)
            paths.append(path)
            images.append(image)
        if on_batch is not None:
            on_batch(len(batch_seeds))
    if grid:
        save_png(make_grid(images), out_dir / "grid.png")
    write_json_atomic(out_dir / "metadata.json", {
        "prompt": prompt, "seeds": seeds, "num_images": num_images, "sampling": asdict(resolved),
        "model": model_identity(model), "files": [p.name for p in paths],
    })
    return paths


def read_images(paths: Sequence[str | Path]) -> list[Image.Image]:
    """Open images as RGB, with a one-line error naming the first unreadable file."""
    images = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UnirlError(f"image '{path}' does not exist")
        try:
            with Image.open(path) as handle:
                images.append(handle.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as err:
            raise UnirlError(f"cannot read image '{path}': not a readable image file ({err.__class__.__name__})") from err
    return images


def answer_about_images(model: UnifiedModel, images: Sequence[Image.Image], question: str,
                        max_new_tokens: int = 64, greedy: bool = True, temperature: float = 1.0,
                        seed: int = 0, batch_size: int = 8) -> list[str]:
    """Ask `question` about each image (batched; see `read_images`); answer i belongs to `images[i]`."""
    if not question.strip():
        raise UnirlError("the question is empty; e.g. unirl understand cat.png \"What is in this image?\"")
    answers: list[str] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        answers.extend(model.answer_questions(chunk, [question] * len(chunk), max_new_tokens=max_new_tokens,
                                              greedy=greedy, temperature=temperature,
                                              seeds=[seed + start + i for i in range(len(chunk))]))
    return answers
