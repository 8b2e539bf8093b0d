"""A shapes-world model's GenEval (shapes suite, with its understanding) across sampling settings: how the
defaults saved with a mini were chosen (mini: CFG 2; mini-showo: guidance w and MaskGIT steps).

    OMP_NUM_THREADS=2 python benchmarks/mini_sampling.py --model mini-showo --guidance 0.5 1 2 --steps 8 12

Prints one row per setting: overall, QA accuracy, imbalance, detected objects per image (the prompts ask for 1.8),
minutes. Each setting writes its evaluation folder under --out, so a rerun reuses finished ones.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path


def evaluate(model: str, guidance: float, steps: int | None, temperature: float | None,
             out: Path) -> tuple[dict, float]:
    """Shapes-suite evaluation of `model` with guidance `guidance` (and `steps` MaskGIT steps, `temperature`:
    Show-o's re-masking noise, Janus's token temperature); (summary, minutes)."""
    from unirl_cli.config import SamplingConfig
    from unirl_cli.eval.geneval.config import EvalGenevalConfig
    from unirl_cli.eval.geneval.pipeline import run_geneval, silent_reporter
    from unirl_cli.models.loading import load_model

    sampling = SamplingConfig(guidance_scale=guidance, num_steps=steps, temperature=temperature)
    config = EvalGenevalConfig(model=model, out_dir=str(out), suite="shapes", understanding=True, seed=42,
                               batch_size=32, device="cpu", dtype="float32", sampling=sampling)
    started = time.time()
    summary = run_geneval(config, load_model, silent_reporter).summary
    return summary, (time.time() - started) / 60


def main() -> None:
    from unirl_cli.world.improve import objects_per_image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini-showo")
    parser.add_argument("--guidance", nargs="+", type=float, default=[0.5, 1.0, 2.0])
    parser.add_argument("--steps", nargs="+", type=int, default=[None], help="MaskGIT steps (masked models only)")
    parser.add_argument("--temperature", nargs="+", type=float, default=[None],
                        help="Show-o: the re-masking (Gumbel) temperature; Janus: the token temperature")
    parser.add_argument("--out", type=Path, default=Path("outputs/mini_sampling"))
    args = parser.parse_args()
    print("| guidance | steps | temperature | overall | QA acc. | imbalance | objects/image | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    for guidance, steps, temperature in itertools.product(args.guidance, args.steps, args.temperature):
        name = f"w{guidance}-s{steps or 'default'}-t{'default' if temperature is None else temperature}"
        folder = args.out / f"{args.model.replace('/', '_')}-{name}"
        summary, minutes = evaluate(args.model, guidance, steps, temperature, folder)
        understanding = summary["understanding"]["overall"]
        print(f"| {guidance} | {steps or 'default'} | {'default' if temperature is None else temperature} | "
              f"{summary['overall']:.3f} | "
              f"{understanding['understanding_accuracy']:.3f} | {understanding['imbalance']:.3f} | "
              f"{objects_per_image(folder):.2f} | {minutes:.1f} |", flush=True)


if __name__ == "__main__":
    main()
