"""GRPO maths as pure tensor functions: group advantages, the clipped surrogate, k3 KL, loss aggregation.

The formulas follow TRL's `GRPOTrainer` (`_generate_and_score_completions` / `_compute_loss`) so a
result here can be compared with a TRL text run; the code is our own. Shapes: `batch` rows are laid
out in contiguous groups of `group_size` (all samples of one prompt next to each other), and
`num_actions` is tokens (autoregressive) or sampling steps (masked generators).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch

ADVANTAGE_EPS = 1e-4  # TRL adds this to the std before dividing
ScaleRewards = Literal["group", "batch", "none"]


def nan_std(values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Bessel-corrected standard deviation ignoring NaNs (as TRL's `nanstd`)."""
    mean = values.nanmean() if dim is None else values.nanmean(dim=dim, keepdim=True)
    squared = (values - mean) ** 2
    count = (~values.isnan()).sum() if dim is None else (~values.isnan()).sum(dim=dim)
    total = squared.nansum() if dim is None else squared.nansum(dim=dim)
    return (total / (count - 1).clamp(min=1)).sqrt()


def group_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: ScaleRewards = "group",
                     batch_std: torch.Tensor | None = None) -> torch.Tensor:
    """Advantages A_i = r_i - mean(group), divided by (std + 1e-4) per `scale_rewards`.

    `rewards` is (batch,) in contiguous groups. "group" divides by the group's std, "batch" by the std of
    all rewards (pass `batch_std` when the batch is spread over processes), "none" does not divide
    (Dr. GRPO). Std is Bessel-corrected; NaN rewards are left out of the statistics and get A = 0.
    """
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.float().view(-1, group_size)  # (num_groups, group_size)
    advantages = grouped - grouped.nanmean(dim=1, keepdim=True)
    if scale_rewards == "group":
        advantages = advantages / (nan_std(grouped, dim=1).unsqueeze(1) + ADVANTAGE_EPS)
    elif scale_rewards == "batch":
        std = nan_std(rewards.float()) if batch_std is None else batch_std
        advantages = advantages / (std + ADVANTAGE_EPS)
    elif scale_rewards != "none":
        raise ValueError(f"unknown scale_rewards {scale_rewards!r}")
    return torch.nan_to_num(advantages, nan=0.0).view(-1)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-action k3 estimate of KL(pi || pi_ref): exp(ref - pi) - (ref - pi) - 1 (always >= 0)."""
    log_ratio = ref_logprobs - logprobs
    return torch.exp(log_ratio) - log_ratio - 1


@dataclass(frozen=True)
class ClipSettings:
    """PPO-clip settings: ratio clipped to [1 - eps_low, 1 + eps_high]; `beta` weighs the k3 KL."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.0
    # Multiply the KL term by the importance ratio (DeepSeek-V3.2's unbiased estimator; TRL's
    # `use_bias_correction_kl`). Off by default, as in the original GRPO.
    kl_ratio_correction: bool = False


@dataclass
class PerTokenLoss:
    """The per-action loss and what the logs need about it."""

    loss: torch.Tensor  # (batch, num_actions)
    ratio: torch.Tensor  # (batch, num_actions), detached
    kl: torch.Tensor | None  # (batch, num_actions), detached; None when beta == 0
    low_clipped: torch.Tensor  # (batch, num_actions) bool: ratio < 1 - eps_low with A < 0
    high_clipped: torch.Tensor  # (batch, num_actions) bool: ratio > 1 + eps_high with A > 0


def clipped_surrogate(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                      settings: ClipSettings, ref_logprobs: torch.Tensor | None = None) -> PerTokenLoss:
    """-min(rho*A, clip(rho)*A) + beta*k3, per action, with rho = exp(logprobs - old_logprobs).

    `advantages` is (batch,), one per sample. Pass `old_logprobs = logprobs.detach()` for a single
    on-policy update (rho == 1 but its gradient is grad log pi). `ref_logprobs` is needed iff beta != 0.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    clipped_ratio = ratio.clamp(1 - settings.eps_low, 1 + settings.eps_high)
    advantage = advantages.unsqueeze(1).to(logprobs.dtype)
    loss = -torch.min(ratio * advantage, clipped_ratio * advantage)
    kl = None
    if settings.beta != 0.0:
        if ref_logprobs is None:
            raise ValueError("beta != 0 needs reference log-probs")
        kl = k3_kl(logprobs, ref_logprobs)
        loss = loss + settings.beta * (kl * ratio if settings.kl_ratio_correction else kl)
        kl = kl.detach()
    return PerTokenLoss(
        loss=loss, ratio=ratio.detach(), kl=kl,
        low_clipped=(ratio.detach() < 1 - settings.eps_low) & (advantage < 0),
        high_clipped=(ratio.detach() > 1 + settings.eps_high) & (advantage > 0),
    )


@dataclass(frozen=True)
class LossNormalizer:
    """Sizes the aggregation divides by, fixed for one optimizer step.

    A step's batch may be split into micro-batches; each micro-batch's aggregated loss is then a share
    of the whole-batch loss, so summing the micro-batch losses gives exactly the whole-batch value.
    """

    num_sequences: int  # rows in this process's whole batch
    num_tokens: float  # active actions in this process's whole batch
    max_length: float  # the longest possible completion (dr_grpo; scaled when only some sampling steps are scored)
    tokens_per_process: float  # active actions in the global batch / number of processes (dapo)
    # Every row's active-action count when it is the same for all rows (image tokens or sampling steps): grpo's
    # per-row mean then stays exact when a micro-batch masks part of each row (Show-o's step chunks).
    actions_per_sequence: float | None = None

    @classmethod
    def for_batch(cls, mask: torch.Tensor, max_length: int | None = None) -> "LossNormalizer":
        """The normalizer of a single-process batch with action mask `mask` (batch, num_actions)."""
        tokens = float(mask.sum())
        return cls(num_sequences=mask.shape[0], num_tokens=tokens,
                   max_length=max_length or mask.shape[1], tokens_per_process=tokens)


def _grpo(loss: torch.Tensor, mask: torch.Tensor, sizes: LossNormalizer) -> torch.Tensor:
    lengths = mask.sum(-1).clamp(min=1.0) if sizes.actions_per_sequence is None else sizes.actions_per_sequence
    per_sequence = (loss * mask).sum(-1) / lengths
    return per_sequence.sum() / sizes.num_sequences


def _bnpo(loss: torch.Tensor, mask: torch.Tensor, sizes: LossNormalizer) -> torch.Tensor:
    return (loss * mask).sum() / max(sizes.num_tokens, 1.0)


def _dr_grpo(loss: torch.Tensor, mask: torch.Tensor, sizes: LossNormalizer) -> torch.Tensor:
    return (loss * mask).sum() / (sizes.num_sequences * sizes.max_length)


def _dapo(loss: torch.Tensor, mask: torch.Tensor, sizes: LossNormalizer) -> torch.Tensor:
    return (loss * mask).sum() / max(sizes.tokens_per_process, 1.0)


# grpo: mean over samples of each sample's token mean; bnpo: token mean over the local batch;
# dr_grpo: token sum / (samples * max length); dapo: token sum / (global active tokens / processes).
LOSS_AGGREGATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, LossNormalizer], torch.Tensor]] = {
    "grpo": _grpo, "bnpo": _bnpo, "dr_grpo": _dr_grpo, "dapo": _dapo,
}


def aggregate_loss(per_token_loss: torch.Tensor, mask: torch.Tensor, loss_type: str,
                   sizes: LossNormalizer | None = None) -> torch.Tensor:
    """Reduce a (batch, num_actions) loss to a scalar by `loss_type` (a key of LOSS_AGGREGATIONS)."""
    if loss_type not in LOSS_AGGREGATIONS:
        raise ValueError(f"unknown loss_type {loss_type!r}; known: {', '.join(LOSS_AGGREGATIONS)}")
    mask = mask.to(per_token_loss.dtype)
    return LOSS_AGGREGATIONS[loss_type](per_token_loss, mask, sizes or LossNormalizer.for_batch(mask))


@dataclass
class GRPOLossOutput:
    """The scalar loss and its diagnostics (plain floats are computed by the caller when logging)."""

    loss: torch.Tensor
    mean_kl: torch.Tensor | None
    clip_fraction: torch.Tensor
    low_clip_fraction: torch.Tensor
    high_clip_fraction: torch.Tensor
    mean_ratio: torch.Tensor


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
              settings: ClipSettings, loss_type: str = "grpo", mask: torch.Tensor | None = None,
              ref_logprobs: torch.Tensor | None = None, sizes: LossNormalizer | None = None) -> GRPOLossOutput:
    """The GRPO loss of one (micro-)batch and its diagnostics; `mask` defaults to all actions active."""
    if mask is None:
        mask = torch.ones_like(logprobs)
    mask = mask.to(logprobs.dtype)
    terms = clipped_surrogate(logprobs, old_logprobs, advantages, settings, ref_logprobs)
    loss = aggregate_loss(terms.loss, mask, loss_type, sizes)
    active = mask.sum().clamp(min=1.0)

    def masked_mean(values: torch.Tensor) -> torch.Tensor:
        return (values.to(mask.dtype) * mask).sum() / active

    return GRPOLossOutput(
        loss=loss,
        mean_kl=None if terms.kl is None else masked_mean(terms.kl),
        clip_fraction=masked_mean(terms.low_clipped | terms.high_clipped),
        low_clip_fraction=masked_mean(terms.low_clipped),
        high_clip_fraction=masked_mean(terms.high_clipped),
        mean_ratio=masked_mean(terms.ratio),
    )
