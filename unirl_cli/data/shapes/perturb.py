"""Image perturbations a generator's output shows (blur, noise, compression), for detector robustness checks.

Each factory returns `perturb(image, rng) -> image`; `rng` is a `random.Random` so a run is reproducible.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageFilter


def blur(radius: float):
    """Gaussian blur of `radius` pixels."""
    return lambda image, rng: image.filter(ImageFilter.GaussianBlur(radius))


def noise(sigma: float):
    """Additive Gaussian pixel noise with standard deviation `sigma` (0-255 scale), clipped."""
    def perturb(image: Image.Image, rng: random.Random) -> Image.Image:
        pixels = np.asarray(image, float)
        noisy = pixels + np.random.default_rng(rng.randrange(1 << 30)).normal(0, sigma, pixels.shape)
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return perturb


def jpeg(quality: int):
    """A JPEG round trip at `quality`."""
    def perturb(image: Image.Image, rng: random.Random) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(buffer).convert("RGB")
    return perturb
