"""Device and dtype choice, and seeding: the side effects every entry point shares."""

from __future__ import annotations

import random

from unirl_cli.errors import UnirlError

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


def resolve_device(device: str = "auto"):
    """A torch.device from `auto` (cuda, then mps, then cpu) or an explicit name; errors if unavailable."""
    import torch

    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as err:
        raise UnirlError(f"--device '{device}' is not a device name; use cpu, cuda, cuda:N, mps or auto") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UnirlError(f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise UnirlError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if resolved.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UnirlError(f"--device {device} was asked for but MPS is not available; use --device cpu")
    return resolved


def resolve_dtype(dtype: str = "auto", device=None):
    """A torch dtype from `auto` (bf16 on CUDA, fp32 elsewhere) or a name such as bf16 / float32."""
    import torch

    name = (dtype or "auto").lower()
    if name == "auto":
        on_gpu = device is not None and torch.device(device).type == "cuda"
        return torch.bfloat16 if on_gpu else torch.float32
    if name not in DTYPES:
        raise UnirlError(f"--dtype '{dtype}' is not supported; use one of auto, {', '.join(sorted(set(DTYPES.values())))}")
    return getattr(torch, DTYPES[name])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (per-image generators are seeded separately by the samplers)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
