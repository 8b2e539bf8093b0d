"""`unirl download NAME|REPO_ID`: fetch checkpoints from the Hugging Face hub."""

from __future__ import annotations

from typing import Optional

import typer

from unirl_cli.cli import app
from unirl_cli.cli.common import stdout


@app.command()
def download(
    name: str = typer.Argument(..., help="A name from `unirl models`, `geneval-models`, or a hub repo id (owner/name)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit to download."),
    local_dir: Optional[str] = typer.Option(None, "--out", "-o", "--local-dir",
                                            help="Put the files in this folder instead of the HF cache."),
) -> None:
    """Download only the files a model needs (weights, configs, tokenizer); interrupted downloads resume."""
    from unirl_cli.models import hub
    from unirl_cli.fileio import check_output_folder

    if local_dir is not None:
        check_output_folder(local_dir)
    for folder in hub.download(name, revision=revision, local_dir=local_dir):
        stdout.print(f"ready: {folder}")
