"""Show-o's files: the official state-dict layout at full size, strict loading, saving, assembling a download."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from unirl_cli.errors import UnirlError
from unirl_cli.models.registry import detect_family
from unirl_cli.models.showo import ShowoModel, checkpoint
from unirl_cli.models.showo.magvit import MagvitConfig
from unirl_cli.models.showo.model import build_magvit, build_phi

# microsoft/phi-1_5/config.json (the fields that shape the weights).
PHI_15_CONFIG = {"model_type": "phi", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
                 "num_attention_heads": 32, "partial_rotary_factor": 0.5, "rope_theta": 10000.0, "layer_norm_eps": 1e-5,
                 "max_position_embeddings": 2048, "vocab_size": 51200, "hidden_act": "gelu_new",
                 "tie_word_embeddings": False, "qk_layernorm": False}


def expected_showo_512_keys() -> dict[str, tuple[int, ...]]:
    """The official `showlab/show-o-512x512` key list, written out from the architecture notes."""
    hidden, mlp, vocab, head_dim = 2048, 8192, 58498, 64
    keys = {"showo.model.embed_tokens.weight": (vocab, hidden), "showo.model.final_layernorm.weight": (hidden,),
            "showo.model.final_layernorm.bias": (hidden,), "showo.lm_head.weight": (vocab, hidden),
            "showo.lm_head.bias": (vocab,)}
    for layer in range(24):
        prefix = f"showo.model.layers.{layer}."
        for proj in ("q_proj", "k_proj", "v_proj", "dense"):
            keys[f"{prefix}self_attn.{proj}.weight"] = (hidden, hidden)
            keys[f"{prefix}self_attn.{proj}.bias"] = (hidden,)
        for norm in ("q_layernorm", "k_layernorm"):
            keys[f"{prefix}self_attn.{norm}.weight"] = (head_dim,)
            keys[f"{prefix}self_attn.{norm}.bias"] = (head_dim,)
        keys.update({f"{prefix}mlp.fc1.weight": (mlp, hidden), f"{prefix}mlp.fc1.bias": (mlp,),
                     f"{prefix}mlp.fc2.weight": (hidden, mlp), f"{prefix}mlp.fc2.bias": (hidden,),
                     f"{prefix}input_layernorm.weight": (hidden,), f"{prefix}input_layernorm.bias": (hidden,)})
    return keys


def _resnet_keys(prefix: str, channels_in: int, channels_out: int) -> dict[str, tuple[int, ...]]:
    keys = {f"{prefix}norm1.weight": (channels_in,), f"{prefix}norm1.bias": (channels_in,),
            f"{prefix}conv1.weight": (channels_out, channels_in, 3, 3), f"{prefix}conv1.bias": (channels_out,),
            f"{prefix}norm2.weight": (channels_out,), f"{prefix}norm2.bias": (channels_out,),
            f"{prefix}conv2.weight": (channels_out, channels_out, 3, 3), f"{prefix}conv2.bias": (channels_out,)}
    if channels_in != channels_out:
        keys[f"{prefix}nin_shortcut.weight"] = (channels_out, channels_in, 1, 1)
        keys[f"{prefix}nin_shortcut.bias"] = (channels_out,)
    return keys


def _conv(prefix: str, out: int, inp: int, k: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (out, inp, k, k), f"{prefix}.bias": (out,)}


def _mid(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    keys = {**_resnet_keys(f"{prefix}block_1.", channels, channels), **_resnet_keys(f"{prefix}block_2.", channels, channels),
            f"{prefix}attn_1.norm.weight": (channels,), f"{prefix}attn_1.norm.bias": (channels,)}
    for proj in ("q", "k", "v", "proj_out"):
        keys.update(_conv(f"{prefix}attn_1.{proj}", channels, channels, 1))
    return keys


def expected_magvit_keys() -> dict[str, tuple[int, ...]]:
    """`showlab/magvitv2`: encoder widths 128,256,256,512,512 x [4,3,4,3,4] blocks; decoder mirrored."""
    keys = {**_conv("encoder.conv_in", 128, 3, 3), "quantize.embedding": (8192, 13), "quantize.power_vals": (13,)}
    channels = 128
    for level, (width, blocks) in enumerate(zip([128, 256, 256, 512, 512], [4, 3, 4, 3, 4])):
        for block in range(blocks):
            keys.update(_resnet_keys(f"encoder.down.{level}.block.{block}.", channels, width))
            channels = width
        if level < 4:
            keys.update(_conv(f"encoder.down.{level}.downsample.conv", width, width, 3))
    keys.update({**_mid("encoder.mid.", 512), "encoder.norm_out.weight": (512,), "encoder.norm_out.bias": (512,),
                 **_conv("encoder.conv_out", 13, 512, 3), **_conv("encoder.quant_conv", 13, 13, 1)})
    keys.update({**_conv("decoder.post_quant_conv", 13, 13, 1), **_conv("decoder.conv_in", 512, 13, 3),
                 **_mid("decoder.mid.", 512)})
    channels = 512
    for level, (width, blocks) in reversed(list(enumerate(zip([128, 128, 256, 256, 512], [4, 4, 3, 4, 3])))):
        for block in range(blocks):
            keys.update(_resnet_keys(f"decoder.up.{level}.block.{block}.", channels, width))
            channels = width
        if level > 0:
            keys.update(_conv(f"decoder.up.{level}.upsample.conv", width, width, 3))
    keys.update({"decoder.norm_out.weight": (128,), "decoder.norm_out.bias": (128,), **_conv("decoder.conv_out", 3, 128, 3)})
    return keys


def test_full_size_phi_matches_official_layout():
    model = build_phi(PHI_15_CONFIG, vocab_size=58498)
    actual = {f"showo.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    assert actual == expected_showo_512_keys()
    assert sum(v.numel() for v in model.parameters()) == pytest.approx(1.5e9, rel=0.05)


def test_full_size_magvit_matches_official_layout():
    actual = {k: tuple(v.shape) for k, v in build_magvit(MagvitConfig()).state_dict().items()}
    assert actual == expected_magvit_keys()


def test_tiny_folder_has_official_layout_and_loads_strictly(tiny_showo_dir, tiny_showo):
    config = json.loads((tiny_showo_dir / "config.json").read_text())
    assert config["_class_name"] == "Showo" and config["mask_token_id"] == config["vocab_size"] - 1
    assert detect_family(tiny_showo_dir) == "showo"
    weights = checkpoint.read_state_dict(tiny_showo_dir)
    assert all(key.startswith("showo.") for key in weights)
    assert {f"showo.{k}" for k in tiny_showo.hf_model.state_dict()} == set(weights)
    # Phi's own folder carries the plain tokenizer; Show-o's ten tokens are added at load, in official order.
    assert config["llm_vocab_size"] == tiny_showo.vocab.pad_id
    assert tiny_showo.vocab.image_offset == config["llm_vocab_size"] + 10
    assert tiny_showo.vocab.image_offset + config["codebook_size"] + 1 == config["vocab_size"]
    assert tiny_showo.hf_model.config.qk_layernorm


def test_save_and_reload_round_trip(tiny_showo, tmp_path):
    tiny_showo.save(str(tmp_path / "saved"))
    reloaded = ShowoModel.load(str(tmp_path / "saved"))
    for key, value in tiny_showo.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key
    assert reloaded.vocab == tiny_showo.vocab and reloaded.max_text_length == tiny_showo.max_text_length


def test_extra_or_missing_weights_fail_loudly(tiny_showo_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_showo_dir, broken)
    weights = checkpoint.read_state_dict(broken)
    weights.pop("showo.model.layers.0.self_attn.q_layernorm.weight")
    weights["mm_projector.0.weight"] = torch.zeros(2, 2)
    checkpoint.save_safetensors(weights, broken / "model.safetensors")
    with pytest.raises(UnirlError, match="missing: model.layers.0.self_attn.q_layernorm.weight.*unexpected"):
        ShowoModel.load(str(broken))


def test_bin_weights_and_hub_lookup_of_missing_parts(tiny_showo_dir, tmp_path, monkeypatch):
    official = tmp_path / "snapshot"
    official.mkdir()
    shutil.copy(tiny_showo_dir / "config.json", official / "config.json")
    torch.save(checkpoint.read_state_dict(tiny_showo_dir), official / "pytorch_model.bin")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(UnirlError, match="unirl download showo-512"):
        ShowoModel.load(str(official))
    # Once the MAGVIT and Phi snapshots are in the cache, the bare snapshot loads.
    parts = {checkpoint.MAGVIT_REPO: tiny_showo_dir / "magvit", "phi": tiny_showo_dir / "phi"}
    monkeypatch.setattr(checkpoint, "_cached_snapshot", lambda repo, what: parts[repo])
    model = ShowoModel.load(str(official))
    assert model.num_image_tokens == 16 and model.image_size == 32


def test_bfloat16_keeps_float32_rotary_frequencies(tiny_showo_dir):
    model = ShowoModel.load(str(tiny_showo_dir), dtype=torch.bfloat16)
    assert model.hf_model.lm_head.weight.dtype == torch.bfloat16
    assert model.hf_model.model.rotary_emb.inv_freq.dtype == torch.float32
    model.to(torch.float16)
    assert model.hf_model.model.rotary_emb.inv_freq.dtype == torch.float32
    assert model.magvit.encoder.conv_in.weight.dtype == torch.float16
    from PIL import Image

    assert model.encode_images([Image.new("RGB", (32, 32))]).shape == (1, model.num_image_tokens)


def test_tiny_builder_is_deterministic(tiny_showo_dir, tmp_path):
    from unirl_cli.models.showo.tiny import build_tiny_showo

    again = build_tiny_showo(tmp_path / "again")
    first, second = checkpoint.read_state_dict(tiny_showo_dir), checkpoint.read_state_dict(again)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert (again / "phi" / "tokenizer.json").read_text() == (tiny_showo_dir / "phi" / "tokenizer.json").read_text()
