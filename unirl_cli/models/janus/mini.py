"""The `mini` model: a small Janus (real `JanusForConditionalGeneration` config) sized for the shapes world.

64 px images, an 8x-downsampling VQ tokenizer with 8 px patches (8 x 8 = 64 image tokens, one token per
quarter of a grid cell), a 4-layer Llama of width 128, a 2-layer SigLIP-style encoder with 8 px patches,
and a byte-level BPE tokenizer trained on the world's own sentences so every word is one token.
The trained weights ship in `unirl_cli/assets/mini/`; `unirl world pretrain` rebuilds them.
"""

from __future__ import annotations

from pathlib import Path

from unirl_cli.data.shapes.spec import IMAGE_SIZE, NUM_IMAGE_TOKENS, TOKEN_PATCH
from unirl_cli.errors import UnirlError

PATCH_SIZE = TOKEN_PATCH
CODEBOOK_SIZE = 512
HIDDEN_SIZE = 128
NUM_LAYERS = 4
TOKENIZER_VOCAB = 512
# The mini's own default guidance (saved in its generation config; `JanusModel.default_sampling` reads it).
# Measured on the shipped mini, 536 evaluation images each: detected objects per image 2.1 at CFG 2, 5.9 at
# CFG 5, while the prompts ask for 1.8 on average; at CFG 5 a 2M-parameter model scatters extra shapes, which
# GenEval's two-object and colour rules do not penalise. Janus-Pro's 5 is tuned for 7B models.
GUIDANCE_SCALE = 2.0


def packaged_mini_dir() -> Path:
    """The folder of the shipped `mini` weights inside the installed package (UnirlError if absent)."""
    from unirl_cli.models.registry import packaged_model_dir

    return packaged_model_dir("mini")


def build_mini_tokenizer():
    """A byte-level BPE tokenizer over the world's sentences, with Janus's special tokens at ids 0..5."""
    from unirl_cli.data.shapes.corpus import world_sentences
    from unirl_cli.models.janus.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer(TOKENIZER_VOCAB, corpus=world_sentences(), model_max_length=1024)


def build_mini_processor(tokenizer):
    """JanusProcessor for 64 px images, 64 image tokens, pixels in [-1, 1] (Janus-Pro's normalisation), no
    system prompt."""
    from unirl_cli.models.janus.config import build_janus_processor

    return build_janus_processor(tokenizer, IMAGE_SIZE, use_default_system_prompt=False,
                                 num_image_tokens=NUM_IMAGE_TOKENS)


def mini_config(tokenizer):
    """The JanusConfig of `mini`: num_image_tokens == (image_size // patch_size) ** 2 == 64; VQ x8."""
    from unirl_cli.models.janus.config import build_janus_config

    text = dict(vocab_size=len(tokenizer), hidden_size=HIDDEN_SIZE, intermediate_size=3 * HIDDEN_SIZE,
                num_hidden_layers=NUM_LAYERS, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512)
    vision = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2.0, image_size=IMAGE_SIZE,
                  patch_size=PATCH_SIZE, projection_dim=HIDDEN_SIZE, depth=2, num_image_tokens=NUM_IMAGE_TOKENS)
    # GroupNorm(32, .) needs channel counts divisible by 32; four levels give the x8 downsampling.
    vq = dict(embed_dim=8, num_embeddings=CODEBOOK_SIZE, latent_channels=32, base_channels=32,
              channel_multiplier=[1, 1, 2, 2], num_res_blocks=1, projection_dim=HIDDEN_SIZE,
              image_token_embed_dim=HIDDEN_SIZE, num_hidden_layers=2)
    return build_janus_config(tokenizer, text, vision, vq)


def build_untrained_mini(seed: int = 0):
    """(JanusForConditionalGeneration with random weights, processor) of the mini architecture."""
    import torch
    from transformers import JanusForConditionalGeneration

    from unirl_cli.models.janus.config import set_janus_generation_config

    tokenizer = build_mini_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JanusForConditionalGeneration(mini_config(tokenizer))
    set_janus_generation_config(model, tokenizer)
    model.generation_config.guidance_scale = GUIDANCE_SCALE
    return model, build_mini_processor(tokenizer)
