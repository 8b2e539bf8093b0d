"""The `mini` model: a small Janus (real `JanusForConditionalGeneration` config) sized for the shapes world.

64 px images, an 8x-downsampling VQ tokenizer with 8 px patches (8 x 8 = 64 image tokens, one token per
quarter of a grid cell), a 4-layer Llama of width 128, a 2-layer SigLIP-style encoder with 8 px patches,
and a byte-level BPE tokenizer trained on the world's own sentences so every word is one token.
The trained weights ship in `unirl_cli/assets/mini/`; `unirl world pretrain` rebuilds them.
"""

from __future__ import annotations

from pathlib import Path

from unirl_cli.errors import UnirlError
from unirl_cli.world.spec import COLOR_NAMES, IMAGE_SIZE, SHAPES

PATCH_SIZE = 8
NUM_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
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


JANUS_MARKERS = ("<|User|>:", "<|Assistant|>:", "\n\n<|Assistant|>:")


def tokenizer_corpus(markers: tuple[str, ...] = JANUS_MARKERS) -> list[str]:
    """Every sentence the world's prompts, questions and answers are made of, plus the chat `markers`
    (Janus's by default)."""
    from unirl_cli.data.qa import QUESTIONS
    from unirl_cli.data.vocab import NUMBER_WORDS, RELATIONS, english_plural

    words = list(SHAPES) + [english_plural(s) for s in SHAPES] + list(COLOR_NAMES) + list(NUMBER_WORDS[:5])
    words += [w for r in RELATIONS for w in r.split()] + "a an the of and is are there photo The There".split()
    # (the order of the marker sentences is the one the shipped mini's tokenizer was trained with)
    sentences = list(QUESTIONS.values()) + [markers[0] + " ", markers[-1], *(m + " " for m in markers[1:-1])]
    sentences += [f"a photo of a {c} {s}" for c in COLOR_NAMES for s in SHAPES]
    sentences += [f"The {s} is {r} the {t}" for s in SHAPES for t in SHAPES for r in RELATIONS]
    sentences += [f"a photo of {n} {english_plural(s)}" for n in NUMBER_WORDS[2:5] for s in SHAPES]
    return (words + [" " + w for w in words] + sentences + list(markers) * 20) * 3 + ["0123456789 .,;:!?'\"()-+*/=%&#@"]


def build_mini_tokenizer():
    """A byte-level BPE tokenizer over the world's sentences, with Janus's special tokens at ids 0..5."""
    from unirl_cli.models.janus.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer(TOKENIZER_VOCAB, corpus=tokenizer_corpus(), model_max_length=1024)


def build_mini_processor(tokenizer):
    """JanusProcessor for 64 px images, 64 image tokens, pixels in [-1, 1] (Janus-Pro's normalisation)."""
    from transformers import JanusProcessor
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    from unirl_cli.models.janus.tiny import CHAT_TEMPLATE

    image_processor = JanusImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                                             image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    return JanusProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
                          use_default_system_prompt=False, num_image_tokens=NUM_IMAGE_TOKENS)


def mini_config(tokenizer):
    """The JanusConfig of `mini`: num_image_tokens == (image_size // patch_size) ** 2 == 64; VQ x8."""
    from transformers import JanusConfig, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig

    from unirl_cli.models.janus.tiny import IMAGE_TOKEN

    text_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN_SIZE, intermediate_size=3 * HIDDEN_SIZE,
        num_hidden_layers=NUM_LAYERS, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision_config = JanusVisionConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2.0, image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE, projection_dim=HIDDEN_SIZE, depth=2, num_image_tokens=NUM_IMAGE_TOKENS)
    # GroupNorm(32, .) needs channel counts divisible by 32; four levels give the x8 downsampling.
    vq_config = JanusVQVAEConfig(
        embed_dim=8, num_embeddings=CODEBOOK_SIZE, latent_channels=32, base_channels=32,
        channel_multiplier=[1, 1, 2, 2], num_res_blocks=1, projection_dim=HIDDEN_SIZE,
        image_token_embed_dim=HIDDEN_SIZE, num_hidden_layers=2)
    config = JanusConfig(text_config=text_config, vision_config=vision_config, vq_config=vq_config,
                         image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    if config.vq_config.num_patches ** 2 != NUM_IMAGE_TOKENS:
        raise UnirlError(f"mini config: VQ grid {config.vq_config.num_patches}^2 != {NUM_IMAGE_TOKENS} image tokens")
    return config


def build_untrained_mini(seed: int = 0):
    """(JanusForConditionalGeneration with random weights, processor) of the mini architecture."""
    import torch
    from transformers import JanusForConditionalGeneration

    from unirl_cli.models.janus.tiny import set_janus_generation_config

    tokenizer = build_mini_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JanusForConditionalGeneration(mini_config(tokenizer))
    set_janus_generation_config(model, tokenizer)
    model.generation_config.guidance_scale = GUIDANCE_SCALE
    return model, build_mini_processor(tokenizer)
