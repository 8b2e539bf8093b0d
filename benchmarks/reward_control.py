"""The no-update control of a GRPO run: the reward its steps would see if nothing were learnt.

    OMP_NUM_THREADS=2 python benchmarks/reward_control.py --config mini-showo-grpo --steps 150 \
        reward.self_weight=0 reward.detector_weight=1 reward.detector_suite=shapes

Samples the untouched model on exactly the prompts and seeds of the recipe's steps 0..N-1 (same prompt order,
same image seeds, same rollout sampling and reward), so a run's reward curve can be read against it: a dip that
the control shows too is the prompts, not the update. Prints the mean reward per `--window` steps and writes one
JSON line per step to `--out` when given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path


def control_rewards(config, steps: int):
    """Yield (step, mean reward) for the untouched `config.model` on the run's first `steps` steps."""
    import torch

    from unirl_cli.models.loading import load_model
    from unirl_cli.train.prompts import image_seed, load_training_prompts, prompts_for_step
    from unirl_cli.train.rewards import build_reward
    from unirl_cli.train.rollout import StepTimer, collect_experience

    model = load_model(config.model, device="cpu", dtype="float32", sampling=config.rollout)
    records = load_training_prompts(config.prompts)
    reward = build_reward(config.reward, config.answer.partial_credit)
    sampling = model.resolve_sampling(config.rollout)
    for step in range(steps):
        chosen = prompts_for_step(records, step, config.prompts_per_step, config.prompts.seed)
        seeds = [image_seed(config.seed, step, index) for index in range(len(chosen) * config.group_size)]
        _, rewards = collect_experience(model, chosen, config.group_size, seeds, sampling, reward,
                                        config.answer.max_new_tokens, config.micro_batch_size, StepTimer())
        yield step + 1, float(torch.nanmean(rewards))


def main() -> None:
    from unirl_cli.config import load_config
    from unirl_cli.train.config import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mini-showo-grpo", help="recipe name or YAML file")
    parser.add_argument("--steps", type=int, default=None, help="how many of the run's steps (default: the recipe's)")
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="JSONL of the per-step rewards")
    parser.add_argument("overrides", nargs="*", help="the run's key=value overrides (reward, rollout, seed, ...)")
    args = parser.parse_args()
    config = load_config(TrainConfig, args.config, args.overrides)
    steps = args.steps or config.steps
    rewards = []
    with args.out.open("w") if args.out else contextlib.nullcontext() as sink:
        for step, reward in control_rewards(config, steps):
            rewards.append(reward)
            if sink:
                sink.write(json.dumps({"step": step, "reward/mean": reward}) + "\n")
                sink.flush()
    print(f"no-update control of {args.config} ({' '.join(args.overrides) or 'no overrides'}), {steps} steps")
    print("| steps | mean reward |")
    print("|---|---|")
    for start in range(0, steps, args.window):
        window = rewards[start:start + args.window]
        print(f"| {start + 1}-{start + len(window)} | {sum(window) / len(window):.3f} |")


if __name__ == "__main__":
    main()
