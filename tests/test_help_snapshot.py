"""Every command's `--help`, snapshotted: a change to the CLI's grammar shows up here and must be deliberate.

After an intended change: UNIRL_UPDATE_SNAPSHOTS=1 python3 -m pytest tests/test_help_snapshot.py, then review the diff.
"""

import os
from pathlib import Path

import typer
from typer.testing import CliRunner

from unirl_cli.cli import app

SNAPSHOT = Path(__file__).parent / "snapshots" / "help.txt"


def command_paths(command, prefix=()) -> list[tuple[str, ...]]:
    """Every command path of the CLI, groups included, in a stable order."""
    paths = [prefix]
    for name in sorted(getattr(command, "commands", {})):
        paths += command_paths(command.commands[name], (*prefix, name))
    return paths


def all_help() -> str:
    runner = CliRunner()
    pages = []
    for path in command_paths(typer.main.get_command(app)):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"},
                               color=False, prog_name="unirl")
        assert result.exit_code == 0, (path, result.output)
        lines = [line.rstrip() for line in result.output.splitlines()]
        pages.append(f"$ unirl {' '.join(path)} --help\n" + "\n".join(lines).strip("\n") + "\n")
    return "\n".join(pages)


def test_help_matches_the_snapshot():
    text = all_help()
    if os.environ.get("UNIRL_UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), "a --help changed; see the module docstring to update the snapshot"
