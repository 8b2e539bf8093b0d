"""The documentation stays true: every `unirl ...` command in README and docs/ names real verbs and options,
every recipe it names ships in the package, every linked page exists, and the README stays a front page."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_blocks(text: str) -> list[str]:
    """The logical lines (continuations joined, comments dropped) of the ```bash blocks of a page."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        joined = block.replace("\\\n", " ")
        lines += [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith("#")]


def unirl_commands(line: str) -> list[list[str]]:
    """Every unirl invocation in a shell line: `unirl ...`, `$(unirl ...)` and `accelerate launch ... -m unirl_cli ...`."""
    commands = []
    for nested in re.findall(r"\$\((unirl [^)]*)\)", line):
        commands.append(shlex.split(nested)[1:])
    line = re.sub(r"\"?\$\([^)]*\)\"?", "FILE", line)
    words = shlex.split(line)
    if words[:1] == ["unirl"]:
        commands.append(words[1:])
    if "unirl_cli" in words and words[:1] == ["accelerate"]:
        commands.append(words[words.index("unirl_cli") + 1:])
    return commands


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for line in shell_blocks(page.read_text()):
            found += [(f"{page.name}: {line}", words) for words in unirl_commands(line)]
    return found


def resolve(words: list[str]):
    """(click command, the words after its path) for a unirl command line."""
    import typer

    from unirl_cli.cli import app

    command = typer.main.get_command(app)
    rest = [word for word in words if word != "--debug"]
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


COMMANDS = documented_commands()


def test_the_documentation_shows_commands():
    assert len(COMMANDS) >= 40


@pytest.mark.parametrize("where, words", COMMANDS, ids=[where[:90] for where, _ in COMMANDS])
def test_documented_command_uses_real_verbs_and_options(where, words):
    command, rest = resolve(words)
    assert not hasattr(command, "commands") or not rest or rest[0].startswith("-") or command.invoke_without_command, \
        f"{where}: '{rest[0]}' is not a subcommand"
    options = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    for word in rest:
        if word.startswith("-") and not re.fullmatch(r"-\d.*", word):
            assert word.split("=")[0] in options, f"{where}: {word} is not an option of this command"
    if "--config" in rest or "-c" in rest:
        from unirl_cli.resources import resolve_config

        flag = "--config" if "--config" in rest else "-c"
        kind = "eval" if words[:1] == ["eval"] else "train"
        resolve_config(rest[rest.index(flag) + 1], kind)
    if words[:2] == ["configs", "path"]:
        from unirl_cli.resources import CONFIG_KINDS, packaged_configs

        assert any(config.name == words[2] for kind in CONFIG_KINDS for config in packaged_configs(kind)), where


def test_links_between_pages_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+?)\)", page.read_text()):
            if target.startswith("http"):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for section in ("## Install", "## Tests", "## Commands", "## Models", "## Results"):
        assert section in text, section
