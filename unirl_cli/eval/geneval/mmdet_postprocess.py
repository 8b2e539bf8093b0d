"""mmdetection 2.x's Mask2Former test path, re-implemented on plain tensors: preprocessing and instance results.

GenEval ran mmdet's `mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco`. Its test pipeline resizes keeping the
aspect ratio into 1333x800, normalises with ImageNet statistics and pads to a multiple of 32; the head's mask
logits are upsampled (bilinear) to the padded input, cropped to the resized image, upsampled to the original
size, and `MaskFormerFusionHead.instance_postprocess` turns them into scored, boxed instances. transformers'
`post_process_instance_segmentation` differs (384x384 masks, nearest upsampling, no boxes), so it is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# mmdet `img_norm_cfg` of the COCO configs (RGB order, 0-255 scale).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
SHORT_EDGE, LONG_EDGE, SIZE_DIVISOR = 800, 1333, 32
PAD_VALUE = 128.0  # `pad_cfg = dict(img=(128, 128, 128), ...)` of the instance config
MAX_PER_IMAGE = 100


@dataclass(frozen=True)
class InputGeometry:
    """Sizes (height, width) of one image through the test pipeline."""

    original: tuple[int, int]
    resized: tuple[int, int]
    padded: tuple[int, int]


def input_geometry(height: int, width: int, short_edge: int = SHORT_EDGE, long_edge: int = LONG_EDGE) -> InputGeometry:
    """mmcv's keep-ratio rescale into (long_edge, short_edge) (GenEval: 1333, 800) and the pad to a multiple of 32."""
    scale = min(long_edge / max(height, width), short_edge / min(height, width))
    resized = (int(height * scale + 0.5), int(width * scale + 0.5))
    padded = tuple(-(-side // SIZE_DIVISOR) * SIZE_DIVISOR for side in resized)
    return InputGeometry((height, width), resized, padded)


def preprocess(images: list[Image.Image], short_edge: int = SHORT_EDGE,
               long_edge: int = LONG_EDGE) -> tuple[torch.Tensor, InputGeometry]:
    """Pixel values (batch, 3, H_pad, W_pad) of same-sized RGB images, and their shared geometry.

    The resize is bilinear with half-pixel centres and no antialiasing, then rounded to 8-bit, as cv2's
    INTER_LINEAR in mmcv does. The pad fills raw value 128 *before* normalising: mmdet 2.x's instance config
    (`mask2former_r50_lsj_8x2_50e_coco.py`, which the Swin-S config inherits) runs `Pad(size_divisor=32,
    pad_val=pad_cfg)` ahead of `Normalize`, unlike the panoptic config. Square inputs need no padding.
    """
    sizes = {image.size for image in images}
    if len(sizes) != 1:
        raise ValueError(f"preprocess takes images of one size, got {sorted(sizes)}")
    width, height = images[0].size
    geometry = input_geometry(height, width, short_edge, long_edge)
    pixels = torch.from_numpy(np.stack([np.asarray(image.convert("RGB")) for image in images]))
    pixels = pixels.permute(0, 3, 1, 2).float()  # (batch, 3, height, width), 0-255
    if geometry.resized != geometry.original:
        pixels = F.interpolate(pixels, size=geometry.resized, mode="bilinear", align_corners=False)
        pixels = pixels.round().clamp(0, 255)
    pad_bottom = geometry.padded[0] - geometry.resized[0]
    pad_right = geometry.padded[1] - geometry.resized[1]
    pixels = F.pad(pixels, (0, pad_right, 0, pad_bottom), value=PAD_VALUE)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std, geometry


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Boxes (n, 4) as [x_min, y_min, x_max + 1, y_max + 1] of bool masks (n, H, W); zeros for empty masks."""
    num_masks, height, width = masks.shape
    columns = masks.any(dim=1)  # (n, W): which x hold a mask pixel
    rows = masks.any(dim=2)  # (n, H)
    xs = torch.arange(width, device=masks.device).expand(num_masks, width)
    ys = torch.arange(height, device=masks.device).expand(num_masks, height)
    boxes = torch.stack([torch.where(columns, xs, width).min(dim=1).values,
                         torch.where(rows, ys, height).min(dim=1).values,
                         torch.where(columns, xs, -1).max(dim=1).values + 1,
                         torch.where(rows, ys, -1).max(dim=1).values + 1], dim=1).float()
    boxes[~columns.any(dim=1)] = 0.0
    return boxes


@dataclass
class InstanceResults:
    """mmdet's instance results for one image: class index, box, score and mask of the top (query, class) pairs."""

    labels: torch.Tensor  # (n,) int64 class index
    boxes: torch.Tensor  # (n, 4) float32, original pixels
    scores: torch.Tensor  # (n,) float32
    masks: torch.Tensor  # (n, H, W) bool, original size


def upsample_mask_logits(mask_logits: torch.Tensor, geometry: InputGeometry) -> torch.Tensor:
    """Mask logits (q, h/4, w/4) -> (q, H, W) at the original size, through the padded input as mmdet does."""
    padded = F.interpolate(mask_logits[None].float(), size=geometry.padded, mode="bilinear", align_corners=False)
    cropped = padded[:, :, : geometry.resized[0], : geometry.resized[1]]
    if geometry.resized != geometry.original:
        cropped = F.interpolate(cropped, size=geometry.original, mode="bilinear", align_corners=False)
    return cropped[0]


def instance_postprocess(class_logits: torch.Tensor, mask_logits: torch.Tensor, geometry: InputGeometry,
                         max_per_image: int = MAX_PER_IMAGE, min_score: float = 0.0) -> InstanceResults:
    """The top `max_per_image` (query, class) pairs of one image, scored as mmdet does.

    `class_logits` is (queries, classes + 1) with the no-object column last; `mask_logits` is (queries, h, w)
    at the head's resolution. One query may appear under several classes. score = class probability x the
    mean mask probability over the pixels whose logit is > 0 (denominator + 1e-6, so an empty mask scores 0).
    Since the mask factor is below 1, a pair whose class probability is <= `min_score` cannot score above it;
    such pairs are left out (default 0: keep all), which saves upsampling their masks.
    """
    num_queries, num_classes = class_logits.shape[0], class_logits.shape[1] - 1
    class_probs = F.softmax(class_logits.float(), dim=-1)[:, :-1]  # (queries, classes)
    top_probs, top_pairs = class_probs.flatten().topk(min(max_per_image, num_queries * num_classes))
    can_pass = top_probs > min_score
    top_probs, top_pairs = top_probs[can_pass], top_pairs[can_pass]
    if len(top_pairs) == 0:
        height, width = geometry.original
        return InstanceResults(top_pairs, torch.zeros((0, 4), device=top_probs.device), top_probs,
                               torch.zeros((0, height, width), dtype=torch.bool, device=top_probs.device))
    labels = top_pairs % num_classes
    queries = top_pairs // num_classes
    # Only the selected queries are upsampled; duplicates share one mask.
    unique_queries, pair_to_unique = torch.unique(queries, return_inverse=True)
    logits = upsample_mask_logits(mask_logits[unique_queries], geometry)  # (unique, H, W)
    binary = logits > 0
    mask_scores = (logits.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return InstanceResults(labels=labels, boxes=mask_boxes(binary)[pair_to_unique],
                           scores=top_probs * mask_scores[pair_to_unique], masks=binary[pair_to_unique])
