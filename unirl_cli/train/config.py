"""The training config tree of `unirl train sft|grpo`: defaults live here once; recipes in configs/train/.

Every field is overridable as `key=value` on the command line (`grpo.beta=0.2`, `rollout.guidance_scale=5`).
Values the UniRL paper leaves open are marked "open:" in their help, with the reading chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from unirl_cli.config import SamplingConfig, option, section
from unirl_cli.models.registry import DEFAULT_MODEL

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")


@dataclass
class PromptsConfig:
    """Where training prompts come from: a JSONL file, or generated GenEval-style prompts."""

    file: Optional[str] = option(None, "JSONL of training prompts (tag, prompt, include/exclude, question, answer); unset = generate them")
    num_generated: int = option(2000, "how many prompts to generate when no file is given")
    seed: int = option(0, "seed of the prompt generator (and of the per-epoch shuffle)")
    tags: list[str] = option([], "keep only these GenEval tags (empty = all six)")
    balance_tags: bool = option(False, "draw every tag equally often (repeat the prompts of rarer tags) instead of in proportion to the file")
    allow_geneval_overlap: bool = option(False, "accept a prompts file that contains GenEval test prompts (their scores are then meaningless)")


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule."""

    lr: float = option(1e-5, "learning rate (UniRL appendix: 1e-5 for SFT and GRPO, both models)")
    weight_decay: float = option(0.0, "AdamW weight decay (open: not stated; 0 as in TRL)")
    betas: list[float] = option([0.9, 0.999], "AdamW betas")
    warmup_steps: int = option(0, "linear warm-up steps (optimizer updates)")
    schedule: Literal["constant", "linear", "cosine"] = option("constant", "learning-rate decay after warm-up")
    max_grad_norm: float = option(1.0, "clip the global gradient norm (0 = off)")


@dataclass
class AnswerConfig:
    """How the model answers its own images (the self-reward)."""

    max_new_tokens: int = option(32, "longest answer in tokens")
    partial_credit: bool = option(False, "reward the fraction of required facts instead of all-or-nothing")


@dataclass
class RewardConfig:
    """Reward = weighted sum of the enabled sources (each in [0, 1])."""

    self_weight: float = option(1.0, "weight of the model's own answer, matched to the ground truth (UniRL)")
    judge_weight: float = option(0.0, "weight of a local chat-model judge comparing answer and ground truth")
    judge_model: Optional[str] = option(None, "folder or hub id of the judge chat model (needs judge_weight > 0)")
    detector_weight: float = option(0.0, "weight of the GenEval detector's verdict on the image (an ablation in UniRL)")
    detector_path: Optional[str] = option(None, "GenEval detector folder (default: the `unirl download geneval-models` copy)")
    clip_path: Optional[str] = option(None, "GenEval colour-classifier CLIP folder (default: the downloaded copy)")
    detector_partial: bool = option(False, "detector reward = fraction of the prompt's clauses met instead of 0/1")
    detector_exact_count: bool = option(False, "detector reward 0 when the detector keeps more objects than the prompt asks for (GenEval forgives extra copies outside its counting prompts)")
    detector_suite: Literal["geneval", "shapes"] = option("geneval", "whose judge gives the detector reward: GenEval's (Mask2Former + CLIP) or the shapes world's detector (an oracle there)")
    vocabulary: Literal["default", "shapes"] = option("default", "objects the answer matcher recognises, so that an extra one named counts against the answer: default = GenEval's 80 COCO classes + 80 everyday objects; shapes = the shapes world's six shapes")


@dataclass
class GRPOConfig:
    """GRPO on image tokens (and optionally on answers)."""

    eps_low: float = option(0.2, "lower clip: ratio >= 1 - eps_low (open: paper silent; 0.2 as DeepSeek/TRL)")
    eps_high: float = option(0.2, "upper clip: ratio <= 1 + eps_high (DAPO's clip-higher uses 0.28)")
    beta: float = option(0.0, "k3 KL coefficient to the frozen reference (0 = no reference model; UniRL run name: 0.2)")
    kl_ratio_correction: bool = option(False, "multiply the KL term by the importance ratio (DeepSeek-V3.2 unbiased form)")
    num_iterations: int = option(1, "optimizer updates per rollout (old log-probs are stored before the first)")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = option("grpo", "loss aggregation, as TRL's loss_type")
    scale_rewards: Literal["group", "batch", "none"] = option("group", "divide advantages by the group's std, the batch's, or not (Dr. GRPO)")
    logprob_branch: Literal["cfg", "cond"] = option("cfg", "score image tokens under the CFG mix that sampled them, or the conditional branch alone (half the cost, off-policy)")
    answer_weight: float = option(0.0, "weight of GRPO on K sampled answers per image (0 = image tokens only)")
    answers_per_image: int = option(4, "K sampled answers per image for answer GRPO")
    answer_temperature: float = option(1.0, "sampling temperature of those answers")
    step_chunk: int = option(0, "masked (Show-o) models: back-propagate this many sampling steps at a time instead of all of them in one graph (same gradient, less memory; 0 = all)")
    step_fraction: float = option(1.0, "masked (Show-o) models: each update back-propagates through this share of an image's sampling steps, drawn at random per micro-batch (an unbiased estimate of the whole loss at that share of its cost, as Flow-GRPO's timestep_fraction; 1 = all)")


@dataclass
class SFTConfig:
    """Supervised fine-tuning from the model's own images."""

    mode: Literal["end_to_end", "filtered"] = option("end_to_end", "end_to_end: answer NLL through straight-through Gumbel-softmax image tokens; filtered: generation NLL on correctly answered images + understanding NLL")
    gumbel_tau: float = option(1.0, "Gumbel-softmax temperature (open: paper's value not retrievable)")
    hard_tokens: Literal["rollout", "gumbel"] = option("rollout", "forward pass sees the sampled image (rollout) or the Gumbel argmax")
    und_weight: float = option(1.0, "weight of the understanding (answer) NLL")
    gen_weight: float = option(1.0, "weight of the generation NLL (filtered mode)")
    und_on: Literal["all", "correct"] = option("all", "filtered mode: understanding NLL on all images or only correctly answered ones")
    straight_through: Literal["hard", "soft"] = option("hard", "end_to_end: understanding reads one-hot tokens (hard, gradient of the soft sample) or the soft sample itself")
    generator_grad: float = option(1.0, "end_to_end: scale of the answer loss's gradient that reaches the generator through the image tokens (0 = reader only)")
    gen_branch: Literal["cfg", "cond", "pretraining"] = option("cfg", "filtered: generation NLL under the CFG-guided distribution the images were sampled from (cond: the conditional branch alone, which collapsed the shapes-world mini; pretraining: the family's own training loss on them, Show-o's masked-token cross-entropy at a random mask ratio)")
    kl_beta: float = option(0.0, "weight of a k3 KL to the starting model on the image tokens (conditional branch); 0 = no anchor")


@dataclass
class LoraConfig:
    """LoRA adapters through peft on the backend's `hf_model` (r = 0: full fine-tuning)."""

    r: int = option(0, "adapter rank (0 = off)")
    alpha: int = option(16, "LoRA alpha")
    dropout: float = option(0.0, "LoRA dropout")
    target_modules: list[str] = option(["q_proj", "k_proj", "v_proj", "o_proj"], "module names to adapt")


@dataclass
class LogConfig:
    """Observability."""

    report_to: Literal["none", "tensorboard", "wandb", "trackio"] = option("none", "tracker besides metrics.jsonl")
    project: str = option("unirl", "tracker project name")
    sample_every: int = option(0, "write a grid of rollout images every N steps (0 = off)")
    live: bool = option(True, "rich live view on the main process when stderr is a terminal")
    progress_seconds: float = option(30.0, "off a terminal: seconds between plain progress lines (0 = none)")
    plots: bool = option(True, "write reward/KL curves as PNG at the end")


@dataclass
class TrainConfig:
    """One training run of `unirl train sft|grpo`."""

    method: Literal["grpo", "sft"] = option("grpo", "training method (set by the subcommand)")
    model: str = option(DEFAULT_MODEL, "registry name, hub id, or folder (a checkpoint of a previous run works)")
    dtype: str = option("auto", "weight dtype: auto = float32 master weights (bf16 compute comes from mixed_precision); bfloat16 = pure bf16 weights, less memory")
    mixed_precision: Literal["no", "bf16", "fp16"] = option("no", "accelerate autocast (bf16 on GPUs)")
    gradient_checkpointing: bool = option(False, "recompute activations in backward to save memory")
    steps: int = option(100, "training steps (each: one rollout, then num_iterations updates)")
    prompts_per_step: int = option(1, "prompts per step over all processes (UniRL: 1 per GPU x 8 GPUs)")
    group_size: int = option(8, "images per prompt, G (UniRL: 8 or 3 by model, see configs/train); GRPO needs >= 2")
    micro_batch_size: int = option(8, "images per log-prob forward/backward (gradient accumulation inside a step)")
    seed: int = option(0, "seed of everything (rollout seeds derive from seed, step and image index)")
    output_dir: str = option("outputs/train/run", "run folder: checkpoints/, metrics.jsonl, samples/, plots")
    save_every: int = option(0, "checkpoint every N steps (0 = only at the end)")
    keep_last: int = option(2, "keep the last K checkpoints")
    ddp_find_unused_parameters: bool = option(False, "DDP option for models that leave parameters unused")
    prompts: PromptsConfig = section(PromptsConfig, "training prompts")
    rollout: SamplingConfig = section(SamplingConfig, "image sampling during rollouts (None = the family's defaults)")
    answer: AnswerConfig = section(AnswerConfig, "self-answering")
    reward: RewardConfig = section(RewardConfig, "reward sources")
    optim: OptimConfig = section(OptimConfig, "optimizer")
    grpo: GRPOConfig = section(GRPOConfig, "GRPO")
    sft: SFTConfig = section(SFTConfig, "SFT")
    lora: LoraConfig = section(LoraConfig, "LoRA")
    log: LogConfig = section(LogConfig, "logging")

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ValueError("; ".join(problems))


def config_problems(config: TrainConfig) -> list[str]:
    """Every value problem of `config` that types cannot catch, as one-line messages (empty = fine)."""
    problems = []
    if config.method == "grpo" and config.group_size < 2:
        problems.append(f"group_size must be >= 2 for GRPO (advantages compare images of one prompt), got {config.group_size}")
    for name in ("steps", "prompts_per_step", "group_size", "micro_batch_size"):
        if getattr(config, name) < 1:
            problems.append(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.grpo.num_iterations < 1:
        problems.append(f"grpo.num_iterations must be >= 1, got {config.grpo.num_iterations}")
    if not 0 <= config.grpo.eps_low < 1 or config.grpo.eps_high < 0:
        problems.append("grpo.eps_low must be in [0, 1) and grpo.eps_high >= 0")
    if config.grpo.beta < 0:
        problems.append(f"grpo.beta must be >= 0, got {config.grpo.beta}")
    if config.grpo.step_chunk < 0:
        problems.append(f"grpo.step_chunk must be >= 0 (0 = all sampling steps in one graph), got {config.grpo.step_chunk}")
    if not 0 < config.grpo.step_fraction <= 1:
        problems.append(f"grpo.step_fraction must be in (0, 1] (1 = every sampling step), got {config.grpo.step_fraction}")
    if config.grpo.answer_weight > 0 and config.grpo.answers_per_image < 2:
        problems.append("grpo.answers_per_image must be >= 2 when grpo.answer_weight > 0")
    if config.rollout.guidance_scale is not None and config.rollout.guidance_scale < 0:
        problems.append(f"rollout.guidance_scale must be >= 0 (Janus: 1 = no CFG; Show-o: 0), got "
                        f"{config.rollout.guidance_scale}")
    if config.sft.kl_beta < 0 or config.sft.generator_grad < 0:
        problems.append("sft.kl_beta and sft.generator_grad must be >= 0")
    if config.sft.gumbel_tau <= 0:
        problems.append(f"sft.gumbel_tau must be > 0, got {config.sft.gumbel_tau}")
    weights = (config.reward.self_weight, config.reward.judge_weight, config.reward.detector_weight)
    if min(weights) < 0 or sum(weights) == 0:
        problems.append("reward weights must be >= 0 and at least one > 0 (reward.self_weight, judge_weight, detector_weight)")
    if config.reward.judge_weight > 0 and not config.reward.judge_model:
        problems.append("reward.judge_weight > 0 needs reward.judge_model (a local chat model folder or hub id)")
    if config.optim.lr <= 0:
        problems.append(f"optim.lr must be > 0, got {config.optim.lr}")
    if config.lora.r < 0:
        problems.append(f"lora.r must be >= 0, got {config.lora.r}")
    if config.save_every < 0 or config.keep_last < 1:
        problems.append("save_every must be >= 0 and keep_last >= 1")
    return problems
