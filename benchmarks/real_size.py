"""Random-weight models of real size for the scale benchmarks (full_size.py, gpu_check.py), saved in the hub layout.

Janus-Pro-1B is exact: the text config DeepSeek ships (Llama, 2048 wide, 24 layers, 16 heads, 5632 MLP, 102,400
rows, 16,384 positions) and transformers' Janus vision and VQ defaults, which are Janus-Pro's. Show-o-512 is too:
Phi-1.5's body (2048 wide, 24 layers, 32 heads, 8192 MLP, QK layer norm), the real MAGVIT-v2, 1024 image tokens, and
the 58,498-row vocabulary (the offline tokenizer padded with unused tokens to Phi-1.5's 50,295 entries, so Show-o's
special and image token ids are the real ones). `--size tiny` gives the test models instead.
"""

from __future__ import annotations

from pathlib import Path

import torch

JANUS_PRO_1B_TEXT = dict(vocab_size=102400, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                         num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=16384)


def janus_pro_1b_config(tokenizer):
    """JanusConfig of Janus-Pro-1B (transformers' vision and VQ defaults are Janus-Pro's) with the tokenizer's ids."""
    from unirl_cli.models.janus.config import build_janus_config

    return build_janus_config(tokenizer, dict(JANUS_PRO_1B_TEXT), {}, {})


def build_janus(out_dir: Path, size: str, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write a random Janus ("full": Janus-Pro-1B, "tiny": the test model) to `out_dir` in the hub layout."""
    from transformers import JanusForConditionalGeneration

    from unirl_cli.models.janus import config as janus_config
    from unirl_cli.models.janus import tiny as janus_tiny

    if size == "tiny":
        return janus_tiny.build_tiny_janus(out_dir)
    tokenizer = janus_tiny.build_tiny_tokenizer()
    with torch.device("meta"):
        skeleton = JanusForConditionalGeneration(janus_pro_1b_config(tokenizer))
    model = skeleton.to_empty(device="cpu").to(dtype)
    with torch.no_grad():
        for parameter in model.parameters():  # random, scaled like an initialised model; values do not matter here
            parameter.normal_(0.0, 0.02)
    janus_config.set_janus_generation_config(model, tokenizer)
    model.save_pretrained(out_dir)
    janus_config.build_janus_processor(tokenizer, 384).save_pretrained(out_dir)
    return out_dir


def build_showo(out_dir: Path, size: str) -> Path:
    """Write a random Show-o ("full": Phi-1.5 body, real MAGVIT-v2, 512 px; "tiny": the test model)."""
    from unirl_cli.models.showo.tiny import build_tiny_showo

    if size == "tiny":
        return build_tiny_showo(out_dir)
    from unirl_cli.models.showo.magvit import MagvitConfig

    return build_tiny_showo(out_dir, image_size=512, grid_side=32, codebook_bits=13, hidden_size=2048, num_layers=24,
                            num_heads=32, max_text_length=128, magvit_config=MagvitConfig(), text_vocab_size=50295,
                            phi_vocab_rows=51200)


def parameter_count(folder: Path) -> int:
    """Parameters stored in a folder's safetensors files (all of them, sub-folders included)."""
    import math

    from safetensors import safe_open

    total = 0
    for path in Path(folder).rglob("*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            total += sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
    return total
