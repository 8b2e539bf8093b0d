"""`python -m unirl_cli` runs the `unirl` command."""

from unirl_cli.cli import app

app(prog_name="unirl")
