"""What differs between accelerate backends: DeepSpeed's accumulation bookkeeping, FSDP's sharded weights.

DDP needs nothing here (tested on CPU with gloo). DeepSpeed and FSDP paths follow accelerate's
documented contracts but cannot be exercised without GPUs; docs/training.md says so.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch

from unirl_cli.errors import UnirlError


def deepspeed_requested() -> bool:
    """Whether `accelerate launch` was given a DeepSpeed config (read before the Accelerator exists)."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def fsdp_active(accelerator) -> bool:
    """Whether the prepared module is sharded by FSDP."""
    return accelerator.distributed_type.value == "FSDP"


def micro_batches_per_update(images_per_process: int, micro_batch_size: int) -> int:
    """Forward/backward passes between two optimizer updates on one process."""
    return max(1, math.ceil(images_per_process / micro_batch_size))


def configure_deepspeed(accelerator, micro_batch_size: int) -> None:
    """DeepSpeed needs a micro-batch size to exist even though unirl prepares no dataloader."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro_batch_size


def loss_scale_for_backend(accelerator, num_micro_batches: int) -> float:
    """DeepSpeed divides each backward's loss by its accumulation steps; unirl's losses are already shares."""
    return float(num_micro_batches) if accelerator.distributed_type.value == "DEEPSPEED" else 1.0


@contextmanager
def full_parameters(accelerator, module: torch.nn.Module) -> Iterator[None]:
    """Make every parameter whole on this rank for a block outside the wrapped forward (rollouts, saving)."""
    if not fsdp_active(accelerator):
        with nullcontext():
            yield
        return
    from torch.distributed.fsdp import FullyShardedDataParallel

    if not isinstance(module, FullyShardedDataParallel):
        raise UnirlError("only FSDP version 1 is supported (fsdp_version: 1 in the accelerate config)")
    with FullyShardedDataParallel.summon_full_params(module, writeback=False):
        yield
