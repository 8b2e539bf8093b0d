"""How well a shapes-world model's self-reward agrees with the detector on its own GRPO rollouts.

    OMP_NUM_THREADS=2 python benchmarks/reward_agreement.py --model mini-showo --prompts-per-tag 8

Samples G images for each of N training prompts per tag, as a GRPO step does (the model's own sampler and
answers), and scores each image twice: the self-reward (its own answer matched to the prompt) and the shapes
detector (the evaluation's verdict). Prints per tag: both mean rewards, precision (detector right | self
reward 1), recall (self reward 1 | detector right), the fraction of groups whose self-reward has spread, and
the within-group correlation of the two rewards, which is what GRPO's advantages follow: near 0, a step
pushes toward images the detector does not prefer.

Then, for the same rollouts, what the grids hold (a shapes-world code is a patch kind, so a grid parses exactly):
complete objects and fragment patches per image, objects the detector finds, how often the grid parse that
`world read --own-share` labels with (`grid_objects`) counts as many objects as the detector, how often the two rewards agree
on grids without and with fragments; and the gap between the sampler's log-probs and the conditional branch's
(per token), which the conditional-branch GRPO update is off by. `--reencode` has the model read its decoded images
encoded again instead of the codes it generated.
"""

from __future__ import annotations

import argparse
import time

import torch

MAX_ANSWER_TOKENS = 16  # the shapes world's answers are at most 11 tokens (as the mini recipes)
MICRO_BATCH = 32


def within_group_correlation(first: torch.Tensor, second: torch.Tensor) -> float:
    """Pearson correlation of two (groups, G) tensors after removing each group's mean; nan when flat."""
    a, b = first - first.mean(dim=1, keepdim=True), second - second.mean(dim=1, keepdim=True)
    denominator = (a.pow(2).sum() * b.pow(2).sum()).sqrt()
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def rollout_rewards(model_name: str, records: list[dict], group_size: int, num_steps: int | None, seed: int,
                    reencode: bool = False, guidance: float | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(self rewards, detector rewards), each (len(records), group_size), and the grid statistics."""
    from unirl_cli.config import SamplingConfig
    from unirl_cli.models.loading import load_model
    from unirl_cli.train.config import RewardConfig
    from unirl_cli.train.prompts import image_seed
    from unirl_cli.train.rewards import DetectorReward, SelfAnswerReward
    from unirl_cli.train.rollout import StepTimer, answer_images, collect_experience

    model = load_model(model_name, device="cpu", dtype="float32")
    sampling = model.resolve_sampling(SamplingConfig(num_steps=num_steps, guidance_scale=guidance))
    seeds = [image_seed(seed, 0, index) for index in range(len(records) * group_size)]
    self_reward = SelfAnswerReward(vocabulary="shapes")
    batch, self_rewards = collect_experience(model, records, group_size, seeds, sampling, self_reward,
                                             MAX_ANSWER_TOKENS, MICRO_BATCH, StepTimer())
    batch.images = model.decode_images(batch.rollout.image_tokens)
    if reencode:
        codes = model.encode_images(batch.images)
        batch.answers = answer_images(model, codes, [r["question"] for r in batch.records], MAX_ANSWER_TOKENS,
                                      MICRO_BATCH)
        self_rewards = self_reward(batch)
    detector = DetectorReward(RewardConfig(detector_suite="shapes"))(batch)
    stats = grid_statistics(model, batch, self_rewards, detector)
    return self_rewards.view(-1, group_size), detector.view(-1, group_size), stats


def grid_statistics(model, batch, self_rewards: torch.Tensor, detector: torch.Tensor) -> dict:
    """Per image means of complete objects, fragment patches and detections; agreement on clean/fragment grids;
    mean |sampler - conditional| log-prob per image token."""
    from unirl_cli.eval.shapes.detector import detect_objects
    from unirl_cli.world.vq_train import count_objects_and_fragments, grid_objects

    parsed = [count_objects_and_fragments(codes) for codes in batch.rollout.image_tokens]
    fragments = torch.tensor([count for _, count in parsed])
    detected = [len(detect_objects(image)) for image in batch.images]
    # the grid parse (three quarters in place make an object), as `world read --own-share` labels its samples
    read = [len(grid_objects(codes)) for codes in batch.rollout.image_tokens]
    agree = self_rewards == detector
    with torch.no_grad():
        sampler = model.image_logprobs(batch.rollout).sum(dim=1)
        conditional = model.image_logprobs(batch.rollout, guidance_scale=model.no_guidance_scale).sum(dim=1)
    return {"complete objects/image": sum(objects for objects, _ in parsed) / len(parsed),
            "fragment patches/image": float(fragments.float().mean()),
            "detected objects/image": sum(detected) / len(parsed),
            "grid parse counts as the detector": sum(a == b for a, b in zip(read, detected)) / len(parsed),
            "grids without fragments": float((fragments == 0).float().mean()),
            "rewards agree, clean grids": float(agree[fragments == 0].float().mean()),
            "rewards agree, grids with fragments": float(agree[fragments > 0].float().mean()),
            "log-prob gap, sampler vs conditional, per token": float((sampler - conditional).abs().mean())
            / model.num_image_tokens}


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
    parser.add_argument("--reencode", action="store_true", help="read the decoded images encoded again")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's own)")
    args = parser.parse_args()

    records = load_training_prompts(PromptsConfig(file=args.prompts, balance_tags=False))
    chosen = [r for tag in TAGS for r in [x for x in records if x["tag"] == tag][:args.prompts_per_tag]]
    started = time.time()
    self_rewards, detector, stats = rollout_rewards(args.model, chosen, args.group_size, args.steps, args.seed,
                                                    args.reencode, args.guidance)
    tags = [r["tag"] for r in chosen]
    guidance = "default" if args.guidance is None else args.guidance
    print(f"model {args.model}, {len(chosen)} prompts x {args.group_size} images, steps {args.steps or 'default'}, "
          f"guidance {guidance}, {(time.time() - started) / 60:.1f} min")
    print("| tag | prompts | self reward | detector | precision | recall | groups with spread | within-group corr. |")
    print("|---|---|---|---|---|---|---|---|")
    for tag in TAGS:
        rows = torch.tensor([t == tag for t in tags])
        if rows.any():
            print(agreement_row(tag, self_rewards[rows], detector[rows]))
    print(agreement_row("all", self_rewards, detector))
    print()
    print("| grids | value |")
    print("|---|---|")
    for name, value in stats.items():
        print(f"| {name} | {value:.3f} |")


if __name__ == "__main__":
    main()
