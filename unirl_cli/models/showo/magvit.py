"""MAGVIT-v2: the convolutional image tokenizer of Show-o, parameter-compatible with `showlab/magvitv2`.

An encoder maps images in [-1, 1] to 13 channels at 1/16 resolution, a lookup-free quantiser (LFQ) turns
each channel's sign into one bit (13 bits -> 8192 codes, channel 0 the most significant), and a decoder
maps the ±1 code vectors back to pixels. Module and parameter names follow the official checkpoint
(`encoder.down.{level}.block.{i}.conv1.weight`, `quantize.embedding`, ...), so it loads strictly.
Channel widths are configurable for tiny test models; the defaults are the official ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MagvitConfig:
    """Sizes of a MAGVIT-v2 tokenizer. The official `config.json` stores none of these (all defaults)."""

    base_channels: int = 128
    encoder_channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2, 4, 4])
    encoder_num_res_blocks: list[int] = field(default_factory=lambda: [4, 3, 4, 3, 4])
    decoder_channel_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    decoder_num_res_blocks: list[int] = field(default_factory=lambda: [4, 4, 3, 4, 3])
    codebook_bits: int = 13
    norm_groups: int = 32

    @classmethod
    def from_dict(cls, data: dict) -> "MagvitConfig":
        """Read the fields this class knows from a `config.json` dict; other keys (`_class_name`, ...) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def downsample_factor(self) -> int:
        """Pixels per token side: 2 ** (number of encoder levels - 1) (16 for the official model)."""
        return 2 ** (len(self.encoder_channel_mult) - 1)

    @property
    def codebook_size(self) -> int:
        return 2 ** self.codebook_bits


def swish(hidden: torch.Tensor) -> torch.Tensor:
    return hidden * torch.sigmoid(hidden)


class ResnetBlock(nn.Module):
    """GroupNorm -> swish -> conv3x3, twice, with a 1x1 `nin_shortcut` when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_groups, in_channels, eps=1e-6)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(norm_groups, out_channels, eps=1e-6)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        residual = hidden if self.nin_shortcut is None else self.nin_shortcut(hidden)
        hidden = self.conv1(swish(self.norm1(hidden)))
        hidden = self.conv2(swish(self.norm2(hidden)))
        return residual + hidden


class AttnBlock(nn.Module):
    """Single-head self-attention over the spatial positions, with 1x1-conv projections and a residual."""

    def __init__(self, channels: int, norm_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = hidden.shape
        normed = self.norm(hidden)
        # (batch, 1 head, height*width, channels)
        query, key, value = (proj(normed).flatten(2).transpose(1, 2).unsqueeze(1) for proj in (self.q, self.k, self.v))
        attended = F.scaled_dot_product_attention(query, key, value)
        attended = attended.squeeze(1).transpose(1, 2).reshape(batch, channels, height, width)
        return hidden + self.proj_out(attended)


class Downsample(nn.Module):
    """Stride-2 conv3x3 after padding only right and bottom (the taming-transformers convention)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(hidden, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2 then conv3x3."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(hidden, scale_factor=2.0, mode="nearest"))


def _mid_block(channels: int, norm_groups: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, norm_groups)
    mid.attn_1 = AttnBlock(channels, norm_groups)
    mid.block_2 = ResnetBlock(channels, channels, norm_groups)
    return mid


def _run_mid(mid: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(hidden)))


class Encoder(nn.Module):
    """Pixels (batch, 3, H, W) in [-1, 1] -> pre-quantisation features (batch, codebook_bits, H/f, W/f)."""

    def __init__(self, config: MagvitConfig):
        super().__init__()
        groups, base = config.norm_groups, config.base_channels
        self.conv_in = nn.Conv2d(3, base, 3, padding=1)
        self.down = nn.ModuleList()
        channels = base
        num_levels = len(config.encoder_channel_mult)
        for level, (mult, num_blocks) in enumerate(zip(config.encoder_channel_mult, config.encoder_num_res_blocks)):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            for _ in range(num_blocks):
                stage.block.append(ResnetBlock(channels, base * mult, groups))
                channels = base * mult
            if level != num_levels - 1:
                stage.downsample = Downsample(channels)
            self.down.append(stage)
        self.mid = _mid_block(channels, groups)
        self.norm_out = nn.GroupNorm(groups, channels, eps=1e-6)
        self.conv_out = nn.Conv2d(channels, config.codebook_bits, 3, padding=1)
        self.quant_conv = nn.Conv2d(config.codebook_bits, config.codebook_bits, 1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.conv_in(pixels)
        for stage in self.down:
            for block in stage.block:
                hidden = block(hidden)
            if hasattr(stage, "downsample"):
                hidden = stage.downsample(hidden)
        hidden = _run_mid(self.mid, hidden)
        hidden = self.conv_out(swish(self.norm_out(hidden)))
        return self.quant_conv(hidden)


class Decoder(nn.Module):
    """±1 code vectors (batch, codebook_bits, h, w) -> pixels (batch, 3, h*f, w*f), roughly in [-1, 1]."""

    def __init__(self, config: MagvitConfig):
        super().__init__()
        groups, base = config.norm_groups, config.base_channels
        mults, blocks_per_level = config.decoder_channel_mult, config.decoder_num_res_blocks
        channels = base * mults[-1]
        self.post_quant_conv = nn.Conv2d(config.codebook_bits, config.codebook_bits, 1)
        self.conv_in = nn.Conv2d(config.codebook_bits, channels, 3, padding=1)
        self.mid = _mid_block(channels, groups)
        # Built from the deepest level up, but stored by level index (up.0 is the full-resolution stage).
        stages: list[nn.Module] = []
        for level in reversed(range(len(mults))):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            for _ in range(blocks_per_level[level]):
                stage.block.append(ResnetBlock(channels, base * mults[level], groups))
                channels = base * mults[level]
            if level != 0:
                stage.upsample = Upsample(channels)
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)
        self.norm_out = nn.GroupNorm(groups, channels, eps=1e-6)
        self.conv_out = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        hidden = self.conv_in(self.post_quant_conv(codes))
        hidden = _run_mid(self.mid, hidden)
        for stage in reversed(self.up):
            for block in stage.block:
                hidden = block(hidden)
            if hasattr(stage, "upsample"):
                hidden = stage.upsample(hidden)
        return self.conv_out(swish(self.norm_out(hidden)))


class LookupFreeQuantizer(nn.Module):
    """Sign quantiser: each channel becomes a bit; index = sum_c [z_c > 0] * 2**(bits-1-c).

    `embedding` (codebook_size, bits) holds the ±1 vector of every index and `power_vals` the bit
    weights; both are persistent buffers because the official checkpoint stores them.
    """

    def __init__(self, codebook_bits: int):
        super().__init__()
        power_vals = 2 ** torch.arange(codebook_bits - 1, -1, -1)
        bits = (torch.arange(2 ** codebook_bits).unsqueeze(1) // power_vals) % 2
        self.register_buffer("embedding", bits.float() * 2 - 1)
        self.register_buffer("power_vals", power_vals)

    def indices_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder features (batch, bits, h, w) -> row-major code indices (batch, h*w)."""
        positive = (features > 0).long()
        indices = (positive * self.power_vals.view(1, -1, 1, 1)).sum(dim=1)
        return indices.flatten(1)

    def codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (batch, h*w) on a square grid -> ±1 code maps (batch, bits, h, w)."""
        batch, num_tokens = indices.shape
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ValueError(f"{num_tokens} image tokens do not form a square grid")
        codes = self.embedding[indices]  # (batch, h*w, bits)
        return codes.view(batch, side, side, -1).permute(0, 3, 1, 2).contiguous()


class MagvitV2(nn.Module):
    """The MAGVIT-v2 image tokenizer: `encode` pixels to indices, `decode` indices to pixels."""

    def __init__(self, config: MagvitConfig | None = None):
        super().__init__()
        self.config = config or MagvitConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.quantize = LookupFreeQuantizer(self.config.codebook_bits)

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images (batch, 3, H, W) in [-1, 1] -> code indices (batch, (H/f)*(W/f)), row-major."""
        return self.quantize.indices_from_features(self.encoder(pixels))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (batch, N) with N a square -> images (batch, 3, H, W), roughly in [-1, 1]."""
        codes = self.quantize.codes_from_indices(indices).to(self.decoder.conv_in.weight.dtype)
        return self.decoder(codes)
