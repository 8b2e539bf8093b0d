"""Atomic file writes: nothing half-written is ever left under the final name."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(final_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `final_path`; rename it into place only if the block succeeds.

    The temporary file keeps the final suffix (PIL and safetensors pick formats from it).
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{final_path.stem}.", suffix=f"{final_path.suffix}.tmp"
                                        if not final_path.suffix else f".tmp{final_path.suffix}",
                                        dir=final_path.parent)
    os.close(handle)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        os.replace(tmp_path, final_path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def _first_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def check_output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Raise a one-line UnirlError unless `path` can be a folder this process writes into; returns it.

    Called before any model loads: a file in the way, a path under a file, or a read-only place.
    """
    from unirl_cli.errors import UnirlError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UnirlError(f"{flag} '{path}' is a file, not a folder; pass a folder path (new or existing)")
    existing = _first_existing(path)
    if not existing.is_dir():
        raise UnirlError(f"{flag} '{path}' is under '{existing}', which is a file; pass a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnirlError(f"{flag} '{path}': '{existing}' is not writable; pass a folder you can write to")
    return path


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Raise a one-line UnirlError unless `path` can be written as a file (its folder may not exist yet)."""
    from unirl_cli.errors import UnirlError

    path = Path(path)
    if path.is_dir():
        raise UnirlError(f"{flag} '{path}' is a folder; pass a file name, e.g. {path / 'out'}")
    check_output_folder(path.parent, flag=f"{flag} folder")
    return path


def is_empty_or_missing(path: str | os.PathLike) -> bool:
    """Whether `path` does not exist or is an empty folder."""
    path = Path(path)
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def check_new_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """`check_output_folder`, and the folder must be new or empty (a model is never written over another)."""
    from unirl_cli.errors import UnirlError

    path = check_output_folder(path, flag)
    if not is_empty_or_missing(path):
        raise UnirlError(f"{flag} '{path}' is not empty; pass a new folder (nothing is written over an existing one)")
    return path
