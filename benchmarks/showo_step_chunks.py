"""Memory and time of one Show-o GRPO accumulation with `grpo.step_chunk` (sampling steps per backward) and
`grpo.step_fraction` (the share of sampling steps back-propagated, drawn at random).

Show-o's GRPO loss is a sum over MaskGIT steps, and each step's replay is a full forward pass with CFG.
Back-propagating all steps at once holds every step's graph; a step chunk of k holds k. This script runs
the training engine's own accumulation (`_image_micro_batches` + `accumulate_gradients`) on one rollout
for each chunk size, each in a fresh process, and prints the peak resident memory the accumulation added,
its time, and the largest gradient difference to the whole-step run (the gradients must agree), and its
cosine (a step fraction's gradient is an unbiased estimate of the whole one, so it only points near it).

Model: the mid-size tiny Show-o of benchmarks/showo.py (256 image tokens, the real 8192 codes, 128 text
slots, 4-layer Phi of width 256), CFG 5.

    python benchmarks/showo_step_chunks.py [--images 4] [--steps 16] [--chunks 0 4 1] [--fractions 0.25]
    (the first chunk is the baseline; each fraction runs with chunk 0)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch


def resident_mb() -> float:
    """This process's resident memory in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (this benchmark needs Linux)")


class PeakResident:
    """Polls resident memory in a thread while the block runs; `.peak` holds the highest value seen."""

    def __enter__(self) -> "PeakResident":
        self.peak, self._done = resident_mb(), threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, resident_mb())

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, resident_mb())


def one_setting(model_dir: str, images: int, steps: int, step_chunk: int, step_fraction: float,
                grads_out: str) -> dict:
    """One accumulation with `step_chunk` and `step_fraction` on a fixed rollout (seeded); saves the gradients."""
    from unirl_cli.config import build_config
    from unirl_cli.train.config import TrainConfig
    from unirl_cli.train.context import accumulate_gradients
    from unirl_cli.train.grpo import _image_micro_batches, image_grpo_objective, step_experience
    from unirl_cli.train.grpo_loss import group_advantages
    from unirl_cli.train.loop import build_run, make_accelerator
    from unirl_cli.train.rollout import StepTimer

    class BelowMedianReward:  # a programmatic reward with spread in the group: share of codes below the median
        needs_answers = False

        def __call__(self, batch):
            tokens = batch.rollout.image_tokens.float()
            return (tokens < tokens.median()).float().mean(dim=1).cpu()

    torch.set_num_threads(1)
    config = build_config(TrainConfig, {
        "model": model_dir, "method": "grpo", "steps": 1, "prompts_per_step": 1, "group_size": images,
        "micro_batch_size": images, "output_dir": tempfile.mkdtemp(), "log": {"live": False, "plots": False},
        "rollout": {"guidance_scale": 5.0, "num_steps": steps},
        "grpo": {"step_chunk": step_chunk, "step_fraction": step_fraction}})
    ctx = build_run(config, make_accelerator(config), None, None, BelowMedianReward())
    record = {"prompt": "a photo of a red cube", "question": "What is in the image?", "answer": "a red cube",
              "tag": "single_object"}
    batch, rewards = step_experience(ctx, [record], 0, 0, StepTimer())
    advantages = group_advantages(rewards, images, "group", rewards.std())
    micro_batches = _image_micro_batches(ctx, batch.rollout, advantages, StepTimer(), torch.Generator().manual_seed(0))
    before = resident_mb()
    started = time.perf_counter()
    with PeakResident() as memory:
        accumulate_gradients(ctx, image_grpo_objective, micro_batches)
    seconds = time.perf_counter() - started
    torch.save({name: p.grad for name, p in ctx.policy.named_parameters() if p.grad is not None}, grads_out)
    return {"step_chunk": step_chunk, "step_fraction": step_fraction, "backwards": len(micro_batches),
            "added_mb": memory.peak - before, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 4, 1])
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.25])
    parser.add_argument("--child", nargs=2, metavar=("MODEL_DIR", "GRADS_OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_setting(args.child[0], args.images, args.steps, args.chunks[0], args.fractions[0],
                                     args.child[1])))
        return
    from unirl_cli.models.showo.tiny import build_tiny_showo

    with tempfile.TemporaryDirectory() as folder:
        model_dir = str(build_tiny_showo(Path(folder) / "showo", image_size=128, grid_side=16, codebook_bits=13,
                                         hidden_size=256, num_layers=4, num_heads=8, max_text_length=128))
        rows, grads = [], []
        settings = [(chunk, 1.0) for chunk in args.chunks] + [(0, fraction) for fraction in args.fractions]
        for chunk, fraction in settings:
            grads_out = str(Path(folder) / f"grads-{chunk}-{fraction}.pt")
            child = subprocess.run([sys.executable, __file__, "--images", str(args.images), "--steps", str(args.steps),
                                    "--chunks", str(chunk), "--fractions", str(fraction), "--child", model_dir,
                                    grads_out],
                                   check=True, capture_output=True, text=True)
            rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
            grads.append(torch.load(grads_out, weights_only=True))
    print(f"Show-o GRPO accumulation, 256 image tokens, 8192 codes, {args.steps} steps, CFG 5, {args.images} images, "
          f"1 thread")
    print(f"{'step_chunk':>10}{'fraction':>9}{'backwards':>11}{'added MB':>10}{'vs all':>8}{'seconds':>9}{'vs all':>8}"
          f"{'max |grad diff|':>17}{'cosine':>8}")
    base = rows[0]
    for row, grad in zip(rows, grads):
        difference = max(float((grad[name] - grads[0][name]).abs().max()) for name in grads[0])
        print(f"{row['step_chunk']:>10}{row['step_fraction']:>9.2f}{row['backwards']:>11}{row['added_mb']:>10.0f}"
              f"{row['added_mb'] / base['added_mb']:>7.2f}x{row['seconds']:>9.1f}"
              f"{row['seconds'] / base['seconds']:>7.2f}x{difference:>17.2e}{gradient_cosine(grad, grads[0]):>8.3f}")


def gradient_cosine(grads: dict, reference: dict) -> float:
    """Cosine between two gradients (dicts of tensors with the same keys), flattened together."""
    first = torch.cat([grads[name].double().flatten() for name in reference])
    second = torch.cat([reference[name].double().flatten() for name in reference])
    return float(torch.nn.functional.cosine_similarity(first, second, dim=0))


if __name__ == "__main__":
    main()
