"""The `mini-showo` model: a small Show-o (the project's own Show-o classes, `showlab/show-o`'s file layout)
sized for the shapes world.

64 px images; a MAGVIT-v2 tokenizer with a lookup-free quantiser of 8 bits (256 codes) and 8 px patches
(8 x 8 = 64 image tokens, one per quarter of a grid cell, as the Janus mini); a 4-layer Phi of width 128 with
Show-o's joint vocabulary (text, `[PAD]` and the nine task tokens, image codes, `[MASK]`) and its omni-attention;
a byte-level BPE tokenizer shaped like Phi-1.5's, trained on the world's own sentences so every word is one
token. Understanding reads the image codes themselves through Show-o's MMU prompt, so there is no separate
vision encoder. The trained weights ship in `unirl_cli/assets/mini-showo/`; `unirl world pretrain --family
showo` rebuilds them.
"""

from __future__ import annotations

import torch

from unirl_cli.data.shapes.corpus import world_sentences
from unirl_cli.data.shapes.spec import IMAGE_SIZE, TOKEN_PATCH

GRID_SIDE = IMAGE_SIZE // TOKEN_PATCH
CODEBOOK_BITS = 8  # 256 codes for the world's 241 patch kinds
HIDDEN_SIZE = 128
NUM_LAYERS = 4
NUM_HEADS = 4
TEXT_VOCAB = 512
MAX_TEXT_LENGTH = 32  # the longest caption of the world is 24 tokens
MAGVIT_CHANNELS = 32
SHOWO_MARKERS = ("USER:", "ASSISTANT:", " ASSISTANT:")
# Sampling defaults saved with the model (config.json `unirl_sampling`); Show-o's guidance is (1 + w) c - w u,
# so w = 1 is the Janus mini's CFG 2. Measured choices are in docs/shapes-world.md ('mini-showo').
SAMPLING = {"guidance_scale": 1.0, "num_steps": 8, "temperature": 1.0}


def magvit_config():
    """mini-showo's MAGVIT-v2 sizes: four levels (x8), widths 32, 32, 64, 64 (the Janus mini's VQ widths)."""
    from unirl_cli.models.showo.magvit import MagvitConfig

    levels = [1, 1, 2, 2]
    return MagvitConfig(base_channels=MAGVIT_CHANNELS, encoder_channel_mult=levels, encoder_num_res_blocks=[1] * 4,
                        decoder_channel_mult=levels, decoder_num_res_blocks=[1] * 4, codebook_bits=CODEBOOK_BITS,
                        norm_groups=8)


def build_untrained_mini_showo(seed: int = 0):
    """A `ShowoModel` of the mini-showo architecture with random weights (the same `seed`, the same weights)."""
    from unirl_cli.models.showo.checkpoint import ShowoConfig
    from unirl_cli.models.showo.magvit import MagvitV2
    from unirl_cli.models.showo.model import ShowoModel
    from unirl_cli.models.showo.prompting import add_showo_tokens
    from unirl_cli.models.showo.tiny import build_text_tokenizer, random_phi, tiny_phi_config

    tokenizer = build_text_tokenizer(TEXT_VOCAB, corpus=world_sentences(SHOWO_MARKERS))
    llm_vocab_size = len(tokenizer)
    add_showo_tokens(tokenizer)
    codebook_size = 2 ** CODEBOOK_BITS
    config = ShowoConfig(vocab_size=len(tokenizer) + codebook_size + 1, llm_vocab_size=llm_vocab_size,
                         llm_model_path="phi", codebook_size=codebook_size, num_vq_tokens=GRID_SIDE ** 2,
                         max_text_length=MAX_TEXT_LENGTH, sampling=dict(SAMPLING))
    phi_config = tiny_phi_config(HIDDEN_SIZE, NUM_LAYERS, NUM_HEADS, vocab_rows=llm_vocab_size)
    phi_config["initializer_range"] = 0.02  # transformers' Phi default (the tiny test models use 0.1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf_model = random_phi(phi_config, config.vocab_size)
        magvit = MagvitV2(magvit_config())
    return ShowoModel(hf_model, magvit, tokenizer, config, phi_config)
