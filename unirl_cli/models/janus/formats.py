"""Janus's token, prompt and pixel formats, as DeepSeek's reference code (deepseek-ai/Janus) writes them.

Where transformers' Janus classes differ from that code, the DeepSeek behaviour is written here, in one
place: the understanding prompt carries DeepSeek's system prompt, the chat roles belong to the checkpoint
(Janus-Pro `<|User|>`/`<|Assistant|>`, Janus-1.3B `User`/`Assistant`), images are resized with the short
side rounded down, VQ codes are found by L2-normalised nearest-code search, and decoded pixels become
uint8 by clipping and truncating. docs/janus.md ("Fidelity") lists what was compared and how.

A checkpoint states its format through its processor: the chat template names the roles, and
`use_default_system_prompt` says whether understanding prompts start with the system prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unirl_cli.errors import UnirlError

BOS_TOKEN = "<｜begin▁of▁sentence｜>"
EOS_TOKEN = "<｜end▁of▁sentence｜>"
PAD_TOKEN = "<｜▁pad▁｜>"
IMAGE_TOKEN = "<image_placeholder>"
BOI_TOKEN = "<begin_of_image>"
EOI_TOKEN = "<end_of_image>"
SPECIAL_TOKENS = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, IMAGE_TOKEN, BOI_TOKEN, EOI_TOKEN]

# VLChatProcessor.system_prompt: prepended (then a blank line) to every conversation it formats.
DEEPSEEK_SYSTEM_PROMPT = ("You are a helpful language and vision assistant. You are able to understand the visual "
                          "content that the user provides, and assist the user with a variety of tasks using natural "
                          "language.")


@dataclass(frozen=True)
class ChatRoles:
    """The role names of a Janus conversation ("{user}: text\\n\\n{assistant}:")."""

    user: str
    assistant: str


# Janus-Pro's README and inference scripts use the bracketed roles, Janus-1.3B's the plain ones.
CHAT_FORMATS = {"janus-pro": ChatRoles("<|User|>", "<|Assistant|>"), "janus": ChatRoles("User", "Assistant")}
_PROBE = "unirl-probe"


@dataclass(frozen=True)
class JanusPromptFormat:
    """How one checkpoint's prompts are written: its chat roles, and its understanding system prompt ("" = none)."""

    roles: ChatRoles = CHAT_FORMATS["janus-pro"]
    system_prompt: str = ""

    def generation_prompt(self, prompt: str) -> str:
        """Text-to-image prompt (no system prompt, as DeepSeek's generation scripts); the tokenizer adds BOS."""
        return f"{self.roles.user}: {prompt.strip()}\n\n{self.roles.assistant}:{BOI_TOKEN}"

    def understanding_prompt(self, question: str, num_image_tokens: int) -> str:
        """Single-turn question about one image, the image expanded to BOI + N placeholders + EOI."""
        image = BOI_TOKEN + IMAGE_TOKEN * num_image_tokens + EOI_TOKEN
        system = f"{self.system_prompt}\n\n" if self.system_prompt else ""
        return f"{system}{self.roles.user}: {image}\n{question.strip()}\n\n{self.roles.assistant}:"


def chat_template(roles: ChatRoles) -> str:
    """A processor chat template writing DeepSeek's conversation format with `roles` (an image enters as
    "<image_placeholder>\\n" before the user's text); matches the hub template for single-turn prompts."""
    return (
        "{%- for message in messages -%}"
        "{%- if message['role'] | lower == 'user' -%}{{ '" + roles.user + ": ' }}"
        "{%- elif message['role'] | lower == 'assistant' -%}{{ '" + roles.assistant + ": ' }}"
        "{%- else -%}{{ message['role'] | capitalize ~ ': ' }}{%- endif -%}"
        "{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'image' -%}{{ '<image_placeholder>\n' }}"
        "{%- elif part['type'] == 'text' -%}{{ part['text'] | trim }}{%- endif -%}"
        "{%- endfor -%}"
        "{%- if message['role'] | lower == 'user' -%}{{ '\n\n' }}"
        "{%- elif message['role'] | lower == 'assistant' -%}" + EOS_TOKEN + "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}" + roles.assistant + ":{%- endif -%}"
    )


def prompt_format_of(processor) -> JanusPromptFormat:
    """The checkpoint's prompt format: roles read from its chat template, the system prompt from its
    `use_default_system_prompt` (transformers' flag; True on the hub checkpoints and on conversions)."""
    system = DEEPSEEK_SYSTEM_PROMPT if getattr(processor, "use_default_system_prompt", False) else ""
    if not getattr(processor, "chat_template", None):
        return JanusPromptFormat(CHAT_FORMATS["janus-pro"], system)
    messages = [{"role": "user", "content": [{"type": "text", "text": _PROBE}]}]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    match = re.fullmatch(rf"(.+): {_PROBE}\n\n(.+):", rendered, flags=re.DOTALL)
    if match is None:
        raise UnirlError(f"this Janus checkpoint's chat template writes {rendered!r}, not DeepSeek's "
                         f"'ROLE: text' format; re-save it with `unirl models convert-janus` or a transformers "
                         f"Janus-Pro processor")
    return JanusPromptFormat(ChatRoles(match.group(1), match.group(2)), system)


def resize_and_pad(image: Image.Image, image_size: int, min_size: int, background: tuple[int, int, int]) -> Image.Image:
    """DeepSeek's `VLMImageProcessor.resize`: long side to `image_size`, short side rounded *down*
    (transformers rounds to nearest), bicubic, then centred on a square of `background`."""
    image = image.convert("RGB")
    width, height = image.size
    longest = max(width, height)
    size_hw = (max(int(height / longest * image_size), min_size), max(int(width / longest * image_size), min_size))
    image = image.resize((size_hw[1], size_hw[0]), Image.BICUBIC)
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new(image.mode, (side, side), background)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def preprocess_images(images: Sequence[Image.Image], image_processor) -> torch.Tensor:
    """(batch, 3, S, S) float pixels from PIL images with DeepSeek's resize and the processor's mean/std."""
    image_size = image_processor.size["height"]
    background = tuple(int(x) for x in image_processor.background_color)
    mean = torch.tensor(image_processor.image_mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(image_processor.image_std, dtype=torch.float32).view(3, 1, 1)
    arrays = [np.asarray(resize_and_pad(image, image_size, image_processor.min_size, background))
              for image in images]
    pixels_01 = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() * image_processor.rescale_factor
    return (pixels_01 - mean) / std if image_processor.do_normalize else pixels_01


def pixels_to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """uint8 array of pixels in about [-1, 1] as DeepSeek saves images: clip((x + 1) / 2 * 255), then truncate."""
    scaled = ((pixels.float() + 1) / 2 * 255).clamp(0, 255)
    return scaled.to(torch.uint8).cpu().numpy()  # float -> uint8 truncates toward zero, as numpy's cast


def nearest_codes(vqmodel, pixels: torch.Tensor) -> torch.Tensor:
    """(batch, N) VQ codes of pixels in [-1, 1] by DeepSeek's search: encoder output and codebook both
    L2-normalised, then the nearest code (transformers' `quantize` compares raw vectors)."""
    latents = vqmodel.quant_conv(vqmodel.encoder(pixels))  # (batch, embed_dim, h, w)
    flat = F.normalize(latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]), p=2, dim=-1)
    codebook = F.normalize(vqmodel.quantize.embedding.weight, p=2, dim=-1)
    distances = (flat.pow(2).sum(dim=1, keepdim=True) + codebook.pow(2).sum(dim=1)
                 - 2 * flat @ codebook.t())  # (batch * h * w, codebook)
    return distances.argmin(dim=1).view(latents.shape[0], -1)
