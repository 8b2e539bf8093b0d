"""Optional packages (pip extras): checked by name before any model loads, so a missing one costs nothing.

Each extra in pyproject.toml maps to the package it installs; a feature that needs one calls
`require_extra` (or the training pre-flight `missing_training_extras`) first, and the user gets one line
naming the package and the install command instead of an ImportError deep inside a run.
"""

from __future__ import annotations

import importlib.util

from unirl_cli.errors import UnirlError

# extra name -> (import names that serve, the first being what the extra installs; what needs it)
EXTRAS = {
    "lora": (("peft",), "LoRA (lora.r > 0)"),
    "deepspeed": (("deepspeed",), "DeepSpeed (an accelerate config with a deepspeed_config)"),
    "wandb": (("wandb",), "log.report_to=wandb"),
    # accelerate's TensorBoard tracker runs on either package.
    "tensorboard": (("tensorboard", "tensorboardX"), "log.report_to=tensorboard"),
    "trackio": (("trackio",), "log.report_to=trackio"),
}


def is_installed(import_name: str) -> bool:
    """Whether `import_name` can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(import_name) is not None
    except (ImportError, ValueError):  # a half-installed package, or one whose __spec__ is None
        return False


def extra_installed(extra: str) -> bool:
    """Whether a package that serves `extra` is installed."""
    return any(is_installed(name) for name in EXTRAS[extra][0])


def missing_extra_error(extra: str) -> UnirlError:
    """The one-line error for a missing extra: which package, what needs it, the install command."""
    packages, purpose = EXTRAS[extra]
    return UnirlError(f"{purpose} needs the '{packages[0]}' package, which is not installed; "
                      f"install it with `pip install 'unirl[{extra}]'`")


def require_extra(extra: str) -> None:
    """Raise the one-line error when the package of `extra` is not installed."""
    if not extra_installed(extra):
        raise missing_extra_error(extra)


def missing_training_extras(lora_rank: int, report_to: str, uses_deepspeed: bool) -> list[str]:
    """The extras a training run with these settings needs but cannot import, in a stable order."""
    needed = []
    if lora_rank > 0:
        needed.append("lora")
    if uses_deepspeed:
        needed.append("deepspeed")
    if report_to != "none":
        needed.append(report_to)
    return [extra for extra in needed if not extra_installed(extra)]
