"""What a training step works with, and the two things every step does: accumulate, then update."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from unirl_cli.config import SamplingConfig
from unirl_cli.models.base import UnifiedModel
from unirl_cli.train.config import TrainConfig
from unirl_cli.train.distributed import loss_scale_for_backend
from unirl_cli.train.policy import Reference
from unirl_cli.train.rewards import RewardFunction


@dataclass
class RunContext:
    """The prepared pieces of a run (one per process)."""

    accelerator: Any
    module: torch.nn.Module  # the accelerate-prepared TrainingModule
    policy: UnifiedModel  # the unwrapped policy (rollouts, no gradients)
    reference: Reference | None
    optimizer: Any
    scheduler: Any
    config: TrainConfig
    reward_fn: RewardFunction
    sampling: SamplingConfig  # rollout sampling with the family's defaults filled in
    trainable: list[torch.nn.Parameter]

    @property
    def device(self) -> torch.device:
        return self.accelerator.device


def accumulate_gradients(ctx: RunContext, objective: Callable[[UnifiedModel, Any], dict],
                         micro_batches: Sequence[Any]) -> list[dict]:
    """Forward and backward each micro-batch through the prepared module; all-reduce only on the last.

    Each objective returns {"loss": scalar share of the step's loss, other detached stats}.
    """
    outputs = []
    scale = loss_scale_for_backend(ctx.accelerator, len(micro_batches))
    for index, micro_batch in enumerate(micro_batches):
        last = index == len(micro_batches) - 1
        with nullcontext() if last else ctx.accelerator.no_sync(ctx.module):
            out = ctx.module(objective, micro_batch)
            ctx.accelerator.backward(out["loss"] * scale if scale != 1.0 else out["loss"])
        outputs.append({key: float(value.detach()) if torch.is_tensor(value) else value for key, value in out.items()})
    return outputs


def optimizer_update(ctx: RunContext) -> float:
    """Clip gradients, step optimizer and schedule, zero gradients; returns the pre-clip gradient norm."""
    max_norm = ctx.config.optim.max_grad_norm
    if max_norm > 0:
        norm = ctx.accelerator.clip_grad_norm_(ctx.trainable, max_norm)
        grad_norm = float("nan") if norm is None else float(norm)  # DeepSpeed clips inside its own step
    else:
        grads = [p.grad.detach().norm() for p in ctx.trainable if p.grad is not None]
        grad_norm = float(torch.stack(grads).norm()) if grads else 0.0
    ctx.optimizer.step()
    ctx.scheduler.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    return grad_norm


def summed(outputs: list[dict], key: str) -> float:
    """Sum of one stat over micro-batches (losses are shares that add up to the step's loss)."""
    return sum(out[key] for out in outputs if key in out)


def weighted_mean(outputs: list[dict], key: str, weight_key: str = "rows") -> float | None:
    """Mean of a per-micro-batch stat weighted by its row count; None when no micro-batch has it."""
    pairs = [(out[key], out[weight_key]) for out in outputs if key in out]
    total = sum(weight for _, weight in pairs)
    return sum(value * weight for value, weight in pairs) / total if total else None


GLOBAL_METRIC_PREFIXES = ("reward/", "answer_reward/", "frac_reward_zero_std")


def gathered_reward_std(accelerator, local_rewards: torch.Tensor) -> torch.Tensor:
    """Standard deviation of the rewards of every process, NaN rewards left out (`scale_rewards: batch`)."""
    from unirl_cli.train.grpo_loss import nan_std

    return nan_std(accelerator.gather(local_rewards.to(accelerator.device)).float().cpu())


def average_over_processes(accelerator, metrics: dict) -> dict:
    """`metrics` without None values, each per-process value replaced by its mean over processes.

    Rewards are gathered from all processes when they are computed and are left as they are.
    """
    metrics = {k: v for k, v in metrics.items() if v is not None}
    local_keys = sorted(k for k in metrics if not k.startswith(GLOBAL_METRIC_PREFIXES))
    if accelerator.num_processes == 1 or not local_keys:
        return metrics
    values = torch.tensor([float(metrics[k]) for k in local_keys], device=accelerator.device)
    averaged = accelerator.reduce(values, reduction="mean").cpu().tolist()
    return {**metrics, **dict(zip(local_keys, averaged))}
