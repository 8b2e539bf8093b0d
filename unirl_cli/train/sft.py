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
from unirl_cli.train.distributed import full_parameters
from unirl_cli.train.grpo import no_grad_logprobs, reward_metrics, step_experience
from unirl_cli.train.grpo_loss import k3_kl
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
                            hard_indices: torch.Tensor | None = None, soft_forward: bool = False,
                            grad_scale: float = 1.0) -> torch.Tensor:
    """onehot(hard) + y - sg(y), y = softmax((logits + noise) / tau); hard defaults to argmax y.

    Forward value is exactly one-hot (the soft sample y itself with `soft_forward`); the gradient is that of
    y times `grad_scale` (0: nothing reaches the logits, the reader alone learns).
    """
    soft = torch.softmax((logits.float() + noise) / tau, dim=-1)  # (batch, num_image_tokens, codebook)
    scaled = soft.detach() + grad_scale * (soft - soft.detach())  # same value, gradient times grad_scale
    if soft_forward:
        return scaled
    if hard_indices is None:
        hard_indices = soft.argmax(dim=-1)
    hard = F.one_hot(hard_indices.long(), num_classes=soft.shape[-1]).to(soft.dtype)
    return hard + scaled - scaled.detach()


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
    soft_forward: bool = False
    generator_grad: float = 1.0
    gen_guidance: float | None = None  # None: the rollout's own CFG scale (gen_branch=cfg)
    gen_pretraining_loss: bool = False  # gen_branch=pretraining: the family's training loss instead of the replay
    kl_beta: float = 0.0
    num_images: int = 1  # of the local batch, normalises the KL term


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
    ref_logprobs: torch.Tensor | None = None  # (rows, N) conditional-branch log-probs under the starting model


def kl_anchor(micro: SFTMicroBatch, logprobs: torch.Tensor) -> torch.Tensor:
    """beta * k3 KL(policy || start) of the image tokens, mean over tokens, summed over this micro-batch's
    share of the batch (0 without a reference)."""
    if micro.ref_logprobs is None or micro.settings.kl_beta == 0:
        return logprobs.new_zeros(())
    per_image = k3_kl(logprobs.float(), micro.ref_logprobs.float()).mean(dim=1)
    return micro.settings.kl_beta * per_image.sum() / max(micro.settings.num_images, 1)


def end_to_end_objective(policy: UnifiedModel, micro: SFTMicroBatch) -> dict:
    """Answer NLL through straight-through Gumbel-softmax image tokens (gradient reaches generation)."""
    settings = micro.settings
    logits = policy("image_logits", micro.rollout.prompts, micro.rollout.image_tokens)
    noise = gumbel_noise(micro.gumbel_seeds, tuple(logits.shape[1:]), logits.device)
    hard = micro.rollout.image_tokens if settings.hard_from_rollout else None
    soft_tokens = straight_through_tokens(logits, noise, settings.tau, hard, soft_forward=settings.soft_forward,
                                          grad_scale=settings.generator_grad)
    scores = policy("answer_logprobs", soft_tokens, micro.questions, micro.answers)
    nll = answer_nll_per_image(scores)
    loss = settings.und_weight * (micro.understanding_weights * nll).sum() / max(settings.understanding_total, 1.0)
    # The reference scores the same tokens under the same sampling temperature.
    tempered = logits.float() / micro.rollout.temperature
    token_logprobs = tempered.log_softmax(dim=-1).gather(-1, micro.rollout.image_tokens[..., None].long())
    anchor = kl_anchor(micro, token_logprobs.squeeze(-1))
    return {"loss": loss + anchor, "und_nll": nll.detach().mean(), "kl": anchor.detach(), "rows": len(micro.rollout)}


def filtered_objective(policy: UnifiedModel, micro: SFTMicroBatch) -> dict:
    """Generation NLL on correctly answered images + understanding NLL on detached image tokens."""
    settings = micro.settings
    # Both terms are always in the graph (zero-weighted if need be) so DDP sees every parameter used.
    if settings.gen_pretraining_loss:
        gen_term, gen_nll = _pretraining_loss_term(policy, micro)
    else:
        gen_logprobs = policy("image_logprobs", micro.rollout, guidance_scale=settings.gen_guidance).float()
        # Per image token for every family: Janus scores one action per token, Show-o one per MaskGIT step (the
        # sum of the ~N/T tokens it committed), so a mean over actions would weigh Show-o's term N/T times Janus's.
        gen_nll = -gen_logprobs.sum(dim=1) / micro.rollout.image_tokens.shape[1]
        gen_term = (micro.generation_weights * gen_nll).sum() / max(settings.generation_total, 1.0)
    scores = policy("answer_logprobs", micro.rollout.image_tokens, micro.questions, micro.answers)
    und_nll = answer_nll_per_image(scores)
    loss = (settings.gen_weight * gen_term
            + settings.und_weight * (micro.understanding_weights * und_nll).sum() / max(settings.understanding_total, 1.0))
    anchor = und_nll.new_zeros(())
    if settings.kl_beta > 0:
        reuse = not settings.gen_pretraining_loss and settings.gen_guidance == settings.no_guidance_scale
        conditional = (gen_logprobs if reuse else
                       policy("image_logprobs", micro.rollout, guidance_scale=settings.no_guidance_scale).float())
        anchor = kl_anchor(micro, conditional)
    return {"loss": loss + anchor, "gen_nll": gen_nll.detach().mean(), "und_nll": und_nll.detach().mean(),
            "kl": anchor.detach(), "rows": len(micro.rollout)}


def _pretraining_loss_term(policy: UnifiedModel, micro: SFTMicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(this micro-batch's share of the generation term, the loss itself): the family's training loss
    (`image_token_loss`) on the images kept, weighted by their share of the step's kept images."""
    kept = micro.generation_weights > 0
    rows = kept if bool(kept.any()) else torch.ones_like(kept)  # nothing kept: a zero-weighted term for DDP
    prompts = [prompt for prompt, keep in zip(micro.rollout.prompts, rows.tolist()) if keep]
    tokens = micro.rollout.image_tokens[rows]
    loss = policy("image_token_loss", prompts, tokens, torch.zeros(len(prompts), dtype=torch.bool)).float()
    share = float(kept.sum()) / max(micro.settings.generation_total, 1.0)
    return loss * share, loss.detach()


def _reference_logprobs(ctx: RunContext, rollout: ImageRollout) -> torch.Tensor:
    """Conditional-branch log-probs (batch, N) of the rollout's tokens under the starting model (no grad)."""
    with full_parameters(ctx.accelerator, ctx.module), ctx.accelerator.autocast():
        return no_grad_logprobs(ctx.reference.image_logprobs, rollout, ctx.policy.no_guidance_scale,
                                ctx.config.micro_batch_size)


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
    no_guidance = ctx.policy.no_guidance_scale
    settings = SFTSettings(config.sft.gumbel_tau, config.sft.hard_tokens == "rollout", config.sft.und_weight,
                           config.sft.gen_weight, float(correct.sum()), float(und_weights.sum()), no_guidance,
                           soft_forward=config.sft.straight_through == "soft", generator_grad=config.sft.generator_grad,
                           gen_guidance=no_guidance if config.sft.gen_branch == "cond" else None,
                           gen_pretraining_loss=config.sft.gen_branch == "pretraining",
                           kl_beta=config.sft.kl_beta, num_images=len(batch.rollout))
    rollout = batch.rollout.to(ctx.device)
    ref_logprobs = _reference_logprobs(ctx, rollout) if config.sft.kl_beta > 0 else None
    micro_batches = [SFTMicroBatch(rollout.select(part), [r["question"] for r in batch.records[part.start:part.stop]],
                                   [r["answer"] for r in batch.records[part.start:part.stop]],
                                   rollout.seeds[part.start:part.stop], correct[part.start:part.stop],
                                   und_weights[part.start:part.stop], settings,
                                   None if ref_logprobs is None else ref_logprobs[part.start:part.stop])
                     for part in chunks(len(rollout), config.micro_batch_size)]
    objective = end_to_end_objective if end_to_end else filtered_objective
    with timer.phase("logprob_fwd_bwd"):
        outputs = accumulate_gradients(ctx, objective, micro_batches)
    with timer.phase("optimizer"):
        grad_norm = optimizer_update(ctx)
    metrics.update({"loss": summed(outputs, "loss"), "grad_norm": grad_norm,
                    "correct_fraction": float(correct.mean())})
    for key in ("und_nll", "gen_nll", "kl"):
        values = [out[key] for out in outputs if key in out]
        if values:
            metrics[key] = sum(values) / len(values)
    metrics.update({f"time/{name}": seconds for name, seconds in timer.seconds.items()})
    return metrics, batch
