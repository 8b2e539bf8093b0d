"""MAGVIT-v2: the lookup-free quantiser's bit order, index <-> code round trip, grid sizes, pixels."""

from __future__ import annotations

import torch
from PIL import Image

from unirl_cli.models.showo.magvit import LookupFreeQuantizer, MagvitConfig, MagvitV2


def test_lfq_channel_zero_is_the_most_significant_bit():
    quantizer = LookupFreeQuantizer(codebook_bits=13)
    assert quantizer.embedding.shape == (8192, 13)
    assert quantizer.embedding[1].tolist() == [-1.0] * 12 + [1.0]
    assert quantizer.embedding[4096].tolist() == [1.0] + [-1.0] * 12
    assert quantizer.power_vals.tolist() == [2 ** b for b in range(12, -1, -1)]


def test_lfq_index_code_round_trip():
    quantizer = LookupFreeQuantizer(codebook_bits=13)
    indices = torch.randint(0, 8192, (3, 1024), generator=torch.Generator().manual_seed(0))
    codes = quantizer.codes_from_indices(indices)
    assert codes.shape == (3, 13, 32, 32)
    assert torch.equal(quantizer.indices_from_features(codes * 0.3), indices)
    # Row-major grid: token 1 is the first row, second column.
    assert torch.equal(codes[0, :, 0, 1], quantizer.embedding[indices[0, 1]])


def test_full_size_grid_is_16x16_at_256_and_32x32_at_512():
    with torch.device("meta"):  # shapes only, no compute
        magvit = MagvitV2(MagvitConfig())
    for side, tokens in ((256, 256), (512, 1024)):
        features = magvit.encoder(torch.empty(1, 3, side, side, device="meta"))
        assert features.shape == (1, 13, side // 16, side // 16)
        assert magvit.quantize.indices_from_features(features).shape == (1, tokens)
    codes = torch.empty(1, 13, 32, 32, device="meta")
    assert magvit.decoder(codes).shape == (1, 3, 512, 512)


def test_tiny_model_pixels_tokens_pixels(tiny_showo):
    images = [Image.new("RGB", (48, 40), (200, 30, 30)), Image.new("RGB", (32, 32), (10, 10, 240))]
    pixels = tiny_showo.pixels_from_images(images)
    assert pixels.shape == (2, 3, 32, 32) and pixels.min() >= -1 and pixels.max() <= 1
    tokens = tiny_showo.encode_images(images)
    assert tokens.shape == (2, tiny_showo.num_image_tokens)
    assert 0 <= int(tokens.min()) and int(tokens.max()) < tiny_showo.codebook_size
    decoded = tiny_showo.decode_images(tokens)
    assert [image.size for image in decoded] == [(32, 32), (32, 32)]
    assert torch.equal(tiny_showo.encode_images(images[:1]), tokens[:1])
