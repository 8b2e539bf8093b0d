"""The one small interface every model family implements (Janus in janus.py, Show-o in showo/).

Trainers and the evaluator talk only to `UnifiedModel`. A backend is an `nn.Module` that owns the
Hugging Face / own model as the submodule `hf_model`, so `accelerate.prepare` can wrap it in DDP/FSDP;
the differentiable entry points are reached through `forward(task, ...)` so that DDP sees the call
and all-reduces the gradients (calling a method on the unwrapped module silently skips that).

Image tokens are codebook indices (0..codebook_size-1), row-major over the token grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Optional, Sequence

import torch
from PIL import Image

from unirl_cli.config import SamplingConfig


@dataclass
class ImageRollout:
    """Sampled images of one `generate_images` call, with what GRPO needs to re-score them.

    `token_logprobs` holds one log-probability per *policy action*, under the exact distribution it was
    sampled from: per image token for autoregressive models (S = num_image_tokens), per sampling step
    for masked models (S = num_steps; each entry sums the log-probs of the tokens committed that step).
    """

    prompts: list[str]
    seeds: list[int]
    image_tokens: torch.Tensor  # (batch, num_image_tokens) int64
    token_logprobs: torch.Tensor  # (batch, num_actions) float32, detached
    guidance_scale: float
    temperature: float
    top_k: int = 0
    top_p: float = 1.0
    # Masked generators only: the step at which each token was committed, (batch, num_image_tokens) int64.
    commit_step: Optional[torch.Tensor] = None
    # Masked generators sampled with masked_transition=remasked: each step's lowest committed probability,
    # (batch, num_steps) float32; its replay then scores the re-masked slots too.
    remask_threshold: Optional[torch.Tensor] = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, indices: Sequence[int]) -> "ImageRollout":
        """The sub-rollout of rows `indices` (for micro-batching)."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return replace(
            self,
            prompts=[self.prompts[i] for i in indices],
            seeds=[self.seeds[i] for i in indices],
            image_tokens=self.image_tokens[index],
            token_logprobs=self.token_logprobs[index],
            commit_step=None if self.commit_step is None else self.commit_step[index],
            remask_threshold=None if self.remask_threshold is None else self.remask_threshold[index],
        )

    def to(self, device: torch.device | str) -> "ImageRollout":
        """The same rollout with its tensors on `device`."""
        return replace(
            self,
            image_tokens=self.image_tokens.to(device),
            token_logprobs=self.token_logprobs.to(device),
            commit_step=None if self.commit_step is None else self.commit_step.to(device),
            remask_threshold=None if self.remask_threshold is None else self.remask_threshold.to(device),
        )


@dataclass
class AnswerScores:
    """Differentiable log-likelihood of given answers: summed over answer tokens, and per token."""

    total_logprob: torch.Tensor  # (batch,) sum over answer tokens
    token_logprobs: torch.Tensor  # (batch, max_answer_tokens), 0 where mask is 0
    token_mask: torch.Tensor  # (batch, max_answer_tokens) 1 for real answer tokens


# An image handed to understanding: PIL images, hard token ids (batch, N), or soft/one-hot token
# vectors (batch, N, codebook_size) through which gradients flow back into the generator.
ImageInput = Any


class UnifiedModel(torch.nn.Module):
    """A model that both generates images and answers questions about them."""

    family: ClassVar[str] = ""
    # Whether sampling is autoregressive over tokens ("ar") or MaskGIT-style over steps ("masked").
    generation_kind: ClassVar[str] = "ar"
    # The guidance scale that turns CFG off, i.e. scores the conditional branch alone (Janus 1.0, Show-o 0.0).
    no_guidance_scale: ClassVar[float] = 1.0

    hf_model: torch.nn.Module

    # ---- identity and sizes -------------------------------------------------------------------
    @property
    def num_image_tokens(self) -> int:
        raise NotImplementedError

    @property
    def codebook_size(self) -> int:
        raise NotImplementedError

    @property
    def image_size(self) -> int:
        """Side length in pixels of generated images."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def default_sampling(self) -> SamplingConfig:
        """The family's published sampling settings with every `None` filled in."""
        raise NotImplementedError

    @classmethod
    def check_sampling_settings(cls, sampling: SamplingConfig) -> None:
        """Raise a one-line UnirlError for set (non-None) values this family cannot sample with; needs no
        weights, so callers check before loading."""

    def resolve_sampling(self, sampling: SamplingConfig | None) -> SamplingConfig:
        """`sampling` with each unset (`None`) field taken from `default_sampling()`."""
        defaults = self.default_sampling()
        if sampling is None:
            return defaults
        filled = {k: (v if v is not None else getattr(defaults, k)) for k, v in vars(sampling).items()}
        return SamplingConfig(**filled)

    # ---- loading and saving -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> "UnifiedModel":
        """Load from a local folder in this family's saved layout (hub download happens before this)."""
        raise NotImplementedError

    def save(self, out_dir: str) -> None:
        """Save weights (safetensors), configs and tokenizer so that `load(out_dir)` restores the model."""
        raise NotImplementedError

    # ---- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate_images(self, prompts: Sequence[str], seeds: Sequence[int],
                        sampling: SamplingConfig | None = None) -> ImageRollout:
        """Sample one image per prompt; row i uses its own generator seeded with `seeds[i]`.

        A row depends only on its prompt, seed and settings, not on the batch it was sampled in
        (up to float round-off), so any image can be reproduced alone.
        """
        raise NotImplementedError

    def image_logprobs(self, rollout: ImageRollout, guidance_scale: float | None = None,
                       micro_batch_size: int | None = None) -> torch.Tensor:
        """Teacher-forced, differentiable log-probs of the rollout's actions, shape like `token_logprobs`.

        With `guidance_scale=None` the rollout's own guidance is used (so the result equals
        `rollout.token_logprobs` up to float noise); pass the family's "no CFG" value to score the
        conditional branch alone. Top-k/top-p truncation is not applied (full-softmax log-probs).
        """
        raise NotImplementedError

    def image_logits(self, prompts: Sequence[str], image_tokens: torch.Tensor) -> torch.Tensor:
        """Differentiable generation logits (batch, num_image_tokens, codebook_size), conditional branch.

        For the straight-through Gumbel-softmax SFT path: AR models teacher-force `image_tokens`; masked
        models return the single-pass all-masked prediction.
        """
        raise NotImplementedError

    def image_token_loss(self, prompts: Sequence[str], image_tokens: torch.Tensor,
                         unconditional: torch.Tensor) -> torch.Tensor:
        """The family's own text-to-image training loss: mean cross-entropy of the generation head on
        `image_tokens` (batch, N) given the prompts, rows where `unconditional` (batch,) bool is True given the
        empty prompt that classifier-free guidance uses (AR models: teacher forcing; masked models: a random
        masking of each row, loss on the masked slots)."""
        raise NotImplementedError

    @torch.no_grad()
    def decode_images(self, image_tokens: torch.Tensor) -> list[Image.Image]:
        """Decode (batch, num_image_tokens) codebook indices to RGB PIL images."""
        raise NotImplementedError

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Quantise RGB PIL images to (batch, num_image_tokens) codebook indices."""
        raise NotImplementedError

    # ---- understanding ------------------------------------------------------------------------
    @torch.no_grad()
    def answer_questions(self, images: ImageInput, questions: Sequence[str], max_new_tokens: int = 32,
                         greedy: bool = True, temperature: float = 1.0,
                         seeds: Sequence[int] | None = None) -> list[str]:
        """Answer `questions[i]` about image i (PIL images or token ids), batched; returns stripped text."""
        raise NotImplementedError

    def answer_logprobs(self, images: ImageInput, questions: Sequence[str], answers: Sequence[str]) -> AnswerScores:
        """Differentiable log-likelihood of `answers[i]` given image i and `questions[i]`.

        `images` may be PIL images, token ids (batch, N), or soft token vectors (batch, N, codebook_size)
        (e.g. a straight-through Gumbel-softmax sample) through which gradients reach the generator.
        """
        raise NotImplementedError

    # ---- training support ---------------------------------------------------------------------
    def freeze_for_training(self, train_understanding: bool) -> None:
        """Freeze the modules training never updates (e.g. VQ tokenizer), so DDP sees no unused params."""
        raise NotImplementedError

    def forward(self, task: str, *args: Any, **kwargs: Any) -> Any:
        """Dispatch to a differentiable entry point so DDP/FSDP wrappers see the call.

        `task` is one of "image_logprobs", "image_logits", "answer_logprobs", "image_token_loss".
        """
        if task not in ("image_logprobs", "image_logits", "answer_logprobs", "image_token_loss"):
            raise ValueError(f"unknown task {task!r}")
        return getattr(self, task)(*args, **kwargs)
