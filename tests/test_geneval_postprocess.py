"""mmdet's Mask2Former test path re-implemented: geometry, preprocessing and instance post-processing by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from unirl_cli.eval.geneval.colors import clip_pixels, object_crop
from unirl_cli.eval.geneval.detections import Detection
from unirl_cli.eval.geneval.mmdet_postprocess import (IMAGENET_MEAN, IMAGENET_STD, InputGeometry, input_geometry,
                                                      instance_postprocess, mask_boxes, preprocess,
                                                      upsample_mask_logits)


@pytest.mark.parametrize("height, width, resized, padded", [
    (384, 384, (800, 800), (800, 800)),
    (1024, 1024, (800, 800), (800, 800)),
    (480, 640, (800, 1067), (800, 1088)),
    (100, 2000, (67, 1333), (96, 1344)),
])
def test_input_geometry_follows_mmcv_rescale(height, width, resized, padded):
    geometry = input_geometry(height, width)
    assert geometry.resized == resized and geometry.padded == padded and geometry.original == (height, width)


def test_preprocess_normalises_and_pads_with_raw_128():
    image = Image.new("RGB", (20, 10), (200, 100, 50))  # long side bound: scale 66.65
    pixels, geometry = preprocess([image, image.copy()])
    assert geometry.resized == (667, 1333) and geometry.padded == (672, 1344)
    assert pixels.shape == (2, 3, 672, 1344)
    inside = pixels[0, :, 400, 600]
    expected = [(v - m) / s for v, m, s in zip((200, 100, 50), IMAGENET_MEAN, IMAGENET_STD)]
    assert inside.tolist() == pytest.approx(expected, abs=1e-5)
    padding = pixels[1, :, 670, 600]
    assert padding.tolist() == pytest.approx([(128 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)], abs=1e-5)
    with pytest.raises(ValueError):
        preprocess([image, Image.new("RGB", (10, 10))])


def test_mask_boxes_add_one_to_max_and_zero_for_empty():
    masks = torch.zeros((2, 8, 10), dtype=torch.bool)
    masks[0, 2:5, 3:7] = True
    assert mask_boxes(masks).tolist() == [[3.0, 2.0, 7.0, 5.0], [0.0, 0.0, 0.0, 0.0]]


def test_instance_postprocess_by_hand():
    # 2 queries x 3 classes (+ no-object); softmax of log-probabilities gives the probabilities back.
    class_logits = torch.tensor([[0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.5, 0.3]]).log()
    mask_logits = torch.full((2, 4, 4), -1.0)
    mask_logits[0, 0, 0] = mask_logits[0, 0, 1] = mask_logits[0, 1, 1] = 2.0  # query 1's mask stays empty
    same_size = InputGeometry((4, 4), (4, 4), (4, 4))
    result = instance_postprocess(class_logits, mask_logits, same_size, max_per_image=3)
    pairs = sorted(zip(result.labels.tolist(), result.scores.tolist(), result.boxes.tolist()), key=lambda p: -p[1])
    mask_score = 1 / (1 + math.exp(-2.0)) * 3 / (3 + 1e-6)
    # Query 0 appears under two classes with one mask; (query 1, class 2) has an empty mask and scores 0.
    assert [p[0] for p in pairs] == [0, 1, 2]
    assert pairs[0][1] == pytest.approx(0.6 * mask_score, rel=1e-6)
    assert pairs[1][1] == pytest.approx(0.2 * mask_score, rel=1e-6)
    assert pairs[2][1] == 0.0 and pairs[2][2] == [0.0, 0.0, 0.0, 0.0]
    assert pairs[0][2] == [0.0, 0.0, 2.0, 2.0]
    assert result.masks.shape == (3, 4, 4) and int(result.masks.sum()) == 6
    # Pairs whose class probability cannot beat `min_score` are dropped: only (query 0, class 0) remains.
    pruned = instance_postprocess(class_logits, mask_logits, same_size, max_per_image=3, min_score=0.5)
    assert pruned.labels.tolist() == [0] and pruned.scores.tolist() == pytest.approx([0.6 * mask_score])
    empty = instance_postprocess(class_logits, mask_logits, same_size, min_score=0.7)
    assert len(empty.labels) == 0 and empty.masks.shape == (0, 4, 4)


def test_mask_logits_go_through_the_padded_input_then_crop():
    # Head output 2x2 covers the 8x8 padded input; the image is its top-left 4x4 quarter.
    logits = torch.tensor([[[1.0, -1.0], [-1.0, -1.0]]])
    upsampled = upsample_mask_logits(logits, InputGeometry((4, 4), (4, 4), (8, 8)))
    # Bilinear weights of pixel 3 (centre at input coordinate 0.375): 0.625 on cell 0, 0.375 on cell 1.
    assert upsampled[0, 0, 0].item() == pytest.approx(1.0)
    assert upsampled[0, 0, 3].item() == pytest.approx(0.625 - 0.375)
    assert upsampled[0, 3, 3].item() == pytest.approx(0.625 * 0.625 - (1 - 0.625 * 0.625))
    binary = upsampled > 0
    assert mask_boxes(binary).tolist() == [[0.0, 0.0, 4.0, 4.0]] and int(binary.sum()) == 15


def test_colour_crop_paints_outside_the_mask_grey_and_crops_to_the_box():
    image = Image.new("RGB", (6, 4), (255, 0, 0))
    mask = np.zeros((4, 6), dtype=bool)
    mask[1:3, 2:4] = True
    mask[1, 2] = False
    crop = object_crop(image, Detection("apple", (2.0, 1.0, 4.0, 3.0), 0.9, mask))
    assert crop.size == (2, 2)
    assert crop.getpixel((0, 0)) == (153, 153, 153) and crop.getpixel((1, 1)) == (255, 0, 0)
    pixels = clip_pixels(Image.new("RGB", (40, 20), (0, 0, 0)), 16)
    assert pixels.shape == (3, 16, 16)


def test_detector_class_order_check():
    from unirl_cli.errors import UnirlError
    from unirl_cli.eval.geneval.detector import check_class_order
    from unirl_cli.eval.geneval.prompts import object_names

    names = object_names()
    coco = {i: {"computer mouse": "mouse", "tv remote": "remote", "computer keyboard": "keyboard"}.get(n, n)
            for i, n in enumerate(names)}
    check_class_order(coco, names)
    check_class_order({i: f"LABEL_{i}" for i in range(80)}, names)
    with pytest.raises(UnirlError, match="not in the expected order"):
        check_class_order({i: names[(i + 1) % 80] for i in range(80)}, names)


def test_square_inputs_match_transformers_processor_within_one_grey_level():
    # For square images mmdet's resize and transformers' agree (both 800x800, no padding); only 8-bit
    # rounding differs, so the two independent implementations must agree to one grey level.
    from transformers import Mask2FormerImageProcessorPil

    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    image = coarse.resize((384, 384), Image.BICUBIC)
    theirs = Mask2FormerImageProcessorPil()(images=image, return_tensors="pt")["pixel_values"]
    ours, _ = preprocess([image])
    assert theirs.shape == ours.shape == (1, 3, 800, 800)
    one_grey_level = 1.0 / min(IMAGENET_STD) + 1e-4
    assert (theirs - ours).abs().max().item() <= one_grey_level


@pytest.mark.parametrize("size", [(300, 200), (57, 131), (40, 40)])
def test_clip_crops_match_transformers_clip_processor(size):
    # open_clip's eval transform (shorter side to 224, bicubic, centre crop) and transformers' PIL path agree.
    from transformers import CLIPImageProcessorPil

    rng = np.random.default_rng(sum(size))
    crop = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    theirs = CLIPImageProcessorPil()(images=crop, return_tensors="pt")["pixel_values"][0]
    assert torch.allclose(clip_pixels(crop, 224), theirs, atol=1e-5)
