"""Guidance distillation for a shapes-world Show-o: its conditional branch learns what classifier-free guidance
samples, so the model samples without guidance (one forward pass a MaskGIT step instead of two).

A frozen copy of the model is the teacher. On Show-o's training states (renders of captions and training prompts
with a cosine-drawn share of the slots masked, as in pretraining) the student's conditional prediction at each
masked slot is pulled toward the teacher's guided one, (1 + w) c - w u, by the KL divergence KL(teacher || student);
a question batch each step keeps its answers where they were. The model's saved sampling default becomes w = 0.
`unirl world distill` runs it (docs/shapes-world.md, 'Guidance distilled into the conditional branch').
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from unirl_cli.errors import UnirlError


@dataclass
class DistillSettings:
    """Teacher guidance, data, budget and optimiser of one guidance-distillation stage."""

    minutes: float = 6.0
    guidance_scale: float = 1.0  # the teacher's w (Show-o's form); mini-showo samples at 1
    seed: int = 0
    learning_rate: float = 5e-4
    warmup_steps: int = 30
    t2i_batch_size: int = 16
    qa_batch_size: int = 16
    num_caption_scenes: int = 3000  # captions of random non-evaluation scenes
    num_prompt_scenes: int = 1000  # renders of training prompts
    num_question_scenes: int = 4000  # the reading stage's mix, answers in reading order
    max_steps: int = 100_000


def check_distill_settings(settings: DistillSettings) -> None:
    """UnirlError naming the first setting a run could not use."""
    if settings.guidance_scale <= 0:
        raise UnirlError(f"guidance {settings.guidance_scale} has nothing to distil; pass the teacher's w > 0, "
                         f"e.g. --guidance 1 (mini-showo's)")
    if settings.minutes <= 0 or settings.max_steps < 1:
        raise UnirlError("a distillation stage needs minutes > 0 and max_steps >= 1")


def guided_teacher_loss(teacher, guidance_scale: float):
    """The stage's text-to-image term: mean over masked slots of KL(teacher at w || model's conditional branch),
    on Show-o's training states of the given codes; `teacher` is a frozen copy of the model."""
    from unirl_cli.models.showo.model import cosine_masked_slots
    from unirl_cli.models.showo.sampling import MASKED

    def loss(model, prompts: list, codes: torch.Tensor, rng: random.Random) -> torch.Tensor:
        masked = cosine_masked_slots(*codes.shape, model.device)
        states = torch.where(masked, MASKED, codes.to(model.device))
        with torch.no_grad():
            target = F.log_softmax(teacher.state_logits(prompts, states, guidance_scale)[masked], dim=-1)
        student = F.log_softmax(model.state_logits(prompts, states, 0.0)[masked], dim=-1)
        return (target.exp() * (target - student)).sum(-1).mean()

    return loss


def distill_guidance(model, settings: DistillSettings,
                     log: Callable[[str], None] = print) -> tuple[int, float, list[dict]]:
    """Distil `model`'s guided sampling (a shapes-world Show-o, in place) into its conditional branch and make
    w = 0 its sampling default; returns (steps, seconds, history of the KL and answer losses)."""
    from unirl_cli.data.shapes.prompts import train_prompts
    from unirl_cli.world.lm_stage import CAPTION_PHASES, LmStage, build_caption_scenes, build_scenes, train_language_model
    from unirl_cli.world.reading import ReadingSettings, check_shapes_model, weighted_question_scenes

    check_distill_settings(settings)
    check_shapes_model(model)
    if model.family != "showo":
        raise UnirlError(f"guidance distillation trains a Show-o's masked-token branch; this is a {model.family} model")
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    started = time.time()
    t2i_scenes = (build_caption_scenes(model, settings.num_caption_scenes, CAPTION_PHASES[-1], rng)
                  + build_scenes(model, list(train_prompts()), settings.num_prompt_scenes, rng))
    questions = weighted_question_scenes(model, ReadingSettings(num_scenes=settings.num_question_scenes), rng)
    log(f"rendered and tokenised {len(t2i_scenes)} text-to-image and {len(questions)} question scenes "
        f"in {time.time() - started:.0f}s")
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    stage = LmStage("guidance distillation", settings.t2i_batch_size, settings.qa_batch_size, settings.learning_rate,
                    settings.warmup_steps, settings.minutes * 60, settings.max_steps)
    result = train_language_model(model, t2i_scenes, questions, stage, rng, log,
                                  image_loss=guided_teacher_loss(teacher, settings.guidance_scale))
    model.config.sampling = {**(model.config.sampling or {}), "guidance_scale": 0.0}
    return result
