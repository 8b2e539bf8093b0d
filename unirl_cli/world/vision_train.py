"""Pretraining the mini model's understanding encoder (Janus's SigLIP-style `vision_model`) on patch labels.

Trained only through answer likelihood, the encoder of a from-scratch mini learns colours (a patch's mean)
but not shapes within a 30 min CPU budget: the language model fits the answers' prior first and the image
path stays unused (measured: shape answers at chance after 19 min of joint training). The renderer knows
what each 8 px patch holds (background, or one quarter of one shape in one colour), so, as for the VQ
tokenizer, that label supervises the encoder directly: a linear probe on each output patch feature is
trained with cross-entropy to name the patch kind, then thrown away. Half of each batch is first passed
through the VQ tokenizer's decoder, so the encoder also reads the model's own generated images.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unirl_cli.data.shapes.spec import IMAGE_SIZE
from unirl_cli.world.vq_train import NUM_PATCH_KINDS, labelled_crops


@dataclass
class VisionTrainResult:
    """What `train_vision_encoder` did: steps, seconds, and the probe's accuracy on object patches of fresh scenes."""

    steps: int
    seconds: float
    patch_accuracy: float


def labelled_scenes(rng: random.Random, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels (count, 3, 64, 64) in [-1, 1], patch kinds (count, 64)) of random scenes of 1-8 objects."""
    pixels, kinds = labelled_crops(rng, count, IMAGE_SIZE, max_objects=8)
    return pixels, kinds.flatten(1)


@torch.no_grad()
def vq_round_trip(vqmodel, kinds: torch.Tensor) -> torch.Tensor:
    """Pixels the VQ decoder paints for the true codes of each patch (what generated images look like)."""
    return vqmodel.decode(kinds).clamp(-1.0, 1.0)


def _patch_logits(vision_model, probe: torch.nn.Linear, pixels: torch.Tensor) -> torch.Tensor:
    return probe(vision_model(pixel_values=pixels).last_hidden_state)  # (batch, patches, kinds)


def train_vision_encoder(vision_model, vqmodel, max_seconds: float, max_steps: int = 100_000, seed: int = 0,
                         batch_size: int = 32, learning_rate: float = 2e-3, log=print) -> VisionTrainResult:
    """Train `vision_model` in place (with a throw-away linear probe) to name each patch's kind."""
    rng = random.Random(seed)
    probe = torch.nn.Linear(vision_model.config.hidden_size, NUM_PATCH_KINDS)
    params = list(vision_model.parameters()) + list(probe.parameters())
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
    vision_model.train()
    start, step = time.time(), 0
    while step < max_steps and time.time() - start < max_seconds:
        pixels, kinds = labelled_scenes(rng, batch_size)
        half = batch_size // 2
        pixels[half:] = vq_round_trip(vqmodel, kinds[half:])
        logits = _patch_logits(vision_model, probe, pixels)
        loss = F.cross_entropy(logits.flatten(0, 1), kinds.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        if step % 100 == 0:
            log(f"vision step {step}: patch-kind loss {float(loss.detach()):.4f}")
    vision_model.eval()
    with torch.no_grad():
        pixels, kinds = labelled_scenes(rng, 64)
        right = _patch_logits(vision_model, probe, pixels).argmax(-1) == kinds
        accuracy = float(right[kinds > 0].float().mean())  # object patches only: background is most of a scene
    return VisionTrainResult(step, time.time() - start, accuracy)


@torch.no_grad()
def whiten_into_aligner(vision_model, aligner, num_scenes: int = 256, seed: int = 0, eps: float = 1e-4) -> None:
    """Fold a whitening of the encoder's patch features into the aligner's first layer.

    After patch-kind training the features' variance is dominated by colour; shape lives in directions
    a hundred times weaker, which a language model reading them learns far more slowly (measured: colour
    answers right within 100 steps, shape answers still at chance after 600). Whitening gives every
    direction unit variance, so `fc1(x)` becomes `fc1(W (x - mean))` with W = cov^-1/2.
    """
    pixels, _ = labelled_scenes(random.Random(seed), num_scenes)
    features = vision_model(pixel_values=pixels).last_hidden_state.flatten(0, 1).double()
    mean = features.mean(0)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(features.T))
    whitening = eigenvectors @ torch.diag((eigenvalues.clamp_min(0) + eps).rsqrt()) @ eigenvectors.T
    weight = aligner.fc1.weight.double() @ whitening
    aligner.fc1.bias.copy_((aligner.fc1.bias.double() - weight @ mean).to(aligner.fc1.bias.dtype))
    aligner.fc1.weight.copy_(weight.to(aligner.fc1.weight.dtype))
