"""Short model names -> hub repositories and families; loading any name or local folder.

Users type a short name (`janus-pro-1b`), a family alias (`janus` = Janus-Pro-1B, `showo` = Show-o 512,
the paper's models), a hub repo id, or a local folder (a download, a training checkpoint, a tiny model).
"""

from __future__ import annotations

import difflib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from unirl_cli.errors import UnirlError

CONFIG_PATTERNS = ("*.json", "*.txt", "*.model")
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "*.json",
                   "*.model", "*.txt", "*.jinja")


@dataclass(frozen=True)
class ModelSpec:
    """A downloadable model: where it lives on the hub and how unirl loads it."""

    name: str
    family: str  # "janus", "showo", or "geneval" (evaluation-only models)
    repo_id: str
    description: str
    params: str
    download_gb: float
    # Other repos this model needs at load time, with the files it takes from each
    # (Show-o: the MAGVIT-v2 weights, and only the config and tokenizer of Phi-1.5).
    extra_repos: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # "transformers" loads as is; "deepseek" is DeepSeek's original layout, converted after download.
    source_format: str = "transformers"
    allow_patterns: tuple[str, ...] = WEIGHT_PATTERNS
    # Janus chat roles a DeepSeek-format checkpoint is converted with (models/janus/formats.py CHAT_FORMATS).
    chat_format: str = "janus-pro"


SHOWO_EXTRAS = (("showlab/magvitv2", WEIGHT_PATTERNS), ("microsoft/phi-1_5", CONFIG_PATTERNS))

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in [
    ModelSpec("janus-pro-1b", "janus", "deepseek-community/Janus-Pro-1B",
              "Janus-Pro 1B, 384 px, 576 image tokens (transformers format)", "2.1B", 4.1),
    ModelSpec("janus-pro-7b", "janus", "deepseek-community/Janus-Pro-7B",
              "Janus-Pro 7B, 384 px, 576 image tokens (transformers format)", "7.4B", 14.8),
    ModelSpec("janus-1.3b", "janus", "deepseek-ai/Janus-1.3B",
              "Janus 1.3B, the model UniRL trained (DeepSeek format, converted on download)", "2.1B", 4.2,
              source_format="deepseek", chat_format="janus"),
    ModelSpec("showo-256", "showo", "showlab/show-o",
              "Show-o 256 px, 256 MAGVIT-v2 tokens", "1.3B", 5.6, extra_repos=SHOWO_EXTRAS),
    ModelSpec("showo-512", "showo", "showlab/show-o-512x512",
              "Show-o 512 px, 1024 MAGVIT-v2 tokens (UniRL's base model)", "1.3B", 5.6,
              extra_repos=SHOWO_EXTRAS),
    ModelSpec("unirl-showo", "showo", "benzweijia/UniRL",
              "UniRL's published GRPO checkpoint of Show-o 512 (GenEval 0.77)", "1.3B", 5.6,
              extra_repos=SHOWO_EXTRAS),
    ModelSpec("magvitv2", "showo", "showlab/magvitv2", "MAGVIT-v2 image tokenizer used by Show-o", "0.1B", 0.5),
    ModelSpec("geneval-detector", "geneval", "facebook/mask2former-swin-small-coco-instance",
              "GenEval's object detector: Mask2Former Swin-S, COCO instances", "69M", 0.3),
    ModelSpec("geneval-clip", "geneval", "openai/clip-vit-large-patch14",
              "GenEval's colour classifier: CLIP ViT-L/14", "428M", 1.7,
              allow_patterns=("*.safetensors", "*.json", "*.txt")),
]}

ALIASES = {"janus": "janus-pro-1b", "showo": "showo-512", "show-o": "showo-512", "janus-pro": "janus-pro-1b"}

# Names that download several specs at once.
BUNDLES = {"geneval-models": ("geneval-detector", "geneval-clip")}

# family -> "module:Class" of its backend, imported only when a model of that family loads.
BACKENDS = {"janus": "unirl_cli.models.janus:JanusModel", "showo": "unirl_cli.models.showo:ShowoModel"}

DEFAULT_MODEL = "janus"


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped inside the package (no download): its folder below unirl_cli/assets/ and what it is."""

    folder: str
    family: str
    description: str


PACKAGED_MODELS = {
    "mini": PackagedModel("mini", "janus", "the shapes-world Janus trained from scratch (2.2M)"),
    "mini-showo": PackagedModel("mini-showo", "showo", "the shapes-world Show-o trained from scratch (1.8M)"),
}


def packaged_model_dir(name: str) -> Path | None:
    """The folder of a model shipped inside the package (`mini`, `mini-showo`), or None for any other name; a
    one-line UnirlError when its weights are missing from the install."""
    from importlib import resources

    packaged = PACKAGED_MODELS.get(name.lower())
    if packaged is None:
        return None
    folder = Path(str(resources.files("unirl_cli").joinpath("assets", packaged.folder)))
    if not (folder / "model.safetensors").is_file():
        raise UnirlError(f"the packaged {name} model is missing from {folder}; rebuild it with `unirl world pretrain "
                         f"--family {packaged.family} --out {folder}` or reinstall unirl")
    return folder


def known_names() -> list[str]:
    """Every name `--model` and `unirl download` accept, aliases first."""
    return sorted(ALIASES) + sorted(MODELS) + sorted(BUNDLES) + sorted(PACKAGED_MODELS)


def lookup_spec(name: str) -> ModelSpec | None:
    """The registry entry for a short name or alias (case-insensitive), or None."""
    key = name.lower()
    key = ALIASES.get(key, key)
    return MODELS.get(key)


def unknown_model_error(name: str) -> UnirlError:
    """The one-line error for a name that is neither known nor a local folder (with the closest known name)."""
    close = difflib.get_close_matches(name.lower(), known_names(), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return UnirlError(f"model '{name}' is not known and is not a local folder; {hint}known: "
                      f"{', '.join(known_names())}, or a hub repo id like owner/name, or a folder with a saved model")


def detect_family(folder: str | Path) -> str:
    """The family of a saved model folder, read from its config files."""
    folder = Path(folder)
    marker = folder / "unirl_model.json"
    if marker.is_file():
        return json.loads(marker.read_text())["family"]
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UnirlError(f"'{folder}' has no config.json; it is not a saved model folder "
                         f"(use `unirl download NAME` or `unirl models create-tiny` to make one)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise UnirlError(f"'{config_path}' is not valid JSON ({err.msg}); re-download the model") from err
    if config.get("model_type") == "janus":
        return "janus"
    if config.get("_class_name") == "Showo" or config.get("model_type") == "showo":
        return "showo"
    if "language_config" in config and "gen_vision_config" in config:
        raise UnirlError(f"'{folder}' is a Janus checkpoint in DeepSeek's original layout; convert it with "
                         f"`unirl models convert-janus {folder} --out DIR` and load DIR")
    raise UnirlError(f"cannot tell which model family '{folder}' holds (config.json has no Janus or Show-o "
                     f"markers); supported families: {', '.join(BACKENDS)}")


def backend_class(family: str) -> type:
    """Import and return the `UnifiedModel` subclass of `family`."""
    if family not in BACKENDS:
        raise UnirlError(f"family '{family}' has no generation backend; supported: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[family].split(":")
    return getattr(importlib.import_module(module_name), class_name)
