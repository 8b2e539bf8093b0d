"""`unirl configs`: the recipes and accelerate configs shipped inside the package, and where each one is."""

from __future__ import annotations

import typer

from unirl_cli.cli import app
from unirl_cli.cli.common import stdout

configs_app = typer.Typer(help="List the shipped recipes and accelerate configs; print one's path.",
                          invoke_without_command=True, no_args_is_help=False)
app.add_typer(configs_app, name="configs")


@configs_app.callback()
def list_configs(ctx: typer.Context) -> None:
    """List every shipped config with one line each (use the name with --config)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from unirl_cli.resources import packaged_configs

    table = Table(title="shipped configs (--config NAME, or `unirl configs path NAME`)")
    for column, ratio in (("kind", None), ("name", None), ("what it is", 1)):
        table.add_column(column, ratio=ratio, overflow="fold", no_wrap=ratio is None)
    for config in packaged_configs():
        table.add_row(config.kind, config.name, config.description)
    stdout.print(table)


@configs_app.command("path")
def config_path(
    name: str = typer.Argument(..., help="A config name from `unirl configs`, e.g. mini-grpo or 8gpu."),
) -> None:
    """Print the file of a shipped config, e.g. accelerate launch --config_file "$(unirl configs path 8gpu)" ..."""
    from unirl_cli.errors import UnirlError
    from unirl_cli.resources import CONFIG_KINDS, resolve_config

    errors = []
    for kind in CONFIG_KINDS:
        try:
            print(resolve_config(name, kind))
            return
        except UnirlError as err:
            errors.append(str(err))
    raise UnirlError(errors[0])
