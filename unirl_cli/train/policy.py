"""The trainable policy: the module accelerate wraps, LoRA, the frozen reference, optimizer and schedule.

DDP all-reduces gradients only for passes that go through the wrapped module's `forward`, and a
training step needs several model calls (e.g. image logits, then answer log-probs) before one backward.
So accelerate prepares `TrainingModule`, whose forward runs a whole loss function on the policy.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from unirl_cli.errors import UnirlError
from unirl_cli.extras import require_extra
from unirl_cli.models.base import ImageRollout, UnifiedModel
from unirl_cli.train.config import LoraConfig, OptimConfig


class TrainingModule(torch.nn.Module):
    """What accelerate prepares: `forward(objective, batch)` returns `objective(policy, batch)`."""

    def __init__(self, policy: UnifiedModel) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, objective: Callable[[UnifiedModel, Any], dict], batch: Any) -> dict:
        return objective(self.policy, batch)


def disable_dropout(module: torch.nn.Module) -> None:
    """Set every dropout probability to 0, so re-scored log-probs equal the sampler's (TRL does the same)."""
    for child in module.modules():
        if isinstance(child, torch.nn.Dropout):
            child.p = 0.0


def apply_lora(policy: UnifiedModel, config: LoraConfig) -> None:
    """Inject LoRA adapters (peft) into `policy.hf_model` in place; the peft wrapper is `policy.peft_model`.

    `hf_model` keeps its own class, so the backend's code paths are unchanged; the wrapper is kept beside it
    (not as a submodule, so parameters are not registered twice) for disabling, saving and merging adapters.
    """
    require_extra("lora")
    import peft

    lora_config = peft.LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                  target_modules=list(config.target_modules))
    frozen = {id(p) for p in policy.parameters() if not p.requires_grad}
    try:
        peft_model = peft.get_peft_model(policy.hf_model, lora_config)
    except ValueError as err:
        raise UnirlError(f"LoRA could not attach to lora.target_modules={list(config.target_modules)}: "
                         f"{str(err).splitlines()[0]}") from err
    object.__setattr__(policy, "peft_model", peft_model)
    _freeze_adapters_of_frozen_layers(policy, frozen)


def _freeze_adapters_of_frozen_layers(policy: UnifiedModel, frozen: set[int]) -> None:
    """Adapters on layers that `freeze_for_training` froze stay frozen (unused by the loss; DDP would fail)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in policy.modules():
        if isinstance(module, BaseTunerLayer) and id(module.get_base_layer().weight) in frozen:
            for name, parameter in module.named_parameters():
                if "lora_" in name:
                    parameter.requires_grad_(False)


def uses_lora(policy: UnifiedModel) -> bool:
    """Whether LoRA adapters were injected into the policy."""
    return getattr(policy, "peft_model", None) is not None


@contextmanager
def merged_lora_copy(policy: UnifiedModel) -> Iterator[UnifiedModel]:
    """A copy of the policy with adapters merged into the base weights (what `unirl generate` loads)."""
    merged = copy.deepcopy(policy)
    merged.hf_model = merged.peft_model.merge_and_unload()
    object.__setattr__(merged, "peft_model", None)
    try:
        yield merged
    finally:
        del merged


class Reference:
    """Log-probs under the frozen starting policy, for the KL term (never trained, no gradients)."""

    def __init__(self, policy: UnifiedModel, frozen: UnifiedModel | None = None) -> None:
        """`frozen` is the starting model when it is not `policy` itself (a resumed full fine-tune)."""
        self.policy = policy
        self.adapters_only = uses_lora(policy)
        # With LoRA the reference is the base model with adapters switched off, not a second copy.
        if self.adapters_only:
            self.frozen = None
        else:
            self.frozen = (frozen if frozen is not None else copy.deepcopy(policy)).requires_grad_(False).eval()

    @torch.no_grad()
    def image_logprobs(self, rollout: ImageRollout, guidance_scale: float | None, **steps) -> torch.Tensor:
        """Reference log-probs (batch, num_actions) of the rollout's actions (`steps=[...]`: masked models, only
        those sampling steps)."""
        if self.adapters_only:
            was_training = self.policy.training
            self.policy.eval()
            try:
                with self.policy.peft_model.disable_adapter():
                    return self.policy.image_logprobs(rollout, guidance_scale=guidance_scale, **steps)
            finally:
                self.policy.train(was_training)
        return self.frozen.image_logprobs(rollout, guidance_scale=guidance_scale, **steps)


def build_optimizer(parameters: list[torch.nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters (biases and norms included, as TRL's default)."""
    if not parameters:
        raise UnirlError("the model has no trainable parameters after freezing; check lora.target_modules")
    return torch.optim.AdamW(parameters, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig,
                    total_updates: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then constant, linear or cosine decay to 0 at `total_updates`."""
    warmup, schedule = config.warmup_steps, config.schedule

    def factor(update: int) -> float:
        if update < warmup:
            return (update + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (update - warmup) / max(1, total_updates - warmup))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
