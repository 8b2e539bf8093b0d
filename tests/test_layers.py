"""Every module imports; the layer arrows point down (cli -> train/eval -> models/base <- backends)."""

from __future__ import annotations

import ast
import re
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import unirl_cli

PACKAGE_DIR = Path(unirl_cli.__file__).parent


def all_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="unirl_cli.")
            if not m.name.endswith("__main__")]


MODULE_IN_STRING = re.compile(r"\bunirl_cli(?:\.[a-z_0-9]+)+")


def imported_names(path: Path) -> set[str]:
    """Absolute module names imported anywhere in a file (top level or inside functions), and every
    `unirl_cli.x.y` named in a string (`importlib.import_module("...")`, "module:Class" registries), which
    imports it just the same."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and " " not in node.value:
            # (strings with spaces are prose: docstrings and messages)
            names.update(MODULE_IN_STRING.findall(node.value.split(":")[0]))
    return names


def top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_module_imports():
    for name in all_modules():
        importlib.import_module(name)


def test_cli_import_does_not_load_torch():
    code = "import sys, unirl_cli.cli; assert 'torch' not in sys.modules, 'torch imported by the CLI'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_modules_import_no_ml_at_top_level():
    for path in (PACKAGE_DIR / "cli").glob("*.py"):
        heavy = {n for n in top_level_imports(path) if n.split(".")[0] in ("torch", "transformers", "accelerate")}
        assert not heavy, f"{path.name} imports {heavy} at module level"


def test_string_imports_are_seen(tmp_path):
    source = tmp_path / "plugin.py"
    source.write_text('BACKENDS = {"x": "unirl_cli.world.pretrain:pretrain_mini"}\nNAME = "unirl_cli.cli.world"\n'
                      '"""Prose naming unirl_cli.world in a docstring is not an import."""\n')
    assert imported_names(source) == {"unirl_cli.world.pretrain", "unirl_cli.cli.world"}


def test_nothing_below_the_world_recipes_imports_them():
    """world/ holds recipes (pretraining, self-improvement); only the CLI and world itself may import it."""
    for path in PACKAGE_DIR.rglob("*.py"):
        if path.parent.name in ("world", "cli"):
            continue
        upward = {n for n in imported_names(path) if n.startswith("unirl_cli.world")}
        assert not upward, (path, upward)


def test_data_is_the_bottom_layer():
    """data/ (prompt sets, QA templates, the shapes world's content) imports only data and the leaf modules."""
    for path in (PACKAGE_DIR / "data").rglob("*.py"):
        inner = {n for n in imported_names(path) if n.startswith("unirl_cli")}
        assert all(n.startswith("unirl_cli.data") or n in LEAVES for n in inner), (path, inner)


def test_trainers_and_evaluator_never_name_a_family():
    for folder in ("train", "eval"):
        for path in (PACKAGE_DIR / folder).rglob("*.py"):
            for name in imported_names(path):
                assert not name.startswith(("unirl_cli.models.janus", "unirl_cli.models.showo")), (path, name)


def test_families_do_not_import_each_other_or_upper_layers():
    for path in (PACKAGE_DIR / "models").rglob("*.py"):
        names = imported_names(path)
        upper = {n for n in names if n.startswith(("unirl_cli.cli", "unirl_cli.train", "unirl_cli.eval"))}
        assert not upper, (path, upper)
        if "showo" in path.parts:
            assert not any(n.startswith("unirl_cli.models.janus") for n in names), path
        if "janus" in path.parts:
            assert not any(n.startswith("unirl_cli.models.showo") for n in names), path


LEAVES = ("unirl_cli.errors", "unirl_cli.fileio", "unirl_cli.resources", "unirl_cli.progress", "unirl_cli.extras")


def test_config_imports_no_engine_module():
    names = imported_names(PACKAGE_DIR / "config.py")
    assert all(n in LEAVES for n in names if n.startswith("unirl_cli")), names


def test_leaf_modules_import_only_leaves():
    for name in LEAVES:
        path = PACKAGE_DIR / f"{name.split('.')[-1]}.py"
        inner = {n for n in imported_names(path) if n.startswith("unirl_cli")}
        assert inner <= set(LEAVES), (path.name, inner)
