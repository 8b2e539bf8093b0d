"""How fast GRPO climbs a reward on a few fixed prompts, per model family: a plain pixel statistic (the share of
red pixels) against the detector's GenEval verdict (composition), with each model's own recipe otherwise.

    OMP_NUM_THREADS=2 python benchmarks/learning_speed.py --models mini mini-showo --rewards red detector --steps 60

The prompts are four of the shapes suite's evaluation prompts that both shipped minis get right on 1 or 2 of 4
images (counting, position, two colour attributions), each drawn group_size times a step; so this measures how
quickly the update concentrates a prompt's images on what the reward asks, not generalisation. Prints the mean
training reward per `--window` steps, one row per (model, reward), and keeps each run under --out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

PROBE_PROMPTS = (
    "a photo of four diamonds",
    "a photo of a circle left of a cross",
    "a photo of a yellow triangle and a purple cross",
    "a photo of a red cross and a white ring",
)


class RedShareReward:
    """Ten times the share of an image's pixels within 60 RGB units of the world's red: a reward any generator
    can climb by drawing red, whatever the prompt asks."""

    needs_answers = False
    needs_images = True

    def __call__(self, batch):
        import numpy as np
        import torch

        from unirl_cli.data.shapes.spec import COLORS

        red = np.array(COLORS["red"], dtype=np.float32)
        shares = []
        for image in batch.images:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
            shares.append(float((np.linalg.norm(rgb - red, axis=-1) < 60).mean()) * 10)
        return torch.tensor(shares, dtype=torch.float32)


def probe_prompts_file(folder: Path) -> Path:
    """The probe's prompt records, taken from the shipped shapes evaluation prompts."""
    from unirl_cli.data.shapes.prompts import eval_prompts

    records = [record for record in eval_prompts() if record["prompt"] in PROBE_PROMPTS]
    if len(records) != len(PROBE_PROMPTS):
        raise SystemExit("the probe prompts are missing from the shapes evaluation metadata")
    path = folder / "probe_prompts.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def run(model: str, reward: str, steps: int, lr: float | None, prompts: Path, out: Path,
        extra: list[str]) -> list[float]:
    """One GRPO run of `steps` on the probe prompts; the per-step mean training reward."""
    from unirl_cli.config import load_config
    from unirl_cli.train.config import TrainConfig
    from unirl_cli.train.loop import train
    from unirl_cli.world.improve import default_recipe

    recipe = default_recipe(model, "grpo")
    overrides = [f"model={model}", f"steps={steps}", f"output_dir={out}", f"prompts.file={prompts}",
                 "prompts.allow_geneval_overlap=true", "prompts.balance_tags=false", "save_every=0",
                 "log.live=false", "log.plots=false", "log.sample_every=0"]
    if lr is not None:
        overrides.append(f"optim.lr={lr}")
    if reward == "detector":
        overrides += ["reward.self_weight=0", "reward.detector_weight=1", "reward.detector_suite=shapes"]
    config = load_config(TrainConfig, recipe, overrides + extra)
    result = train(config, reward_fn=RedShareReward() if reward == "red" else None, overwrite=True)
    return [row["reward/mean"] for row in result.metrics]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mini", "mini-showo"])
    parser.add_argument("--rewards", nargs="+", choices=["red", "detector"], default=["red", "detector"])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-4, help="the same for every model (default 1e-4)")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("outputs/learning_speed"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run (rollout, grpo, ...)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        prompts = probe_prompts_file(Path(scratch))
        for model in args.models:
            for reward in args.rewards:
                folder = args.out / f"{model.replace('/', '_')}-{reward}"
                rewards = run(model, reward, args.steps, args.lr, prompts, folder, args.overrides)
                windows = [rewards[i:i + args.window] for i in range(0, len(rewards), args.window)]
                rows.append((model, reward, [sum(w) / len(w) for w in windows]))
    print(f"mean training reward per {args.window} steps (lr {args.lr}, the four probe prompts x group_size)")
    spans = [f"{start + 1}-{min(start + args.window, args.steps)}" for start in range(0, args.steps, args.window)]
    print("| model | reward | " + " | ".join(spans) + " |")
    print("|---|---|" + "---|" * len(rows[0][2]))
    for model, reward, means in rows:
        print(f"| {model} | {reward} | " + " | ".join(f"{m:.3f}" for m in means) + " |")


if __name__ == "__main__":
    main()
