"""Training mini-showo's MAGVIT-v2 tokenizer (lookup-free quantiser) from scratch on rendered scenes.

The same supervision as the Janus mini's VQ tokenizer (`world.vq_train`): the renderer knows the kind of every
8 px patch (background, or one quarter of one shape in one colour: 241 kinds), and code k stands for kind k.
With a lookup-free quantiser a code is its bits (channel 0 the most significant, `quantize.embedding` holds
the ±1 vector of each code), so the encoder learns each patch's bits by binary cross-entropy on its features
(the quantiser keeps their signs) and the decoder learns to paint the ±1 vectors. Codes past 240 are never used.
"""

from __future__ import annotations

import random
import time

import torch
import torch.nn.functional as F

from unirl_cli.data.shapes.render import draw_scene, random_scene
from unirl_cli.data.shapes.spec import IMAGE_SIZE
from unirl_cli.world.vq_train import (VqTrainResult, labelled_crops, patch_kinds, scenes_to_pixels,
                                      weighted_reconstruction_loss)

FEATURE_SCALE = 4.0  # sharpness of the encoder's per-bit logits


def train_magvit(magvit, max_steps: int, max_seconds: float, seed: int = 0, batch_size: int = 32,
                 learning_rate: float = 2e-3, crop: int = 32, encoder_share: float = 0.4, log=print) -> VqTrainResult:
    """Train `magvit` (a `MagvitV2`) in place until `max_steps` or `max_seconds`, whichever comes first.

    The first `encoder_share` of the budget trains encoder and decoder on 32 px crops; the rest trains the
    decoder alone on whole scenes (its GroupNorms see whole-image statistics when it decodes).
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    code_vectors = magvit.quantize.embedding  # (codebook_size, bits) of ±1
    magvit.train()
    optimizer = torch.optim.AdamW([p for p in magvit.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=0.0)
    start, step, recon_value, loss = time.time(), 0, float("nan"), torch.zeros(())
    while step < max_steps and time.time() - start < max_seconds:
        whole_scenes = step >= encoder_share * max_steps or time.time() - start >= encoder_share * max_seconds
        pixels, kinds = labelled_crops(rng, batch_size // 2, IMAGE_SIZE) if whole_scenes else labelled_crops(
            rng, batch_size, crop)
        codes = code_vectors[kinds].permute(0, 3, 1, 2)  # (batch, bits, h, w): the true code of each patch
        loss = weighted_reconstruction_loss(magvit.decoder(codes), pixels)
        recon_value = float(loss.detach())
        if not whole_scenes:
            features = magvit.encoder(pixels)  # (batch, bits, h, w); the quantiser keeps their signs
            loss = loss + F.binary_cross_entropy_with_logits(FEATURE_SCALE * features, (codes > 0).float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0:
            log(f"magvit step {step}: reconstruction {recon_value:.4f}, total {float(loss.detach()):.4f}")
    magvit.eval()
    return VqTrainResult(step, time.time() - start, recon_value, code_accuracy(magvit, rng))


@torch.no_grad()
def code_accuracy(magvit, rng: random.Random, num_scenes: int = 32) -> float:
    """Share of patches of fresh random scenes that `encode` gives their kind's code."""
    scenes = [random_scene(rng, max_objects=8) for _ in range(num_scenes)]
    ids = magvit.encode(scenes_to_pixels([draw_scene(s) for s in scenes]))
    kinds = torch.stack([patch_kinds(s).view(-1) for s in scenes])
    return float((ids == kinds).float().mean())
