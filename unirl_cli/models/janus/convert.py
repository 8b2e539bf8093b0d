"""Convert a Janus checkpoint from DeepSeek's original layout (deepseek-ai/Janus-1.3B) to transformers' layout.

DeepSeek's `MultiModalityCausalLM` stores `language_model.model.*`, a timm SigLIP `vision_model.vision_tower.*`
(fused qkv), `aligner`, the VQGAN `gen_vision_model`, `gen_embed`, `gen_aligner` and `gen_head`. The key
renames below were worked out from transformers' conversion script and both module trees; sizes the
original config leaves implicit (the SigLIP width, the VQGAN channels) are read from the weight shapes.
`original_state_dict` is the inverse mapping (`tiny.build_tiny_deepseek_janus` uses it), so the conversion
is tested offline.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import torch

from unirl_cli.errors import UnirlError
from unirl_cli.fileio import atomic_path, write_json_atomic
from unirl_cli.models.janus.config import build_janus_processor, set_janus_generation_config
from unirl_cli.models.janus.formats import (BOI_TOKEN, BOS_TOKEN, CHAT_FORMATS, EOI_TOKEN, EOS_TOKEN, IMAGE_TOKEN,
                                           PAD_TOKEN)

# (original pattern, transformers replacement), applied in order to each key; first match of each rule.
_KEY_RULES = [
    (r"^language_model\.model\.", "model.language_model."),
    (r"^language_model\.lm_head\.", "lm_head."),
    (r"^vision_model\.vision_tower\.blocks\.(\d+)\.attn\.proj\.", r"model.vision_model.encoder.layers.\1.self_attn.projection_layer."),
    (r"^vision_model\.vision_tower\.blocks\.(\d+)\.attn\.qkv\.", r"model.vision_model.encoder.layers.\1.self_attn.qkv."),
    (r"^vision_model\.vision_tower\.blocks\.(\d+)\.norm([12])\.", r"model.vision_model.encoder.layers.\1.layer_norm\2."),
    (r"^vision_model\.vision_tower\.blocks\.(\d+)\.mlp\.", r"model.vision_model.encoder.layers.\1.mlp."),
    (r"^vision_model\.vision_tower\.pos_embed$", "model.vision_model.embeddings.position_embedding.weight"),
    (r"^vision_model\.vision_tower\.patch_embed\.proj\.", "model.vision_model.embeddings.patch_embedding."),
    (r"^vision_model\.vision_tower\.norm\.", "model.vision_model.post_layernorm."),
    (r"^gen_vision_model\.encoder\.conv_blocks\.", "model.vqmodel.encoder.down."),
    (r"^gen_vision_model\.decoder\.conv_blocks\.", "model.vqmodel.decoder.up."),
    (r"^gen_vision_model\.", "model.vqmodel."),
    (r"^model\.vqmodel\.(encoder|decoder)\.(down|up)\.(\d+)\.res\.", r"model.vqmodel.\1.\2.\3.block."),
    (r"^model\.vqmodel\.(encoder|decoder)\.mid\.0\.", r"model.vqmodel.\1.mid.block_1."),
    (r"^model\.vqmodel\.(encoder|decoder)\.mid\.1\.", r"model.vqmodel.\1.mid.attn_1."),
    (r"^model\.vqmodel\.(encoder|decoder)\.mid\.2\.", r"model.vqmodel.\1.mid.block_2."),
    (r"^gen_embed\.", "model.generation_embeddings."),
    (r"^gen_head\.output_mlp_projector\.", "model.generation_head.proj_out."),
    (r"^gen_head\.vision_head\.", "model.generation_head.vision_head."),
    (r"^gen_aligner\.layers\.", "model.generation_aligner.layers."),
    (r"^aligner\.layers\.", "model.aligner.layers."),
]
# Keys transformers has no module for: SigLIP's attention-pool head (unused by Janus), VQ usage statistics.
_DROPPED = (re.compile(r"^vision_model\.vision_tower\.attn_pool\."), re.compile(r"\.quantize\.codebook_used$"))
_MLP_LAYER = re.compile(r"^(model\.(?:generation_aligner|aligner))\.layers\.(\d+)\.")


def hf_key(original_key: str) -> str | None:
    """The transformers name of an original key (None if dropped); fused `qkv` keys keep `qkv` to be split later."""
    if any(pattern.search(original_key) for pattern in _DROPPED):
        return None
    key = original_key
    for pattern, replacement in _KEY_RULES:
        key = re.sub(pattern, replacement, key)
    # DeepSeek's MLP projector is Sequential(Linear, GELU, Linear, ...): layer 2k is hidden layer k - 1.
    match = _MLP_LAYER.match(key)
    if match:
        index = int(match.group(2))
        name = "fc1" if index == 0 else f"hidden_layers.{index // 2 - 1}"
        key = f"{match.group(1)}.{name}.{key[match.end():]}"
    return key


def convert_state_dict(original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename every tensor to transformers' layout, split fused qkv, drop unused heads."""
    converted = {}
    for key, tensor in original.items():
        new_key = hf_key(key)
        if new_key is None:
            continue
        if ".self_attn.qkv." in new_key:
            for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                converted[new_key.replace(".qkv.", f".{name}.")] = part.contiguous()
        elif new_key.endswith("position_embedding.weight"):
            converted[new_key] = tensor.reshape(-1, tensor.shape[-1])  # timm keeps a leading batch dim
        else:
            converted[new_key] = tensor
    return converted


def load_original_state_dict(src_dir: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder: safetensors or pytorch_model*.bin, single file or sharded."""
    from safetensors.torch import load_file

    files = sorted(src_dir.glob("*.safetensors")) or sorted(src_dir.glob("pytorch_model*.bin"))
    if not files:
        raise UnirlError(f"'{src_dir}' holds no *.safetensors or pytorch_model*.bin weights; "
                         f"download the full checkpoint")
    state = {}
    for file in files:
        state.update(load_file(file) if file.suffix == ".safetensors" else
                     torch.load(file, map_location="cpu", weights_only=True))
    return state


def _count(state: dict, prefix_pattern: str) -> int:
    pattern = re.compile(prefix_pattern)
    return len({m.group(1) for m in (pattern.match(k) for k in state) if m})


def janus_config_from_original(config: dict, state: dict[str, torch.Tensor], tokenizer):
    """A JanusConfig for the converted weights (`state` is already in transformers' layout)."""
    from unirl_cli.models.janus.config import build_janus_config

    language = config["language_config"]
    hidden = state["model.language_model.embed_tokens.weight"].shape[1]
    tied = "lm_head.weight" not in state or torch.equal(state["lm_head.weight"],
                                                        state["model.language_model.embed_tokens.weight"])
    text_keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta")
    text = {k: language[k] for k in text_keys if k in language}
    vision_params = config["vision_config"].get("params", {})
    positions, width = state["model.vision_model.embeddings.position_embedding.weight"].shape
    patch_size = state["model.vision_model.embeddings.patch_embedding.weight"].shape[-1]
    image_size = vision_params.get("image_size", int(round(positions ** 0.5)) * patch_size)
    mlp_width = state["model.vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]
    vision = dict(
        hidden_size=width, num_hidden_layers=_count(state, r"model\.vision_model\.encoder\.layers\.(\d+)\."),
        num_attention_heads=vision_params.get("num_heads", width // 64),  # SigLIP uses 64-wide heads
        mlp_ratio=mlp_width / width, image_size=image_size, patch_size=patch_size, projection_dim=hidden,
        depth=_count(state, r"model\.aligner\.hidden_layers\.(\d+)\.") + 1, num_image_tokens=positions)
    base_channels = state["model.vqmodel.encoder.conv_in.weight"].shape[0]
    levels = _count(state, r"model\.vqmodel\.encoder\.down\.(\d+)\.")
    codebook = state["model.vqmodel.quantize.embedding.weight"]
    vq = dict(
        embed_dim=codebook.shape[1], num_embeddings=codebook.shape[0], base_channels=base_channels,
        latent_channels=state["model.vqmodel.encoder.conv_out.weight"].shape[0],
        channel_multiplier=[state[f"model.vqmodel.encoder.down.{i}.block.0.conv1.weight"].shape[0] // base_channels
                            for i in range(levels)],
        num_res_blocks=_count(state, r"model\.vqmodel\.encoder\.down\.0\.block\.(\d+)\."),
        projection_dim=state["model.generation_head.proj_out.weight"].shape[0], image_token_embed_dim=hidden,
        num_hidden_layers=_count(state, r"model\.generation_aligner\.hidden_layers\.(\d+)\.") + 1)
    return build_janus_config(tokenizer, text, vision, vq, tie_word_embeddings=tied)


def load_original_tokenizer(src_dir: Path):
    """DeepSeek's tokenizer.json with Janus's named image tokens; BOS is added on encode as DeepSeek does."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer_file = src_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise UnirlError(f"'{src_dir}' has no tokenizer.json; download the full checkpoint folder")
    special_map_file = src_dir / "special_tokens_map.json"
    special = json.loads(special_map_file.read_text()) if special_map_file.is_file() else {}
    backend = Tokenizer.from_file(str(tokenizer_file))
    named = {name: _token_text(special.get(f"{name}_token"), default)
             for name, default in (("bos", BOS_TOKEN), ("eos", EOS_TOKEN),
                                   ("pad", PAD_TOKEN))}
    missing = [t for t in [*named.values(), IMAGE_TOKEN, BOI_TOKEN, EOI_TOKEN]
               if backend.token_to_id(t) is None]
    if missing:
        raise UnirlError(f"tokenizer in '{src_dir}' lacks Janus tokens {missing}; this is not a Janus checkpoint")
    if backend.encode("a").ids[:1] != [backend.token_to_id(named["bos"])]:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{named['bos']} $A", pair=f"{named['bos']} $A $B",
            special_tokens=[(named["bos"], backend.token_to_id(named["bos"]))])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=named["bos"], eos_token=named["eos"], pad_token=named["pad"],
        extra_special_tokens={"image_token": IMAGE_TOKEN, "boi_token": BOI_TOKEN,
                              "eoi_token": EOI_TOKEN},
        padding_side="left", model_max_length=16384)


def _token_text(entry, default: str) -> str:
    if isinstance(entry, dict):
        return entry.get("content", default)
    return entry or default


def convert_deepseek_janus(src_dir: str | Path, out_dir: str | Path, chat_format: str = "janus-pro") -> Path:
    """Convert DeepSeek-layout Janus (config.json with language_config/gen_vision_config, original weights)
    to a transformers folder that `JanusModel.load` reads; returns `out_dir`. Weights keep their dtype.

    `chat_format` names the roles the checkpoint was trained with ("janus-pro": `<|User|>`, "janus":
    Janus-1.3B's `User`); nothing in DeepSeek's files says which, so the caller must.
    """
    from safetensors.torch import save_file
    from transformers import JanusForConditionalGeneration

    if chat_format not in CHAT_FORMATS:
        raise UnirlError(f"chat format '{chat_format}' is not known; use one of {', '.join(CHAT_FORMATS)}")
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    config_file = src_dir / "config.json"
    original_config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if "language_config" not in original_config or "gen_vision_config" not in original_config:
        raise UnirlError(f"'{src_dir}' is not a Janus checkpoint in DeepSeek's layout (config.json needs "
                         f"language_config and gen_vision_config)")
    tokenizer = load_original_tokenizer(src_dir)
    state = convert_state_dict(load_original_state_dict(src_dir))
    config = janus_config_from_original(original_config, state, tokenizer)
    with torch.device("meta"):
        skeleton = JanusForConditionalGeneration(config)
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    expected = set(skeleton.state_dict()) - ({"lm_head.weight"} if config.tie_word_embeddings else set())
    if set(state) != expected:
        raise UnirlError(f"'{src_dir}' does not match the Janus architecture: "
                         f"missing {sorted(expected - set(state))[:5]}, unexpected {sorted(set(state) - expected)[:5]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    set_janus_generation_config(skeleton, tokenizer)
    skeleton.generation_config.save_pretrained(out_dir)
    # DeepSeek's VLChatProcessor puts its system prompt before every understanding conversation.
    processor = build_janus_processor(tokenizer, config.vision_config.image_size,
                                                 roles=CHAT_FORMATS[chat_format], use_default_system_prompt=True)
    _apply_preprocessor_config(processor, src_dir / "preprocessor_config.json")
    processor.save_pretrained(out_dir)
    # config.json goes last and atomically: its presence marks a finished conversion (the hub cache checks it).
    with tempfile.TemporaryDirectory(dir=out_dir) as staging:
        config.save_pretrained(staging)
        os.replace(Path(staging) / "config.json", out_dir / "config.json")
    return out_dir


def _apply_preprocessor_config(processor, path: Path) -> None:
    if not path.is_file():
        return
    settings = json.loads(path.read_text())
    for key in ("image_mean", "image_std", "min_size", "rescale_factor", "do_normalize"):
        if key in settings:
            setattr(processor.image_processor, key, settings[key])


# ---- the inverse, for tests: write a transformers-format Janus in DeepSeek's layout --------------------


def original_state_dict(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Invert `convert_state_dict` (fuse q/k/v, restore names); adds the dropped keys DeepSeek files carry."""
    original = {}
    for key, tensor in hf_state.items():
        if key == "lm_head.weight":
            original["language_model.lm_head.weight"] = tensor
            continue
        original_key = _original_key(key)
        if ".self_attn.q_proj." in key:
            parts = [hf_state[key.replace("q_proj", name)] for name in ("q_proj", "k_proj", "v_proj")]
            original[original_key.replace(".q_proj.", ".qkv.")] = torch.cat(parts)
        elif ".self_attn.k_proj." in key or ".self_attn.v_proj." in key:
            continue
        elif key.endswith("position_embedding.weight"):
            original[original_key] = tensor.unsqueeze(0)
        else:
            original[original_key] = tensor
    width = hf_state["model.vision_model.post_layernorm.weight"].shape[0]
    original["vision_model.vision_tower.attn_pool.latent"] = torch.zeros(1, 1, width)
    original["gen_vision_model.quantize.codebook_used"] = torch.zeros(65536)
    return original


def _original_key(key: str) -> str:
    """The DeepSeek name of a transformers key (q/k/v keep their names; the caller fuses them)."""
    for hf_prefix, original_prefix in (("model.language_model.", "language_model.model."),
                                       ("model.generation_embeddings.", "gen_embed."),
                                       ("model.generation_head.proj_out.", "gen_head.output_mlp_projector."),
                                       ("model.generation_head.vision_head.", "gen_head.vision_head.")):
        if key.startswith(hf_prefix):
            return original_prefix + key[len(hf_prefix):]
    match = re.match(r"^model\.(generation_aligner|aligner)\.(fc1|hidden_layers\.(\d+))\.", key)
    if match:
        index = 0 if match.group(2) == "fc1" else 2 * (int(match.group(3)) + 1)
        name = "gen_aligner" if match.group(1) == "generation_aligner" else "aligner"
        return f"{name}.layers.{index}.{key[match.end():]}"
    if key.startswith("model.vqmodel."):
        key = "gen_vision_model." + key[len("model.vqmodel."):]
        key = re.sub(r"\.(down|up)\.(\d+)\.block\.", r".\1.\2.res.", key)
        key = re.sub(r"\.(encoder\.down|decoder\.up)\.", lambda m: ".encoder.conv_blocks." if "down" in m.group(1)
                     else ".decoder.conv_blocks.", key)
        return re.sub(r"\.mid\.(block_1|attn_1|block_2)\.",
                      lambda m: f".mid.{['block_1', 'attn_1', 'block_2'].index(m.group(1))}.", key)
    vision = [("model.vision_model.embeddings.position_embedding.weight", "vision_model.vision_tower.pos_embed"),
              ("model.vision_model.embeddings.patch_embedding.", "vision_model.vision_tower.patch_embed.proj."),
              ("model.vision_model.post_layernorm.", "vision_model.vision_tower.norm."),
              ("model.vision_model.encoder.layers.", "vision_model.vision_tower.blocks.")]
    for hf_prefix, original_prefix in vision:
        if key.startswith(hf_prefix):
            key = original_prefix + key[len(hf_prefix):]
            key = key.replace(".self_attn.projection_layer.", ".attn.proj.").replace(".self_attn.", ".attn.")
            return re.sub(r"\.layer_norm([12])\.", r".norm\1.", key)
    raise UnirlError(f"no DeepSeek name for transformers key '{key}'")
