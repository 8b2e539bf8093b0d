"""Show-o's MaskGIT sampler and the teacher-forced replay of its trajectory, as pure tensor functions.

The model enters through `code_logits(rows, states)`: which prompts (indices into the batch) and image
states (n, N) holding a code index per known slot and `MASKED` (-1) elsewhere -> guided code logits
(n, N, codebook_size) in float32.

Each step (Show-o's `t2i_generate`): sample every slot from softmax(logits); keep known slots; re-mask the
`mask_len` least confident newly sampled slots, confidence = log p(sampled) + tau_s * Gumbel noise, with
`mask_len = clamp(floor(N * cos(pi/2 * (s+1)/T)), 1, #unknown - 1)` and a Gumbel temperature that compounds
`tau_s = tau_0 * prod_{j=1..s+1} (1 - j/T)` (the official code overwrites its temperature each step).

Policy actions are steps (Mask-GRPO): the log-prob of step s is the sum of log p(x_i | state_s) over the
slots committed at step s. The official sampler returns the last step's full sample, including the one
slot it re-masks in its final state, so here the final step commits every slot still open: every token
of the image is counted exactly once, under the distribution it was drawn from. With `score_remasked`
(Mask-GRPO's candidate 1), a step also scores why each slot it re-masked stayed masked: the log of the
probability mass below the step's lowest committed probability at that slot (the Gumbel noise ignored), so
the update reaches which slots get committed, not only which codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

MASKED = -1

# (row indices into the prompt batch (n,), image states (n, N)) -> guided code logits (n, N, K)
CodeLogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class MaskedTrajectory:
    """What one sampling run produced."""

    codes: torch.Tensor  # (batch, N) int64 codebook indices of the final image
    commit_step: torch.Tensor  # (batch, N) int64 step at which each slot was committed
    step_logprobs: torch.Tensor  # (batch, num_steps) float32 sum of log-probs committed per step
    # (batch, num_steps) the lowest probability committed at each step; only with score_remasked
    remask_threshold: torch.Tensor | None = None


def num_masked_after_step(num_tokens: int, step: int, num_steps: int) -> int:
    """Show-o's cosine target `floor(N * cos(pi/2 * (step+1)/T))`, computed in float32 like the original."""
    ratio = torch.tensor(1.0 * (step + 1) / num_steps)
    return int((num_tokens * torch.cos(ratio * math.pi * 0.5)).floor())


def gumbel_temperatures(initial_temperature: float, num_steps: int) -> list[float]:
    """The compounding per-step Gumbel temperatures tau_s = tau_0 * prod_{j<=s+1} (1 - j/T)."""
    temperatures, temperature = [], initial_temperature
    for step in range(num_steps):
        temperature = temperature * (1.0 - 1.0 * (step + 1) / num_steps)
        temperatures.append(temperature)
    return temperatures


def remasked_log_mass(probs: torch.Tensor, remasked: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Per row, the sum over `remasked` slots (n, N) of log P(a draw from probs (n, N, K) has a probability
    below `threshold` (n,)): how likely the slot was to stay masked. A slot with no code below it scores 0."""
    below = probs.detach() < threshold[:, None, None]  # which codes would lose the confidence ranking
    mass = (probs * below).sum(dim=-1)
    return torch.where(remasked & (mass > 0), mass.clamp(min=1e-30).log(), 0.0).sum(dim=-1)


def _gumbel_noise(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    uniform = torch.zeros(shape, device=device).uniform_(0, 1, generator=generator)
    return -torch.log((-torch.log(uniform.clamp(min=1e-20))).clamp(min=1e-20))


def _sample_codes(probs: torch.Tensor, generators: Sequence[torch.Generator], greedy: bool) -> torch.Tensor:
    """One code per slot from probs (batch, N, K), row b drawing from `generators[b]`."""
    if greedy:
        return probs.argmax(dim=-1)
    rows = [torch.multinomial(probs[row], 1, generator=generators[row])[:, 0] for row in range(probs.shape[0])]
    return torch.stack(rows)


def _remask(selected_probs: torch.Tensor, unknown: torch.Tensor, mask_len: torch.Tensor, temperature: float,
            generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Which slots go back to MASK: the `mask_len` lowest Gumbel-perturbed confidences per row."""
    selected_probs = torch.where(unknown, selected_probs, torch.finfo(selected_probs.dtype).max)
    noise = torch.stack([_gumbel_noise(selected_probs.shape[1:], gen, selected_probs.device) for gen in generators])
    confidence = torch.log(selected_probs.clamp(min=1e-20)) + temperature * noise
    cut_off = confidence.sort(dim=-1).values.gather(1, mask_len)
    return confidence < cut_off


def sample_masked(code_logits: CodeLogitsFn, batch_size: int, num_tokens: int, num_steps: int, temperature: float,
                  generators: Sequence[torch.Generator], device: torch.device, greedy: bool = False,
                  score_remasked: bool = False) -> MaskedTrajectory:
    """Run Show-o's sampler from an all-masked grid; row b uses only `generators[b]` (multinomial, then Gumbel).

    With `greedy`, slots take their argmax and re-masking uses no noise (deterministic, for debugging).
    With `score_remasked`, each step's log-prob adds its re-masked slots' term (module docstring).
    """
    if num_steps < 1:
        raise ValueError("num_steps must be at least 1")
    state = torch.full((batch_size, num_tokens), MASKED, dtype=torch.long, device=device)
    commit_step = torch.full_like(state, MASKED)
    step_logprobs = torch.zeros(batch_size, num_steps, dtype=torch.float32, device=device)
    thresholds = torch.zeros_like(step_logprobs) if score_remasked else None
    temperatures = gumbel_temperatures(0.0 if greedy else temperature, num_steps)
    all_rows = torch.arange(batch_size, device=device)
    for step in range(num_steps):
        logits = code_logits(all_rows, state).float()  # (batch, N, K)
        probs = logits.softmax(dim=-1)
        unknown = state == MASKED
        sampled = torch.where(unknown, _sample_codes(probs, generators, greedy), state)
        if step == num_steps - 1:
            committed = unknown
            next_state = sampled
        else:
            target = num_masked_after_step(num_tokens, step, num_steps)
            mask_len = (unknown.sum(dim=-1, keepdim=True) - 1).clamp(max=target).clamp(min=1)
            selected = probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
            remasked = _remask(selected, unknown, mask_len, temperatures[step], generators)
            committed = unknown & ~remasked
            next_state = torch.where(remasked, MASKED, sampled)
        logprobs = logits.log_softmax(dim=-1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        step_logprobs[:, step] = torch.where(committed, logprobs, 0.0).sum(dim=-1)
        if thresholds is not None and step < num_steps - 1:
            thresholds[:, step] = torch.where(committed, logprobs.exp(), math.inf).min(dim=-1).values
            step_logprobs[:, step] += remasked_log_mass(probs, unknown & ~committed, thresholds[:, step])
        commit_step = torch.where(committed, step, commit_step)
        state = next_state
    return MaskedTrajectory(codes=state, commit_step=commit_step, step_logprobs=step_logprobs,
                            remask_threshold=thresholds)


def replay_logprobs(code_logits: CodeLogitsFn, codes: torch.Tensor, commit_step: torch.Tensor, num_steps: int,
                    micro_batch_size: int | None = None, steps: Sequence[int] | None = None,
                    remask_threshold: torch.Tensor | None = None) -> torch.Tensor:
    """Differentiable per-step log-probs (batch, num_steps) of a recorded trajectory (teacher forcing).

    With `remask_threshold` (the sampler's, (batch, num_steps)), each step adds its re-masked slots' term.

    The (image, step) states are scored `micro_batch_size` at a time (default: one step of the whole
    batch per forward). Steps that committed nothing score exactly 0 and cost no forward pass; so do
    steps left out of `steps` (when given), which lets a trainer back-propagate a few steps at a time.
    """
    batch_size = codes.shape[0]
    wanted = set(range(num_steps)) if steps is None else set(steps)
    if not wanted <= set(range(num_steps)):
        raise ValueError(f"steps must lie in 0..{num_steps - 1}, got {sorted(wanted)}")
    committed_any = torch.zeros(batch_size, num_steps, dtype=torch.bool, device=commit_step.device)
    committed_any = committed_any.scatter_(1, commit_step.clamp(min=0), True).cpu()  # one sync, not B * T
    pairs = [(row, step) for step in sorted(wanted) for row in range(batch_size) if committed_any[row, step]]
    chunk = micro_batch_size or batch_size
    scores: dict[tuple[int, int], torch.Tensor] = {}
    for start in range(0, len(pairs), chunk):
        group = pairs[start:start + chunk]
        rows = torch.tensor([row for row, _ in group], device=codes.device)
        group_steps = torch.tensor([step for _, step in group], device=codes.device)[:, None]
        group_codes, group_commit = codes[rows], commit_step[rows]
        # The grid the sampler saw at that step: slots committed earlier are known, the rest masked.
        states = torch.where(group_commit < group_steps, group_codes, MASKED)
        logprobs = code_logits(rows, states).float().log_softmax(dim=-1)
        picked = logprobs.gather(-1, group_codes.unsqueeze(-1)).squeeze(-1)  # (group, N)
        summed = torch.where(group_commit == group_steps, picked, 0.0).sum(dim=-1)
        if remask_threshold is not None:
            threshold = remask_threshold[rows, group_steps[:, 0]]
            summed = summed + remasked_log_mass(logprobs.exp(), group_commit > group_steps, threshold)
        for index, pair in enumerate(group):
            scores[pair] = summed[index]
    zero = torch.zeros((), device=codes.device)
    rows_out = [torch.stack([scores.get((row, step), zero) for step in range(num_steps)]) for row in range(batch_size)]
    return torch.stack(rows_out)
