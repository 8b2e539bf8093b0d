"""Files shipped inside the package (recipes, accelerate configs, data), found by name or path from any folder.

A recipe is given as a path (`my.yaml`, `configs/train/mini-grpo.yaml`) or by name (`mini-grpo`): a path that
exists is used as is; otherwise the name, or the path below `configs/`, is looked up among the packaged
configs. Data files named in recipes (`prompts.file: shapes/train_prompts.jsonl`) are found the same way
below the packaged data folder, so recipes work from a wheel install in any folder.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from unirl_cli.errors import UnirlError

PACKAGE_ROOT = Path(__file__).resolve().parent
CONFIG_ROOT = PACKAGE_ROOT / "configs"
DATA_ROOT = PACKAGE_ROOT / "data"
CONFIG_KINDS = ("train", "eval", "accelerate")


@dataclass(frozen=True)
class PackagedConfig:
    """One shipped YAML file: its kind (train, eval, accelerate), name, path and one-line description."""

    kind: str
    name: str
    path: Path
    description: str


def _description(path: Path) -> str:
    """The first comment line of a YAML file (what it is for), without the '#'."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def packaged_configs(kind: str | None = None) -> list[PackagedConfig]:
    """Every shipped config of `kind` (all kinds when None), sorted by kind and name."""
    kinds = CONFIG_KINDS if kind is None else (kind,)
    return [PackagedConfig(k, path.stem, path, _description(path))
            for k in kinds for path in sorted((CONFIG_ROOT / k).glob("*.yaml"))]


def resolve_config(name_or_path: str | Path, kind: str = "train") -> Path:
    """The YAML file meant by `name_or_path` (an existing path, a packaged name, or `configs/...`)."""
    given = Path(name_or_path)
    if given.is_file():
        return given
    if given.is_dir():
        raise UnirlError(f"config '{given}' is a folder; pass a YAML file or a recipe name (`unirl configs` lists them)")
    relative = Path(*given.parts[1:]) if given.parts[:1] == ("configs",) else given
    candidates = [CONFIG_ROOT / relative, CONFIG_ROOT / kind / relative]
    if not given.suffix:
        candidates.append(CONFIG_ROOT / kind / f"{given.name}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    names = [config.name for config in packaged_configs(kind)]
    close = difflib.get_close_matches(given.stem, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UnirlError(f"config '{name_or_path}' is neither a file nor a shipped {kind} config; {hint}"
                     f"shipped: {', '.join(names)} (`unirl configs` lists them)")


def resolve_data_file(path: str | Path) -> Path:
    """An existing path as is; else the packaged data file of that name (`shapes/train_prompts.jsonl`, or the
    same written from a checkout as `unirl_cli/data/...`). Unknown paths come back unchanged for the caller's error."""
    given = Path(path)
    if given.exists():
        return given
    parts = given.parts
    if parts[:2] == ("unirl_cli", "data"):
        parts = parts[2:]
    packaged = DATA_ROOT.joinpath(*parts) if parts else DATA_ROOT
    return packaged if packaged.is_file() else given
