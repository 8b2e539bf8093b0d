"""Why UniRL's SFT does or does not improve the shapes-world mini: the choices the paper leaves open, side by side.

Each variant is `unirl world improve --method sft` with overrides on the shipped mini-sft recipe (self-reward
only), over several seeds, two runs at a time with one torch thread each. One table: overall, imbalance, QA
accuracy, objects per image, and the self-reward over the first and last tenth of training, mean +- sd over
seeds; the per-variant reward curves go to a PNG.

    python benchmarks/sft_ablation.py --seeds 0 1 --steps 100 --out outputs/sft_ablation
    python benchmarks/sft_ablation.py --variants recipe filtered-cfg --seeds 0 1 2   # a subset
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from self_improvement import mean_spread, plot_rewards, reward_curve, row_values, run_one  # noqa: E402

# name -> overrides of the mini-sft recipe (end-to-end straight-through Gumbel-softmax, lr 5e-5, tau 1)
VARIANTS = {
    "recipe": "",
    "lr 2e-4": "optim.lr=2e-4",
    "tau 0.3": "sft.gumbel_tau=0.3",
    "soft tokens": "sft.straight_through=soft",
    "reader only": "sft.generator_grad=0",
    "lr 2e-4 + KL 0.1": "optim.lr=2e-4,sft.kl_beta=0.1",
    "warm-up 30, lr 2e-4": "optim.lr=2e-4,optim.warmup_steps=30",
    "4 images/prompt": "group_size=4,prompts_per_step=8",
    "filtered, cond": "sft.mode=filtered,sft.und_on=correct,sft.gen_branch=cond",
    "filtered, cfg": "sft.mode=filtered,sft.und_on=correct,sft.gen_branch=cfg",
    "filtered, cfg, lr 1e-4": "sft.mode=filtered,sft.und_on=correct,sft.gen_branch=cfg,optim.lr=1e-4",
}
HEADER = ("overall", "QA acc.", "imbalance", "objects/image", "self-reward first 10%", "self-reward last 10%")


def spec_of(name: str) -> str:
    overrides = VARIANTS[name]
    return f"sft:{overrides}" if overrides else "sft"


def tenths(curve: list[float]) -> tuple[float, float]:
    """Mean self-reward over the first and the last tenth of a run."""
    tenth = max(1, len(curve) // 10)
    return statistics.fmean(curve[:tenth]), statistics.fmean(curve[-tenth:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/sft_ablation"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(name, seed) for name in args.variants for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda job: (job, run_one(spec_of(job[0]), job[1], args.steps, args.out, [])[0]), jobs))
    before = row_values(done[0][1] / "before")
    print(f"{args.steps} steps, seeds {' '.join(map(str, args.seeds))}; mini before: overall {before[6]:.3f}, "
          f"QA acc. {before[7]:.3f}, imbalance {before[8]:.3f}, objects/image {before[9]:.2f}\n")
    print("| variant | overrides | " + " | ".join(HEADER) + " |")
    print("|---" * (len(HEADER) + 2) + "|")
    curves = {}
    for name in args.variants:
        folders = [folder for (variant, _), folder in done if variant == name]
        rows = []
        for folder in folders:
            curve = reward_curve(folder / "train" / "metrics.jsonl")
            rows.append(row_values(folder / "after")[6:10] + list(tenths(curve)))
        curves[spec_of(name)] = [reward_curve(folder / "train" / "metrics.jsonl") for folder in folders]
        print(f"| {name} | `{VARIANTS[name] or '-'}` | " + " | ".join(mean_spread(rows)) + " |")
    plot_rewards(curves, args.out / "reward_curve.png")
    print(f"\nreward curves: {args.out / 'reward_curve.png'}")


if __name__ == "__main__":
    main()
