"""A classical detector for shapes-world images: palette colours, connected components, geometry.

Each pixel is explained as a blend `alpha * colour + (1 - alpha) * background` of one palette colour with
the grey background (how anti-aliasing, blur and VQ decoders mix them); pixels whose best blend is at least
half colour are foreground. Connected foreground pixels of one colour form an object; its shape comes from
geometry (fill of its box, convexity, holes, where its mass sits), its box from its pixels. The output is
the GenEval scorer's `Detection` list, colours filled in, so `score_image` reads it like Mask2Former's.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from unirl_cli.eval.geneval.detections import Detection
from unirl_cli.errors import UnirlError
from unirl_cli.data.shapes.spec import BACKGROUND, COLOR_NAMES, COLORS, IMAGE_SIZE, OBJECT_SIZE, SHAPES

MIN_AREA = 25  # pixels; about half a token patch: smaller specks are noise, not objects
FOREGROUND_ALPHA = 0.5
# Plausible object areas, relative to a clean 14 px square; blobs outside get a low score (0.5), which keeps
# them out of counting (cut-off 0.9) but lets presence tags see them, as a detector's weak guess would.
PLAUSIBLE_AREA = (0.3, 1.6)
LOW_SCORE = 0.5


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a bool mask: (labels with 0 = outside, 1..n), n."""
    height, width = mask.shape
    labels = np.where(mask, np.arange(1, mask.size + 1).reshape(height, width), 0)
    big = mask.size + 1
    while True:
        padded = np.pad(np.where(mask, labels, big), 1, constant_values=big)
        neighbours = np.minimum.reduce([padded[1:-1, 1:-1], padded[:-2, 1:-1], padded[2:, 1:-1],
                                        padded[1:-1, :-2], padded[1:-1, 2:]])
        updated = np.where(mask, neighbours, 0)
        if np.array_equal(updated, labels):
            break
        labels = updated
    unique = np.unique(labels[mask])
    remap = np.zeros(mask.size + 2, dtype=np.int64)
    remap[unique] = np.arange(1, len(unique) + 1)
    return remap[labels], len(unique)


WINDOW = 22  # pixels around an object's centre that its template covers
SHIFTS = (-1, 0, 1)
TEMPLATE_BLURS = (0.0, 0.6, 1.0, 1.5)  # Gaussian radii: clean, and the softness of decoders and resizes


def blend_alphas(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel, the palette index of the best blend with the background, its colour share `alpha`, and
    the share of every colour (the pixel's projection on each colour's direction from the background).

    `pixels` is (height, width, 3) in 0..255; returns (H, W) int64 indices, (H, W) and (H, W, 10) floats in [0, 1].
    """
    diff = pixels.astype(np.float64) - np.asarray(BACKGROUND, dtype=np.float64)  # (H, W, 3)
    directions = np.asarray([COLORS[name] for name in COLOR_NAMES], dtype=np.float64) - np.asarray(BACKGROUND)
    alphas = np.clip(diff @ directions.T / (directions ** 2).sum(axis=1), 0.0, None)  # (H, W, colours)
    residuals = np.linalg.norm(diff[..., None, :] - alphas[..., None] * directions, axis=-1)
    best = residuals.argmin(axis=-1)
    best_alpha = np.take_along_axis(alphas, best[..., None], axis=-1)[..., 0]
    return best, np.clip(best_alpha, 0.0, 1.0), np.clip(alphas, 0.0, 1.0)


def _window(coverage: np.ndarray, center_y: int, center_x: int) -> np.ndarray:
    """The WINDOW x WINDOW crop of `coverage` centred on (center_y, center_x), zero outside the image."""
    half = WINDOW // 2
    padded = np.pad(coverage, half + 1)
    y, x = center_y + 1, center_x + 1
    return padded[y: y + WINDOW, x: x + WINDOW]


def _centre(coverage: np.ndarray) -> tuple[int, int]:
    total = coverage.sum()
    ys, xs = np.indices(coverage.shape)
    return int(round((ys * coverage).sum() / total)), int(round((xs * coverage).sum() / total))


def _standardise(window: np.ndarray) -> np.ndarray:
    centred = window - window.mean()
    norm = np.linalg.norm(centred)
    return centred / norm if norm > 0 else centred


@lru_cache(maxsize=1)
def shape_templates() -> dict[str, np.ndarray]:
    """Per shape, (blurs, WINDOW*WINDOW) standardised coverage windows of the shape as the renderer draws it."""
    from PIL import ImageFilter

    from unirl_cli.data.shapes.render import SceneObject, draw_scene

    templates = {}
    for shape in SHAPES:
        clean = draw_scene([SceneObject(shape, "black", 1, 1)])
        rows = []
        for radius in TEMPLATE_BLURS:
            image = clean.filter(ImageFilter.GaussianBlur(radius)) if radius else clean
            coverage = blend_alphas(np.asarray(image))[2][..., COLOR_NAMES.index("black")]
            rows.append(_standardise(_window(coverage, *_centre(coverage))).ravel())
        templates[shape] = np.stack(rows)
    return templates


def match_shape(coverage: np.ndarray) -> tuple[str, float]:
    """The shape whose template best matches the object `coverage` map (image-sized, zero elsewhere),
    and that correlation (Pearson, over a window around the object, best of small shifts and blurs)."""
    center_y, center_x = _centre(coverage)
    windows = np.stack([_standardise(_window(coverage, center_y + dy, center_x + dx)).ravel()
                        for dy in SHIFTS for dx in SHIFTS])  # (shifts, WINDOW*WINDOW)
    scores = {shape: float((templates @ windows.T).max()) for shape, templates in shape_templates().items()}
    best = max(scores, key=scores.get)
    return best, scores[best]


def _dilate(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    return padded[1:-1, 1:-1] | padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]


def detect_objects(image: Image.Image | np.ndarray) -> list[Detection]:
    """Every object in a 64 px shapes-world image as a `Detection` (class, box, score, mask, colour).

    The score is the template correlation of the best shape (1 for a clean render), lowered to `LOW_SCORE`
    for blobs of implausible size, so that GenEval's cut-offs (0.3, and 0.9 for counting) keep their meaning.
    """
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if pixels.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        raise UnirlError(f"the shapes detector reads {IMAGE_SIZE}x{IMAGE_SIZE} images, got "
                         f"{pixels.shape[1]}x{pixels.shape[0]}; resize it first")
    colour_index, alpha, colour_alphas = blend_alphas(pixels)
    foreground = alpha >= FOREGROUND_ALPHA
    detections = []
    for index, colour in enumerate(COLOR_NAMES):
        labels, count = connected_components(foreground & (colour_index == index))
        for label in range(1, count + 1):
            mask = labels == label
            area = int(mask.sum())
            if area < MIN_AREA:
                continue
            # Soft coverage: the blob's colour share around it, rim included (JPEG and blur smear the colour
            # of thin parts onto neighbouring palette entries, so the best-colour label alone loses them).
            coverage = np.where(_dilate(_dilate(mask)), colour_alphas[..., index], 0.0)
            shape, correlation = match_shape(coverage)
            plausible = PLAUSIBLE_AREA[0] <= area / OBJECT_SIZE ** 2 <= PLAUSIBLE_AREA[1]
            ys, xs = np.nonzero(mask)
            detections.append(Detection(
                class_name=shape, score=max(correlation, 0.0) if plausible else min(correlation, LOW_SCORE),
                box=(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)),
                mask=mask, color=colour))
    return detections
