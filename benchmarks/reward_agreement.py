"""How well a shapes-world model's self-reward agrees with the detector on its own GRPO rollouts.

    OMP_NUM_THREADS=2 python benchmarks/reward_agreement.py --model mini-showo --prompts-per-tag 8

Samples G images for each of N training prompts per tag, as a GRPO step does (the model's own sampler and
answers), and scores each image twice: the self-reward (its own answer matched to the prompt) and the shapes
detector (the evaluation's verdict). Prints per tag: both mean rewards, precision (detector right | self
reward 1), recall (self reward 1 | detector right), the fraction of groups whose self-reward has spread, and
the within-group correlation of the two rewards, which is what GRPO's advantages follow: near 0, a step
pushes toward images the detector does not prefer.
"""

from __future__ import annotations

import argparse
import time

import torch


def within_group_correlation(first: torch.Tensor, second: torch.Tensor) -> float:
    """Pearson correlation of two (groups, G) tensors after removing each group's mean; nan when flat."""
    a, b = first - first.mean(dim=1, keepdim=True), second - second.mean(dim=1, keepdim=True)
    denominator = (a.pow(2).sum() * b.pow(2).sum()).sqrt()
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def rollout_rewards(model_name: str, records: list[dict], group_size: int, num_steps: int | None,
                    seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(self rewards, detector rewards), each (len(records), group_size)."""
    from unirl_cli.config import SamplingConfig
    from unirl_cli.models.loading import load_model
    from unirl_cli.train.config import RewardConfig
    from unirl_cli.train.prompts import image_seed
    from unirl_cli.train.rewards import DetectorReward, SelfAnswerReward
    from unirl_cli.train.rollout import StepTimer, collect_experience

    model = load_model(model_name, device="cpu", dtype="float32")
    sampling = model.resolve_sampling(SamplingConfig(num_steps=num_steps))
    seeds = [image_seed(seed, 0, index) for index in range(len(records) * group_size)]
    batch, self_rewards = collect_experience(model, records, group_size, seeds, sampling,
                                             SelfAnswerReward(vocabulary="shapes"), 16, 32, StepTimer())
    batch.images = model.decode_images(batch.rollout.image_tokens)
    detector = DetectorReward(RewardConfig(detector_suite="shapes"))(batch)
    return self_rewards.view(-1, group_size), detector.view(-1, group_size)


def agreement_row(name: str, self_rewards: torch.Tensor, detector: torch.Tensor) -> str:
    """One markdown row of the table."""
    both = (self_rewards * detector).sum()
    precision = float(both / self_rewards.sum()) if self_rewards.sum() else float("nan")
    recall = float(both / detector.sum()) if detector.sum() else float("nan")
    spread = float((self_rewards.std(dim=1) > 0).float().mean())
    return (f"| {name} | {len(self_rewards)} | {float(self_rewards.mean()):.3f} | {float(detector.mean()):.3f} | "
            f"{precision:.3f} | {recall:.3f} | {spread:.2f} | "
            f"{within_group_correlation(self_rewards, detector):.3f} |")


def main() -> None:
    from unirl_cli.data.qa import TAGS
    from unirl_cli.train.config import PromptsConfig
    from unirl_cli.train.prompts import load_training_prompts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini-showo")
    parser.add_argument("--prompts", default="shapes/train_prompts.jsonl", help="prompt file (records with questions)")
    parser.add_argument("--prompts-per-tag", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="MaskGIT steps (default: the model's own)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    records = load_training_prompts(PromptsConfig(file=args.prompts, balance_tags=False))
    chosen = [r for tag in TAGS for r in [x for x in records if x["tag"] == tag][:args.prompts_per_tag]]
    started = time.time()
    self_rewards, detector = rollout_rewards(args.model, chosen, args.group_size, args.steps, args.seed)
    tags = [r["tag"] for r in chosen]
    print(f"model {args.model}, {len(chosen)} prompts x {args.group_size} images, "
          f"steps {args.steps or 'default'}, {(time.time() - started) / 60:.1f} min")
    print("| tag | prompts | self reward | detector | precision | recall | groups with spread | within-group corr. |")
    print("|---|---|---|---|---|---|---|---|")
    for tag in TAGS:
        rows = torch.tensor([t == tag for t in tags])
        if rows.any():
            print(agreement_row(tag, self_rewards[rows], detector[rows]))
    print(agreement_row("all", self_rewards, detector))


if __name__ == "__main__":
    main()
