"""Training mini-showo's MAGVIT-v2 tokenizer (lookup-free quantiser) from scratch on rendered scenes.

The same supervision as the Janus mini's VQ tokenizer (`world.vq_train`): the renderer knows the kind of every
8 px patch (background, or one quarter of one shape in one colour: 241 kinds), and code k stands for kind k.
With a lookup-free quantiser a code is its bits (channel 0 the most significant, `quantize.embedding` holds
the ±1 vector of each code), so the encoder learns each patch's bits by binary cross-entropy on its features
(the quantiser keeps their signs) and the decoder learns to paint the ±1 vectors. Codes past 240 are never used.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

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


@dataclass
class DecoderResult:
    """What `train_magvit_decoder` did, and the share of decoded random scenes the detector reads back exactly."""

    steps: int
    seconds: float
    reconstruction_loss: float
    decoded_scene_accuracy: float


def train_magvit_decoder(magvit, max_seconds: float, max_steps: int = 100_000, seed: int = 0, batch_size: int = 16,
                         learning_rate: float = 1e-3, log=print) -> DecoderResult:
    """Train only the decoder of `magvit` on whole scenes (the codes stay what they are), learning rate decayed by
    a cosine over the time budget; returns the steps, seconds, last loss and `decoded_scene_accuracy`.

    mini-showo's last pretraining stage: nothing before it decodes, so it can run last, and the shapes' edges
    (what tells a ring from a circle) are what a short decoder phase leaves blurred."""
    rng = random.Random(seed)
    code_vectors = magvit.quantize.embedding
    magvit.train()
    magvit.decoder.requires_grad_(True)  # the language-model stages freeze the whole tokenizer
    optimizer = torch.optim.AdamW(magvit.decoder.parameters(), lr=learning_rate, weight_decay=0.0)
    start, step, recon_value = time.time(), 0, float("nan")
    while step < max_steps and time.time() - start < max_seconds:
        progress = min(1.0, (time.time() - start) / max_seconds)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * 0.5 * (1 + math.cos(math.pi * progress))
        pixels, kinds = labelled_crops(rng, batch_size, IMAGE_SIZE)
        loss = weighted_reconstruction_loss(magvit.decoder(code_vectors[kinds].permute(0, 3, 1, 2)), pixels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        recon_value, step = float(loss.detach()), step + 1
        if step % 100 == 0:
            log(f"magvit decoder step {step}: reconstruction {recon_value:.4f}")
    magvit.eval()
    return DecoderResult(step, time.time() - start, recon_value, decoded_scene_accuracy(magvit, rng))


@torch.no_grad()
def decoded_scene_accuracy(magvit, rng: random.Random, num_scenes: int = 64) -> float:
    """Share of random scenes (1-4 shapes) whose decoded codes the world's detector reads back exactly (every
    shape and colour, nothing more): whether the decoder draws shapes the evaluation can tell apart."""
    from unirl_cli.eval.shapes.detector import detect_objects

    scenes = [random_scene(rng, max_objects=4) for _ in range(num_scenes)]
    kinds = torch.stack([patch_kinds(s).view(-1) for s in scenes])
    pixels = magvit.decode(kinds)
    # uint8 as the Show-o backend saves images (truncated, not rounded)
    arrays = ((pixels.float() + 1) / 2).clamp(0, 1).mul(255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    right = 0
    for scene, array in zip(scenes, arrays):
        found = sorted((d.class_name, d.color) for d in detect_objects(array) if d.score > 0.3)
        right += found == sorted((o.class_name, o.color) for o in scene)
    return right / num_scenes
