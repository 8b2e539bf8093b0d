"""GenEval's colour check: zero-shot CLIP ViT-L/14 over 10 colours, on mask-composited crops of each object.

As GenEval does (evaluate_images.py L81-127, clip_benchmark 1.4.0 `zero_shot_classifier`): pixels outside the
detector's mask become #999 grey, the result is cropped to the box, resized (shorter side, bicubic) and centre-
cropped to CLIP's input; each colour's text embedding is the re-normalised mean of 3 normalised templates; the
predicted colour is the argmax of image x text similarities. On CUDA both towers run under fp16 autocast like
the original; on CPU they run in fp32 (a near-tie can then flip, rarely).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.detections import Detection
from unirl_cli.eval.geneval.prompts import COLORS

BACKGROUND_RGB = (153, 153, 153)  # "#999"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
TEMPLATES = ("a photo of a {color} {object}", "a photo of a {color}-colored {object}", "a photo of a {color} object")


def object_crop(image: Image.Image, detection: Detection) -> Image.Image:
    """The object's box cut from `image`, with everything outside its mask painted #999."""
    image = image.convert("RGB")
    if detection.mask is not None:
        if detection.mask.shape != (image.height, image.width):
            raise ValueError(f"mask {detection.mask.shape} does not match image {(image.height, image.width)}")
        background = Image.new("RGB", image.size, BACKGROUND_RGB)
        image = Image.composite(image, background, Image.fromarray(detection.mask.astype(np.uint8) * 255))
    # PIL rounds fractional box coordinates, as in GenEval's `image.crop(box[:4])`.
    return image.crop(tuple(detection.box))


def clip_pixels(crop: Image.Image, size: int) -> torch.Tensor:
    """open_clip's eval transform: shorter side to `size` (bicubic), centre crop, OpenAI mean/std -> (3, s, s)."""
    width, height = crop.size
    if width <= height:
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    resized = crop.resize(new_size, Image.BICUBIC)
    left = int(round((resized.width - size) / 2.0))
    top = int(round((resized.height - size) / 2.0))
    square = resized.crop((left, top, left + size, top + size))
    pixels = torch.from_numpy(np.asarray(square, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(OPENAI_MEAN).view(3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(3, 1, 1)
    return (pixels - mean) / std


class ClipColorClassifier:
    """Callable: [(image, detection), ...] -> the colour name of each detected object."""

    def __init__(self, model: torch.nn.Module, tokenizer, batch_size: int = 16) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.input_size = model.config.vision_config.image_size
        self._text_weights: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda")

    @torch.no_grad()
    def text_weights(self, object_name: str) -> torch.Tensor:
        """(embed_dim, num_colours) unit-norm class embeddings for one object name (cached)."""
        if object_name not in self._text_weights:
            texts = [t.format(color=c, object=object_name) for c in COLORS for t in TEMPLATES]
            tokens = self.tokenizer(texts, padding=True, return_tensors="pt").to(self.device)
            with self._autocast():
                embeddings = self.model.get_text_features(**tokens).pooler_output.float()
            embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True)
            per_color = embeddings.view(len(COLORS), len(TEMPLATES), -1).mean(dim=1)
            per_color = per_color / per_color.norm(dim=-1, keepdim=True)
            self._text_weights[object_name] = per_color.T
        return self._text_weights[object_name]

    @torch.no_grad()
    def __call__(self, items: Sequence[tuple[Image.Image, Detection]]) -> list[str]:
        crops = [object_crop(image, detection) for image, detection in items]
        colors: list[str] = ["none"] * len(items)
        # A zero-area box only comes from an empty mask, whose score is 0 and never passes a threshold.
        valid = [i for i, crop in enumerate(crops) if crop.width > 0 and crop.height > 0]
        for start in range(0, len(valid), self.batch_size):
            chunk = valid[start:start + self.batch_size]
            pixels = torch.stack([clip_pixels(crops[i], self.input_size) for i in chunk]).to(self.device)
            with self._autocast():
                image_embeddings = self.model.get_image_features(pixel_values=pixels).pooler_output.float()
            image_embeddings = image_embeddings / image_embeddings.norm(dim=-1, keepdim=True)
            for row, index in enumerate(chunk):
                weights = self.text_weights(items[index][1].class_name)
                colors[index] = COLORS[int((image_embeddings[row] @ weights).argmax())]
        return colors


def load_color_classifier(folder: str, device: torch.device, batch_size: int = 16) -> ClipColorClassifier:
    """CLIP from `folder` (a transformers save with its tokenizer) as a `ClipColorClassifier` on `device`."""
    from transformers import CLIPModel, CLIPTokenizer

    try:
        model = CLIPModel.from_pretrained(folder)
        tokenizer = CLIPTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise UnirlError(f"'{folder}' holds no loadable CLIP model and tokenizer ({str(err).splitlines()[0]}); "
                         f"re-run `unirl download geneval-models` or pass the right --clip-path") from err
    return ClipColorClassifier(model.to(device), tokenizer, batch_size)
