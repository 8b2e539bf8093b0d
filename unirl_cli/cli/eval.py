"""`unirl eval geneval`: GenEval images from a model, scored with the official rules; or score/compare folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple

import typer

from unirl_cli.cli import app
from unirl_cli.cli.common import DEVICE_HELP, DTYPE_HELP, THREADS_HELP, apply_threads, console, print_config, stdout

eval_app = typer.Typer(help="Evaluate models on benchmarks (GenEval).", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


def _cli_settings(**options) -> dict:
    """The options the user actually gave, as config keys (None means 'not given')."""
    return {key: value for key, value in options.items() if value is not None}


def _progress_reporter(progress):
    def open_bar(description: str, total: int):
        task = progress.add_task(description, total=total)
        return lambda n: progress.advance(task, n)

    return open_bar


@eval_app.command("geneval")
def geneval(
    overrides: Optional[List[str]] = typer.Argument(None, help="Config overrides key=value, e.g. sampling.guidance_scale=5 thresholds.threshold=0.3."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model to evaluate: registry name, hub id or folder (default janus)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default: the --images folder, else outputs/geneval/<model>)."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Benchmark suite: geneval (default) or shapes (the CPU-sized shapes world)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Score this existing folder in GenEval's layout instead of generating."),
    compare: Optional[Tuple[Path, Path]] = typer.Option(None, "--compare", help="Print two scored runs (folders, summary.json or results.jsonl) side by side."),
    understanding: Optional[bool] = typer.Option(None, "--understanding/--no-understanding", help="Also ask the model each prompt's question about its images; report the imbalance."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML recipe filling the config (CLI options and overrides win)."),
    device: Optional[str] = typer.Option(None, "--device", help=f"Device of the model: {DEVICE_HELP}."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help=DTYPE_HELP),
    eval_device: Optional[str] = typer.Option(None, "--eval-device", help="Device of the detector and CLIP (default auto)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N prompts (a quick check; not a GenEval score)."),
    images_per_prompt: Optional[int] = typer.Option(None, "--images-per-prompt", "-n", help="Images per prompt (GenEval: 4)."),
    detector_path: Optional[str] = typer.Option(None, "--detector-path", help="Folder of the Mask2Former detector (default: the downloaded geneval-detector)."),
    clip_path: Optional[str] = typer.Option(None, "--clip-path", help="Folder of CLIP ViT-L/14 (default: the downloaded geneval-clip)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sampling seed of the generated images (GenEval: 42)."),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
    show_config: bool = typer.Option(False, "--show-config", help="Print every config key and the resolved config, then exit."),
) -> None:
    """Generate GenEval's images with a model and score them exactly as GenEval does (or score --images DIR)."""
    from unirl_cli.config import build_config, merge_dicts, parse_overrides, read_yaml
    from unirl_cli.errors import UnirlError
    from unirl_cli.eval.geneval.config import EvalGenevalConfig
    from unirl_cli.fileio import check_output_folder
    from unirl_cli.resources import resolve_config

    if compare:
        _print_comparison(*compare)
        return
    cli_values = _cli_settings(suite=suite, model=model, out_dir=str(out) if out else None, images_dir=str(images) if images else None,
                               understanding=understanding, device=device, dtype=dtype, eval_device=eval_device,
                               limit=limit, images_per_prompt=images_per_prompt, detector_path=detector_path,
                               clip_path=clip_path, seed=seed)
    # Recipe, then key=value overrides, then flags: a flag wins over the same key given as key=value (as in train).
    data = merge_dicts(read_yaml(resolve_config(config, "eval")) if config else {},
                       parse_overrides(list(overrides or [])))
    settings = build_config(EvalGenevalConfig, merge_dicts(data, cli_values))
    if show_config:
        _show_config(settings)
        return
    if settings.images_dir and not Path(settings.images_dir).is_dir():
        raise UnirlError(f"--images '{settings.images_dir}' is not a folder; pass a folder in GenEval's layout")
    if settings.out_dir:
        check_output_folder(settings.out_dir)
    apply_threads(threads)
    _run(settings)


def _run(settings) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from unirl_cli.eval.geneval.imbalance import imbalance_table
    from unirl_cli.eval.geneval.pipeline import run_geneval, silent_reporter
    from unirl_cli.eval.geneval.summary import score_table
    from unirl_cli.models.loading import load_model
    from unirl_cli.progress import counting_reporter

    main_process = os.environ.get("RANK", "0") == "0"
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, disable=not main_process) as progress:
        reporter = silent_reporter
        if main_process:  # rich bars on a terminal, plain lines at a steady pace in a log file
            reporter = _progress_reporter(progress) if console.is_terminal else counting_reporter()
        result = run_geneval(settings, load_model, reporter)
    if result.summary is None:
        if main_process:
            stdout.print(f"generated {result.generated} image(s) into {result.out_dir}")
        return
    stdout.print(score_table(result.summary))
    if "understanding" in result.summary:
        stdout.print(imbalance_table(result.summary["understanding"]))
    stdout.print(f"wrote {result.out_dir / 'results.jsonl'}, summary.json and geneval.png in {result.out_dir}")


def _show_config(settings) -> None:
    from unirl_cli.eval.geneval.config import EvalGenevalConfig

    print_config(EvalGenevalConfig, settings, "eval geneval config keys")


def _print_comparison(first: Path, second: Path) -> None:
    from unirl_cli.eval.geneval.summary import compare_table, load_summary

    stdout.print(compare_table(load_summary(first), load_summary(second), str(first), str(second)))
