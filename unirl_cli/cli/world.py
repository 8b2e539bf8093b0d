"""`unirl world`: the shapes world: pretrain the mini model, render a prompt, detect objects in an image."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unirl_cli.cli import app
from unirl_cli.cli.common import check_positive, console, stdout

world_app = typer.Typer(help="The shapes world: a CPU-sized GenEval and the mini model.", no_args_is_help=True)
app.add_typer(world_app, name="world")


@world_app.command("pretrain")
def pretrain(
    out: Path = typer.Option(Path("outputs/mini"), "--out", "-o", help="Folder to write the trained model to."),
    minutes: float = typer.Option(30.0, "--minutes", help="Wall-clock budget for VQ tokenizer + LM training."),
    seed: int = typer.Option(0, "--seed", help="Seed of weights, scenes and batches."),
    num_scenes: int = typer.Option(3000, "--num-scenes", help="Rendered scenes per task (text-to-image, QA)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (1 keeps a shared machine usable)."),
) -> None:
    """Train the mini Janus from scratch on rendered scenes (what ships as `--model mini`)."""
    check_positive("minutes", minutes)
    check_positive("num_scenes", num_scenes)
    check_positive("threads", threads)
    import torch

    from unirl_cli.world.pretrain import PretrainSettings, pretrain_mini

    torch.set_num_threads(threads)
    settings = PretrainSettings(seed=seed, minutes=minutes, num_scenes=num_scenes)
    report = pretrain_mini(out, settings, log=lambda line: console.print(line, highlight=False))
    stdout.print(f"mini model written to {out}: VQ {report.vq_steps} steps ({report.vq_seconds / 60:.1f} min), "
                 f"LM {report.lm_steps} steps ({report.lm_seconds / 60:.1f} min), image-token loss "
                 f"{report.image_loss:.3f}, answer loss {report.answer_loss:.3f}")


@world_app.command("render")
def render(
    prompt: str = typer.Argument(..., help="A shapes-world prompt, e.g. 'a photo of two red circles'."),
    out: Path = typer.Option(Path("scene.png"), "--out", "-o", help="PNG to write."),
    seed: int = typer.Option(0, "--seed", help="Layout seed."),
) -> None:
    """Draw a correct scene for PROMPT (one of the world's prompts: evaluation or training set)."""
    from unirl_cli.errors import UnirlError
    from unirl_cli.fileio import atomic_path
    from unirl_cli.world.prompts import eval_prompts, train_prompts
    from unirl_cli.world.render import render_scene

    records = {r["prompt"]: r for r in list(eval_prompts()) + list(train_prompts())}
    if prompt not in records:
        raise UnirlError(f"'{prompt}' is not a shapes-world prompt; try e.g. '{next(iter(records))}' "
                         f"(see unirl_cli/data/shapes/*.jsonl)")
    image, objects = render_scene(records[prompt], seed)
    with atomic_path(out) as tmp:
        image.save(tmp, format="PNG")
    stdout.print(f"{out}: " + ", ".join(f"{o.color} {o.class_name} at row {o.row}, column {o.col}" for o in objects))


@world_app.command("detect")
def detect(
    image: Path = typer.Argument(..., help="A 64 px shapes-world image (PNG)."),
    min_score: Optional[float] = typer.Option(0.3, "--min-score", help="Hide detections scoring at or below this."),
) -> None:
    """List the shapes the classical detector finds in IMAGE (class, colour, box, score)."""
    from PIL import Image

    from unirl_cli.errors import UnirlError
    from unirl_cli.world.detector import detect_objects

    if not image.is_file():
        raise UnirlError(f"image '{image}' does not exist; pass a PNG file")
    detections = [d for d in detect_objects(Image.open(image)) if d.score > (min_score or 0.0)]
    for d in sorted(detections, key=lambda d: (d.box[1], d.box[0])):
        stdout.print(f"{d.color} {d.class_name}  box={tuple(int(v) for v in d.box)}  score={d.score:.3f}")
    if not detections:
        stdout.print("no objects found")
