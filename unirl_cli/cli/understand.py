"""`unirl understand IMAGE... "question"`: answer a question about images."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from unirl_cli.cli import app
from unirl_cli.cli.common import DEVICE_HELP, DTYPE_HELP, THREADS_HELP, apply_threads, check_positive, console


@app.command()
def understand(
    args: List[str] = typer.Argument(..., help="One or more image files, then the question (last)."),
    model: str = typer.Option("janus", "--model", "-m", help="Registry name, hub id or local folder."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Longest answer, in tokens."),
    sample: bool = typer.Option(False, "--sample", help="Sample the answer instead of greedy decoding."),
    temperature: float = typer.Option(1.0, "--temperature", help="Answer sampling temperature (with --sample)."),
    seed: int = typer.Option(0, "--seed", help="Seed of sampled answers."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    dtype: str = typer.Option("auto", "--dtype", help=DTYPE_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
) -> None:
    """Answer a question about each image; prints one answer per image."""
    from unirl_cli.inference import answer_about_images, read_images
    from unirl_cli.errors import UnirlError
    from unirl_cli.models.loading import load_model

    if len(args) < 2:
        raise UnirlError("give at least one image and a question: unirl understand IMAGE [IMAGE...] \"question\"")
    *image_paths, question = args
    if not question.strip():
        raise UnirlError("the question is empty; e.g. unirl understand cat.png \"What is in this image?\"")
    check_positive("max_new_tokens", max_new_tokens)
    check_positive("threads", threads)
    check_positive("temperature", temperature)
    if Path(question).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") and Path(question).exists():
        raise UnirlError(f"the last argument '{question}' is an image; put the question last")
    images = read_images(image_paths)  # fail on a bad file before loading the model
    apply_threads(threads)
    with console.status(f"loading {model} ..."):
        loaded = load_model(model, device=device, dtype=dtype)
    answers = answer_about_images(loaded, images, question, max_new_tokens=max_new_tokens,
                                  greedy=not sample, temperature=temperature, seed=seed)
    for path, answer in zip(image_paths, answers):
        typer.echo(f"{path}: {answer}" if len(image_paths) > 1 else answer)
