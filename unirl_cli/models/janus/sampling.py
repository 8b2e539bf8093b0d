"""Janus image-token sampling and teacher forcing, as pure functions of a `JanusForConditionalGeneration`.

The sampler follows DeepSeek's reference loop (and transformers' `generate(generation_mode="image")`):
the conditional and unconditional prompts run as one batch of 2B rows, the guided logits are
`uncond + s * (cond - uncond)`, and the sampled code is fed to both halves. Unlike `generate` it
returns the log-probability of each sampled token, draws each row's randomness from its own
generator (a row is reproducible alone), allows `guidance_scale = 1` (no CFG: the unconditional rows
are skipped) and keeps a growing `DynamicCache` instead of a static one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class ImageSamplingSettings:
    """Resolved settings of one sampling call; `guidance_scale == 1` means no CFG."""

    guidance_scale: float
    temperature: float
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False

    @property
    def uses_cfg(self) -> bool:
        return self.guidance_scale != 1.0


def unconditional_prompt_ids(input_ids: torch.Tensor, bos_token_id: int, boi_token_id: int,
                             pad_token_id: int) -> torch.Tensor:
    """The CFG unconditional prompt: every token except BOS and BOI replaced by the pad token (as DeepSeek)."""
    keep = (input_ids == bos_token_id) | (input_ids == boi_token_id)
    return torch.where(keep, input_ids, torch.full_like(input_ids, pad_token_id))


def guided_logits(cond_logits: torch.Tensor, uncond_logits: torch.Tensor | None, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance `u + s (c - u)` in float32; the conditional logits alone without CFG."""
    if uncond_logits is None:
        return cond_logits.float()
    uncond_logits = uncond_logits.float()
    return uncond_logits + guidance_scale * (cond_logits.float() - uncond_logits)


def truncate_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Logits with tokens outside the top-k / nucleus set to -inf (the most likely token always stays)."""
    if top_k and top_k < logits.shape[-1]:
        kth_value = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_value, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the mass strictly before it already reaches top_p.
        drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def per_row_uniforms(seeds: Sequence[int], num_draws: int) -> torch.Tensor:
    """(batch, num_draws) uniforms in [0, 1), row i drawn from a CPU generator seeded with `seeds[i]`.

    Drawing all of a row's randomness up front from its own generator makes an image depend on its
    seed only, not on the batch it is sampled in or on the device.
    """
    rows = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        rows.append(torch.rand(num_draws, generator=generator, dtype=torch.float64))
    return torch.stack(rows)


def sample_from_logits(logits: torch.Tensor, uniforms: torch.Tensor, settings: ImageSamplingSettings) -> torch.Tensor:
    """One token per row by inverse-CDF sampling of softmax(truncated logits / T); argmax when greedy."""
    if settings.greedy:
        return logits.argmax(dim=-1)
    probs = truncate_logits(logits / settings.temperature, settings.top_k, settings.top_p).softmax(dim=-1)
    cdf = probs.double().cumsum(dim=-1)  # (batch, vocab)
    threshold = (uniforms * cdf[:, -1]).unsqueeze(-1)
    token = torch.searchsorted(cdf, threshold, right=True).squeeze(-1)
    return token.clamp_(max=logits.shape[-1] - 1)


@torch.no_grad()
def sample_image_tokens(hf_model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        uncond_input_ids: torch.Tensor | None, num_image_tokens: int, seeds: Sequence[int],
                        settings: ImageSamplingSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample (batch, num_image_tokens) codes; also return their log-probs under the untruncated tempered CFG softmax.

    `input_ids` are left-padded prompts ending in `<begin_of_image>`; `uncond_input_ids` is needed only with CFG.
    """
    from transformers import DynamicCache

    language_model = hf_model.model.language_model
    generation_head = hf_model.model.generation_head
    batch_size = input_ids.shape[0]
    rows = torch.cat([input_ids, uncond_input_ids]) if settings.uses_cfg else input_ids
    prompt_mask = attention_mask.repeat(2, 1) if settings.uses_cfg else attention_mask
    # One mask for the whole run, sliced per step (cheaper than growing it by concatenation).
    full_mask = torch.cat([prompt_mask, prompt_mask.new_ones(prompt_mask.shape[0], num_image_tokens)], dim=1)
    prompt_length = rows.shape[1]
    inputs_embeds = hf_model.get_input_embeddings()(rows)
    cache = DynamicCache(config=language_model.config)
    uniforms = per_row_uniforms(seeds, num_image_tokens).to(input_ids.device)
    tokens = torch.empty(batch_size, num_image_tokens, dtype=torch.long, device=input_ids.device)
    logprobs = torch.empty(batch_size, num_image_tokens, dtype=torch.float32, device=input_ids.device)
    for step in range(num_image_tokens):
        hidden = language_model(inputs_embeds=inputs_embeds, attention_mask=full_mask[:, :prompt_length + step],
                                cache=cache, use_cache=True).last_hidden_state[:, -1]
        head_logits = generation_head(hidden)  # (rows, codebook)
        cond, uncond = head_logits.chunk(2) if settings.uses_cfg else (head_logits, None)
        logits = guided_logits(cond, uncond, settings.guidance_scale)
        token = sample_from_logits(logits, uniforms[:, step], settings)
        tokens[:, step] = token
        tempered = logits / settings.temperature
        logprobs[:, step] = tempered.gather(-1, token[:, None]).squeeze(-1) - tempered.logsumexp(dim=-1)
        next_codes = torch.cat([token, token]) if settings.uses_cfg else token
        inputs_embeds = hf_model.prepare_embeddings_for_image_generation(next_codes[:, None])
    return tokens, logprobs


def teacher_forced_head_logits(hf_model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                               image_tokens: torch.Tensor) -> torch.Tensor:
    """Differentiable generation-head logits (batch, N, codebook) predicting each of the N given codes."""
    prompt_length = input_ids.shape[1]
    prompt_embeds = hf_model.get_input_embeddings()(input_ids)
    code_embeds = hf_model.prepare_embeddings_for_image_generation(image_tokens[:, :-1])
    inputs_embeds = torch.cat([prompt_embeds, code_embeds.to(prompt_embeds.dtype)], dim=1)
    mask = torch.cat([attention_mask, attention_mask.new_ones(image_tokens.shape[0], image_tokens.shape[1] - 1)], 1)
    hidden = hf_model.model.language_model(inputs_embeds=inputs_embeds, attention_mask=mask).last_hidden_state
    return hf_model.model.generation_head(hidden[:, prompt_length - 1:])


def teacher_forced_logprobs(hf_model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                            uncond_input_ids: torch.Tensor | None, image_tokens: torch.Tensor,
                            guidance_scale: float, temperature: float) -> torch.Tensor:
    """(batch, N) log-probs of `image_tokens` under softmax(CFG logits / T), one forward of [cond; uncond]."""
    uses_cfg = guidance_scale != 1.0
    if uses_cfg:
        logits = teacher_forced_head_logits(hf_model, torch.cat([input_ids, uncond_input_ids]),
                                            attention_mask.repeat(2, 1), image_tokens.repeat(2, 1))
        cond, uncond = logits.chunk(2)
    else:
        cond, uncond = teacher_forced_head_logits(hf_model, input_ids, attention_mask, image_tokens), None
    guided = guided_logits(cond, uncond, guidance_scale) / temperature
    # gather - logsumexp avoids a second (batch, N, codebook) tensor next to the logits.
    return guided.gather(-1, image_tokens[..., None]).squeeze(-1) - guided.logsumexp(dim=-1)
