"""How fast GRPO climbs a reward on a few fixed prompts, per model family: a plain pixel statistic (the share of
red pixels) against the detector's GenEval verdict (composition), with each model's own recipe otherwise.

    OMP_NUM_THREADS=2 python benchmarks/learning_speed.py --models mini mini-showo --rewards red detector --steps 60
    OMP_NUM_THREADS=2 python benchmarks/learning_speed.py --models mini DIR --rewards detector --steps 40 --transfer

The prompts are four of the shapes suite's evaluation prompts that both shipped minis get right on 1 or 2 of 4
images (counting, position, two colour attributions), each drawn group_size times a step; so this measures how
quickly the update concentrates a prompt's images on what the reward asks, not generalisation. Prints the mean
training reward per `--window` steps, one row per (model, reward), and keeps each run under --out.

`--transfer` then measures generalisation: the detector's verdict on the four probe prompts, on four prompts
the run never saw made of the same shapes and colours (three diamonds, a cross left of a circle, the two colour
attributions named in the other order) and on four of the same tags made of other ones (four crosses, a diamond
left of a triangle, two other colour pairs), for the untouched model and for the trained one, on image seeds the
run did not use (--transfer-steps steps of the recipe's batch each, sampled as `benchmarks/reward_control.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reward_control import control_rewards  # noqa: E402  (scripts in benchmarks/ share a folder)

PROBE_PROMPTS = (
    "a photo of four diamonds",
    "a photo of a circle left of a cross",
    "a photo of a yellow triangle and a purple cross",
    "a photo of a red cross and a white ring",
)
SAME_CODE_PROMPTS = (  # other prompts of the probe's shapes and colours (the last two: the probe's, reordered)
    "a photo of three diamonds",
    "a photo of a cross left of a circle",
    "a photo of a purple cross and a yellow triangle",
    "a photo of a white ring and a red cross",
)
SIBLING_PROMPTS = (  # the same four tags and forms, other shapes and colours
    "a photo of four crosses",
    "a photo of a diamond left of a triangle",
    "a photo of a green square and a pink circle",
    "a photo of a white diamond and a red cross",
)
DETECTOR_REWARD = ["reward.self_weight=0", "reward.detector_weight=1", "reward.detector_suite=shapes"]


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


def probe_prompts_file(folder: Path, prompts: tuple[str, ...] = PROBE_PROMPTS, name: str = "probe") -> Path:
    """The records of `prompts` as a prompt file: the shipped shapes evaluation prompts' records, or a colour
    attribution of those named in the other order."""
    from unirl_cli.data.shapes.prompts import eval_prompts

    records = eval_prompts()
    known = {record["prompt"]: record for record in records}
    known.update({reordered["prompt"]: reordered for reordered in map(reordered_attribution, records)
                  if reordered is not None})
    missing = [prompt for prompt in prompts if prompt not in known]
    if missing:
        raise SystemExit(f"the {name} prompts {missing} are missing from the shapes evaluation metadata")
    path = folder / f"{name}_prompts.jsonl"
    path.write_text("".join(json.dumps(known[prompt]) + "\n" for prompt in prompts))
    return path


def reordered_attribution(record: dict) -> dict | None:
    """A colour-attribution record with its two objects named in the other order (same scene), else None."""
    if record["tag"] != "color_attr":
        return None
    first, second = record["include"]
    named = [f"{item['color']} {item['class']}" for item in (second, first)]
    answer = " and ".join(f"the {item['class']} is {item['color']}" for item in (second, first))
    return {**record, "include": [second, first], "prompt": f"a photo of a {named[0]} and a {named[1]}",
            "answer": answer[0].upper() + answer[1:]}


def probe_config(model: str, prompts: Path, overrides: list[str]):
    """The model's own GRPO recipe on the prompt file `prompts`, with `overrides` on top."""
    from unirl_cli.config import load_config
    from unirl_cli.train.config import TrainConfig
    from unirl_cli.world.improve import default_recipe

    base = [f"model={model}", f"prompts.file={prompts}", "prompts.allow_geneval_overlap=true",
            "prompts.balance_tags=false", "log.live=false", "log.plots=false", "log.sample_every=0"]
    return load_config(TrainConfig, default_recipe(model, "grpo"), base + overrides)


def run(model: str, reward: str, steps: int, lr: float | None, prompts: Path, out: Path,
        extra: list[str]) -> tuple[list[float], str]:
    """One GRPO run of `steps` on the probe prompts; the per-step mean training reward and the final checkpoint."""
    from unirl_cli.train.loop import train

    overrides = [f"steps={steps}", f"output_dir={out}", "save_every=0"]
    if lr is not None:
        overrides.append(f"optim.lr={lr}")
    if reward == "detector":
        overrides += DETECTOR_REWARD
    config = probe_config(model, prompts, overrides + extra)
    result = train(config, reward_fn=RedShareReward() if reward == "red" else None, overwrite=True)
    return [row["reward/mean"] for row in result.metrics], str(result.last_checkpoint)


def detector_score(model: str, prompts: Path, steps: int, extra: list[str]) -> float:
    """Mean detector verdict of `model` on `steps` steps of its recipe's batch over `prompts`, sampling seed 7
    (the probe runs use seed 0)."""
    config = probe_config(model, prompts, DETECTOR_REWARD + extra + ["seed=7"])
    rewards = [reward for _, reward in control_rewards(config, steps)]
    return sum(rewards) / len(rewards)


def transfer_row(model: str, checkpoint: str, files: list[Path], steps: int, extra: list[str]) -> list[float]:
    """Detector verdicts before / after training, for each prompt file in turn."""
    return [detector_score(which, prompts, steps, extra) for prompts in files for which in (model, checkpoint)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mini", "mini-showo"])
    parser.add_argument("--rewards", nargs="+", choices=["red", "detector"], default=["red", "detector"])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-4, help="the same for every model (default 1e-4)")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("outputs/learning_speed"))
    parser.add_argument("--transfer", action="store_true",
                        help="after each detector run: the detector's verdict before/after on the probe and sibling prompts")
    parser.add_argument("--transfer-steps", type=int, default=5, help="batches sampled per transfer measurement")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run (rollout, grpo, ...)")
    args = parser.parse_args()
    rows, transfers = [], []
    with tempfile.TemporaryDirectory() as scratch:
        prompts = probe_prompts_file(Path(scratch))
        transfer_files = [prompts, probe_prompts_file(Path(scratch), SAME_CODE_PROMPTS, "same_code"),
                          probe_prompts_file(Path(scratch), SIBLING_PROMPTS, "sibling")]
        for model in args.models:
            for reward in args.rewards:
                folder = args.out / f"{model.replace('/', '_')}-{reward}"
                rewards, checkpoint = run(model, reward, args.steps, args.lr, prompts, folder, args.overrides)
                windows = [rewards[i:i + args.window] for i in range(0, len(rewards), args.window)]
                rows.append((model, reward, [sum(w) / len(w) for w in windows]))
                if args.transfer and reward == "detector":
                    transfers.append((model, transfer_row(model, checkpoint, transfer_files, args.transfer_steps,
                                                          args.overrides)))
    print(f"mean training reward per {args.window} steps (lr {args.lr}, the four probe prompts x group_size)")
    spans = [f"{start + 1}-{min(start + args.window, args.steps)}" for start in range(0, args.steps, args.window)]
    print("| model | reward | " + " | ".join(spans) + " |")
    print("|---|---|" + "---|" * len(rows[0][2]))
    for model, reward, means in rows:
        print(f"| {model} | {reward} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    if transfers:
        print(f"\ndetector verdict before -> after {args.steps} steps on the probe prompts (seed 7, "
              f"{args.transfer_steps} batches each)")
        print("| model | probe prompts | gain | same shapes and colours | gain | other shapes and colours | gain |")
        print("|---|---|---|---|---|---|---|")
        for model, verdicts in transfers:
            pairs = [verdicts[index:index + 2] for index in range(0, len(verdicts), 2)]
            print(f"| {model} | " + " | ".join(f"{before:.3f} -> {after:.3f} | {after - before:+.3f}"
                                               for before, after in pairs) + " |")


if __name__ == "__main__":
    main()
