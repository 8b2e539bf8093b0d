"""Small random detector and CLIP folders built from the real config classes, for tests and benchmarks.

They load through the same `from_pretrained` path as the downloaded GenEval models, so the whole evaluation
pipeline runs offline. A `favourite_class` makes every detector query predict that class with high
confidence, which gives tests images that pass and images that fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import torch

from unirl_cli.eval.geneval.prompts import object_names

DETECTOR_SIZES = {
    # Plumbing tests: ~0.4M parameters.
    "tiny": dict(swin=dict(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]),
                 head=dict(feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=64,
                           dim_feedforward=64, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
                           num_queries=12)),
    # Benchmarks: a scaled-down Swin-S (96 / [2, 2, 18, 2] / 100 queries in the real one).
    "mid": dict(swin=dict(embed_dim=48, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
                head=dict(feature_size=128, mask_feature_size=128, hidden_dim=128, encoder_feedforward_dim=512,
                          dim_feedforward=1024, encoder_layers=3, decoder_layers=6, num_attention_heads=8,
                          num_queries=100)),
}


def build_tiny_detector(out_dir: str | Path, size: Literal["tiny", "mid"] = "tiny",
                        favourite_class: Optional[int] = None, seed: int = 0) -> Path:
    """Save a random 80-class Mask2Former (Swin backbone) to `out_dir`; return the folder."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    torch.manual_seed(seed)
    preset = DETECTOR_SIZES[size]
    swin = SwinConfig(window_size=7, out_features=["stage1", "stage2", "stage3", "stage4"], **preset["swin"])
    names = object_names()
    config = Mask2FormerConfig(backbone_config=swin, num_labels=len(names), **preset["head"],
                               id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    model = Mask2FormerForUniversalSegmentation(config).eval()
    if favourite_class is not None:
        with torch.no_grad():
            model.class_predictor.weight.zero_()
            model.class_predictor.bias.zero_()
            model.class_predictor.bias[favourite_class] = 8.0
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


def _byte_alphabet() -> list[str]:
    """CLIP's printable stand-ins for the 256 byte values (byte-level BPE)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def build_tiny_clip(out_dir: str | Path, seed: int = 0) -> Path:
    """Save a random CLIP (32 px input) and a character-level CLIP tokenizer to `out_dir`; return the folder."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    torch.manual_seed(seed)
    alphabet = _byte_alphabet()
    vocab = {token: i for i, token in enumerate(alphabet + [c + "</w>" for c in alphabet])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"],
                eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
