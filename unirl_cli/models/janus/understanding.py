"""Janus image understanding as pure functions: image features, prompts, answer sampling and scoring.

An image reaches the LLM as the understanding encoder's features (SigLIP `vision_model` + `aligner`),
spliced in at the `<image_placeholder>` positions. Besides PIL images it may arrive as generated VQ
codes, hard (batch, N) or soft (batch, N, codebook): those are decoded by the VQ decoder to pixels
first, differentiably for soft codes, so an understanding loss can train the image generator.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from unirl_cli.models.janus import formats as janus_format
from unirl_cli.models.janus.sampling import ImageSamplingSettings, per_row_uniforms, sample_from_logits


def pixels_from_soft_tokens(hf_model, soft_tokens: torch.Tensor) -> torch.Tensor:
    """Decode (batch, N, codebook) token weights to (batch, 3, H, W) pixels in about [-1, 1], differentiably.

    One-hot rows give exactly `vqmodel.decode` of the hard codes: the codebook is L2-normalised as in
    `get_codebook_entry`, then mixed by the weights.
    """
    vqmodel = hf_model.model.vqmodel
    codebook = F.normalize(vqmodel.quantize.embedding.weight, p=2, dim=-1)  # (codebook, embed_dim)
    batch_size, num_tokens, _ = soft_tokens.shape
    grid = int(round(num_tokens ** 0.5))
    latents = soft_tokens.to(codebook.dtype) @ codebook  # (batch, N, embed_dim)
    latents = latents.view(batch_size, grid, grid, -1).permute(0, 3, 1, 2)
    return vqmodel.decoder(vqmodel.post_quant_conv(latents))


def pixels_from_images(hf_model, processor, images) -> torch.Tensor:
    """(batch, 3, H, W) pixels in [-1, 1] from PIL images (DeepSeek's preprocessing), hard codes (batch, N) or
    soft codes (batch, N, codebook)."""
    device = hf_model.device
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            return pixels_from_soft_tokens(hf_model, images.to(device))
        with torch.no_grad():
            return hf_model.model.vqmodel.decode(images.to(device).long())
    pixel_values = janus_format.preprocess_images(list(images), processor.image_processor)
    return pixel_values.to(device=device, dtype=hf_model.dtype)


def image_features(hf_model, pixels: torch.Tensor) -> torch.Tensor:
    """(batch, num_image_tokens, hidden) understanding features of pixels in [-1, 1] (resized if needed)."""
    vision_size = hf_model.config.vision_config.image_size
    pixels = pixels.clamp(-1.0, 1.0).to(hf_model.dtype)
    if pixels.shape[-1] != vision_size or pixels.shape[-2] != vision_size:
        pixels = F.interpolate(pixels, size=(vision_size, vision_size), mode="bilinear", align_corners=False,
                               antialias=True)
    vision_states = hf_model.model.vision_model(pixel_values=pixels).last_hidden_state
    return hf_model.model.aligner(vision_states)


def embed_with_images(hf_model, input_ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Text embeddings of `input_ids` with row i's image features written over its placeholder positions."""
    inputs_embeds = hf_model.get_input_embeddings()(input_ids)
    placeholder = (input_ids == hf_model.config.image_token_id).unsqueeze(-1)
    return inputs_embeds.masked_scatter(placeholder, features.to(inputs_embeds.dtype))


@torch.no_grad()
def sample_answer_tokens(hf_model, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                         eos_token_id: int, pad_token_id: int, greedy: bool, temperature: float,
                         seeds: Sequence[int]) -> torch.Tensor:
    """(batch, <= max_new_tokens) answer ids, KV-cached; a row is padded after its EOS, and the loop stops
    when every row has finished. Row i's randomness comes from `seeds[i]` alone."""
    from transformers import DynamicCache

    language_model = hf_model.model.language_model
    settings = ImageSamplingSettings(guidance_scale=1.0, temperature=temperature, greedy=greedy)
    uniforms = per_row_uniforms(seeds, max_new_tokens).to(inputs_embeds.device)
    cache = DynamicCache(config=language_model.config)
    finished = torch.zeros(inputs_embeds.shape[0], dtype=torch.bool, device=inputs_embeds.device)
    answer_ids = []
    for step in range(max_new_tokens):
        hidden = language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, cache=cache,
                                use_cache=True).last_hidden_state[:, -1]
        logits = hf_model.lm_head(hidden).float()
        token = sample_from_logits(logits, uniforms[:, step], settings)
        token = torch.where(finished, torch.full_like(token, pad_token_id), token)
        answer_ids.append(token)
        finished |= token == eos_token_id
        if bool(finished.all()):
            break
        inputs_embeds = hf_model.get_input_embeddings()(token[:, None])
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=1)
    return torch.stack(answer_ids, dim=1)


def answer_token_logprobs(hf_model, prompt_ids: list[list[int]], answer_ids: list[list[int]],
                          features: torch.Tensor, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs (batch, max_answer_len) of each answer after its prompt, and the answer mask.

    Rows are `prompt + answer`, left-padded, so every answer ends at the last position.
    """
    device = hf_model.device
    sequences = [p + a for p, a in zip(prompt_ids, answer_ids)]
    length = max(len(s) for s in sequences)
    max_answer = max(len(a) for a in answer_ids)
    input_ids = torch.tensor([[pad_token_id] * (length - len(s)) + s for s in sequences], device=device)
    attention_mask = torch.tensor([[0] * (length - len(s)) + [1] * len(s) for s in sequences], device=device)
    answer_mask = torch.tensor([[0.0] * (max_answer - len(a)) + [1.0] * len(a) for a in answer_ids], device=device)
    inputs_embeds = embed_with_images(hf_model, input_ids, features)
    hidden = hf_model.model.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
    # Position t predicts token t + 1: the last max_answer targets come from the positions just before them.
    logits = hf_model.lm_head(hidden[:, length - max_answer - 1:length - 1]).float()
    targets = input_ids[:, length - max_answer:]
    token_logprobs = logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(dim=-1)
    return token_logprobs * answer_mask, answer_mask
