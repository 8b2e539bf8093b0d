"""A tiny random Janus-Pro for tests and CI: real transformers config classes, an offline tokenizer.

`build_tiny_janus` writes a folder in exactly the layout of a converted hub checkpoint
(`deepseek-community/Janus-Pro-1B`), so it loads through the same `JanusModel.load` path. The LLM is a
2-layer Llama of width 64, the VQ model a 32-channel VQGAN, the codebook keeps the real 16384 entries.
"""

from __future__ import annotations

from pathlib import Path

import torch

from unirl_cli.errors import UnirlError
from unirl_cli.models.janus.formats import (BOI_TOKEN, BOS_TOKEN, CHAT_FORMATS, EOI_TOKEN, EOS_TOKEN,  # noqa: F401
                                           IMAGE_TOKEN, PAD_TOKEN, SPECIAL_TOKENS, ChatRoles, chat_template)

# Janus-Pro's conversation format; the token constants above are re-exported for older imports.
CHAT_TEMPLATE = chat_template(CHAT_FORMATS["janus-pro"])

# Words the tiny tokenizer merges into single tokens, so answers such as "two red circles" read sensibly.
_EXTRA_WORDS = """
a an the of and or on in at to is are there how many what which where color colour colors shape image photo
picture yes no zero one two three four five six seven eight nine ten left right above below top bottom next
red orange yellow green blue purple pink brown black white gray grey circle circles square squares triangle
triangles object objects front behind near small large big answer question describe count number <|User|>:
<|Assistant|>: User Assistant
"""


def _training_corpus() -> list[str]:
    names_file = Path(__file__).resolve().parent.parent / "data" / "geneval" / "object_names.txt"
    object_names = names_file.read_text().split("\n") if names_file.is_file() else []
    words = [w for w in _EXTRA_WORDS.split() if w] + [n.strip() for n in object_names if n.strip()]
    plurals = [w + "s" for w in words if w.isalpha()]
    # Each word alone and after a space (byte-level BPE sees "Ġword" mid-sentence), twice so it merges fully.
    return (words + plurals + [" " + w for w in words + plurals]) * 2 + ["0123456789 .,;:!?'\"()-+*/=%&#@"]


def build_tiny_tokenizer(vocab_size: int = 1536, corpus=None, model_max_length: int = 16384):
    """A byte-level BPE tokenizer trained in memory (on `corpus`, default everyday English) with Janus's
    special tokens at ids 0..5; adds BOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(_training_corpus() if corpus is None else corpus, trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B", special_tokens=[(BOS_TOKEN, 0)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN, "boi_token": BOI_TOKEN, "eoi_token": EOI_TOKEN},
        padding_side="left", model_max_length=model_max_length)


def build_janus_processor(tokenizer, image_size: int, roles: ChatRoles = CHAT_FORMATS["janus-pro"],
                          use_default_system_prompt: bool = True):
    """A JanusProcessor with Janus-Pro's pixel normalisation (mean = std = 0.5, pixels in [-1, 1]), a chat
    template with `roles`, and DeepSeek's system prompt on understanding prompts (as the hub checkpoints)."""
    from transformers import JanusProcessor
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    image_processor = JanusImageProcessorPil(size={"height": image_size, "width": image_size},
                                             image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    return JanusProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template(roles),
                          use_default_system_prompt=use_default_system_prompt,
                          num_image_tokens=(image_size // 16) ** 2)


def tiny_janus_config(tokenizer, image_size: int = 64, hidden_size: int = 64, num_layers: int = 2):
    """JanusConfig of the tiny model; the image token grid is (image_size / 16) squared."""
    from transformers import JanusConfig, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig

    if image_size % 16:
        raise UnirlError(f"image_size {image_size} is not a multiple of the patch size 16; use e.g. 64 or 384")
    text_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision_config = JanusVisionConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2.0, image_size=image_size,
        patch_size=16, projection_dim=hidden_size, depth=2, num_image_tokens=(image_size // 16) ** 2)
    # GroupNorm(32, .) inside the VQGAN needs every channel count divisible by 32; 5 levels = x16 upsampling.
    vq_config = JanusVQVAEConfig(
        embed_dim=8, num_embeddings=16384, latent_channels=32, base_channels=32, channel_multiplier=[1, 1, 1, 1, 1],
        num_res_blocks=1, projection_dim=hidden_size, image_token_embed_dim=hidden_size, num_hidden_layers=2)
    return JanusConfig(text_config=text_config, vision_config=vision_config, vq_config=vq_config,
                       image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))


def set_janus_generation_config(model, tokenizer) -> None:
    """Make `generation_config` survive save/reload (the `_from_model_config` pitfall) and carry Janus's ids."""
    generation_config = model.generation_config
    generation_config._from_model_config = False
    generation_config.bos_token_id = tokenizer.bos_token_id
    generation_config.eos_token_id = tokenizer.eos_token_id
    generation_config.pad_token_id = tokenizer.pad_token_id
    generation_config.guidance_scale = 5.0
    generation_config.temperature = 1.0
    generation_config.generation_kwargs = {"boi_token_id": tokenizer.convert_tokens_to_ids(BOI_TOKEN)}


def build_tiny_janus(out_dir: str | Path, image_size: int = 64, seed: int = 0, hidden_size: int = 64,
                     num_layers: int = 2, head_scale: float = 40.0) -> Path:
    """Build, save and return the folder of a tiny random Janus-Pro (`image_size=384` gives 576 tokens).

    `head_scale` multiplies the image-generation head so its distributions are peaked (about -6 nats per
    token instead of the uniform -9.7), which makes sampling tests meaningful.
    """
    from transformers import JanusForConditionalGeneration

    out_dir = Path(out_dir)
    tokenizer = build_tiny_tokenizer()
    config = tiny_janus_config(tokenizer, image_size=image_size, hidden_size=hidden_size, num_layers=num_layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JanusForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.model.generation_head.vision_head.weight.mul_(head_scale)
    set_janus_generation_config(model, tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    build_janus_processor(tokenizer, image_size).save_pretrained(out_dir)
    return out_dir
