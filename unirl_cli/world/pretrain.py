"""`unirl world pretrain`: train a shapes-world mini from scratch on rendered scenes (`mini`, a Janus: VQ
tokenizer, understanding encoder, the LM on both tasks, a reading stage that widens understanding to the whole world, then a truthful
reading stage in which half the questions are about random scenes, answered with what they show, then a
caption stage: text-to-image on captions of random scenes, most of them in one colour, which is what makes
the generator compose a colour word with a shape it never saw it with; and last two focused reading stages,
`world.reading`, mostly position and colour-attribution questions, each on its own budget: answers in the
prompt's order, then in reading order). `mini-showo` (`family="showo"`) runs the same stages with a MAGVIT-v2
tokenizer first and no understanding encoder (Show-o reads its own image codes), its text-to-image loss
being Show-o's masked-token loss.

The language model learns both directions through the `UnifiedModel` interface itself, so pretraining uses
exactly the prompt formats that generation, understanding and RL use later: text-to-image is cross-entropy of
the generation head on the VQ codes of a correct render (10% of prompts dropped to the unconditional prompt,
which classifier-free guidance needs); understanding is the answer likelihood (`answer_logprobs`) of the
prompt's question about its render or about the VQ reconstruction of it (what the model sees of its own images).
The reading stage asks about every non-evaluation scene of the world (not only the training prompts), with
more questions than images per step, so that the model can judge its own multi-object images.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from unirl_cli.world.lm_stage import (CAPTION_PHASES, LmStage, Scene, build_caption_scenes, build_scenes,
                                      build_truthful_scenes, reading_records, train_language_model,
                                      understanding_records)
from unirl_cli.data.shapes.prompts import train_prompts
from unirl_cli.world.reading import ReadingSettings
from unirl_cli.world.vision_train import train_vision_encoder, whiten_into_aligner
from unirl_cli.world.vq_train import train_vq


@dataclass
class PretrainSettings:
    """Budget and optimiser of one pretraining run (defaults: the shipped `mini`; `showo_settings()`: mini-showo's)."""

    family: str = "janus"  # "janus" (mini) or "showo" (mini-showo)
    seed: int = 0
    minutes: float = 62.0  # the shares below give the stages the minutes the shipped mini's had
    vq_share: float = 0.16  # of the time budget
    vision_share: float = 0.024
    reading_share: float = 0.129  # the LM on both tasks gets what the other stages leave
    truthful_share: float = 0.097  # the fifth stage: reading again, half of it questions about random scenes
    caption_share: float = 0.29  # the last stage: text-to-image on captions of random scenes (18 min)
    num_scenes: int = 3000  # per task for the LM stage
    batch_size: int = 16
    learning_rate: float = 2e-3
    # The LM stage trains the fresh encoder and aligner at this share of `learning_rate`: at the full rate the
    # image path lost shape within minutes in a fresh run (docs/shapes-world.md, 'The mini model').
    understanding_lr_scale: float = 0.1
    num_reading_scenes: int = 12000
    reading_qa_batch_size: int = 32
    reading_t2i_batch_size: int = 8  # keeps text-to-image from drifting while understanding trains
    reading_learning_rate: float = 1e-3
    truthful_questions: float = 0.5  # of the last stage's scenes: random scenes, answered with what they show
    max_lm_steps: int = 100_000
    max_vq_steps: int = 100_000
    max_vision_steps: int = 100_000
    max_reading_steps: int = 100_000
    num_caption_scenes: int = 12000  # text-to-image scenes per caption phase
    caption_phases: tuple = field(default_factory=lambda: CAPTION_PHASES)
    caption_t2i_batch_size: int = 32
    caption_qa_batch_size: int = 8  # keeps understanding from drifting while the generator trains
    # The seventh stage (`world.reading`), its own budget on top of `minutes`; its seed is offset by `seed`.
    # Its answers name objects in the prompt's order, as in the run that made the shipped mini's stages 1-7.
    reading_focus: ReadingSettings = field(
        default_factory=lambda: ReadingSettings(minutes=12.0, seed=21, answer_order="prompt"))
    # The eighth stage: the same mix with answers naming objects in reading order (docs/shapes-world.md, finding 11).
    reading_order: ReadingSettings = field(default_factory=ReadingSettings)
    # mini-showo's last stage: its MAGVIT decoder alone on whole scenes (0 skips it; Janus's VQ needs none).
    decoder_minutes: float = 0.0


FAMILIES = ("janus", "showo")


def showo_settings(**changes) -> PretrainSettings:
    """mini-showo's pretraining: the Janus stages without the understanding encoder (vision_share 0), on a
    shorter budget (measured: docs/shapes-world.md, 'mini-showo'); `changes` override any field."""
    defaults = dict(family="showo", minutes=40.0, vision_share=0.0, vq_share=0.1,
                    reading_focus=ReadingSettings(minutes=6.0, seed=21, answer_order="prompt"),
                    reading_order=ReadingSettings(minutes=6.0), decoder_minutes=6.0)
    return PretrainSettings(**{**defaults, **changes})


@dataclass
class StageRecord:
    """What one pretraining stage did: steps, seconds, and its last losses or accuracy."""

    name: str
    steps: int
    seconds: float
    metrics: dict = field(default_factory=dict)

    def summary(self) -> str:
        """"lm 1200 steps (8.0 min), image_loss 0.210, answer_loss 0.300"."""
        values = "".join(f", {key} {value:.3f}" for key, value in self.metrics.items())
        return f"{self.name} {self.steps} steps ({self.seconds / 60:.1f} min){values}"


@dataclass
class PretrainReport:
    """What a pretraining run did, written next to the weights as `pretrain_report.json`."""

    settings: dict
    stages: list[StageRecord] = field(default_factory=list)
    history: list = field(default_factory=list)

    def stage(self, name: str) -> StageRecord | None:
        """The record of the stage called `name`, or None if it did not run."""
        return next((record for record in self.stages if record.name == name), None)

    def add(self, name: str, steps: int, seconds: float, history: list[dict], *keys: str) -> None:
        """Record a language-model stage: its steps, time and the last logged value of each of `keys`."""
        self.stages.append(StageRecord(name, steps, seconds, {key: _last_loss(history, key) for key in keys}))
        self.history += history


def read_stage(model, t2i_scenes: list[Scene], settings: PretrainSettings, seconds: float, truthful_share: float,
               name: str, log: Callable[[str], None]) -> tuple[int, float, list[dict]]:
    """A reading stage: questions about the whole non-evaluation world (a `truthful_share` of them about random
    scenes, answered with what they show), a few text-to-image examples; returns (steps, seconds, history)."""
    rng = random.Random(settings.seed + 2)
    truthful = round(settings.num_reading_scenes * truthful_share)
    reading_scenes = (build_scenes(model, reading_records(), settings.num_reading_scenes - truthful, rng)
                      + build_truthful_scenes(model, truthful, rng))
    stage = LmStage(name, settings.reading_t2i_batch_size, settings.reading_qa_batch_size,
                    settings.reading_learning_rate, 30, max(seconds, 1.0), settings.max_reading_steps)
    return train_language_model(model, t2i_scenes, reading_scenes, stage, rng, log)


def caption_stage(model, settings: PretrainSettings, seconds: float,
                  log: Callable[[str], None]) -> tuple[int, float, list[dict]]:
    """Text-to-image on captions of random scenes (and some training prompts), with reading questions (half
    about random scenes) so understanding stays, in `settings.caption_phases`; returns (steps, seconds, history)."""
    steps, spent, history = 0, 0.0, []
    for index, phase in enumerate(settings.caption_phases):
        rng = random.Random(settings.seed + 3 + index)
        captions = round(settings.num_caption_scenes * phase.caption_share)
        t2i_scenes = (build_caption_scenes(model, captions, phase, rng)
                      + build_scenes(model, list(train_prompts()), settings.num_caption_scenes - captions, rng))
        qa_count = settings.num_caption_scenes // 4
        qa_scenes = build_scenes(model, reading_records(), qa_count, rng) + build_truthful_scenes(model, qa_count, rng)
        stage = LmStage(f"caption{index + 1}", settings.caption_t2i_batch_size, settings.caption_qa_batch_size,
                        phase.learning_rate, 30, max(seconds * phase.time_share, 1.0), settings.max_reading_steps)
        phase_steps, phase_seconds, phase_history = train_language_model(model, t2i_scenes, qa_scenes, stage, rng, log)
        steps, spent, history = steps + phase_steps, spent + phase_seconds, history + phase_history
    return steps, spent, history


def _last_loss(history: list[dict], key: str) -> float:
    return history[-1][key] if history else float("nan")


def pretrain_mini(out_dir: str | Path, settings: PretrainSettings | None = None,
                  log: Callable[[str], None] = print) -> PretrainReport:
    """Build the mini of `settings.family`; train its image tokenizer (and, for Janus, its understanding
    encoder, then whitened into the aligner), then its LM, within `settings.minutes`; then the two focused
    reading stages in their own minutes (answers in the prompt's order, then in reading order); save to
    `out_dir` with `pretrain_report.json`."""
    settings = settings or PretrainSettings()
    if settings.family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {settings.family!r}")
    report = PretrainReport(settings=asdict(settings))
    total_seconds = settings.minutes * 60
    torch.manual_seed(settings.seed)
    model = _tokenizer_stages(settings, report, log)
    rng = random.Random(settings.seed)
    data_start = time.time()
    t2i_scenes = build_scenes(model, list(train_prompts()), settings.num_scenes, rng)
    qa_scenes = build_scenes(model, understanding_records(), settings.num_scenes, rng)
    log(f"rendered and tokenised {2 * settings.num_scenes} scenes in {time.time() - data_start:.0f}s")
    reading_seconds = settings.reading_share * total_seconds
    truthful_seconds = settings.truthful_share * total_seconds
    caption_seconds = settings.caption_share * total_seconds
    spent = sum(record.seconds for record in report.stages)
    remaining = (total_seconds - spent - (time.time() - data_start)
                 - reading_seconds - truthful_seconds - caption_seconds)
    lm = LmStage("lm", settings.batch_size, settings.batch_size, settings.learning_rate, 50, max(remaining, 1.0),
                 settings.max_lm_steps, settings.understanding_lr_scale)
    report.add("lm", *train_language_model(model, t2i_scenes, qa_scenes, lm, random.Random(settings.seed + 1), log),
               "image_loss", "answer_loss")
    report.add("reading", *read_stage(model, t2i_scenes, settings, reading_seconds, 0.0, "reading", log),
               "answer_loss")
    report.add("truthful", *read_stage(model, t2i_scenes, settings, truthful_seconds, settings.truthful_questions,
                                       "truthful", log), "answer_loss")
    if caption_seconds > 0:
        report.add("captions", *caption_stage(model, settings, caption_seconds, log), "image_loss")
    from unirl_cli.world.reading import focused_reading

    if settings.reading_focus.minutes > 0:
        focus = replace(settings.reading_focus, seed=settings.seed + settings.reading_focus.seed)
        report.add("focused reading", *focused_reading(model, focus, log), "answer_loss")
    if settings.reading_order.minutes > 0:
        stage = replace(settings.reading_order, seed=settings.seed + settings.reading_order.seed)
        report.add("reading order", *focused_reading(model, stage, log, "reading order"), "answer_loss")
    if settings.family == "showo" and settings.decoder_minutes > 0:
        report.stages.append(decoder_stage(model, settings.decoder_minutes, settings.seed, log))
    model.save(str(out_dir))
    (Path(out_dir) / "pretrain_report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


def decoder_stage(model, minutes: float, seed: int, log: Callable[[str], None]) -> StageRecord:
    """Train a Show-o's MAGVIT decoder alone for `minutes` (`world.magvit_train.train_magvit_decoder`); its record."""
    from unirl_cli.world.magvit_train import train_magvit_decoder

    result = train_magvit_decoder(model.magvit, minutes * 60, seed=seed, log=log)
    record = StageRecord("decoder", result.steps, result.seconds,
                         {"reconstruction_loss": result.reconstruction_loss,
                          "decoded_scene_accuracy": result.decoded_scene_accuracy})
    log(record.summary())
    return record


def _tokenizer_stages(settings: PretrainSettings, report: PretrainReport, log: Callable[[str], None]):
    """The untrained mini with its image tokenizer trained (Janus: and its understanding encoder, whitened into
    the aligner), both recorded in `report`; returns the `UnifiedModel`."""
    total_seconds = settings.minutes * 60
    if settings.family == "showo":
        from unirl_cli.world.magvit_train import train_magvit
        from unirl_cli.models.showo.mini import build_untrained_mini_showo

        model = build_untrained_mini_showo(settings.seed)
        result = train_magvit(model.magvit, settings.max_vq_steps, settings.vq_share * total_seconds,
                              seed=settings.seed, log=log)
        report.stages.append(StageRecord("magvit", result.steps, result.seconds,
                                         {"code_accuracy": result.code_accuracy}))
        log(report.stages[-1].summary())
        return model.eval()
    from unirl_cli.models.janus import JanusModel
    from unirl_cli.models.janus.mini import build_untrained_mini

    hf_model, processor = build_untrained_mini(settings.seed)
    vq_result = train_vq(hf_model.model.vqmodel, settings.max_vq_steps, settings.vq_share * total_seconds,
                         seed=settings.seed, log=log)
    report.stages.append(StageRecord("vq", vq_result.steps, vq_result.seconds,
                                     {"code_accuracy": vq_result.code_accuracy}))
    log(report.stages[-1].summary())
    vision_result = train_vision_encoder(hf_model.model.vision_model, hf_model.model.vqmodel,
                                         settings.vision_share * total_seconds, settings.max_vision_steps,
                                         seed=settings.seed, log=log)
    whiten_into_aligner(hf_model.model.vision_model, hf_model.model.aligner, seed=settings.seed)
    report.stages.append(StageRecord("vision", vision_result.steps, vision_result.seconds,
                                     {"patch_accuracy": vision_result.patch_accuracy}))
    log(report.stages[-1].summary())
    return JanusModel(hf_model.eval(), processor)
