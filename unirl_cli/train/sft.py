"""One SFT step from the model's own images: end-to-end through Gumbel-softmax, or filtered.

end_to_end (UniRL's SFT): the ground-truth answer's NLL given the generated image, where the image
enters understanding as straight-through Gumbel-softmax tokens, hard = onehot(sampled) + y - sg(y)
with y = softmax((z + g) / tau) and z the generation logits, so the loss reaches the generator too.
filtered (non-end-to-end): generation NLL on the images whose own answer was correct, plus the
understanding NLL of the ground-truth answer on the (detached) image tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unirl_cli.models.base import ImageRollout, UnifiedModel
from unirl_cli.train.context import RunContext, accumulate_gradients, optimizer_update, summed
from unirl_cli.train.grpo import reward_metrics, step_experience
from unirl_cli.train.rewards import RolloutBatch
from unirl_cli.train.rollout import StepTimer, chunks


def gumbel_noise(seeds: list[int], shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Standard Gumbel noise (rows, *shape), row i drawn from its own generator seeded with seeds[i]."""
    rows = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed) + 7_919)
        uniform = torch.rand(shape, generator=generator).clamp_(1e-10, 1.0 - 1e-7)
        rows.append(-torch.log(-torch.log(uniform)))
    return torch.stack(rows).to(device)


def straight_through_tokens(logits: torch.Tensor, noise: torch.Tensor, tau: float,
                            hard_indices: torch.Tensor | None = None) -> torch.Tensor:
    """onehot(hard) + y - sg(y), y = softmax((logits + noise) / tau); hard defaults to argmax y.

    Forward value is exactly one-hot; the gradient is that of the soft sample y.
    """
    soft = torch.softmax((logits.float() + noise) / tau, dim=-1)  # (batch, num_image_tokens, codebook)
    if hard_indices is None:
        hard_indices = soft.argmax(dim=-1)
    hard = F.one_hot(hard_indices.long(), num_classes=soft.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()


def answer_nll_per_image(scores) -> torch.Tensor:
    """Mean NLL per answer token, one value per image (batch,)."""
    mask = scores.token_mask.float()
    return -(scores.token_logprobs.float() * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


@dataclass(frozen=True)
class SFTSettings:
    """What every micro-batch of one SFT step shares."""

    tau: float
    hard_from_rollout: bool
    und_weight: float
    gen_weight: float
    generation_total: float  # sums of the per-image weights over the whole local batch (normalisers)
    understanding_total: float
    no_guidance_scale: float


@dataclass
class SFTMicroBatch:
    """A slice of the step's images with the targets of its loss."""

    rollout: ImageRollout
    questions: list[str]
    answers: list[str]  # ground truth
    gumbel_seeds: list[int]  # one per image; the noise is drawn inside the forward (it is large: N x codebook)
    generation_weights: torch.Tensor  # (rows,) 1 for images whose answer was correct (filtered mode)
    understanding_weights: torch.Tensor  # (rows,)
    settings: SFTSettings


def end_to_end_objective(policy: UnifiedModel, micro: SFTMicroBatch) -> dict:
    """Answer NLL through straight-through Gumbel-softmax image tokens (gradient reaches generation)."""
    settings = micro.settings
    logits = policy("image_logits", micro.rollout.prompts, micro.rollout.image_tokens)
    noise = gumbel_noise(micro.gumbel_seeds, tuple(logits.shape[1:]), logits.device)
    hard = micro.rollout.image_tokens if settings.hard_from_rollout else None
    soft_tokens = straight_through_tokens(logits, noise, settings.tau, hard)
    scores = policy("answer_logprobs", soft_tokens, micro.questions, micro.answers)
    nll = answer_nll_per_image(scores)
    loss = settings.und_weight * (micro.understanding_weights * nll).sum() / max(settings.understanding_total, 1.0)
    return {"loss": loss, "und_nll": nll.detach().mean(), "rows": len(micro.rollout)}


def filtered_objective(policy: UnifiedModel, micro: SFTMicroBatch) -> dict:
    """Generation NLL on correctly answered images + understanding NLL on detached image tokens."""
    settings = micro.settings
    # Both terms are always in the graph (zero-weighted if need be) so DDP sees every parameter used.
    gen_nll = -policy("image_logprobs", micro.rollout, guidance_scale=settings.no_guidance_scale).float().mean(dim=1)
    scores = policy("answer_logprobs", micro.rollout.image_tokens, micro.questions, micro.answers)
    und_nll = answer_nll_per_image(scores)
    loss = (settings.gen_weight * (micro.generation_weights * gen_nll).sum() / max(settings.generation_total, 1.0)
            + settings.und_weight * (micro.understanding_weights * und_nll).sum() / max(settings.understanding_total, 1.0))
    return {"loss": loss, "gen_nll": gen_nll.detach().mean(), "und_nll": und_nll.detach().mean(),
            "rows": len(micro.rollout)}


def sft_step(ctx: RunContext, records: list[dict], step: int, first_image_index: int) -> tuple[dict, RolloutBatch]:
    """Run one SFT update for this process's `records`; returns (metrics, the rollout batch)."""
    config, timer = ctx.config, StepTimer()
    batch, rewards = step_experience(ctx, records, step, first_image_index, timer, always_answer=True)
    metrics = reward_metrics(ctx, batch, rewards)
    metrics.pop("_all_rewards")
    # "Correct" = the best reward the configured sources can give (1 for the matcher alone).
    correct = (rewards >= getattr(ctx.reward_fn, "max_reward", 1.0) - 1e-6).float().to(ctx.device)
    end_to_end = config.sft.mode == "end_to_end"
    und_weights = correct if (not end_to_end and config.sft.und_on == "correct") else torch.ones_like(correct)
    settings = SFTSettings(config.sft.gumbel_tau, config.sft.hard_tokens == "rollout", config.sft.und_weight,
                           config.sft.gen_weight, float(correct.sum()), float(und_weights.sum()),
                           ctx.policy.no_guidance_scale)
    rollout = batch.rollout.to(ctx.device)
    micro_batches = [SFTMicroBatch(rollout.select(part), [r["question"] for r in batch.records[part.start:part.stop]],
                                   [r["answer"] for r in batch.records[part.start:part.stop]],
                                   rollout.seeds[part.start:part.stop], correct[part.start:part.stop],
                                   und_weights[part.start:part.stop], settings)
                     for part in chunks(len(rollout), config.micro_batch_size)]
    objective = end_to_end_objective if end_to_end else filtered_objective
    with timer.phase("logprob_fwd_bwd"):
        outputs = accumulate_gradients(ctx, objective, micro_batches)
    with timer.phase("optimizer"):
        grad_norm = optimizer_update(ctx)
    metrics.update({"loss": summed(outputs, "loss"), "grad_norm": grad_norm,
                    "correct_fraction": float(correct.mean())})
    for key in ("und_nll", "gen_nll"):
        values = [out[key] for out in outputs if key in out]
        if values:
            metrics[key] = sum(values) / len(values)
    metrics.update({f"time/{name}": seconds for name, seconds in timer.seconds.items()})
    return metrics, batch
