"""Turn what the user typed after `--model` into a loaded `UnifiedModel`."""

from __future__ import annotations

from pathlib import Path

from unirl_cli.errors import UnirlError
from unirl_cli.models.registry import (DEFAULT_MODEL, MODELS, backend_class, detect_family, lookup_spec,
                                      packaged_model_dir, unknown_model_error)


def resolve_model_dir(name_or_path: str | None, download: bool = True) -> Path:
    """The local folder holding `name_or_path`: a folder as is, else a registry name or hub id (downloaded if needed)."""
    from unirl_cli.models import hub

    name = name_or_path or DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    packaged = packaged_model_dir(name)
    if packaged is not None:
        return packaged
    if path.suffix in (".safetensors", ".bin", ".pt") or name.startswith((".", "/", "~")):
        raise UnirlError(f"model folder '{name}' does not exist; pass a folder with a saved model, or a known name")
    spec = lookup_spec(name)
    if spec is not None:
        if not _generates_images(spec):
            raise UnirlError(f"'{spec.name}' is not a generation model; pick one of "
                             f"{', '.join(n for n, s in MODELS.items() if _generates_images(s))}")
        return _cached_or_downloaded(lambda local_only: hub.prepare_spec(spec, local_only=local_only), download)
    if name.count("/") == 1:
        return _cached_or_downloaded(lambda local_only: hub.fetch_repo(name, local_only=local_only), download)
    raise unknown_model_error(name)


def _generates_images(spec) -> bool:
    return spec.family in ("janus", "showo") and spec.name != "magvitv2"


def _cached_or_downloaded(fetch, download: bool) -> Path:
    """`fetch(local_only=True)` from the cache; when that fails and `download` is allowed, from the hub."""
    try:
        return fetch(True)
    except UnirlError:
        if not download:
            raise
    return fetch(False)


def load_model(name_or_path: str | None = None, device: str = "auto", dtype: str = "auto", download: bool = True,
               sampling=None):
    """Load a model by registry name, alias, hub id or folder onto `device` in `dtype` (both may be "auto").

    `sampling` (a SamplingConfig), when given, is checked against the family's rules before the weights load.
    """
    from unirl_cli.runtime import resolve_device, resolve_dtype

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    folder = resolve_model_dir(name_or_path, download=download)
    family = detect_family(folder)
    backend = backend_class(family)
    if sampling is not None:
        backend.check_sampling_settings(sampling)
    check_model_files(folder, family, name_or_path or DEFAULT_MODEL)
    model = backend.load(str(folder), device=torch_device, dtype=torch_dtype)
    model.eval()
    model.source = model_source(name_or_path or DEFAULT_MODEL, folder, family)
    return model


def _remedy(name: str) -> str:
    spec = lookup_spec(name)
    if spec is not None:
        return f"download it again with `unirl download {spec.name}`"
    return "re-save or re-create the folder (a training run: use an earlier checkpoint), or download the model again"


def _check_safetensors(path: Path, remedy: str) -> None:
    from safetensors import safe_open

    if path.stat().st_size == 0:
        raise UnirlError(f"weight file '{path}' is empty; {remedy}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as err:  # safetensors raises its own error type for any damaged header
        raise UnirlError(f"weight file '{path}' is damaged ({str(err).splitlines()[0]}); {remedy}") from None


def check_model_files(folder: Path, family: str, name: str) -> None:
    """One line naming the file and the remedy when a model folder lacks or has damaged weights or tokenizer
    files; checked before anything loads (safetensors headers only, so it costs milliseconds)."""
    import json

    remedy = _remedy(name)
    weight_folders = [folder] + ([folder / "magvit"] if (folder / "magvit").is_dir() else [])
    for place in weight_folders:
        for index in place.glob("*.safetensors.index.json"):
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
            missing = sorted(shard for shard in shards if not (place / shard).is_file())
            if missing:
                raise UnirlError(f"'{place}' lacks weight file(s) {', '.join(missing)} listed in {index.name}; {remedy}")
        for path in sorted(place.glob("*.safetensors")):
            _check_safetensors(path, remedy)
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise UnirlError(f"'{folder}' has no weight file (*.safetensors); {remedy}")
    tokenizer_folder = folder / "phi" if family == "showo" else folder
    if tokenizer_folder.is_dir() and not any((tokenizer_folder / name).is_file() for name in (
            "tokenizer.json", "tokenizer.model", "vocab.json")):
        raise UnirlError(f"'{tokenizer_folder}' has no tokenizer file (tokenizer.json); {remedy}")


def model_source(name: str, folder: Path, family: str) -> dict:
    """What identifies loaded weights in run metadata: the name typed, hub id and revision, the folder."""
    spec = lookup_spec(name)
    in_hub_cache = folder.parent.name == "snapshots"
    return {
        "name": name,
        "family": family,
        "hub_id": spec.repo_id if spec else (name if in_hub_cache else None),
        "revision": folder.name if in_hub_cache else None,
        "path": str(folder.resolve()),
    }
