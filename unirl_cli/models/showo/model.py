"""`ShowoModel`: Show-o (Phi-1.5 + MAGVIT-v2, masked image generation) behind the unirl model interface.

The language model is transformers' `PhiForCausalLM` with `qk_layernorm=True` and the vocabulary resized to
Show-o's joint vocabulary; it lives in `hf_model` so that its state dict (with the `showo.` prefix added) is
exactly the official checkpoint. Sampling and replay are in `sampling.py`, layouts and masks in
`prompting.py`, understanding in `understanding.py`, files in `checkpoint.py`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unirl_cli.config import SamplingConfig
from unirl_cli.errors import UnirlError
from unirl_cli.fileio import write_json_atomic
from unirl_cli.models.base import AnswerScores, ImageRollout, UnifiedModel
from unirl_cli.models.showo import checkpoint, understanding
from unirl_cli.models.showo.magvit import MagvitConfig, MagvitV2
from unirl_cli.models.showo.prompting import (ShowoVocab, add_showo_tokens, t2i_attention_mask, t2i_text_blocks,
                                              t2i_with_image)
from unirl_cli.models.showo.sampling import MASKED, replay_logprobs, sample_masked

# Published settings: README t2i demo at 512 px (w=5, 50 steps); README/demo at 256 px (w=1.75, 18 steps).
DEFAULTS_512 = dict(guidance_scale=5.0, temperature=1.0, num_steps=50)
DEFAULTS_256 = dict(guidance_scale=1.75, temperature=1.0, num_steps=18)


def build_phi(phi_config_dict: dict, vocab_size: int):
    """An empty-weight (meta) `PhiForCausalLM` shaped like Show-o's: qk_layernorm on, joint vocabulary, untied head."""
    from accelerate import init_empty_weights
    from transformers import PhiConfig, PhiForCausalLM

    config = PhiConfig.from_dict({**phi_config_dict, "qk_layernorm": True, "vocab_size": vocab_size,
                                  "tie_word_embeddings": False, "use_cache": False})
    # Show-o's masks are arbitrary boolean 4D masks: only SDPA (not eager addition) reads them correctly.
    config._attn_implementation = "sdpa"
    with init_empty_weights(include_buffers=False):
        return PhiForCausalLM(config)


def build_magvit(config: MagvitConfig) -> MagvitV2:
    """An empty-weight (meta) MAGVIT-v2 with real quantiser buffers."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return MagvitV2(config)


def cosine_masked_slots(batch: int, num_tokens: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Show-o's training mask (batch, num_tokens) of bools: per row round(N * cos(pi/2 * t)) slots (at least one),
    t ~ U(0, 1), drawn from torch's global generator."""
    ratios = torch.cos(torch.rand(batch, device=device) * math.pi / 2)
    num_masked = (ratios * num_tokens).round().clamp(min=1)[:, None]
    return torch.rand(batch, num_tokens, device=device).argsort(dim=-1) < num_masked


class ShowoModel(UnifiedModel):
    """Show-o v1 (MAGVIT variants): masked text-to-image generation and image question answering."""

    family = "showo"
    generation_kind = "masked"
    no_guidance_scale = 0.0  # Show-o's (1 + w) * cond - w * uncond is the conditional branch at w = 0

    def __init__(self, hf_model: torch.nn.Module, magvit: MagvitV2, tokenizer, config: checkpoint.ShowoConfig,
                 phi_config: dict):
        super().__init__()
        self.hf_model = hf_model
        self.magvit = magvit
        self.tokenizer = tokenizer
        self.config = config
        self.phi_config = phi_config
        self.max_text_length = config.max_text_length
        self.vocab = ShowoVocab.from_tokenizer(tokenizer, config.codebook_size, mask_id=config.vocab_size - 1)
        self._check_sizes()

    def _check_sizes(self) -> None:
        expected = self.vocab.image_offset + self.config.codebook_size + 1
        if expected != self.config.vocab_size:
            raise UnirlError(f"Show-o vocabulary mismatch: text tokenizer ({self.vocab.image_offset} ids with Show-o's "
                             f"tokens) + {self.config.codebook_size} codes + mask = {expected}, config says "
                             f"{self.config.vocab_size}; the tokenizer does not belong to this checkpoint")
        if self.magvit.config.codebook_size != self.config.codebook_size:
            raise UnirlError(f"MAGVIT codebook ({self.magvit.config.codebook_size}) differs from Show-o's "
                             f"codebook_size ({self.config.codebook_size}); wrong image tokenizer")
        if math.isqrt(self.config.num_vq_tokens) ** 2 != self.config.num_vq_tokens:
            raise UnirlError(f"num_vq_tokens {self.config.num_vq_tokens} is not a square grid")

    # ---- identity and sizes -------------------------------------------------------------------
    @property
    def num_image_tokens(self) -> int:
        return self.config.num_vq_tokens

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def image_size(self) -> int:
        """Side in pixels: sqrt(num_vq_tokens) tokens per side x MAGVIT's downsampling (16x16 -> 256, 32x32 -> 512)."""
        return math.isqrt(self.config.num_vq_tokens) * self.magvit.config.downsample_factor

    def default_sampling(self) -> SamplingConfig:
        """Show-o's published settings for this resolution (1024 tokens = 512 px; fewer = the 256 px settings),
        or the checkpoint's own (`unirl_sampling` in config.json) where it has them."""
        published = DEFAULTS_512 if self.num_image_tokens >= 1024 else DEFAULTS_256
        return SamplingConfig(**{**published, **(self.config.sampling or {})}, top_k=0, top_p=1.0, greedy=False)

    # ---- loading and saving -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> "ShowoModel":
        """Load a Show-o folder (hub snapshot, tiny model or checkpoint); see `checkpoint` for where parts come from."""
        from transformers import AutoTokenizer

        folder = Path(path)
        config = checkpoint.ShowoConfig.read(folder)
        phi_dir = checkpoint.find_phi_dir(folder, config.llm_model_path)
        magvit_dir = checkpoint.find_magvit_dir(folder)
        phi_config = json.loads((phi_dir / "config.json").read_text())
        tokenizer = AutoTokenizer.from_pretrained(str(phi_dir), padding_side="left")
        add_showo_tokens(tokenizer)

        hf_model = build_phi(phi_config, config.vocab_size)
        checkpoint.load_strict(hf_model, checkpoint.read_state_dict(folder), "showo.", folder)
        magvit_json = json.loads((magvit_dir / "config.json").read_text()) if (magvit_dir / "config.json").is_file() else {}
        magvit = build_magvit(MagvitConfig.from_dict(magvit_json))
        checkpoint.load_strict(magvit, checkpoint.read_state_dict(magvit_dir), "", magvit_dir)

        model = cls(hf_model, magvit, tokenizer, config, phi_config)
        model.hf_model.to(device=device, dtype=dtype)
        model.keep_rotary_float32()
        # The image tokenizer stays float32: it is small and never trained.
        model.magvit.to(device=device, dtype=torch.float32)
        return model.eval()

    def keep_rotary_float32(self) -> None:
        """Recompute RoPE's inverse frequencies in float32 after a dtype cast.

        `module.to(bfloat16)` also casts these buffers, and a bf16 frequency is off by up to 2**-9. At
        position 1000 that error amounts to radians. transformers computes the frequencies in float32 when
        it builds the model, so this restores what a freshly built model holds.
        """
        rotary = self.hf_model.model.rotary_emb
        if rotary.inv_freq.dtype == torch.float32 or rotary.rope_type != "default":
            return
        inv_freq, _ = rotary.compute_default_rope_parameters(rotary.config, rotary.inv_freq.device)
        rotary.inv_freq = inv_freq
        rotary.original_inv_freq = inv_freq.clone()

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self.keep_rotary_float32()
        return self

    def save(self, out_dir: str) -> None:
        """Write the official layout into `out_dir`: config.json, model.safetensors (`showo.` keys), magvit/, phi/."""
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.max_text_length = self.max_text_length
        checkpoint.save_safetensors({f"showo.{k}": v for k, v in self.hf_model.state_dict().items()},
                                    folder / "model.safetensors")
        checkpoint.save_safetensors(self.magvit.state_dict(), folder / "magvit" / "model.safetensors")
        write_json_atomic(folder / "magvit" / "config.json",
                          {"_class_name": "MAGVITv2", "_diffusers_version": checkpoint.DIFFUSERS_VERSION,
                           **self.magvit.config.to_dict()})
        checkpoint.save_phi_folder(folder, self.phi_config, self.tokenizer)
        write_json_atomic(folder / "config.json", self.config.to_json())

    # ---- the image branch ---------------------------------------------------------------------
    def _text_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else [] for text in prompts]

    def _code_logits_fn(self, prompts: Sequence[str], guidance_scale: float):
        """A `code_logits(rows, states)` for `sampling`, closing over the prompts' token ids."""
        cond_blocks = t2i_text_blocks(self._text_ids(prompts), self.vocab, self.max_text_length, self.device)
        uncond_block = t2i_text_blocks([[]], self.vocab, self.max_text_length, self.device)

        def code_logits(rows: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
            image_ids = torch.where(states == MASKED, self.vocab.mask_id, self.vocab.image_ids(states))
            cond_ids = t2i_with_image(cond_blocks[rows.to(self.device)], image_ids, self.vocab)
            if guidance_scale == 0:
                return self._image_code_logits(cond_ids)
            uncond_ids = t2i_with_image(uncond_block.expand(len(rows), -1), image_ids, self.vocab)
            cond, uncond = self._image_code_logits(torch.cat([cond_ids, uncond_ids])).chunk(2)
            # Show-o's (MUSE-style) guidance form, not uncond + w * (cond - uncond).
            return (1 + guidance_scale) * cond - guidance_scale * uncond

        return code_logits

    def _image_code_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """t2i sequences (n, L) -> float32 logits over the codebook at the image slots (n, N, K), unshifted."""
        num_tokens = self.num_image_tokens
        mask = t2i_attention_mask(input_ids, self.vocab)
        hidden = self.hf_model.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        hidden = hidden[:, -(num_tokens + 1):-1]  # (n, N, hidden): the logit of a slot is read at the slot itself
        codes = slice(self.vocab.image_offset, self.vocab.image_offset + self.codebook_size)
        head = self.hf_model.lm_head
        return F.linear(hidden, head.weight[codes], head.bias[codes]).float()

    @classmethod
    def check_sampling_settings(cls, sampling: SamplingConfig) -> None:
        """Show-o: no top-k/top-p, guidance >= 0 (0 = no CFG), num_steps >= 1, temperature >= 0."""
        if sampling.top_k or sampling.top_p < 1.0:
            raise UnirlError("Show-o's sampler has no top-k/top-p truncation; leave top_k=0 and top_p=1.0")
        if sampling.guidance_scale is not None and sampling.guidance_scale < 0:
            raise UnirlError(f"guidance_scale must be >= 0 for Show-o (0 = no guidance), got {sampling.guidance_scale}")
        if sampling.num_steps is not None and sampling.num_steps < 1:
            raise UnirlError(f"num_steps must be >= 1, got {sampling.num_steps}")
        if sampling.temperature is not None and sampling.temperature < 0:
            raise UnirlError(f"temperature must be >= 0, got {sampling.temperature}")

    def _check_sampling(self, sampling: SamplingConfig) -> None:
        self.check_sampling_settings(sampling)

    @torch.no_grad()
    def generate_images(self, prompts: Sequence[str], seeds: Sequence[int],
                        sampling: SamplingConfig | None = None) -> ImageRollout:
        """Sample one image per prompt with Show-o's MaskGIT sampler; `token_logprobs` is per step (B, num_steps)."""
        if len(prompts) != len(seeds) or not prompts:
            raise UnirlError(f"need one seed per prompt, got {len(prompts)} prompts and {len(seeds)} seeds")
        sampling = self.resolve_sampling(sampling)
        self._check_sampling(sampling)
        generators = [torch.Generator(device=self.device).manual_seed(int(seed)) for seed in seeds]
        trajectory = sample_masked(self._code_logits_fn(prompts, sampling.guidance_scale), len(prompts),
                                   self.num_image_tokens, sampling.num_steps, sampling.temperature, generators,
                                   self.device, greedy=sampling.greedy,
                                   score_remasked=sampling.masked_transition == "remasked")
        return ImageRollout(prompts=list(prompts), seeds=[int(s) for s in seeds], image_tokens=trajectory.codes,
                            token_logprobs=trajectory.step_logprobs, guidance_scale=sampling.guidance_scale,
                            temperature=sampling.temperature, commit_step=trajectory.commit_step,
                            remask_threshold=trajectory.remask_threshold,
                            extras={"num_steps": sampling.num_steps, "max_text_length": self.max_text_length})

    def image_logprobs(self, rollout: ImageRollout, guidance_scale: float | None = None,
                       micro_batch_size: int | None = None, steps: Sequence[int] | None = None) -> torch.Tensor:
        """Replay each step's masked state: differentiable (B, num_steps) log-probs; 0.0 = no guidance for Show-o.

        `micro_batch_size` counts (image, step) states per forward pass. With `steps`, only those steps are
        replayed (the others are 0 without gradient), so the GRPO loss, a sum over steps, can be
        back-propagated a few steps at a time instead of holding all num_steps graphs at once.
        """
        self._check_rollout(rollout)
        guidance = rollout.guidance_scale if guidance_scale is None else guidance_scale
        rollout = rollout.to(self.device)
        return replay_logprobs(self._code_logits_fn(rollout.prompts, guidance), rollout.image_tokens,
                               rollout.commit_step, rollout.token_logprobs.shape[1], micro_batch_size, steps,
                               rollout.remask_threshold)

    def _check_rollout(self, rollout: ImageRollout) -> None:
        if rollout.commit_step is None:
            raise UnirlError("this rollout has no commit_step; it was not sampled by a masked (Show-o) model")
        expected = (len(rollout), self.num_image_tokens)
        if tuple(rollout.image_tokens.shape) != expected or tuple(rollout.commit_step.shape) != expected:
            raise UnirlError(f"rollout tokens have shape {tuple(rollout.image_tokens.shape)}, this model needs "
                             f"{expected}; the rollout comes from a different model")

    def image_logits(self, prompts: Sequence[str], image_tokens: torch.Tensor) -> torch.Tensor:
        """The single-pass, all-masked conditional prediction (B, N, codebook_size); `image_tokens` fixes B and N."""
        if image_tokens.shape != (len(prompts), self.num_image_tokens):
            raise UnirlError(f"image_tokens must have shape ({len(prompts)}, {self.num_image_tokens}), "
                             f"got {tuple(image_tokens.shape)}")
        return self.state_logits(prompts, torch.full_like(image_tokens, MASKED, dtype=torch.long, device=self.device))

    def state_logits(self, prompts: Sequence[str], states: torch.Tensor, guidance_scale: float = 0.0) -> torch.Tensor:
        """Logits over the codebook (B, N, codebook_size) at every slot of partly masked grids `states` (B, N)
        (`sampling.MASKED` marks an open slot), as the sampler computes them at `guidance_scale` (0 = conditional)."""
        if states.shape != (len(prompts), self.num_image_tokens):
            raise UnirlError(f"states must have shape ({len(prompts)}, {self.num_image_tokens}), got {tuple(states.shape)}")
        rows = torch.arange(len(prompts), device=self.device)
        return self._code_logits_fn(prompts, guidance_scale)(rows, states.to(self.device))

    def image_token_loss(self, prompts: Sequence[str], image_tokens: torch.Tensor,
                         unconditional: torch.Tensor) -> torch.Tensor:
        """Show-o's MaskGIT training loss: per row, mask round(N * cos(pi/2 * t)) slots (at least one) with
        t ~ U(0, 1) from torch's global generator, cross-entropy over the codebook on the masked slots only;
        `unconditional` rows get the empty prompt (Show-o's condition dropout)."""
        codes = self.check_image_tokens(image_tokens).to(self.device)
        if len(prompts) != len(codes):
            raise UnirlError(f"got {len(prompts)} prompts for {len(codes)} images; pass one prompt per image")
        masked = cosine_masked_slots(*codes.shape, self.device)
        texts = ["" if drop else prompt for prompt, drop in zip(prompts, unconditional.tolist())]
        blocks = t2i_text_blocks(self._text_ids(texts), self.vocab, self.max_text_length, self.device)
        image_ids = torch.where(masked, self.vocab.mask_id, self.vocab.image_ids(codes))
        logits = self._image_code_logits(t2i_with_image(blocks, image_ids, self.vocab))
        return F.cross_entropy(logits[masked], codes[masked])

    # ---- pixels <-> tokens --------------------------------------------------------------------
    def check_image_tokens(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """`image_tokens` on MAGVIT's device as int64, after checking shape (B, N) and range (else `UnirlError`)."""
        if image_tokens.dim() != 2 or image_tokens.shape[1] != self.num_image_tokens:
            raise UnirlError(f"image tokens must have shape (batch, {self.num_image_tokens}), got {tuple(image_tokens.shape)}")
        if image_tokens.numel() and (image_tokens.min() < 0 or image_tokens.max() >= self.codebook_size):
            raise UnirlError(f"image tokens must lie in 0..{self.codebook_size - 1}")
        return image_tokens.to(device=self.magvit.quantize.embedding.device, dtype=torch.long)

    @torch.no_grad()
    def decode_images(self, image_tokens: torch.Tensor) -> list[Image.Image]:
        """Codebook indices (B, N) -> RGB PIL images of `image_size` pixels."""
        pixels = self.magvit.decode(self.check_image_tokens(image_tokens))
        # Truncating to uint8 (not rounding) as Show-o's inference scripts do, so images match byte for byte.
        pixels_255 = ((pixels.float() + 1) / 2).clamp(0, 1).mul(255).to(torch.uint8)
        return [Image.fromarray(array) for array in pixels_255.permute(0, 2, 3, 1).cpu().numpy()]

    def pixels_from_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, 3, S, S) in [-1, 1]: bicubic resize of the short side to S, centre crop (Show-o's)."""
        size, batch = self.image_size, []
        for image in images:
            image = image.convert("RGB")
            # torchvision's Resize(size) on PIL (long side truncated) and CenterCrop (offsets rounded).
            short, long = sorted(image.size)
            new_long = int(size * long / short)
            new_size = (size, new_long) if image.width <= image.height else (new_long, size)
            resized = image.resize(new_size, Image.BICUBIC)
            left, top = int(round((resized.width - size) / 2.0)), int(round((resized.height - size) / 2.0))
            array = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
            batch.append(torch.from_numpy(array).permute(2, 0, 1))
        return torch.stack(batch) * 2 - 1

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB PIL images -> codebook indices (B, N) via MAGVIT-v2."""
        weight = self.magvit.encoder.conv_in.weight
        pixels = self.pixels_from_images(images).to(device=weight.device, dtype=weight.dtype)
        return self.magvit.encode(pixels).to(self.device)

    # ---- understanding ------------------------------------------------------------------------
    @torch.no_grad()
    def answer_questions(self, images, questions: Sequence[str], max_new_tokens: int = 32, greedy: bool = True,
                         temperature: float = 1.0, seeds: Sequence[int] | None = None) -> list[str]:
        """Answer `questions[i]` about image i, batched with a KV cache; see `understanding.answer_questions`."""
        return understanding.answer_questions(self, images, questions, max_new_tokens, greedy, temperature, seeds)

    def answer_logprobs(self, images, questions: Sequence[str], answers: Sequence[str]) -> AnswerScores:
        """Differentiable answer log-likelihoods; images may be soft (B, N, K); see `understanding.answer_logprobs`."""
        return understanding.answer_logprobs(self, images, questions, answers)

    # ---- training support ---------------------------------------------------------------------
    def freeze_for_training(self, train_understanding: bool) -> None:
        """Freeze MAGVIT. Show-o shares every Phi weight between generation and understanding, so the LLM stays
        trainable whatever `train_understanding` says."""
        self.magvit.requires_grad_(False)
        self.magvit.eval()
        self.hf_model.requires_grad_(True)

    def train(self, mode: bool = True) -> "ShowoModel":
        super().train(mode)
        self.magvit.eval()  # no dropout or batch statistics, but keep it in eval like the official code
        return self
