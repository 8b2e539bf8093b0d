"""Show-o's files on disk: the official layout, how a download is assembled, strict weight loading, saving.

A Show-o folder (hub snapshot of `showlab/show-o-512x512`, a tiny model, or a unirl checkpoint) holds a
diffusers-style `config.json` (`_class_name: "Showo"`, vocab_size, llm_vocab_size, llm_model_path,
codebook_size, num_vq_tokens, mask_token_id) and weights whose names start with `showo.` (the Phi model).
Two more pieces are needed, looked up in this order:
- the MAGVIT-v2 tokenizer: `<folder>/magvit/`, else the cached hub snapshot of `showlab/magvitv2`;
- the Phi-1.5 config and text tokenizer: `<folder>/phi/`, else `<folder>/<llm_model_path>`, else the cached
  hub snapshot of `llm_model_path` (`microsoft/phi-1_5`).
Hub snapshots are only looked up in the local cache; `unirl download showo-512` fetches all three repos.
Saving writes everything into one folder (`magvit/` and `phi/` included), so a checkpoint loads offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from unirl_cli.errors import UnirlError
from unirl_cli.fileio import atomic_path, write_json_atomic

# Show-o's own loader reads pytorch_model.{safetensors,bin}; the hub mixins write model.safetensors or the
# diffusers names. Whichever is present first is used.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.safetensors", "diffusion_pytorch_model.safetensors",
                "pytorch_model.bin", "diffusion_pytorch_model.bin")
MAGVIT_REPO = "showlab/magvitv2"
PHI_REPO = "microsoft/phi-1_5"
DIFFUSERS_VERSION = "0.30.1"  # written into saved configs; only read back as a marker
DEFAULT_MAX_TEXT_LENGTH = 128  # Show-o's demo configs (`max_seq_length`); UniRL's GenEval config uses 64


@dataclass
class ShowoConfig:
    """The fields of Show-o's `config.json` this backend uses."""

    vocab_size: int = 58498
    llm_vocab_size: int = 50295
    llm_model_path: str = PHI_REPO
    codebook_size: int = 8192
    num_vq_tokens: int = 1024
    w_clip_vit: bool = False
    max_text_length: int = DEFAULT_MAX_TEXT_LENGTH
    # A model's own sampling defaults (guidance_scale, num_steps, temperature) where the published ones do not
    # fit it (the shapes world's mini-showo); saved as `unirl_sampling`, which the official loader ignores.
    sampling: dict | None = None

    @classmethod
    def read(cls, folder: Path) -> "ShowoConfig":
        """Parse `<folder>/config.json`; a CLIP-ViT variant or a non-Show-o config raises `UnirlError`."""
        path = folder / "config.json"
        if not path.is_file():
            raise UnirlError(f"'{folder}' has no config.json; it is not a Show-o model folder")
        data = json.loads(path.read_text())
        if data.get("_class_name") != "Showo":
            raise UnirlError(f"'{path}' is not a Show-o config (_class_name is {data.get('_class_name')!r})")
        if data.get("w_clip_vit"):
            raise UnirlError(f"'{folder}' is a Show-o CLIP-ViT variant; unirl supports the MAGVIT-only models "
                             f"(showo-256, showo-512, unirl-showo)")
        config = cls(vocab_size=int(data["vocab_size"]), llm_vocab_size=int(data["llm_vocab_size"]),
                     llm_model_path=str(data.get("llm_model_path") or PHI_REPO),
                     codebook_size=int(data.get("codebook_size", 8192)),
                     num_vq_tokens=int(data.get("num_vq_tokens", 256)),
                     max_text_length=int(data.get("max_seq_length", DEFAULT_MAX_TEXT_LENGTH)),
                     sampling=_sampling_defaults(data.get("unirl_sampling"), path))
        mask_id = data.get("mask_token_id", config.vocab_size - 1)
        if mask_id != config.vocab_size - 1:
            raise UnirlError(f"'{path}': mask_token_id {mask_id} is not vocab_size - 1; the checkpoint is not a Show-o v1 model")
        return config

    def to_json(self) -> dict:
        """The diffusers-style dict the official loader reads (plus `max_seq_length`, which unirl reads)."""
        data = {"_class_name": "Showo", "_diffusers_version": DIFFUSERS_VERSION, "w_clip_vit": False,
                "vocab_size": self.vocab_size, "llm_vocab_size": self.llm_vocab_size,
                "llm_model_path": self.llm_model_path, "codebook_size": self.codebook_size,
                "num_vq_tokens": self.num_vq_tokens, "mask_token_id": self.vocab_size - 1,
                "max_seq_length": self.max_text_length}
        return {**data, "unirl_sampling": dict(self.sampling)} if self.sampling else data


SAMPLING_KEYS = ("guidance_scale", "num_steps", "temperature")


def _sampling_defaults(value, path: Path) -> dict | None:
    """The `unirl_sampling` entry of a config.json, checked: a dict of SAMPLING_KEYS -> numbers, or None."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - set(SAMPLING_KEYS) or not all(
            isinstance(v, (int, float)) for v in value.values()):
        raise UnirlError(f"'{path}': unirl_sampling must map {', '.join(SAMPLING_KEYS)} to numbers, got {value!r}")
    return dict(value)


def _cached_snapshot(repo_id: str, what: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as err:  # any hub error here means "not in the local cache"
        raise UnirlError(f"Show-o needs {what} ({repo_id}) and it is not downloaded; run `unirl download showo-512` "
                         f"(or `unirl download {repo_id}`) first") from err


def find_magvit_dir(folder: Path) -> Path:
    """The folder holding the MAGVIT-v2 tokenizer for the Show-o model in `folder`."""
    local = folder / "magvit"
    return local if local.is_dir() else _cached_snapshot(MAGVIT_REPO, "its MAGVIT-v2 image tokenizer")


def find_phi_dir(folder: Path, llm_model_path: str) -> Path:
    """The folder holding the Phi-1.5 config and text tokenizer for the Show-o model in `folder`."""
    for candidate in (folder / "phi", folder / llm_model_path, Path(llm_model_path).expanduser()):
        if (candidate / "config.json").is_file():
            return candidate
    return _cached_snapshot(llm_model_path, "the Phi-1.5 config and text tokenizer")


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of the first weight file found in `folder` (safetensors, else `torch.load(weights_only=True)`)."""
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path))
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    raise UnirlError(f"'{folder}' holds no weights (looked for {', '.join(WEIGHT_FILES)}); re-download the model")


def load_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, where: Path) -> None:
    """Load `state_dict` (keys under `prefix`) into `module`, failing on any missing or unexpected key."""
    stripped = {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}
    foreign = sorted(key for key in state_dict if not key.startswith(prefix))
    expected = module.state_dict()
    missing = sorted(set(expected) - set(stripped))
    unexpected = sorted(set(stripped) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(stripped) if tuple(expected[k].shape) != tuple(stripped[k].shape))
    if missing or unexpected or foreign or wrong_shape:
        details = [f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''} ({len(keys)})"
                   for label, keys in (("missing", missing), ("unexpected", unexpected + foreign),
                                       ("wrong shape", wrong_shape)) if keys]
        raise UnirlError(f"weights in '{where}' do not match the model ({'; '.join(details)}); "
                         f"the folder holds a different or damaged checkpoint")
    module.load_state_dict(stripped, strict=True, assign=True)


def save_safetensors(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors to `path` atomically (contiguous CPU copies; no shared storage)."""
    from safetensors.torch import save_file

    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def save_phi_folder(out_dir: Path, phi_config: dict, tokenizer) -> None:
    """Write the Phi config and the (Show-o-extended) text tokenizer into `out_dir/phi`."""
    import os
    import tempfile

    phi_dir = out_dir / "phi"
    phi_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=phi_dir, prefix=".tokenizer.") as staging:
        tokenizer.save_pretrained(staging)
        for item in Path(staging).iterdir():
            os.replace(item, phi_dir / item.name)
    write_json_atomic(phi_dir / "config.json", phi_config)
