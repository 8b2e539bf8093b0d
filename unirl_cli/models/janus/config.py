"""The one place a `JanusConfig` (and its processor and generation config) is built: the tiny test model, the shapes world's `mini` and the conversion of
DeepSeek's checkpoints all describe their sizes as three dicts and get the token ids and checks from here."""

from __future__ import annotations

from unirl_cli.errors import UnirlError
from unirl_cli.models.janus.formats import BOI_TOKEN, CHAT_FORMATS, IMAGE_TOKEN, ChatRoles, chat_template


def build_janus_config(tokenizer, text: dict, vision: dict, vq: dict, tie_word_embeddings: bool | None = None):
    """A transformers `JanusConfig` from the fields of its Llama (`text`), SigLIP (`vision`) and VQ (`vq`)
    configs; BOS, EOS, pad and image token ids come from `tokenizer`. `tie_word_embeddings` is passed on only
    when given (transformers' defaults otherwise). UnirlError when the understanding and generation grids
    disagree on the number of image tokens."""
    from transformers import JanusConfig, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig

    tie = {} if tie_word_embeddings is None else {"tie_word_embeddings": tie_word_embeddings}
    text_config = LlamaConfig(**text, **tie, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    vision_config = JanusVisionConfig(**vision)
    vq_config = JanusVQVAEConfig(**vq)
    config = JanusConfig(text_config=text_config, vision_config=vision_config, vq_config=vq_config,
                         image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), **tie)
    tokens = vision_config.num_image_tokens
    if vq_config.num_patches ** 2 != tokens:
        raise UnirlError(f"Janus config: the VQ grid {vq_config.num_patches}^2 differs from the {tokens} image tokens "
                         f"of the understanding encoder; image_size, patch_size and the VQ levels must agree")
    return config


def build_janus_processor(tokenizer, image_size: int, roles: ChatRoles = CHAT_FORMATS["janus-pro"],
                          use_default_system_prompt: bool = True, num_image_tokens: int | None = None):
    """A JanusProcessor with Janus-Pro's pixel normalisation (mean = std = 0.5, pixels in [-1, 1]), a chat
    template with `roles`, and DeepSeek's system prompt on understanding prompts (as the hub checkpoints);
    `num_image_tokens` defaults to Janus's 16 px patches, (image_size / 16) squared."""
    from transformers import JanusProcessor
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    image_processor = JanusImageProcessorPil(size={"height": image_size, "width": image_size},
                                             image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    return JanusProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template(roles),
                          use_default_system_prompt=use_default_system_prompt,
                          num_image_tokens=num_image_tokens or (image_size // 16) ** 2)


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
