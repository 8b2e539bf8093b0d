"""UniRL self-improvement in the shapes world over several seeds: GenEval before/after per tag, mean and spread.

Runs `unirl world improve --method M --seed S` for every method and seed (two at a time, one torch thread
each, on a 2-core machine), then prints a markdown table (mean +- standard deviation over seeds) and writes
the self-reward curves (mean over seeds, moving average) to a PNG.

    python benchmarks/self_improvement.py --methods grpo sft --seeds 0 1 2 --out outputs/self_improvement
    python benchmarks/self_improvement.py --model mini-showo --methods grpo --out outputs/self_improvement_showo

Under the table, each method's per-seed changes (overall and imbalance, after minus before), since a mean
can hide a seed that did not improve.

A method may carry its own overrides, to compare variants of a recipe side by side:
`--methods grpo grpo:grpo.answer_weight=1 sft` (comma-separated key=value after the colon).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
HEADER = ("single", "two", "counting", "colours", "position", "colour attr.", "overall", "QA acc.", "imbalance",
          "objects/image")


def run_one(spec: str, seed: int, steps: int | None, out: Path, extra: list[str],
            model: str = "mini") -> tuple[Path, float]:
    """One `unirl world improve` run of `spec` ("grpo", or "grpo:key=value,...") in its own folder;
    (folder, seconds). Skips a finished run."""
    method, _, overrides = spec.partition(":")
    name = f"{spec.replace(':', '_').replace(',', '_')}-seed{seed}"
    folder = out / name
    if (folder / "after" / "summary.json").exists():
        return folder, float("nan")
    command = ["unirl", "world", "improve", "--model", model, "--method", method, "--seed", str(seed), "--out", str(folder),
               "--threads", "1", *(["--steps", str(steps)] if steps else []), *extra,
               *(overrides.split(",") if overrides else [])]
    started = time.time()
    log = (out / f"{name}.log").open("w")
    subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return folder, time.time() - started


def label(spec: str) -> str:
    """"GRPO" for "grpo", "GRPO grpo.answer_weight=0" for "grpo:grpo.answer_weight=0"."""
    method, _, overrides = spec.partition(":")
    return f"{method.upper()} {overrides.replace(',', ' ')}".strip()


def row_values(eval_dir: Path) -> list[float]:
    """The table's numbers for one evaluation folder: six tags, overall, QA accuracy, imbalance, and the
    detector's objects per image (clutter passes GenEval's two-object rule, so watch it next to the score)."""
    from unirl_cli.world.improve import objects_per_image

    summary = json.loads((eval_dir / "summary.json").read_text())
    understanding = summary["understanding"]["overall"]
    return [summary["tasks"][tag]["score"] for tag in TAGS] + [
        summary["overall"], understanding["understanding_accuracy"], understanding["imbalance"],
        objects_per_image(eval_dir)]


def mean_spread(rows: list[list[float]]) -> list[str]:
    """'mean +- sd' per column (sd over seeds; just the value for one seed)."""
    cells = []
    for column in zip(*rows):
        values = [v for v in column if v is not None]
        mean = statistics.fmean(values)
        cells.append(f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}")
    return cells


def reward_curve(metrics_file: Path) -> list[float]:
    return [json.loads(line)["reward/mean"] for line in metrics_file.read_text().splitlines() if line.strip()]


def plot_rewards(curves: dict[str, list[list[float]]], path: Path, model: str = "mini", window: int = 10) -> None:
    """Mean self-reward per step over seeds, moving-averaged, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for method, runs in curves.items():
        length = min(len(run) for run in runs)
        mean = [statistics.fmean(run[i] for run in runs) for i in range(length)]
        smooth = [statistics.fmean(mean[max(0, i - window + 1): i + 1]) for i in range(length)]
        axis.plot(range(1, length + 1), smooth, label=f"{label(method)} ({len(runs)} seeds)")
    axis.set_xlabel("training step")
    axis.set_ylabel(f"self-reward (mean, {window}-step avg)")
    axis.set_title(f"{model} in the shapes world: the model's own answers as reward")
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini", help="shapes-world model: mini, mini-showo or a folder")
    parser.add_argument("--methods", nargs="+", default=["grpo", "sft"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="override the recipes' steps")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/self_improvement"))
    parser.add_argument("--plot", type=Path, default=None, help="reward-curve PNG (default OUT/reward_curve.png)")
    parser.add_argument("extra", nargs="*", help="training overrides key=value passed to every run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(method, seed) for method in args.methods for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda job: (job, *run_one(*job, args.steps, args.out, args.extra, args.model)), jobs))
    before = row_values(done[0][1] / "before")
    print("| model | " + " | ".join(HEADER) + " | run time |")
    print("|---" * (len(HEADER) + 2) + "|")
    print(f"| {args.model} (before) | " + " | ".join(f"{v:.3f}" for v in before) + " | |")
    curves: dict[str, list[list[float]]] = {}
    changes: dict[str, list[tuple[float, float]]] = {}
    for method in args.methods:
        runs = [(folder, seconds) for (m, _), folder, seconds in done if m == method]
        rows = [row_values(folder / "after") for folder, _ in runs]
        times = [seconds for _, seconds in runs if seconds == seconds]
        minutes = f"{statistics.fmean(times) / 60:.1f} min" if times else "-"
        print(f"| + {label(method)} ({len(rows)} seeds) | " + " | ".join(mean_spread(rows)) + f" | {minutes} |")
        curves[method] = [reward_curve(folder / "train" / "metrics.jsonl") for folder, _ in runs]
        changes[method] = [(row[6] - before[6], row[8] - before[8]) for row in rows]
    for method, pairs in changes.items():
        print(f"\n{label(method)} per seed ({', '.join(str(s) for s in args.seeds)}): overall "
              + " / ".join(f"{gain:+.3f}" for gain, _ in pairs) + "; imbalance "
              + " / ".join(f"{delta:+.3f}" for _, delta in pairs))
    plot_path = args.plot or args.out / "reward_curve.png"
    plot_rewards(curves, plot_path, args.model)
    print(f"\nreward curves: {plot_path}")


if __name__ == "__main__":
    main()
