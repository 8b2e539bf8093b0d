"""`unirl train grpo|sft`: UniRL self-improvement; the same command runs under `accelerate launch`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from unirl_cli.cli import app
from unirl_cli.cli.common import THREADS_HELP, apply_threads, check_positive, print_config, stdout

train_app = typer.Typer(help="Train a unified model on its own images and answers (UniRL): GRPO or SFT.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

MODEL_HELP = "Registry name, hub id or folder (default: the recipe's, else janus; on --resume: the run's)."
CONFIG_HELP = "Recipe: a shipped name (e.g. janus-pro-1b-grpo; `unirl configs` lists them) or a YAML file."
RESUME_HELP = "Continue the run in --out from its latest complete checkpoint (exactly where it stopped)."
OVERWRITE_HELP = "Replace the run that --out already holds (its checkpoints, metrics, samples and plots are deleted)."
RESUME_FROM_HELP = "Continue from this checkpoint folder, or the latest checkpoint of this run folder."
OVERRIDES_HELP = "Config overrides as key=value, e.g. grpo.beta=0.2 rollout.guidance_scale=5 (see --show-config)."


def _resolve_config(method: str, model: Optional[str], steps: Optional[int], config_file: Optional[Path],
                    resume: Optional[str], output_dir: Optional[Path], overrides: list[str]):
    from unirl_cli.config import load_config
    from unirl_cli.errors import UnirlError
    from unirl_cli.train import checkpoint as ckpt
    from unirl_cli.train.config import TrainConfig

    base: dict = {}
    if resume is not None:
        run_dir = output_dir or Path(TrainConfig().output_dir)
        checkpoint = ckpt.resolve_resume_dir(resume, run_dir)
        state = ckpt.read_trainer_state(checkpoint)
        if not isinstance(state.get("config"), dict):
            raise UnirlError(f"'{checkpoint}' holds no run config in its trainer state; it is damaged or was not "
                             f"written by `unirl train`: resume from another checkpoint")
        base = dict(state["config"])
    explicit = [f"method={method}"]
    if model is not None:
        explicit.append(f"model={model}")
    if steps is not None:
        explicit.append(f"steps={steps}")
    if output_dir is not None:
        explicit.append(f"output_dir={output_dir}")
    return load_config(TrainConfig, config_file, [*overrides, *explicit], base=base)


def _show_config(config) -> None:
    from unirl_cli.train.config import TrainConfig

    print_config(TrainConfig, config, "training config keys")


def _run(method: str, model, steps, config_file, resume, output_dir, show_config, overrides, overwrite,
         threads=None) -> None:
    check_positive("steps", steps)
    from unirl_cli.train.checkpoint import check_resume_or_overwrite

    check_resume_or_overwrite(resume is not None, overwrite)  # before the checkpoint the config is read from
    config = _resolve_config(method, model, steps, config_file, resume, output_dir, list(overrides or []))
    if show_config:
        _show_config(config)
        return
    from unirl_cli.train.loop import train

    apply_threads(threads)
    result = train(config, resume=resume, overwrite=overwrite)
    if result.metrics:
        last = result.metrics[-1]
        stdout.print(f"done: step {last['step']}, reward {last.get('reward/mean', float('nan')):.3f}; "
                     f"checkpoint {result.last_checkpoint}; metrics {result.output_dir / 'metrics.jsonl'}")


def _command(method: str, summary: str):
    def command(
        overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
        model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
        steps: Optional[int] = typer.Option(None, "--steps", help="Training steps (default: the recipe's, else 100)."),
        config_file: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
        resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
        resume_from: Optional[Path] = typer.Option(None, "--resume-from", help=RESUME_FROM_HELP),
        output_dir: Optional[Path] = typer.Option(None, "--out", "-o", "--output-dir",
                                                  help="Run folder (checkpoints, metrics, samples, plots)."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
        seed: Optional[int] = typer.Option(None, "--seed", help="Run seed: images, prompt order, Gumbel noise (default: the recipe's, else 0)."),
        threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
        show_config: bool = typer.Option(False, "--show-config", help="Print every config key and the resolved config, then exit."),
    ) -> None:
        target = str(resume_from) if resume_from is not None else ("" if resume else None)
        flags = list(overrides or []) + ([f"seed={seed}"] if seed is not None else [])
        check_positive("threads", threads)
        _run(method, model, steps, config_file, target, output_dir, show_config, flags, overwrite, threads)

    command.__doc__ = summary
    return command


train_app.command("grpo")(_command(
    "grpo", "GRPO on image tokens with the model's own answers as reward (UniRL-GRPO)."))
train_app.command("sft")(_command(
    "sft", "SFT from the model's own images: end-to-end through Gumbel-softmax, or filtered (UniRL-SFT)."))
