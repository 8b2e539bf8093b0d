"""A tiny random Show-o in the official file layout, for tests, benchmarks and `unirl models create-tiny showo`.

The folder is what a real download looks like after `unirl download showo-512`, gathered in one place:
`config.json` (diffusers style, `_class_name: "Showo"`), `model.safetensors` (`showo.` keys),
`magvit/` (MAGVIT-v2 weights + sizes) and `phi/` (a Phi-style config and a byte-level BPE tokenizer
trained here, offline, whose `<|endoftext|>` is BOS, EOS and UNK and which has no pad token, like Phi-1.5's).
It loads through `ShowoModel.load`, the same code path as real checkpoints.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from unirl_cli.models.showo.checkpoint import ShowoConfig, save_phi_folder
from unirl_cli.models.showo.magvit import MagvitConfig, MagvitV2

# Training text of the tiny BPE tokenizer: words of GenEval-style prompts and of the understanding template.
_CORPUS = [
    "a photo of a", "an image of", "USER: \n", " ASSISTANT:", "yes", "no", "what colour is the", "how many",
    "is there a", "left of", "right of", "above", "below", "one two three four", "red green blue yellow",
    "purple orange pink brown black white", "in this image?", "the object", "and", "person bicycle car",
    "motorcycle airplane bus train truck boat", "traffic light fire hydrant stop sign", "bench bird cat dog",
    "horse sheep cow elephant bear zebra giraffe", "backpack umbrella handbag tie suitcase", "apple banana",
    "sandwich orange broccoli carrot pizza donut cake", "chair couch bed toilet tv laptop mouse", "clock vase",
]


def build_text_tokenizer(vocab_size: int = 400, total_size: int | None = None, corpus: list[str] | None = None):
    """A small byte-level BPE tokenizer shaped like Phi-1.5's: `<|endoftext|>` last, as BOS/EOS/UNK, no pad.

    `total_size` pads it with unused added tokens to that many entries (Phi-1.5: 50295), so a model built on it
    has the real vocabulary layout (the ids of Show-o's special and image tokens, the table sizes). `corpus`
    replaces the GenEval-style training sentences (the shapes world's mini trains on its own).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import CodeGenTokenizer

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(corpus or _CORPUS, trainer)
    tokenizer = CodeGenTokenizer(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                 unk_token="<|endoftext|>")
    # Phi-1.5 also carries added whitespace tokens after <|endoftext|>; keep that shape.
    tokenizer.add_tokens(["  ", "    "])
    if total_size is not None and total_size > len(tokenizer):
        tokenizer.add_tokens([f"<|unused{index}|>" for index in range(total_size - len(tokenizer))])
    return tokenizer


def tiny_phi_config(hidden_size: int, num_layers: int, num_heads: int, vocab_rows: int) -> dict:
    """A Phi config dict in the layout of `microsoft/phi-1_5/config.json`, scaled down."""
    return {
        "architectures": ["PhiForCausalLM"], "model_type": "phi", "hidden_size": hidden_size,
        "intermediate_size": 4 * hidden_size, "num_hidden_layers": num_layers, "num_attention_heads": num_heads,
        "num_key_value_heads": num_heads, "hidden_act": "gelu_new", "partial_rotary_factor": 0.5,
        "rope_theta": 10000.0, "layer_norm_eps": 1e-5, "max_position_embeddings": 2048, "vocab_size": vocab_rows,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attention_dropout": 0.0, "qk_layernorm": False,
        "tie_word_embeddings": False, "initializer_range": 0.1, "bos_token_id": None, "eos_token_id": None,
        "torch_dtype": "float32",
    }


def tiny_magvit_config(image_size: int, grid_side: int, codebook_bits: int, base_channels: int) -> MagvitConfig:
    """A MAGVIT-v2 config whose encoder maps `image_size` pixels to a `grid_side` token grid."""
    factor = image_size // grid_side
    levels = int(math.log2(factor)) + 1
    if 2 ** (levels - 1) != factor or factor * grid_side != image_size:
        raise ValueError(f"image_size / grid_side must be a power of two, got {image_size} / {grid_side}")
    mults = [1] + [2] * (levels - 1)
    return MagvitConfig(base_channels=base_channels, encoder_channel_mult=mults, encoder_num_res_blocks=[1] * levels,
                        decoder_channel_mult=mults, decoder_num_res_blocks=[1] * levels,
                        codebook_bits=codebook_bits, norm_groups=8)


def build_tiny_showo(out_dir: str | Path, image_size: int = 32, grid_side: int = 4, codebook_bits: int = 6,
                     hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4, magvit_channels: int = 16,
                     max_text_length: int = 32, seed: int = 0, magvit_config: MagvitConfig | None = None,
                     text_vocab_size: int | None = None, phi_vocab_rows: int | None = None) -> Path:
    """Write a tiny random Show-o to `out_dir` (official layout) and return the folder.

    Defaults: 32 px images, 4x4 = 16 image tokens, 64 codes, a 2-layer Phi of width 64; the same `seed`
    gives the same weights. `magvit_config` replaces the scaled-down image tokenizer (e.g. the real MAGVIT-v2);
    `text_vocab_size` / `phi_vocab_rows` give the real text vocabulary layout (Phi-1.5: 50295 / 51200).
    """
    from unirl_cli.models.showo.model import ShowoModel
    from unirl_cli.models.showo.prompting import add_showo_tokens

    out_dir = Path(out_dir)
    tokenizer = build_text_tokenizer(total_size=text_vocab_size)
    llm_vocab_size = len(tokenizer)
    add_showo_tokens(tokenizer)
    codebook_size = 2 ** codebook_bits
    config = ShowoConfig(vocab_size=len(tokenizer) + codebook_size + 1, llm_vocab_size=llm_vocab_size,
                         llm_model_path="phi", codebook_size=codebook_size, num_vq_tokens=grid_side ** 2,
                         max_text_length=max_text_length)
    # Phi-1.5 has more embedding rows (51200) than tokenizer entries (50295); mimic the gap.
    phi_config = tiny_phi_config(hidden_size, num_layers, num_heads,
                                 vocab_rows=phi_vocab_rows or 64 * math.ceil(llm_vocab_size / 64 + 1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf_model = random_phi(phi_config, config.vocab_size)
        magvit = MagvitV2(magvit_config or tiny_magvit_config(image_size, grid_side, codebook_bits, magvit_channels))
    ShowoModel(hf_model, magvit, tokenizer, config, phi_config).save(str(out_dir))
    # Like a `microsoft/phi-1_5` snapshot, phi/ holds the plain text tokenizer; loading adds Show-o's tokens.
    save_phi_folder(out_dir, phi_config, build_text_tokenizer(total_size=text_vocab_size))
    return out_dir


def random_phi(phi_config: dict, vocab_size: int):
    """A `PhiForCausalLM` with random weights, shaped like Show-o's (qk_layernorm, the joint vocabulary, SDPA)."""
    from transformers import PhiConfig, PhiForCausalLM

    config = PhiConfig.from_dict({**phi_config, "qk_layernorm": True, "vocab_size": vocab_size})
    config._attn_implementation = "sdpa"
    return PhiForCausalLM(config)
