"""Janus as DeepSeek's reference code runs it: prompts per checkpoint, VQ search, resize, uint8 (janus_format.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from unirl_cli.models.janus import JanusModel
from unirl_cli.models.janus.convert import convert_deepseek_janus
from unirl_cli.models.janus.tiny import build_tiny_deepseek_janus
from unirl_cli.models.janus.formats import (DEEPSEEK_SYSTEM_PROMPT, nearest_codes, pixels_to_uint8, preprocess_images,
                                           resize_and_pad)

IMAGE = "<begin_of_image>" + "<image_placeholder>" * 16 + "<end_of_image>"
SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the visual content that the "
          "user provides, and assist the user with a variety of tasks using natural language.\n\n")


@pytest.fixture(scope="module")
def deepseek_dir(tiny_janus_dir, tmp_path_factory):
    return build_tiny_deepseek_janus(tmp_path_factory.mktemp("deepseek"), source_dir=tiny_janus_dir)


def converted(deepseek_dir, tmp_path, chat_format: str) -> JanusModel:
    return JanusModel.load(str(convert_deepseek_janus(deepseek_dir, tmp_path / chat_format, chat_format=chat_format)))


def test_hub_layout_checkpoint_prompts_carry_deepseeks_system_prompt(tiny_janus):
    assert DEEPSEEK_SYSTEM_PROMPT + "\n\n" == SYSTEM
    assert tiny_janus._understanding_prompts([" How many? "]) == [
        f"{SYSTEM}<|User|>: {IMAGE}\nHow many?\n\n<|Assistant|>:"]
    # Generation has no system prompt in DeepSeek's scripts (system_prompt="").
    assert tiny_janus.prompt_format.generation_prompt("a cat") == "<|User|>: a cat\n\n<|Assistant|>:<begin_of_image>"


def test_understanding_prompt_equals_transformers_processor_text_mode(tiny_janus):
    # transformers' JanusProcessor adds the same system prompt in text mode when use_default_system_prompt is set.
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    ours = tiny_janus.tokenizer(tiny_janus._understanding_prompts(["What color?"]))["input_ids"][0]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color?"}]}]
    text = tiny_janus.processor.apply_chat_template(messages, add_generation_prompt=True)
    theirs = tiny_janus.processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
    assert ours == theirs


def test_janus_1_3b_conversion_uses_its_plain_roles(deepseek_dir, tmp_path):
    model = converted(deepseek_dir, tmp_path, "janus")
    assert model.prompt_format.generation_prompt("a cat") == "User: a cat\n\nAssistant:<begin_of_image>"
    assert model._understanding_prompts(["How many?"]) == [f"{SYSTEM}User: {IMAGE}\nHow many?\n\nAssistant:"]
    reloaded = tmp_path / "saved"
    model.save(str(reloaded))
    assert JanusModel.load(str(reloaded)).prompt_format == model.prompt_format


def test_janus_pro_conversion_keeps_the_bracketed_roles(deepseek_dir, tmp_path):
    model = converted(deepseek_dir, tmp_path, "janus-pro")
    assert model._understanding_prompts(["How many?"]) == [f"{SYSTEM}<|User|>: {IMAGE}\nHow many?\n\n<|Assistant|>:"]


def test_shipped_mini_keeps_the_format_it_was_trained_with():
    from unirl_cli.models.janus.mini import packaged_mini_dir

    mini = JanusModel.load(str(packaged_mini_dir()))
    tokens = "<begin_of_image>" + "<image_placeholder>" * 64 + "<end_of_image>"
    assert mini._understanding_prompts(["How many?"]) == [f"<|User|>: {tokens}\nHow many?\n\n<|Assistant|>:"]


def test_registry_converts_janus_1_3b_with_its_roles():
    from unirl_cli.models.registry import MODELS

    assert MODELS["janus-1.3b"].chat_format == "janus"
    assert {spec.chat_format for name, spec in MODELS.items() if name != "janus-1.3b"} == {"janus-pro"}


def test_nearest_codes_normalise_latents_and_codebook(tiny_janus_dir):
    model = JanusModel.load(str(tiny_janus_dir))
    vqmodel = model.hf_model.model.vqmodel
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # Rows of very different lengths: raw and normalised nearest-code search then disagree.
        codebook = torch.randn(vqmodel.quantize.embedding.weight.shape, generator=generator)
        codebook *= torch.rand(codebook.shape[0], 1, generator=generator) * 10 + 0.1
        vqmodel.quantize.embedding.weight.copy_(codebook)
        pixels = torch.rand(2, 3, 64, 64, generator=generator) * 2 - 1
        codes = nearest_codes(vqmodel, pixels)
        latents = vqmodel.quant_conv(vqmodel.encoder(pixels)).permute(0, 2, 3, 1).reshape(-1, 8)
        by_hand = torch.cdist(F.normalize(latents, dim=-1), F.normalize(codebook, dim=-1)).argmin(dim=1)
        raw = vqmodel.encode(pixels).image_tokens
    assert torch.equal(codes.flatten(), by_hand)
    assert not torch.equal(codes.flatten(), raw.flatten())  # what transformers' encode would have picked


def test_resize_rounds_the_short_side_down_like_deepseek():
    tall = Image.new("RGB", (30, 75), (250, 0, 0))  # 30 / 75 * 64 = 25.6: DeepSeek 25 px, transformers 26
    square = np.asarray(resize_and_pad(tall, 64, 14, (127, 127, 127)))
    red_columns = np.flatnonzero((square[:, :, 0] > 200).all(axis=0))
    assert square.shape == (64, 64, 3) and len(red_columns) == 25
    assert red_columns[0] == (64 - 25) // 2 and (square[:, 0] == 127).all()


def test_preprocess_matches_transformers_on_square_images(tiny_janus):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8))
    ours = preprocess_images([image], tiny_janus.processor.image_processor)
    theirs = tiny_janus.processor.image_processor([image], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_uint8_conversion_clips_and_truncates():
    # (x + 1) / 2 * 255 = 127.9 truncates to 127 (rounding would give 128).
    pixels = torch.tensor([127.9 / 127.5 - 1, -1.5, 1.5, 0.999])
    assert pixels_to_uint8(pixels).tolist() == [127, 0, 255, 254]


def test_decoded_images_are_deepseeks_uint8(tiny_janus):
    tokens = tiny_janus.generate_images(["a red cube"], seeds=[3]).image_tokens
    with torch.no_grad():
        pixels = tiny_janus.hf_model.decode_image_tokens(tokens).float().numpy()
    reference = np.clip((pixels + 1) / 2 * 255, 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(tiny_janus.decode_images(tokens)[0]), reference[0])
