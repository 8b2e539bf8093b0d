"""The `unirl` command: thin typer commands over the engine. Torch is imported lazily, inside commands."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from unirl_cli.cli.common import console, state
from unirl_cli.errors import UnirlError


def _click_module():
    """The click typer runs on: its own vendored copy in recent typer releases, else click itself."""
    try:
        from typer import _click as click
    except ImportError:
        import click
    return click


class _App(typer.Typer):
    """A Typer app that turns user errors into one line and a non-zero exit (traceback only with --debug)."""

    def __call__(self, *args, **kwargs):
        click = _click_module()
        kwargs.setdefault("standalone_mode", False)  # usage errors come here instead of typer's boxed message
        try:
            return super().__call__(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as err:
            from typer import rich_utils

            rich_utils.rich_format_error(err)
            sys.exit(2)
        except click.exceptions.ClickException as err:
            command = err.ctx.command_path if getattr(err, "ctx", None) is not None else "unirl"
            console.print(f"[bold red]error:[/] {escape(err.format_message())} (see `{escape(command)} --help`)",
                          highlight=False, soft_wrap=True)
            sys.exit(2)
        except typer.Abort:
            console.print("[yellow]aborted[/]")
            sys.exit(1)
        except UnirlError as err:
            if state.debug:
                raise
            # escape: a message such as "pip install 'unirl[lora]'" must not be read as rich markup.
            console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            sys.exit(2)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            sys.exit(130)
        except Exception as err:  # a bug: keep it short unless asked
            if state.debug:
                raise
            console.print(f"[bold red]unexpected error:[/] {type(err).__name__}: {escape(str(err))} "
                          "(rerun with --debug for the traceback)", highlight=False, soft_wrap=True)
            sys.exit(1)


app = _App(help="Post-train unified multimodal models (Janus, Show-o) with UniRL and evaluate them on GenEval.",
           no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    state.debug = debug


def _register() -> None:
    # Each module adds its commands to `app` on import; none of them imports torch at module level.
    import importlib

    for name in ("generate", "understand", "download", "models", "configs", "prompts", "train", "eval", "world"):
        try:
            importlib.import_module(f"unirl_cli.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"unirl_cli.cli.{name}":
                raise


_register()
