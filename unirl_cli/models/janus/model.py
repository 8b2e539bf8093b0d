"""Janus / Janus-Pro backend on transformers' native `JanusForConditionalGeneration` (no remote code).

Generation runs our own batched, KV-cached CFG sampler (sampling.py), which returns per-token
log-probs and is reproducible per row; understanding splices SigLIP features of PIL images or of decoded
(hard or soft) VQ codes into the prompt (understanding.py). Pitfalls of the transformers port that
this module repairs: the generation config losing `generation_kwargs` on reload, the CLIP pixel
normalisation default (Janus-Pro uses mean = std = 0.5), and channels-last decoder output.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from unirl_cli.config import SamplingConfig
from unirl_cli.errors import UnirlError
from unirl_cli.models.janus import formats as janus_format
from unirl_cli.models.janus import sampling as janus_sampling
from unirl_cli.models.janus import understanding as janus_understanding
from unirl_cli.models.base import AnswerScores, ImageRollout, UnifiedModel

JANUS_PRO_PIXEL_MEAN = [0.5, 0.5, 0.5]
JANUS_PRO_PIXEL_STD = [0.5, 0.5, 0.5]


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(resolved, torch.dtype):
        raise UnirlError(f"dtype '{dtype}' is not a torch dtype; use float32, bfloat16 or float16")
    return resolved


class JanusModel(UnifiedModel):
    """Janus-Pro (and converted Janus 1.3B) behind the `UnifiedModel` interface."""

    family = "janus"
    generation_kind = "ar"
    no_guidance_scale = 1.0

    def __init__(self, hf_model, processor):
        super().__init__()
        self.hf_model = hf_model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        # Chat roles and system prompt are the checkpoint's own (its processor), read once.
        self.prompt_format = janus_format.prompt_format_of(processor)
        _repair_generation_config(hf_model, self.tokenizer)

    # ---- identity and sizes -------------------------------------------------------------------
    @property
    def num_image_tokens(self) -> int:
        return self.hf_model.config.vision_config.num_image_tokens

    @property
    def codebook_size(self) -> int:
        return self.hf_model.config.vq_config.num_embeddings

    @property
    def image_size(self) -> int:
        vq_config = self.hf_model.config.vq_config
        return vq_config.num_patches * 2 ** (len(vq_config.channel_multiplier) - 1)

    def default_sampling(self) -> SamplingConfig:
        """Janus-Pro's published sampler (CFG 5, temperature 1, no top-k/top-p), except where the checkpoint's
        generation config sets its own guidance scale (as transformers' image `generate` honours it)."""
        guidance = getattr(self.hf_model.generation_config, "guidance_scale", None)
        guidance = float(guidance) if isinstance(guidance, (int, float)) and guidance >= 1.0 else 5.0
        return SamplingConfig(guidance_scale=guidance, temperature=1.0, top_k=0, top_p=1.0,
                              num_steps=self.num_image_tokens, greedy=False)

    @classmethod
    def check_sampling_settings(cls, sampling: SamplingConfig) -> None:
        """Janus: guidance >= 1 (1 = no CFG), temperature > 0, top_k >= 0, top_p in (0, 1]."""
        if sampling.guidance_scale is not None and sampling.guidance_scale < 1.0:
            raise UnirlError(f"guidance_scale {sampling.guidance_scale} is below 1; "
                             f"Janus uses 1.0 for no CFG, 5.0 by default")
        if sampling.temperature is not None and sampling.temperature <= 0:
            raise UnirlError(f"temperature {sampling.temperature} must be > 0; use greedy=true for argmax sampling")
        if sampling.top_k < 0 or not 0 < sampling.top_p <= 1:
            raise UnirlError(f"top_k must be >= 0 and top_p in (0, 1]; got top_k={sampling.top_k}, top_p={sampling.top_p}")
        if sampling.masked_transition != "committed":
            raise UnirlError("masked_transition applies to masked generators (Show-o); Janus samples one token per "
                             "step, so leave it at 'committed'")

    # ---- loading and saving -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str, device: str | torch.device = "cpu",
             dtype: torch.dtype | str = torch.float32) -> "JanusModel":
        """Load a transformers-format Janus folder (a hub download, a conversion, a checkpoint, a tiny model)."""
        from transformers import AutoProcessor, JanusForConditionalGeneration

        folder = Path(path)
        _check_janus_folder(folder)
        hf_model = JanusForConditionalGeneration.from_pretrained(folder, dtype=_as_dtype(dtype))
        processor = AutoProcessor.from_pretrained(folder)
        # The processor class defaults to CLIP's mean/std; Janus-Pro and its VQ model expect [-1, 1] pixels.
        processor.image_processor.image_mean = JANUS_PRO_PIXEL_MEAN
        processor.image_processor.image_std = JANUS_PRO_PIXEL_STD
        processor.image_processor.background_color = (127, 127, 127)
        return cls(hf_model.to(device).eval(), processor)

    def save(self, out_dir: str) -> None:
        """Write weights (safetensors), configs and processor; a folder written half-way is never left behind."""
        out_dir = Path(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        try:
            self.hf_model.generation_config._from_model_config = False
            self.hf_model.save_pretrained(staging)
            self.processor.save_pretrained(staging)
            out_dir.mkdir(exist_ok=True)
            for item in staging.iterdir():
                item.replace(out_dir / item.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # ---- generation ---------------------------------------------------------------------------
    def _prompt_batch(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded (cond ids, attention mask, uncond ids) of the text-to-image prompts."""
        if not prompts:
            raise UnirlError("no prompts given; pass at least one prompt")
        encoded = self.tokenizer([self.prompt_format.generation_prompt(p) for p in prompts], padding=True,
                                 padding_side="left",
                                 return_tensors="pt")
        input_ids = encoded["input_ids"].to(self.device)
        attention_mask = encoded["attention_mask"].to(self.device)
        generation_config = self.hf_model.generation_config
        uncond_ids = janus_sampling.unconditional_prompt_ids(
            input_ids, generation_config.bos_token_id, generation_config.generation_kwargs["boi_token_id"],
            generation_config.pad_token_id)
        return input_ids, attention_mask, uncond_ids

    @torch.no_grad()
    def generate_images(self, prompts: Sequence[str], seeds: Sequence[int],
                        sampling: SamplingConfig | None = None) -> ImageRollout:
        """Sample one image per prompt with CFG (guidance 1.0 = none); row i is reproducible from `seeds[i]` alone."""
        settings = _settings_from(self.resolve_sampling(sampling))
        if len(seeds) != len(prompts):
            raise UnirlError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one seed per prompt")
        input_ids, attention_mask, uncond_ids = self._prompt_batch(prompts)
        tokens, logprobs = janus_sampling.sample_image_tokens(
            self.hf_model, input_ids, attention_mask, uncond_ids, self.num_image_tokens, seeds, settings)
        return ImageRollout(prompts=list(prompts), seeds=[int(s) for s in seeds], image_tokens=tokens,
                            token_logprobs=logprobs, guidance_scale=settings.guidance_scale,
                            temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)

    def image_logprobs(self, rollout: ImageRollout, guidance_scale: float | None = None,
                       micro_batch_size: int | None = None) -> torch.Tensor:
        """Teacher-forced, differentiable (batch, N) log-probs; `guidance_scale=1.0` scores the conditional branch."""
        scale = rollout.guidance_scale if guidance_scale is None else float(guidance_scale)
        step = micro_batch_size or len(rollout)
        chunks = []
        for start in range(0, len(rollout), step):
            part = rollout.select(range(start, min(start + step, len(rollout))))
            input_ids, attention_mask, uncond_ids = self._prompt_batch(part.prompts)
            chunks.append(janus_sampling.teacher_forced_logprobs(
                self.hf_model, input_ids, attention_mask, uncond_ids, part.image_tokens.to(self.device),
                scale, rollout.temperature))
        return torch.cat(chunks)

    def image_logits(self, prompts: Sequence[str], image_tokens: torch.Tensor) -> torch.Tensor:
        """Differentiable conditional-branch logits (batch, N, codebook) predicting each given code."""
        self._check_image_tokens(image_tokens, len(prompts))
        input_ids, attention_mask, _ = self._prompt_batch(prompts)
        return janus_sampling.teacher_forced_head_logits(self.hf_model, input_ids, attention_mask,
                                                   image_tokens.to(self.device).long())

    def image_token_loss(self, prompts: Sequence[str], image_tokens: torch.Tensor,
                         unconditional: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy of the generation head on `image_tokens`; `unconditional` rows get
        the CFG unconditional prompt (BOS, pads, `<begin_of_image>`)."""
        self._check_image_tokens(image_tokens, len(prompts))
        input_ids, attention_mask, blank = self._prompt_batch(prompts)
        input_ids = torch.where(unconditional.to(input_ids.device)[:, None], blank, input_ids)
        codes = image_tokens.to(self.device).long()
        logits = janus_sampling.teacher_forced_head_logits(self.hf_model, input_ids, attention_mask, codes)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), codes.reshape(-1))

    @torch.no_grad()
    def decode_images(self, image_tokens: torch.Tensor, micro_batch_size: int = 8) -> list[Image.Image]:
        """Decode (batch, N) codes to RGB PIL images, pixel for pixel as DeepSeek's scripts save them."""
        self._check_image_tokens(image_tokens)
        images = []
        for chunk in image_tokens.to(self.device).long().split(micro_batch_size):
            pixels = self.hf_model.decode_image_tokens(chunk)  # (batch, H, W, 3) in about [-1, 1]
            images.extend(Image.fromarray(array) for array in janus_format.pixels_to_uint8(pixels))
        return images

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Quantise RGB PIL images (resized to `image_size`) to (batch, N) codes by DeepSeek's normalised search."""
        import numpy as np

        size = self.image_size
        arrays = [np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC)) for image in images]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        pixels = pixels.to(device=self.device, dtype=self.hf_model.dtype)
        return janus_format.nearest_codes(self.hf_model.model.vqmodel, pixels)

    # ---- understanding ------------------------------------------------------------------------
    def _understanding_prompts(self, questions: Sequence[str]) -> list[str]:
        return [self.prompt_format.understanding_prompt(q, self.num_image_tokens) for q in questions]

    def _image_features(self, images, batch_size: int) -> torch.Tensor:
        if isinstance(images, torch.Tensor):
            self._check_image_tokens(images, batch_size, allow_soft=True)
        elif len(images) != batch_size:
            raise UnirlError(f"got {len(images)} images for {batch_size} questions; pass one image per question")
        pixels = janus_understanding.pixels_from_images(self.hf_model, self.processor, images)
        return janus_understanding.image_features(self.hf_model, pixels)

    @torch.no_grad()
    def answer_questions(self, images, questions: Sequence[str], max_new_tokens: int = 32, greedy: bool = True,
                         temperature: float = 1.0, seeds: Sequence[int] | None = None) -> list[str]:
        """Answer `questions[i]` about image i (PIL or codes), batched and KV-cached; returns stripped text."""
        seeds = list(seeds) if seeds is not None else list(range(len(questions)))
        if len(seeds) != len(questions):
            raise UnirlError(f"got {len(questions)} questions but {len(seeds)} seeds; pass one seed per question")
        features = self._image_features(images, len(questions))
        encoded = self.tokenizer(self._understanding_prompts(questions), padding=True, padding_side="left",
                                 return_tensors="pt")
        input_ids = encoded["input_ids"].to(self.device)
        inputs_embeds = janus_understanding.embed_with_images(self.hf_model, input_ids, features)
        answer_ids = janus_understanding.sample_answer_tokens(
            self.hf_model, inputs_embeds, encoded["attention_mask"].to(self.device), max_new_tokens,
            self.tokenizer.eos_token_id, self.tokenizer.pad_token_id, greedy, temperature, seeds)
        return [text.strip() for text in self.tokenizer.batch_decode(answer_ids, skip_special_tokens=True)]

    def answer_logprobs(self, images, questions: Sequence[str], answers: Sequence[str]) -> AnswerScores:
        """Differentiable log-likelihood of each answer (then EOS) after image i and `questions[i]`."""
        if len(answers) != len(questions):
            raise UnirlError(f"got {len(questions)} questions but {len(answers)} answers; pass one answer per question")
        features = self._image_features(images, len(questions))
        prompt_ids = self.tokenizer(self._understanding_prompts(questions))["input_ids"]
        # The assistant's reply follows "<|Assistant|>:" after a space and ends with EOS (DeepSeek's SFT format).
        answer_ids = [ids + [self.tokenizer.eos_token_id] for ids in
                      self.tokenizer([" " + a.strip() for a in answers], add_special_tokens=False)["input_ids"]]
        token_logprobs, mask = janus_understanding.answer_token_logprobs(
            self.hf_model, prompt_ids, answer_ids, features, self.tokenizer.pad_token_id)
        return AnswerScores(total_logprob=token_logprobs.sum(dim=1), token_logprobs=token_logprobs, token_mask=mask)

    # ---- training support ---------------------------------------------------------------------
    def freeze_for_training(self, train_understanding: bool) -> None:
        """Freeze the VQ tokenizer always, and the understanding encoder unless `train_understanding`."""
        self.hf_model.model.vqmodel.requires_grad_(False)
        for module in (self.hf_model.model.vision_model, self.hf_model.model.aligner):
            module.requires_grad_(train_understanding)

    # ---- checks -------------------------------------------------------------------------------
    def _check_image_tokens(self, image_tokens: torch.Tensor, batch_size: int | None = None,
                            allow_soft: bool = False) -> None:
        expected = (self.num_image_tokens, self.codebook_size) if allow_soft else (self.num_image_tokens,)
        shape = tuple(image_tokens.shape)
        ok = shape[1:] == expected[:1] or (allow_soft and shape[1:] == expected)
        if image_tokens.dim() < 2 or not ok or (batch_size is not None and shape[0] != batch_size):
            want = f"({batch_size or 'batch'}, {self.num_image_tokens})" + (
                f" or (batch, {self.num_image_tokens}, {self.codebook_size})" if allow_soft else "")
            raise UnirlError(f"image tokens have shape {shape}, expected {want} for this model")


def _settings_from(resolved: SamplingConfig) -> janus_sampling.ImageSamplingSettings:
    JanusModel.check_sampling_settings(resolved)
    return janus_sampling.ImageSamplingSettings(guidance_scale=float(resolved.guidance_scale),
                                          temperature=float(resolved.temperature), top_k=int(resolved.top_k),
                                          top_p=float(resolved.top_p), greedy=bool(resolved.greedy))


def _check_janus_folder(folder: Path) -> None:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UnirlError(f"'{folder}' has no config.json; pass a folder with a saved Janus model")
    config = json.loads(config_path.read_text())
    if "language_config" in config and "gen_vision_config" in config:
        raise UnirlError(f"'{folder}' is in DeepSeek's original Janus layout; convert it first with "
                         f"`unirl models convert-janus {folder} --out DIR`")
    if config.get("model_type") != "janus":
        raise UnirlError(f"'{folder}' holds a '{config.get('model_type')}' model, not Janus")


def _repair_generation_config(hf_model, tokenizer) -> None:
    """Restore what image-mode `generate` needs when a saved generation config dropped it on reload."""
    generation_config = hf_model.generation_config
    generation_config._from_model_config = False
    kwargs = dict(getattr(generation_config, "generation_kwargs", None) or {})
    legacy_boi = getattr(generation_config, "boi_token_id", None)  # where the conversion script puts it
    kwargs.setdefault("boi_token_id", legacy_boi if legacy_boi is not None else tokenizer.boi_token_id)
    generation_config.generation_kwargs = kwargs
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(generation_config, name, None) is None:
            setattr(generation_config, name, getattr(tokenizer, name))
