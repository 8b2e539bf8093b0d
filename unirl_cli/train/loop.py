"""The training driver behind `unirl train grpo|sft`: one process or many under `accelerate launch`.

Each process loads the policy, takes its share of every step's prompts (a pure function of seed, step
and rank), and updates through the accelerate-prepared module, so the same code runs single-process,
DDP (gloo on CPU, NCCL on GPUs), DeepSpeed ZeRO-2 or FSDP.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from unirl_cli.config import config_to_dict, save_config
from unirl_cli.errors import UnirlError
from unirl_cli.extras import missing_extra_error, missing_training_extras
from unirl_cli.models.base import UnifiedModel
from unirl_cli.train import checkpoint as ckpt
from unirl_cli.train.config import TrainConfig, config_problems
from unirl_cli.train.context import RunContext, average_over_processes
from unirl_cli.train.distributed import (configure_deepspeed, deepspeed_requested, fsdp_active, full_parameters,
                                         micro_batches_per_update)
from unirl_cli.train.policy import (Reference, TrainingModule, apply_lora, build_optimizer, build_scheduler,
                                    disable_dropout)
from unirl_cli.train.prompts import load_training_prompts, prompts_for_step, shard_for_rank
from unirl_cli.train.rewards import RewardFunction, build_reward
from unirl_cli.train.tracking import LiveView, MetricsLog, plot_curves, save_sample_grid


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    output_dir: Path
    last_checkpoint: Path | None
    metrics: list[dict] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    policy: UnifiedModel | None = None  # the trained model of this process (unwrapped)


def make_accelerator(config: TrainConfig):
    """An Accelerator; `cpu=True` without CUDA, else torch.distributed never starts under torchrun on CPU."""
    from accelerate import Accelerator, DistributedDataParallelKwargs

    ddp_kwargs = DistributedDataParallelKwargs(find_unused_parameters=config.ddp_find_unused_parameters)
    accumulation = 1
    if deepspeed_requested():
        world = int(os.environ.get("WORLD_SIZE", "1"))
        accumulation = micro_batches_per_update(config.prompts_per_step * config.group_size // world,
                                                config.micro_batch_size)
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=config.mixed_precision,
                       log_with=None if config.log.report_to == "none" else config.log.report_to,
                       project_dir=config.output_dir, kwargs_handlers=[ddp_kwargs],
                       gradient_accumulation_steps=accumulation)


def check_training_extras(config: TrainConfig) -> None:
    """One line naming the first optional package this run needs and lacks (LoRA, DeepSpeed, a tracker)."""
    missing = missing_training_extras(config.lora.r, config.log.report_to, deepspeed_requested())
    if missing:
        raise missing_extra_error(missing[0])


def check_processes(config: TrainConfig, state: dict | None, checkpoint: Path | None, world: int) -> None:
    """One-line errors when the process count cannot continue the checkpoint or split the step's prompts."""
    if state and state.get("num_processes", world) != world:
        raise UnirlError(f"checkpoint '{checkpoint}' was written by {state['num_processes']} process(es), this run has "
                         f"{world}; resume with --num_processes {state['num_processes']} so it continues exactly")
    if config.prompts_per_step % world:
        raise UnirlError(f"prompts_per_step={config.prompts_per_step} does not split over {world} processes; "
                         f"use a multiple of {world}")


def check_resume_matches(config: TrainConfig, state: dict, checkpoint: Path) -> None:
    """One-line errors when a checkpoint belongs to another method, model or LoRA setting."""
    if state.get("method") != config.method:
        raise UnirlError(f"checkpoint '{checkpoint}' is from `unirl train {state.get('method')}`, not "
                         f"{config.method}; resume it with the same subcommand")
    if config.model not in (state.get("base_model"), str(checkpoint)):
        raise UnirlError(f"checkpoint '{checkpoint}' was trained from model '{state.get('base_model')}', not "
                         f"'{config.model}'; drop --model or pass the original one")
    if bool(state.get("lora")) != (config.lora.r > 0):
        raise UnirlError(f"checkpoint '{checkpoint}' was trained with lora.r={state.get('lora_r', 0)}; resume with the same")


def _load_policy(config: TrainConfig, device: torch.device, checkpoint: Path | None) -> UnifiedModel:
    from unirl_cli.models.loading import load_model

    dtype = "float32" if config.dtype == "auto" else config.dtype
    # A full fine-tune resumes from the checkpoint's weights; LoRA from the base plus the saved adapter.
    source = str(checkpoint) if checkpoint is not None and config.lora.r == 0 else config.model
    policy = load_model(source, device=str(device), dtype=dtype, sampling=config.rollout)
    try:
        policy.num_image_tokens, policy.codebook_size
    except NotImplementedError:
        raise UnirlError(f"model '{config.model}' has no image generation head; train a unified model that "
                         f"both generates and understands images (see `unirl models`)") from None
    if config.method == "grpo" and policy.generation_kind != "masked":
        # name: (set by the user, the value that turns it off)
        masked_only = {"step_chunk": (config.grpo.step_chunk > 0, 0),
                       "step_fraction": (config.grpo.step_fraction < 1, 1)}
        for name, (in_use, off) in masked_only.items():
            if in_use:
                raise UnirlError(f"grpo.{name} applies to masked (Show-o) models; '{config.model}' scores all its "
                                 f"image tokens in one teacher-forced pass: set grpo.{name}={off}")
    if config.grpo.step_chunk > 0 and deepspeed_requested():
        # DeepSpeed steps after a fixed number of backward passes; step chunks change that number per step.
        raise UnirlError("grpo.step_chunk does not run under DeepSpeed (its accumulation steps are fixed per "
                         "update); use DDP or FSDP, or set grpo.step_chunk=0")
    return policy


def _prepare_policy(config: TrainConfig, policy: UnifiedModel, checkpoint: Path | None,
                    state: dict | None, device: torch.device) -> Reference | None:
    """Freeze, LoRA, dropout off, checkpointing; returns the KL reference (None when beta = 0 or SFT)."""
    train_understanding = config.method == "sft" or config.grpo.answer_weight > 0
    policy.freeze_for_training(train_understanding=train_understanding)
    frozen_start = None
    needs_reference = (config.method == "grpo" and config.grpo.beta > 0) or (config.method == "sft"
                                                                             and config.sft.kl_beta > 0)
    if needs_reference and checkpoint is not None and config.lora.r == 0:
        from unirl_cli.models.loading import load_model

        frozen_start = load_model(state["base_model"], device=str(device),
                                  dtype="float32" if config.dtype == "auto" else config.dtype)
    if config.lora.r > 0:
        apply_lora(policy, config.lora)
        if checkpoint is not None:
            ckpt.load_adapter_weights(policy, checkpoint)
    disable_dropout(policy)
    if config.gradient_checkpointing:
        enable = getattr(policy.hf_model, "activation_checkpointing_enable", None) or getattr(
            policy.hf_model, "gradient_checkpointing_enable", None)
        if enable is None:
            raise UnirlError("this model does not support gradient_checkpointing; set gradient_checkpointing=false")
        enable()
    return Reference(policy, frozen_start) if needs_reference else None


def build_run(config: TrainConfig, accelerator, checkpoint: Path | None, state: dict | None,
              reward_fn: RewardFunction) -> RunContext:
    """Load and prepare everything a step needs (weights from `checkpoint` when resuming)."""
    policy = _load_policy(config, accelerator.device, checkpoint)
    reference = _prepare_policy(config, policy, checkpoint, state, accelerator.device)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = build_optimizer(trainable, config.optim)
    updates = config.steps * (config.grpo.num_iterations if config.method == "grpo" else 1)
    scheduler = build_scheduler(optimizer, config.optim, updates)
    configure_deepspeed(accelerator, config.micro_batch_size)
    module, optimizer = accelerator.prepare(TrainingModule(policy), optimizer)
    policy.train()
    if checkpoint is not None:
        ckpt.load_training_state(accelerator, optimizer, scheduler, checkpoint)
    return RunContext(accelerator=accelerator, module=module, policy=policy, reference=reference,
                      optimizer=optimizer, scheduler=scheduler, config=config, reward_fn=reward_fn,
                      sampling=policy.resolve_sampling(config.rollout), trainable=trainable)


def _trainer_state(config: TrainConfig, ctx: RunContext, step: int, base_model: str) -> dict:
    from unirl_cli.inference import model_identity

    return {"step": step, "prompt_cursor": step * config.prompts_per_step, "method": config.method,
            "base_model": base_model, "family": ctx.policy.family, "lora": config.lora.r > 0,
            "lora_r": config.lora.r, "num_processes": ctx.accelerator.num_processes,
            "model_identity": model_identity(ctx.policy), "config": config_to_dict(config)}


def _write_samples(ctx: RunContext, batch, step: int) -> None:
    accelerator = ctx.accelerator
    if not (accelerator.is_main_process or fsdp_active(accelerator)):
        return
    with full_parameters(accelerator, ctx.module):  # collective under FSDP: every rank decodes
        images = ctx.policy.decode_images(batch.rollout.image_tokens)
    if accelerator.is_main_process:
        path = Path(ctx.config.output_dir) / "samples" / f"step-{step:06d}.png"
        save_sample_grid(images, batch.rollout.prompts, path, ctx.config.group_size)


def _resume_state(config: TrainConfig, resume: str | None) -> tuple[Path | None, dict | None]:
    if resume is None:
        return None, None
    checkpoint = ckpt.resolve_resume_dir(resume, config.output_dir)
    state = ckpt.read_trainer_state(checkpoint)
    check_resume_matches(config, state, checkpoint)
    if state["step"] >= config.steps:
        raise UnirlError(f"checkpoint '{checkpoint}' is already at step {state['step']} of steps={config.steps}; "
                         f"pass a larger --steps to train further")
    return checkpoint, state


def _start_logging(config: TrainConfig, accelerator, resume_step: int | None) -> MetricsLog | None:
    if not accelerator.is_main_process:
        return None
    output_dir = Path(config.output_dir)
    save_config(config, output_dir / "config.yaml")
    if config.log.report_to != "none":
        accelerator.init_trackers(config.log.project, config={k: str(v) for k, v in config_to_dict(config).items()})
    return MetricsLog(output_dir / "metrics.jsonl", resume_step=resume_step)


def train(config: TrainConfig, resume: str | None = None, reward_fn: RewardFunction | None = None,
          overwrite: bool = False) -> TrainResult:
    """Run (or resume, `resume` = checkpoint, run folder, or "" for the latest in output_dir) a training run.

    `reward_fn` replaces the configured reward (any callable with `needs_answers`, see rewards.py).
    A run folder that already holds a run is refused unless resuming or `overwrite` (which deletes that run's
    files first). Everything a user can get wrong is checked before the model loads.
    """
    problems = config_problems(config)
    if problems:
        raise UnirlError("invalid config: " + "; ".join(problems))
    check_training_extras(config)
    ckpt.check_run_folder(config.output_dir, resuming=resume is not None, overwrite=overwrite)
    records = load_training_prompts(config.prompts)
    checkpoint, state = _resume_state(config, resume)
    created = not Path(config.output_dir).exists()  # a failed start removes the folder it made
    accelerator = make_accelerator(config)
    try:
        check_processes(config, state, checkpoint, accelerator.num_processes)
        result, metrics_log = _run_steps(config, accelerator, checkpoint, state, records, reward_fn, overwrite)
    except BaseException:
        if created and accelerator.is_main_process:
            ckpt.remove_failed_run(config.output_dir)
        raise
    if metrics_log is not None:
        result.metrics = metrics_log.read()
        if config.log.plots and result.metrics:
            result.plots = plot_curves(result.metrics, result.output_dir / "plots")
    accelerator.end_training()
    return result


def _run_steps(config: TrainConfig, accelerator, checkpoint: Path | None, state: dict | None, records: list[dict],
               reward_fn: RewardFunction | None, overwrite: bool) -> tuple[TrainResult, MetricsLog | None]:
    """Load the policy, then run the steps from the checkpoint's (or 0) to `config.steps`."""
    from unirl_cli.runtime import seed_everything
    from unirl_cli.train.grpo import grpo_step
    from unirl_cli.train.sft import sft_step

    world, rank = accelerator.num_processes, accelerator.process_index
    seed_everything(config.seed)
    reward_fn = reward_fn or build_reward(config.reward, config.answer.partial_credit, str(accelerator.device))
    ctx = build_run(config, accelerator, checkpoint, state, reward_fn)
    if overwrite and accelerator.is_main_process:  # only once the new run has loaded: a failed start loses nothing
        ckpt.clear_run(config.output_dir, extra=(config.log.project,))
    accelerator.wait_for_everyone()
    start_step = state["step"] if state else 0
    base_model = state["base_model"] if state else config.model
    metrics_log = _start_logging(config, accelerator, start_step if state else None)
    step_fn = grpo_step if config.method == "grpo" else sft_step
    result = TrainResult(output_dir=Path(config.output_dir), last_checkpoint=None, policy=ctx.policy)
    with LiveView(config.steps, start_step, enabled=config.log.live, shown=metrics_log is not None,
                  plain_every_seconds=config.log.progress_seconds) as live:
        for step in range(start_step, config.steps):
            local = shard_for_rank(prompts_for_step(records, step, config.prompts_per_step, config.prompts.seed),
                                   rank, world)
            started = time.perf_counter()
            metrics, batch = step_fn(ctx, local, step, rank * len(local) * config.group_size)
            elapsed = time.perf_counter() - started
            done = step + 1
            row = {"step": done, **average_over_processes(accelerator, metrics), "lr": ctx.scheduler.get_last_lr()[0],
                   "images_per_s": config.prompts_per_step * config.group_size / elapsed, "time/step": elapsed}
            if metrics_log is not None:
                metrics_log.write(row)
                if config.log.report_to != "none":
                    accelerator.log(row, step=done)
                live.update(row)
            if config.log.sample_every and done % config.log.sample_every == 0:
                _write_samples(ctx, batch, done)
            if (config.save_every and done % config.save_every == 0) or done == config.steps:
                with full_parameters(accelerator, ctx.module):
                    result.last_checkpoint = ckpt.save_checkpoint(
                        accelerator, ctx.policy, ctx.optimizer, ctx.scheduler,
                        _trainer_state(config, ctx, done, base_model), config.output_dir, config.keep_last)
    return result, metrics_log
