"""A tiny random Janus-Pro for tests and CI: real transformers config classes, an offline tokenizer.

`build_tiny_janus` writes a folder in exactly the layout of a converted hub checkpoint
(`deepseek-community/Janus-Pro-1B`), so it loads through the same `JanusModel.load` path;
`build_tiny_deepseek_janus` writes one in DeepSeek's original layout, for the conversion's tests. The LLM is a
2-layer Llama of width 64, the VQ model a 32-channel VQGAN, the codebook keeps the real 16384 entries.
"""

from __future__ import annotations

from pathlib import Path

import torch

from unirl_cli.errors import UnirlError
from unirl_cli.fileio import atomic_path, write_json_atomic
from unirl_cli.models.janus.config import build_janus_processor, set_janus_generation_config
from unirl_cli.models.janus.convert import original_state_dict
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


def tiny_janus_config(tokenizer, image_size: int = 64, hidden_size: int = 64, num_layers: int = 2):
    """JanusConfig of the tiny model; the image token grid is (image_size / 16) squared."""
    from unirl_cli.models.janus.config import build_janus_config

    if image_size % 16:
        raise UnirlError(f"image_size {image_size} is not a multiple of the patch size 16; use e.g. 64 or 384")
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096)
    vision = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2.0, image_size=image_size,
                  patch_size=16, projection_dim=hidden_size, depth=2, num_image_tokens=(image_size // 16) ** 2)
    # GroupNorm(32, .) inside the VQGAN needs every channel count divisible by 32; 5 levels = x16 upsampling.
    vq = dict(embed_dim=8, num_embeddings=16384, latent_channels=32, base_channels=32, channel_multiplier=[1, 1, 1, 1, 1],
              num_res_blocks=1, projection_dim=hidden_size, image_token_embed_dim=hidden_size, num_hidden_layers=2)
    return build_janus_config(tokenizer, text, vision, vq)


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


def build_tiny_deepseek_janus(out_dir: str | Path, source_dir: str | Path | None = None,
                              untie_lm_head: bool = False) -> Path:
    """Write a tiny Janus in DeepSeek's original layout (config.json, pytorch_model.bin, tokenizer files).

    It is the transformers-format tiny model in `source_dir` (built by `build_tiny_janus` when None)
    run backwards through the key mapping; `untie_lm_head` stores a separate, perturbed lm_head as
    DeepSeek-LLM checkpoints do.
    """
    from safetensors.torch import load_file
    from transformers import AutoProcessor, JanusConfig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if source_dir is None:
        source_dir = build_tiny_janus(out_dir / "transformers_source")
    source_dir = Path(source_dir)
    config = JanusConfig.from_pretrained(source_dir)
    hf_state = load_file(source_dir / "model.safetensors")
    embed = hf_state["model.language_model.embed_tokens.weight"]
    hf_state["lm_head.weight"] = embed + 0.01 * torch.randn_like(embed) if untie_lm_head else embed.clone()
    with atomic_path(out_dir / "pytorch_model.bin") as tmp:
        torch.save(original_state_dict(hf_state), tmp)
    write_json_atomic(out_dir / "config.json", original_config(config))
    tokenizer = AutoProcessor.from_pretrained(source_dir).tokenizer
    tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    write_json_atomic(out_dir / "special_tokens_map.json", {
        "bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN,
        "additional_special_tokens": [IMAGE_TOKEN, BOI_TOKEN, EOI_TOKEN]})
    write_json_atomic(out_dir / "tokenizer_config.json",
                      {"model_max_length": 16384, "tokenizer_class": "LlamaTokenizerFast"})
    write_json_atomic(out_dir / "preprocessor_config.json", {
        "image_size": config.vision_config.image_size, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "min_size": 14, "do_normalize": True, "rescale_factor": 1 / 255, "image_processor_type": "VLMImageProcessor"})
    return out_dir


def original_config(config) -> dict:
    """DeepSeek's config.json for `config` (the fields the conversion reads; Janus-1.3B's structure)."""
    text, vision, vq = config.text_config, config.vision_config, config.vq_config
    return {
        "model_type": "multi_modality", "architectures": ["MultiModalityCausalLM"],
        "language_config": {"model_type": "llama", "vocab_size": text.vocab_size, "hidden_size": text.hidden_size,
                            "intermediate_size": text.intermediate_size, "num_hidden_layers": text.num_hidden_layers,
                            "num_attention_heads": text.num_attention_heads,
                            "num_key_value_heads": text.num_key_value_heads,
                            "max_position_embeddings": text.max_position_embeddings},
        "vision_config": {"cls": "CLIPVisionTower", "model_type": "vision",
                          "params": {"image_size": vision.image_size, "model_name": "siglip_tiny",
                                     "num_heads": vision.num_attention_heads, "select_layer": -1}},
        "aligner_config": {"cls": "MlpProjector", "model_type": "aligner",
                           "params": {"depth": vision.depth, "input_dim": vision.hidden_size,
                                      "n_embed": vision.projection_dim, "projector_type": "mlp_gelu"}},
        "gen_vision_config": {"cls": "VQ-16", "model_type": "gen_vision",
                              "params": {"image_token_size": vq.num_embeddings, "n_embed": vq.embed_dim}},
        "gen_aligner_config": {"cls": "MlpProjector", "model_type": "gen_aligner",
                               "params": {"depth": vq.num_hidden_layers, "input_dim": vq.embed_dim,
                                          "n_embed": vq.projection_dim, "projector_type": "mlp_gelu"}},
        "gen_head_config": {"cls": "vision_head", "model_type": "gen_head",
                            "params": {"image_token_embed": vq.projection_dim, "image_token_size": vq.num_embeddings,
                                       "n_embed": vq.image_token_embed_dim}},
    }
