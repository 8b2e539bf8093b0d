"""`unirl generate "prompt"`: text to image with any supported model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unirl_cli.cli import app
from unirl_cli.cli.common import DEVICE_HELP, DTYPE_HELP, THREADS_HELP, apply_threads, check_positive, console, stdout


@app.command()
def generate(
    prompt: str = typer.Argument(..., help="What to draw, e.g. \"a photo of two red apples\"."),
    model: str = typer.Option("janus", "--model", "-m", help="Registry name, hub id or local folder (see `unirl models`)."),
    num_images: int = typer.Option(4, "--num-images", "-n", help="How many images to sample."),
    seed: int = typer.Option(0, "--seed", help="Image k uses seed SEED+k, so each image is reproducible alone."),
    cfg: Optional[float] = typer.Option(None, "--guidance-scale", "--cfg",
                                        help="CFG scale (default: the checkpoint's or family's, 5). Off: Janus 1, Show-o 0 "
                                             "(its formula is (1+w)c - w u)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature (default 1)."),
    top_k: int = typer.Option(0, "--top-k", help="Sample among the k most likely tokens (0 = all)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass (1 = off)."),
    steps: Optional[int] = typer.Option(None, "--sampling-steps", "--steps", help="Sampling steps of masked models (Show-o 512: 50)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default outputs/generate/<prompt>)."),
    grid: bool = typer.Option(False, "--grid", help="Also write grid.png with all images."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images sampled per forward pass."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    dtype: str = typer.Option("auto", "--dtype", help=DTYPE_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
) -> None:
    """Generate images from a text prompt; writes PNGs and metadata.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from unirl_cli.config import SamplingConfig
    from unirl_cli.inference import generate_to_folder, prompt_slug
    from unirl_cli.errors import UnirlError
    from unirl_cli.models.loading import load_model

    from unirl_cli.fileio import check_output_folder

    out_dir = check_output_folder(out or Path("outputs") / "generate" / prompt_slug(prompt))
    check_positive("num_images", num_images)
    check_positive("threads", threads)
    check_positive("batch_size", batch_size)
    check_positive("temperature", temperature)
    check_positive("sampling_steps", steps)
    check_positive("guidance_scale", cfg, allow_zero=True)
    check_positive("top_k", top_k, allow_zero=True)
    if not 0 < top_p <= 1:
        raise UnirlError(f"--top-p must be in (0, 1], got {top_p}")
    if not prompt.strip():
        raise UnirlError("the prompt is empty; pass the text to draw, e.g. unirl generate \"a photo of a cat\"")
    sampling = SamplingConfig(guidance_scale=cfg, temperature=temperature, top_k=top_k, top_p=top_p, num_steps=steps)

    apply_threads(threads)
    with console.status(f"loading {model} ..."):
        loaded = load_model(model, device=device, dtype=dtype, sampling=sampling)
    with Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("images", total=num_images)
        paths = generate_to_folder(loaded, prompt, num_images, seed, sampling, out_dir, batch_size=batch_size,
                                   grid=grid, on_batch=lambda n: progress.advance(task, n))
    stdout.print(f"wrote {len(paths)} image(s) to {out_dir}")
