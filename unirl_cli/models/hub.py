"""Hugging Face hub downloads with one-line, actionable errors.

huggingface_hub does the work (progress bars, resuming interrupted downloads, the shared cache);
this module picks the files a model needs and translates failures into `UnirlError`s.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from unirl_cli.errors import UnirlError
from unirl_cli.models.registry import BUNDLES, WEIGHT_PATTERNS, ModelSpec, lookup_spec, unknown_model_error


def unirl_home() -> Path:
    """Where unirl keeps converted checkpoints (`$UNIRL_HOME`, default ~/.cache/unirl)."""
    return Path(os.environ.get("UNIRL_HOME", Path.home() / ".cache" / "unirl"))


def explain_hub_error(err: BaseException, repo_id: str) -> UnirlError:
    """Translate a huggingface_hub / OS failure for `repo_id` into a one-line `UnirlError`."""
    from huggingface_hub import errors as hub_errors

    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return UnirlError(f"disk full while downloading {repo_id}; free space or point HF_HOME (or --local-dir) "
                          f"at a larger disk")
    if isinstance(err, hub_errors.GatedRepoError):
        return UnirlError(f"{repo_id} is gated: accept its licence on huggingface.co, then run "
                          f"`hf auth login` or set HF_TOKEN")
    if isinstance(err, hub_errors.RevisionNotFoundError):
        return UnirlError(f"{repo_id} has no such revision; check --revision (a branch, tag or commit)")
    if isinstance(err, hub_errors.RepositoryNotFoundError):
        return UnirlError(f"{repo_id} was not found on the hub, or it is private: check the name, or run "
                          f"`hf auth login` / set HF_TOKEN for a private repo")
    if isinstance(err, hub_errors.LocalEntryNotFoundError) or _is_connection_error(err):
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
        why = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else "the hub cannot be reached"
        return UnirlError(f"cannot download {repo_id}: {why}; connect to the internet, set HF_ENDPOINT to a "
                          f"mirror, set HF_HUB_OFFLINE=1 to use files already cached, or copy the model to a "
                          f"folder and pass that folder as --model")
    if isinstance(err, hub_errors.HfHubHTTPError):
        return UnirlError(f"the hub refused the download of {repo_id}: {str(err).splitlines()[0]}")
    return UnirlError(f"download of {repo_id} failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")


def _is_connection_error(err: BaseException) -> bool:
    seen = err
    for _ in range(5):
        if seen is None:
            return False
        if "Connect" in type(seen).__name__ or "Timeout" in type(seen).__name__:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def fetch_repo(repo_id: str, revision: str | None = None, local_dir: str | None = None,
               allow_patterns: tuple[str, ...] = WEIGHT_PATTERNS, local_only: bool = False) -> Path:
    """Download (or find in the cache when `local_only`) the files of `repo_id`; return the snapshot folder."""
    from huggingface_hub import snapshot_download

    if local_only:
        return _find_cached(repo_id, revision, local_dir, allow_patterns)
    try:
        allow_patterns = skip_duplicate_weights(repo_id, revision, allow_patterns)
        path = snapshot_download(repo_id, revision=revision, local_dir=local_dir, allow_patterns=list(allow_patterns))
    except Exception as err:  # noqa: BLE001 - every hub failure becomes one actionable line
        raise explain_hub_error(err, repo_id) from err
    return Path(path)


def _find_cached(repo_id: str, revision: str | None, local_dir: str | None, allow_patterns: tuple[str, ...]) -> Path:
    # The cache checks completeness against the patterns, and a download may have skipped `*.bin`
    # (see skip_duplicate_weights): accept either complete form.
    from huggingface_hub import snapshot_download

    without_bin = tuple(p for p in allow_patterns if ".bin" not in p)
    for patterns in dict.fromkeys((allow_patterns, without_bin)):
        try:
            return Path(snapshot_download(repo_id, revision=revision, local_dir=local_dir,
                                          allow_patterns=list(patterns), local_files_only=True))
        except Exception:  # noqa: BLE001 - not (completely) cached under these patterns
            continue
    raise UnirlError(f"{repo_id} is not downloaded yet; run `unirl download {repo_id}` (or pass a local folder)")


def skip_duplicate_weights(repo_id: str, revision: str | None, allow_patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Drop the `*.bin` patterns when the repo's top folder also has safetensors weights (many ship both)."""
    from huggingface_hub import list_repo_files

    files = list_repo_files(repo_id, revision=revision)
    if any(name.endswith(".safetensors") and "/" not in name for name in files):
        return tuple(p for p in allow_patterns if ".bin" not in p)
    return allow_patterns


def converted_dir(spec: ModelSpec, snapshot: Path) -> Path:
    """Where the transformers-layout conversion of a DeepSeek-format snapshot is kept."""
    # v2: conversions carry the checkpoint's chat roles and DeepSeek's system prompt; earlier ones are redone.
    return unirl_home() / "converted" / spec.name / f"{snapshot.name}-v2"


def prepare_spec(spec: ModelSpec, revision: str | None = None, local_dir: str | None = None,
                 local_only: bool = False) -> Path:
    """Download a registry model with its extra repos; convert it if needed; return the loadable folder."""
    snapshot = fetch_repo(spec.repo_id, revision, local_dir, spec.allow_patterns, local_only)
    for extra_repo, patterns in spec.extra_repos:
        fetch_repo(extra_repo, None, None, patterns, local_only)
    if spec.source_format != "deepseek":
        return snapshot
    target = converted_dir(spec, snapshot)
    if not (target / "config.json").is_file():
        from unirl_cli.models.janus.convert import convert_deepseek_janus

        convert_deepseek_janus(snapshot, target, chat_format=spec.chat_format)
    return target


def download(name: str, revision: str | None = None, local_dir: str | None = None) -> list[Path]:
    """`unirl download NAME|REPO_ID|BUNDLE`: fetch what the model needs; return the folders written."""
    if name in BUNDLES:
        return [prepare_spec(lookup_spec(member), revision, None) for member in BUNDLES[name]]
    spec = lookup_spec(name)
    if spec is not None:
        return [prepare_spec(spec, revision, local_dir)]
    if "/" in name and not Path(name).exists():
        return [fetch_repo(name, revision, local_dir)]
    raise unknown_model_error(name)


def is_downloaded(spec: ModelSpec) -> bool:
    """Whether the model's files are already in the local cache (no network)."""
    try:
        prepare_spec(spec, local_only=True)
    except UnirlError:
        return False
    return True
