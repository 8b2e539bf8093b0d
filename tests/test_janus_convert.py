"""Converting DeepSeek's original Janus layout to transformers' layout, on a tiny checkpoint written backwards."""

from __future__ import annotations

import json

import pytest
import torch

from unirl_cli.config import SamplingConfig
from unirl_cli.errors import UnirlError
from unirl_cli.models.janus import JanusModel
from unirl_cli.models.janus.convert import convert_deepseek_janus, hf_key
from unirl_cli.models.janus.tiny import build_tiny_deepseek_janus

PROMPTS = ["a red cube", "two blue circles"]


@pytest.mark.parametrize("original, expected", [
    ("language_model.model.layers.23.self_attn.q_proj.weight", "model.language_model.layers.23.self_attn.q_proj.weight"),
    ("language_model.lm_head.weight", "lm_head.weight"),
    ("vision_model.vision_tower.blocks.3.attn.qkv.bias", "model.vision_model.encoder.layers.3.self_attn.qkv.bias"),
    ("vision_model.vision_tower.blocks.3.attn.proj.weight", "model.vision_model.encoder.layers.3.self_attn.projection_layer.weight"),
    ("vision_model.vision_tower.blocks.0.norm2.bias", "model.vision_model.encoder.layers.0.layer_norm2.bias"),
    ("vision_model.vision_tower.norm.weight", "model.vision_model.post_layernorm.weight"),
    ("vision_model.vision_tower.attn_pool.q.weight", None),
    ("gen_vision_model.decoder.conv_blocks.4.res.2.nin_shortcut.weight", "model.vqmodel.decoder.up.4.block.2.nin_shortcut.weight"),
    ("gen_vision_model.encoder.conv_blocks.1.downsample.conv.bias", "model.vqmodel.encoder.down.1.downsample.conv.bias"),
    ("gen_vision_model.encoder.mid.1.proj_out.weight", "model.vqmodel.encoder.mid.attn_1.proj_out.weight"),
    ("gen_vision_model.quantize.codebook_used", None),
    ("gen_aligner.layers.2.weight", "model.generation_aligner.hidden_layers.0.weight"),
    ("aligner.layers.0.bias", "model.aligner.fc1.bias"),
    ("gen_head.output_mlp_projector.weight", "model.generation_head.proj_out.weight"),
    ("gen_embed.weight", "model.generation_embeddings.weight"),
])
def test_key_mapping_of_janus_1_3b_names(original, expected):
    assert hf_key(original) == expected


def test_converted_tiny_checkpoint_equals_the_source_model(tiny_janus_dir, tiny_janus, tmp_path):
    original_dir = build_tiny_deepseek_janus(tmp_path / "deepseek", source_dir=tiny_janus_dir)
    assert "language_config" in json.loads((original_dir / "config.json").read_text())
    converted = JanusModel.load(str(convert_deepseek_janus(original_dir, tmp_path / "converted")))
    source_state, converted_state = tiny_janus.hf_model.state_dict(), converted.hf_model.state_dict()
    assert source_state.keys() == converted_state.keys()
    assert all(torch.equal(source_state[k], converted_state[k]) for k in source_state)
    greedy = SamplingConfig(greedy=True)
    assert torch.equal(converted.generate_images(PROMPTS, [1, 2], greedy).image_tokens,
                       tiny_janus.generate_images(PROMPTS, [1, 2], greedy).image_tokens)
    assert converted.tokenizer("two red circles").input_ids == tiny_janus.tokenizer("two red circles").input_ids
    assert converted.hf_model.generation_config.generation_kwargs == {"boi_token_id": converted.tokenizer.boi_token_id}


def test_separate_lm_head_stays_untied(tiny_janus_dir, tmp_path):
    original_dir = build_tiny_deepseek_janus(tmp_path / "deepseek", source_dir=tiny_janus_dir, untie_lm_head=True)
    original_head = torch.load(original_dir / "pytorch_model.bin", weights_only=True)["language_model.lm_head.weight"]
    converted = JanusModel.load(str(convert_deepseek_janus(original_dir, tmp_path / "converted")))
    assert torch.equal(converted.hf_model.lm_head.weight, original_head)
    assert not torch.equal(converted.hf_model.lm_head.weight, converted.hf_model.get_input_embeddings().weight)


def test_non_deepseek_folder_is_refused(tiny_janus_dir, tmp_path):
    with pytest.raises(UnirlError, match="not a Janus checkpoint in DeepSeek's layout"):
        convert_deepseek_janus(tiny_janus_dir, tmp_path / "out")
