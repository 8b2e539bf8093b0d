"""`unirl models`: list known models; create tiny random ones; convert DeepSeek-format Janus."""

from __future__ import annotations

from pathlib import Path

import typer

from unirl_cli.cli import app
from unirl_cli.cli.common import stdout

models_app = typer.Typer(help="List, create and convert models.", invoke_without_command=True, no_args_is_help=False)
app.add_typer(models_app, name="models")

TINY_BUILDERS = {
    "janus": "unirl_cli.models.janus.tiny:build_tiny_janus",
    "showo": "unirl_cli.models.showo.tiny:build_tiny_showo",
}


@models_app.callback()
def list_models(ctx: typer.Context) -> None:
    """List model names, hub ids, sizes and whether each is downloaded."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from unirl_cli.models.hub import is_downloaded
    from unirl_cli.models.registry import ALIASES, MODELS, PACKAGED_MODELS

    table = Table(title="unirl models", show_lines=True)
    # The hub id is what users copy: it never wraps or gets cut (fits 80 columns); the description wraps below it.
    widest_id = max(len(spec.repo_id) for spec in MODELS.values())
    table.add_column("name (aliases), size", no_wrap=True)
    table.add_column("hub id / what it is", min_width=widest_id, max_width=widest_id)
    table.add_column("here")
    for spec in MODELS.values():
        aliases = [a for a, target in ALIASES.items() if target == spec.name]
        name = spec.name + (f"\n({', '.join(aliases)})" if aliases else "")
        table.add_row(f"{name}\n{spec.params}, {spec.download_gb:.1f} GB", f"{spec.repo_id}\n[dim]{spec.description}[/]",
                      "yes" if is_downloaded(spec) else "no")
    for name, packaged in PACKAGED_MODELS.items():
        table.add_row(f"{name}\nin the package", f"(shipped with unirl, no download)\n[dim]{packaged.description}[/]",
                      "yes")
    stdout.print(table)
    stdout.print("Any local folder with a saved model, or a hub repo id, works as --model too. "
                 "`unirl download geneval-models` fetches the GenEval detector and CLIP.")


@models_app.command("create-tiny")
def create_tiny(
    family: str = typer.Argument(..., help="janus or showo"),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the tiny model to."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights."),
) -> None:
    """Write a tiny random model (with an offline tokenizer) for smoke tests and pipeline checks."""
    import importlib

    from unirl_cli.errors import UnirlError
    from unirl_cli.fileio import check_new_folder

    if family not in TINY_BUILDERS:
        raise UnirlError(f"no tiny builder for '{family}'; choose one of {', '.join(TINY_BUILDERS)}")
    check_new_folder(out)
    module_name, function_name = TINY_BUILDERS[family].split(":")
    folder = getattr(importlib.import_module(module_name), function_name)(out, seed=seed)
    stdout.print(f"tiny {family} model written to {folder}; try: unirl generate \"a red circle\" --model {folder}")


@models_app.command("convert-janus")
def convert_janus(
    source: Path = typer.Argument(..., help="A folder with a Janus checkpoint in DeepSeek's original layout."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the transformers-layout model."),
    chat_format: str = typer.Option("janus-pro", "--chat-format",
                                    help="Chat roles the checkpoint was trained with: janus-pro (<|User|>, Janus-Pro) "
                                         "or janus (User, Janus-1.3B)."),
) -> None:
    """Convert a DeepSeek-format Janus checkpoint (e.g. deepseek-ai/Janus-1.3B) to the transformers layout."""
    from unirl_cli.errors import UnirlError
    from unirl_cli.fileio import check_new_folder
    from unirl_cli.models.janus.convert import convert_deepseek_janus
    from unirl_cli.models.janus.formats import CHAT_FORMATS

    check_new_folder(out)
    if chat_format not in CHAT_FORMATS:
        raise UnirlError(f"--chat-format '{chat_format}' is not known; use one of {', '.join(CHAT_FORMATS)}")
    if not (source / "config.json").is_file():
        raise UnirlError(f"'{source}' has no config.json; pass the folder of a DeepSeek Janus checkpoint")
    convert_deepseek_janus(source, out, chat_format=chat_format)
    stdout.print(f"converted model written to {out}")
