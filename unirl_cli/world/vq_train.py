"""Training the mini model's VQ tokenizer (a `JanusVQVAE`) from scratch on rendered scenes.

The world is drawn on a grid that matches the 8 px VQ patches, so the renderer knows what every patch holds:
background, or one quarter of one shape in one colour (6 x 10 x 4 + 1 = 241 kinds). Training uses that
label as supervision, which converges in minutes on a CPU where a plain VQ-VAE needs hours: code k stands
for patch kind k; the decoder learns to paint a grid of codes, the encoder learns (by cross-entropy over
cosine similarities) to pick the code of each patch. Janus looks codes up L2-normalised
(`get_codebook_entry`), so the codebook is stored normalised, which also makes transformers' Euclidean
`encode` pick the most similar code. Codes past 241 are never used.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from unirl_cli.data.shapes.render import SceneObject, draw_scene, random_scene
from unirl_cli.data.shapes.spec import BACKGROUND, CELL_SIZE, COLOR_NAMES, GRID_SIZE, IMAGE_SIZE, SHAPES, TOKEN_PATCH

PATCH = TOKEN_PATCH
PATCHES_PER_SIDE = IMAGE_SIZE // PATCH
NUM_PATCH_KINDS = 1 + len(SHAPES) * len(COLOR_NAMES) * 4
FOREGROUND_WEIGHT = 9.0
COSINE_SCALE = 20.0  # sharpness of the encoder's code classification


@dataclass
class VqTrainResult:
    """What `train_vq` did: steps, seconds, last losses, and the share of patches `encode` codes right."""

    steps: int
    seconds: float
    reconstruction_loss: float
    code_accuracy: float


def scenes_to_pixels(images) -> torch.Tensor:
    """(batch, 3, 64, 64) float pixels in [-1, 1] from PIL images (the VQ model's input range)."""
    arrays = np.stack([np.asarray(image.convert("RGB")) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def patch_kinds(objects: list[SceneObject]) -> torch.Tensor:
    """(8, 8) patch kinds of a scene: 0 for background, else 1 + (shape, colour, quarter) index."""
    kinds = torch.zeros(PATCHES_PER_SIDE, PATCHES_PER_SIDE, dtype=torch.long)
    per_cell = CELL_SIZE // PATCH
    for obj in objects:
        base = 1 + (SHAPES.index(obj.class_name) * len(COLOR_NAMES) + COLOR_NAMES.index(obj.color)) * 4
        for dy in range(per_cell):
            for dx in range(per_cell):
                kinds[obj.row * per_cell + dy, obj.col * per_cell + dx] = base + dy * per_cell + dx
    return kinds


def count_objects_and_fragments(kinds: torch.Tensor) -> tuple[int, int]:
    """Parse a grid of patch kinds (64 or 8 x 8, e.g. a generated image's codes) the inverse way of `patch_kinds`:
    (complete objects: the four quarters of one shape and colour in one cell, in place; fragment patches: every
    other non-background patch)."""
    grid = kinds.reshape(PATCHES_PER_SIDE, PATCHES_PER_SIDE).cpu()
    complete, per_cell = grid_objects(grid, min_quarters=4), CELL_SIZE // PATCH
    in_objects = torch.zeros_like(grid, dtype=torch.bool)
    for obj in complete:
        in_objects[obj.row * per_cell:(obj.row + 1) * per_cell, obj.col * per_cell:(obj.col + 1) * per_cell] = True
    return len(complete), int(((grid > 0) & (grid < NUM_PATCH_KINDS) & ~in_objects).sum())


def grid_objects(kinds: torch.Tensor, min_quarters: int = 3) -> list[SceneObject]:
    """The objects a grid of patch kinds (64 or 8 x 8) shows: a cell holding at least `min_quarters` of the four
    quarters of one shape and colour, each in its place, is that object; other quarters are nothing. The rule
    follows the detector on decoded pieces (a lone quarter is nothing 90% of the time, three quarters an object
    93%), but on mini-showo's generated grids it counts as many objects as the detector on 45% of them
    (`benchmarks/reward_agreement.py`, docs/shapes-world.md)."""
    grid = kinds.reshape(PATCHES_PER_SIDE, PATCHES_PER_SIDE).cpu()
    per_cell, objects = CELL_SIZE // PATCH, []
    quarters = per_cell * per_cell
    for row in range(GRID_SIZE):
        for col in range(GRID_SIZE):
            block = grid[row * per_cell:(row + 1) * per_cell, col * per_cell:(col + 1) * per_cell].reshape(-1)
            in_place = [(int(kind) - 1 - quarter) // quarters for quarter, kind in enumerate(block)
                        if 0 < int(kind) < NUM_PATCH_KINDS and (int(kind) - 1) % quarters == quarter]
            if not in_place:
                continue
            base = max(set(in_place), key=in_place.count)
            if in_place.count(base) >= min_quarters:
                shape, color = divmod(base, len(COLOR_NAMES))
                objects.append(SceneObject(SHAPES[shape], COLOR_NAMES[color], row, col))
    return objects


def labelled_crops(rng: random.Random, count: int, crop: int = 32,
                   max_objects: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels (count, 3, crop, crop), patch kinds (count, crop/8, crop/8)) of grid-aligned windows of busy scenes
    (crop=64: whole scenes).

    The VQ model is convolutional and objects sit in 16 px cells, so aligned crops teach it the same
    patches as whole scenes for a fraction of the cost.
    """
    pixels, kinds = [], []
    cells = GRID_SIZE - crop // CELL_SIZE + 1
    for _ in range(count):
        objects = random_scene(rng, max_objects=max_objects)
        image = scenes_to_pixels([draw_scene(objects)])[0]
        top, left = CELL_SIZE * rng.randrange(cells), CELL_SIZE * rng.randrange(cells)
        pixels.append(image[:, top: top + crop, left: left + crop])
        kinds.append(patch_kinds(objects)[top // PATCH: (top + crop) // PATCH, left // PATCH: (left + crop) // PATCH])
    return torch.stack(pixels), torch.stack(kinds)


def weighted_reconstruction_loss(recon: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """L1 + L2, with shape pixels weighted up: they cover a tenth of a scene, and an unweighted loss first
    settles on painting everything background grey."""
    background = torch.tensor([c / 127.5 - 1.0 for c in BACKGROUND]).view(1, 3, 1, 1)
    is_shape = ((pixels - background).abs().amax(dim=1, keepdim=True) > 0.05).float()
    error = recon - pixels
    return ((1.0 + FOREGROUND_WEIGHT * is_shape) * (error.abs() + error ** 2)).mean()


def train_vq(vqmodel, max_steps: int, max_seconds: float, seed: int = 0, batch_size: int = 32,
             learning_rate: float = 2e-3, crop: int = 32, encoder_share: float = 0.4, log=print) -> VqTrainResult:
    """Train `vqmodel` in place until `max_steps` or `max_seconds`, whichever comes first.

    The first `encoder_share` of the budget trains encoder and decoder on cheap 32 px crops; the rest trains
    the decoder alone on whole scenes (its GroupNorms see whole-image statistics when it decodes).
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    codebook = vqmodel.quantize.embedding.weight
    vqmodel.train()
    optimizer = torch.optim.AdamW(vqmodel.parameters(), lr=learning_rate, weight_decay=0.0)
    start, step, recon_value = time.time(), 0, float("nan")
    while step < max_steps and time.time() - start < max_seconds:
        whole_scenes = step >= encoder_share * max_steps or time.time() - start >= encoder_share * max_seconds
        if whole_scenes:
            pixels, kinds = labelled_crops(rng, batch_size // 2, IMAGE_SIZE)
        else:
            pixels, kinds = labelled_crops(rng, batch_size, crop)
        codes = F.normalize(codebook, dim=-1)
        latents = codes[kinds].permute(0, 3, 1, 2)  # (batch, embed_dim, h, w): the true codes of each patch
        recon = vqmodel.decoder(vqmodel.post_quant_conv(latents))
        loss = weighted_reconstruction_loss(recon, pixels)
        recon_value = float(loss.detach())
        if not whole_scenes:
            encoded = F.normalize(vqmodel.quant_conv(vqmodel.encoder(pixels)), dim=1)  # (batch, embed_dim, h, w)
            loss = loss + F.cross_entropy(COSINE_SCALE * torch.einsum("bdhw,kd->bkhw", encoded, codes), kinds)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if whole_scenes:  # the codes are settled; moving them now would desynchronise the encoder
            codebook.grad = None
        optimizer.step()
        step += 1
        if step % 100 == 0:
            log(f"vq step {step}: reconstruction {recon_value:.4f}, total {float(loss.detach()):.4f}")
    with torch.no_grad():
        codebook.copy_(F.normalize(codebook, dim=-1))
    vqmodel.eval()
    return VqTrainResult(step, time.time() - start, recon_value, code_accuracy(vqmodel, rng))


@torch.no_grad()
def code_accuracy(vqmodel, rng: random.Random, num_scenes: int = 32) -> float:
    """Share of patches of fresh random scenes that transformers' own `encode` gives their kind's code."""
    scenes = [random_scene(rng, max_objects=8) for _ in range(num_scenes)]
    ids = vqmodel.encode(scenes_to_pixels([draw_scene(s) for s in scenes])).image_tokens.view(num_scenes, -1)
    kinds = torch.stack([patch_kinds(s).view(-1) for s in scenes])
    return float((ids == kinds).float().mean())
