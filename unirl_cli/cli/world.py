"""`unirl world`: the shapes world: pretrain the mini model, render a prompt, detect objects in an image, and
run UniRL's self-improvement on it with a before/after table."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from unirl_cli.cli import app
from unirl_cli.cli.common import check_positive, console, stdout
from unirl_cli.world.reading import READING_TAG_WEIGHTS

DEFAULT_WEIGHTS = ",".join(f"{tag}={weight}" for tag, weight in READING_TAG_WEIGHTS.items())

world_app = typer.Typer(help="The shapes world: a CPU-sized GenEval and the mini model.", no_args_is_help=True)
app.add_typer(world_app, name="world")


@world_app.command("pretrain")
def pretrain(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder to write the trained model to (default: outputs/mini or outputs/mini-showo)."),
    family: str = typer.Option("janus", "--family", help="janus (builds `mini`) or showo (builds `mini-showo`)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Wall-clock budget of the first stages (image tokenizer, Janus's encoder, LM, reading, truthful reading, captions); default: janus 62, showo 40."),
    reading_minutes: Optional[float] = typer.Option(None, "--reading-minutes", help="Budget of the focused reading stage, answers in the prompt's order (0 skips it); default: janus 12, showo 6."),
    decoder_minutes: Optional[float] = typer.Option(None, "--decoder-minutes", help="showo: budget of the last stage, the MAGVIT decoder alone (0 skips it; `unirl world decoder` runs it alone); default 6."),
    order_minutes: Optional[float] = typer.Option(None, "--order-minutes", help="Budget of the last stage, focused reading with answers in reading order (0 skips it; `unirl world read` runs it alone); default: janus 10, showo 6."),
    seed: int = typer.Option(0, "--seed", help="Seed of weights, scenes and batches."),
    num_scenes: int = typer.Option(3000, "--num-scenes", help="Rendered scenes per task (text-to-image, QA)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (1 keeps a shared machine usable)."),
) -> None:
    """Train a shapes-world mini from scratch on rendered scenes (what ships as `--model mini` / `mini-showo`)."""
    from unirl_cli.errors import UnirlError
    from unirl_cli.fileio import check_new_folder
    from unirl_cli.world.pretrain import FAMILIES, PretrainSettings

    if family not in FAMILIES:
        raise UnirlError(f"--family must be one of {', '.join(FAMILIES)}, got '{family}'")
    name = "mini-showo" if family == "showo" else "mini"
    out = out or Path("outputs") / name
    check_new_folder(out)
    check_positive("minutes", minutes)
    check_positive("num_scenes", num_scenes)
    if num_scenes < PretrainSettings.batch_size:  # the LM stage draws a batch of this many scenes per task
        raise UnirlError(f"--num-scenes must be >= {PretrainSettings.batch_size} (one batch of scenes per task), "
                         f"got {num_scenes}")
    check_positive("threads", threads)
    check_positive("reading_minutes", reading_minutes, allow_zero=True)
    check_positive("order_minutes", order_minutes, allow_zero=True)
    check_positive("decoder_minutes", decoder_minutes, allow_zero=True)
    if decoder_minutes and family != "showo":
        raise UnirlError("--decoder-minutes is a stage of mini-showo (--family showo); Janus's VQ decoder trains in stage 1")
    from dataclasses import replace

    import torch

    from unirl_cli.world.pretrain import pretrain_mini, showo_settings

    torch.set_num_threads(threads)
    defaults = showo_settings() if family == "showo" else PretrainSettings()
    settings = replace(defaults, seed=seed, num_scenes=num_scenes,
                       minutes=defaults.minutes if minutes is None else minutes,
                       decoder_minutes=_or(decoder_minutes, defaults.decoder_minutes),
                       reading_focus=replace(defaults.reading_focus, minutes=_or(reading_minutes, defaults.reading_focus.minutes)),
                       reading_order=replace(defaults.reading_order, minutes=_or(order_minutes, defaults.reading_order.minutes)))
    report = pretrain_mini(out, settings, log=lambda line: console.print(line, highlight=False))
    stages = "; ".join(record.summary() for record in report.stages)
    stdout.print(f"{name} model written to {out}: {stages}")


def _or(value: Optional[float], default: float) -> float:
    return default if value is None else value


def _tag_weights(text: str) -> dict:
    from unirl_cli.errors import UnirlError

    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        tag, _, value = item.partition("=")
        try:
            weights[tag.strip()] = float(value)
        except ValueError:
            raise UnirlError(f"--weights item '{item}' is not tag=number, e.g. position=0.5") from None
    return weights


@world_app.command("read")
def read(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the continued model to."),
    model: str = typer.Option("mini", "--model", "-m", help="Shapes-world model to continue: mini, mini-showo or a folder."),
    minutes: float = typer.Option(10.0, "--minutes", help="Wall-clock budget of the stage."),
    scope: str = typer.Option("training", "--scope", help="Scenes understanding may read: training (no evaluation scene, as every stage) or world (evaluation compositions too)."),
    weights: str = typer.Option(DEFAULT_WEIGHTS, "--weights", help="Question share per tag, tag=weight comma-separated."),
    truthful_share: float = typer.Option(0.2, "--truthful-share", help="Share of questions about random scenes, answered with what they show."),
    own_share: float = typer.Option(0.0, "--own-share", help="Share of questions about the model's own samples of training prompts, answered with the objects their grids show (three or four quarters of a shape in place)."),
    answer_order: str = typer.Option("reading", "--answer-order", help="How answers order the objects they name: reading (as the image shows them, top row first; the eighth pretraining stage) or prompt (as the prompt was written; the seventh)."),
    seed: int = typer.Option(22, "--seed", help="Seed of scenes and batches (the eighth pretraining stage's; the seventh's is 21)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads."),
) -> None:
    """Continue a shapes-world model with a focused reading stage (the last stage of `unirl world pretrain`)."""
    _check_stage_flags(out, minutes, threads)
    from unirl_cli.world.reading import ReadingSettings, check_reading_settings

    settings = ReadingSettings(minutes=minutes, seed=seed, scope=scope, tag_weights=_tag_weights(weights),
                               truthful_share=truthful_share, answer_order=answer_order, own_share=own_share)
    check_reading_settings(settings)
    import torch

    from unirl_cli.models.loading import load_model
    from unirl_cli.world.reading import focused_reading

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    loaded = load_model(model, device="cpu", dtype="float32")
    steps, seconds, history = focused_reading(loaded, settings, log=lambda line: console.print(line, highlight=False))
    loaded.save(str(out))
    loss = f", answer loss {history[-1]['answer_loss']:.3f} (last 50 steps)" if history else ""
    stdout.print(f"{model} read for {steps} steps ({seconds / 60:.1f} min, {scope} scope){loss}; "
                 f"written to {out} (python benchmarks/world_mini.py --model {out} reads it)")


def _check_stage_flags(out: Path, minutes: float, threads: int) -> None:
    """A one-stage command's flags: a new --out folder, --minutes and --threads above 0."""
    from unirl_cli.fileio import check_new_folder

    check_new_folder(out)
    check_positive("minutes", minutes)
    check_positive("threads", threads)


def _load_shapes_showo(model: str, threads: int, stage: str):
    """The shapes-world Show-o `model` loaded in float32 on CPU, or a one-line UnirlError naming what it is."""
    import torch

    from unirl_cli.errors import UnirlError
    from unirl_cli.models.loading import load_model, resolve_model_dir
    from unirl_cli.models.registry import detect_family
    from unirl_cli.world.reading import check_shapes_model

    family = detect_family(resolve_model_dir(model, download=False))
    if family != "showo":  # before any weights load, so the error is one line
        raise UnirlError(f"'{model}' is a {family} model; this stage trains {stage} "
                         f"(--model mini-showo or a folder holding one)")
    torch.set_num_threads(threads)
    loaded = load_model(model, device="cpu", dtype="float32")
    check_shapes_model(loaded)
    return loaded


@world_app.command("decoder")
def decoder(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the continued model to."),
    model: str = typer.Option("mini-showo", "--model", "-m", help="Shapes-world Show-o to continue: mini-showo or a folder."),
    minutes: float = typer.Option(6.0, "--minutes", help="Wall-clock budget of the stage."),
    seed: int = typer.Option(0, "--seed", help="Seed of the scenes."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads."),
) -> None:
    """Train a shapes-world Show-o's MAGVIT decoder alone (the last stage of `unirl world pretrain --family showo`)."""
    from unirl_cli.world.pretrain import decoder_stage

    _check_stage_flags(out, minutes, threads)
    loaded = _load_shapes_showo(model, threads, "a Show-o's MAGVIT decoder")
    record = decoder_stage(loaded, minutes, seed, log=lambda line: console.print(line, highlight=False))
    loaded.save(str(out))
    stdout.print(f"{model}: {record.summary()}; written to {out}")


@world_app.command("distill")
def distill(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the distilled model to."),
    model: str = typer.Option("mini-showo", "--model", "-m", help="Shapes-world Show-o to distil: mini-showo or a folder."),
    guidance: float = typer.Option(1.0, "--guidance", help="The teacher's guidance w (Show-o's (1 + w) c - w u)."),
    minutes: float = typer.Option(6.0, "--minutes", help="Wall-clock budget of the stage."),
    seed: int = typer.Option(0, "--seed", help="Seed of the scenes and masks."),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads."),
) -> None:
    """Distil a shapes-world Show-o's guided sampling into its conditional branch: it then samples at w = 0, one
    forward pass a step instead of two."""
    from dataclasses import asdict

    from unirl_cli.fileio import write_json_atomic
    from unirl_cli.world.guidance import DistillSettings, check_distill_settings, distill_guidance

    _check_stage_flags(out, minutes, threads)
    settings = DistillSettings(minutes=minutes, guidance_scale=guidance, seed=seed)
    check_distill_settings(settings)
    loaded = _load_shapes_showo(model, threads, "a Show-o's conditional branch toward its guided sampling")
    steps, seconds, history = distill_guidance(loaded, settings, log=lambda line: console.print(line, highlight=False))
    loaded.save(str(out))
    write_json_atomic(out / "distill_report.json", {"teacher": model, "settings": asdict(settings), "steps": steps,
                                                     "seconds": round(seconds, 1), "history": history})
    last = history[-1] if history else {}
    stdout.print(f"{model}: guidance w {guidance} distilled in {steps} steps ({seconds / 60:.1f} min; last KL "
                 f"{last.get('image_loss', float('nan')):.4f}, answer loss {last.get('answer_loss', float('nan')):.4f}); "
                 f"samples at w 0 by default; written to {out} with distill_report.json")


@world_app.command("render")
def render(
    prompt: str = typer.Argument(..., help="A shapes-world prompt, e.g. 'a photo of two red circles'."),
    out: Path = typer.Option(Path("scene.png"), "--out", "-o", help="PNG to write."),
    seed: int = typer.Option(0, "--seed", help="Layout seed."),
) -> None:
    """Draw a correct scene for PROMPT (one of the world's prompts: evaluation or training set)."""
    from unirl_cli.errors import UnirlError
    from unirl_cli.fileio import atomic_path, check_output_file
    from unirl_cli.data.shapes.prompts import eval_prompts, train_prompts
    from unirl_cli.data.shapes.render import render_scene

    check_output_file(out)
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
    from unirl_cli.eval.shapes.detector import detect_objects

    if not image.is_file():
        raise UnirlError(f"image '{image}' does not exist; pass a PNG file")
    detections = [d for d in detect_objects(Image.open(image)) if d.score > (min_score or 0.0)]
    for d in sorted(detections, key=lambda d: (d.box[1], d.box[0])):
        stdout.print(f"{d.color} {d.class_name}  box={tuple(int(v) for v in d.box)}  score={d.score:.3f}")
    if not detections:
        stdout.print("no objects found")


@world_app.command("improve")
def improve(
    overrides: Optional[List[str]] = typer.Argument(None, help="Training config overrides key=value, e.g. grpo.beta=0.04."),
    method: str = typer.Option("grpo", "--method", help="grpo or sft."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps (default: the recipe's)."),
    seed: int = typer.Option(0, "--seed", help="Training seed (images, prompt order); the evaluation seed stays 42."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Shapes-world model: mini, mini-showo or a folder trained from them (default: the recipe's)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="Recipe name or YAML file (default: the shipped mini-<method> or mini-showo-<method>, by the model's family)."),
    out: Path = typer.Option(Path("outputs/improve"), "--out", "-o", help="Folder for before/, train/ and after/."),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the training run (and its evaluation) that --out holds."),
) -> None:
    """Self-improve a model in the shapes world (default: mini) and print GenEval before/after, with the imbalance."""
    from unirl_cli.errors import UnirlError
    from unirl_cli.fileio import check_output_folder

    check_output_folder(out)
    if method not in ("grpo", "sft"):
        raise UnirlError(f"--method '{method}' is not one of grpo, sft")
    check_positive("steps", steps)
    check_positive("threads", threads)
    from unirl_cli.resources import resolve_config
    from unirl_cli.world.improve import default_recipe

    recipe = resolve_config(config_file or default_recipe(model, method), "train")
    import torch

    from unirl_cli.eval.geneval.summary import compare_table
    from unirl_cli.world.improve import run_improvement

    torch.set_num_threads(threads)
    extra = [*(overrides or []), f"seed={seed}"] + ([f"steps={steps}"] if steps is not None else [])
    extra += [f"model={model}"] if model is not None else []
    from unirl_cli.progress import counting_reporter

    run = run_improvement(method, recipe, out, extra, log=lambda line: console.print(line, highlight=False),
                          overwrite=overwrite, reporter=counting_reporter(stream=console.file))
    table = compare_table(run.before, run.after, "before", f"after {method}")
    table.add_row("objects per image (1.8 asked)", f"{run.objects_before:.2f}", f"{run.objects_after:.2f}",
                  f"{run.objects_after - run.objects_before:+.2f}")
    stdout.print(table)
    rewards = [row["reward/mean"] for row in run.metrics if "reward/mean" in row]
    if rewards:
        tenth = max(1, len(rewards) // 10)
        stdout.print(f"self-reward: first {tenth} steps {sum(rewards[:tenth]) / tenth:.3f}, "
                     f"last {tenth} steps {sum(rewards[-tenth:]) / tenth:.3f}; curves in {run.train_dir / 'plots'}")
    stdout.print(f"trained model: {run.checkpoint}  (unirl generate \"...\" --model {run.checkpoint})")
