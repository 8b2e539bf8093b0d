"""Where the evaluator's own models (detector, CLIP) are found: an explicit folder, else the local hub cache.

The evaluator never downloads: a missing model is a one-line error that names `unirl download geneval-models`,
so a scoring run cannot stall on a network it may not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from unirl_cli.errors import UnirlError
from unirl_cli.models.registry import lookup_spec

DETECTOR_NAME = "geneval-detector"
CLIP_NAME = "geneval-clip"


def resolve_weights(registry_name: str, explicit_path: Optional[str], option_name: str) -> Path:
    """The folder holding `registry_name`'s files: `explicit_path` when given, else its cached download."""
    if explicit_path is not None:
        folder = Path(explicit_path).expanduser()
        if not (folder / "config.json").is_file():
            raise UnirlError(f"{option_name} '{explicit_path}' is not a model folder (no config.json); pass the "
                             f"folder `unirl download {registry_name}` wrote, or omit {option_name}")
        return folder
    from unirl_cli.models import hub

    spec = lookup_spec(registry_name)
    try:
        return hub.prepare_spec(spec, local_only=True)
    except UnirlError as err:
        raise UnirlError(f"the GenEval {registry_name.split('-')[1]} model ({spec.repo_id}) is not downloaded; run "
                         f"`unirl download geneval-models` once (about {spec.download_gb:g} GB), or pass "
                         f"{option_name} FOLDER") from err
