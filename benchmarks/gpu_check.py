"""One short check for whoever is lent a GPU: real-size speed and memory of the paths unirl trains with.

    python benchmarks/gpu_check.py --out gpu_check.json                  # full size, cuda, about 5 min on an H100
    python benchmarks/gpu_check.py --size tiny --device cpu --out x.json  # the same code on the test models, seconds

Phases (each timed; a failing phase is recorded and the next one runs):
1. Janus-Pro-1B (exact architecture, random bf16 weights): our sampler (per-token log-probs, CFG) against
   transformers' `generate(generation_mode="image")` at equal tokens and CFG 5, batch 16 and 32: images/s.
2. Show-o-512 (Phi-1.5 body, MAGVIT-v2, 1024 tokens): our MaskGIT sampler, CFG 5, 50 steps: images/s.
3. One GRPO step of `unirl train` on Janus-Pro-1B at the recipe's group size (8), bf16, gradient checkpointing:
   seconds and peak GPU memory.
4. FSDP smoke: the same step under `accelerate launch` with the FSDP config on one process.
Prints one table and writes everything to JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_size import build_janus, build_showo  # noqa: E402

PROMPTS = ["a photo of a red cube", "two blue circles", "a dog left of a cat", "three green apples on a table"]


class LowTokenReward:
    """A per-image reward with spread, so the GRPO step has non-zero advantages without a trained reader."""

    needs_answers = False

    def __call__(self, batch):
        return (batch.rollout.image_tokens < 8192).float().mean(dim=1).cpu()


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, function) -> float:
    synchronize(device)
    started = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - started


def janus_sampling(folder: Path, device: str, batches: list[int]) -> dict:
    """Images/s of our sampler and of transformers' generate, same prompts, CFG 5, sampling, each batch size."""
    from unirl_cli.config import SamplingConfig
    from unirl_cli.models.janus import JanusModel

    model = JanusModel.load(str(folder), device=device, dtype=torch.bfloat16)
    rows = {}
    for batch in batches:
        prompts = (PROMPTS * batch)[:batch]
        encoded = model.tokenizer([model.prompt_format.generation_prompt(p) for p in prompts], padding=True,
                                  padding_side="left", return_tensors="pt").to(device)
        sampling = SamplingConfig(guidance_scale=5.0, temperature=1.0)
        ours = lambda: model.generate_images(prompts, list(range(batch)), sampling)  # noqa: E731
        theirs = lambda: model.hf_model.generate(**encoded, generation_mode="image", do_sample=True,  # noqa: E731
                                                 top_k=0, guidance_scale=5.0)
        ours()  # warm-up (kernels, allocator)
        seconds_ours, seconds_theirs = timed(device, ours), timed(device, theirs)
        rows[f"batch {batch}"] = {"ours_images_per_s": batch / seconds_ours,
                                  "transformers_images_per_s": batch / seconds_theirs,
                                  "speedup": seconds_theirs / seconds_ours}
    return rows


def showo_sampling(folder: Path, device: str, batch: int) -> dict:
    from unirl_cli.config import SamplingConfig
    from unirl_cli.models.showo import ShowoModel

    model = ShowoModel.load(str(folder), device=device, dtype=torch.bfloat16)
    prompts = (PROMPTS * batch)[:batch]
    run = lambda: model.generate_images(prompts, list(range(batch)), SamplingConfig(guidance_scale=5.0))  # noqa: E731
    run()
    return {"batch": batch, "images_per_s": batch / timed(device, run)}


def grpo_step(folder: Path, device: str, out_dir: Path, group_size: int) -> dict:
    from unirl_cli.config import build_config
    from unirl_cli.train.config import TrainConfig
    from unirl_cli.train.loop import train

    config = build_config(TrainConfig, {
        "method": "grpo", "model": str(folder), "steps": 1, "prompts_per_step": 1, "group_size": group_size,
        "micro_batch_size": group_size, "output_dir": str(out_dir), "dtype": "bfloat16" if device != "cpu" else
        "float32", "gradient_checkpointing": True, "prompts": {"num_generated": 8},
        "grpo": {"beta": 0.0}, "log": {"live": False, "plots": False}})
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    seconds = timed(device, lambda: train(config, reward_fn=LowTokenReward()))
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if device.startswith("cuda") else float("nan")
    return {"group_size": group_size, "seconds": seconds, "peak_gpu_gib": peak}


def fsdp_smoke(folder: Path, device: str, out_dir: Path) -> dict:
    """One `unirl train grpo` step under accelerate with the FSDP config, one process."""
    from unirl_cli.resources import resolve_config

    config = "fsdp-cpu" if device == "cpu" else "fsdp"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(resolve_config(config, "accelerate")), "--num_processes", "1", "-m", "unirl_cli", "train", "grpo",
               "--model", str(folder), "--out", str(out_dir), "--steps", "1", "prompts_per_step=1", "group_size=2",
               "prompts.num_generated=8", "gradient_checkpointing=true", "log.plots=false"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "exit code "
                           f"{done.returncode}")
    return {"seconds": time.perf_counter() - started, "checkpoint": (out_dir / "checkpoints" / "step-000001").is_dir()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()
    batches, showo_batch, group = ([16, 32], 8, 8) if args.size == "full" else ([2, 4], 2, 2)
    report = {"size": args.size, "device": args.device, "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None, "phases": {}}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        phases = {
            "build": lambda: {"janus_s": timed("cpu", lambda: build_janus(scratch / "janus", args.size)),
                              "showo_s": timed("cpu", lambda: build_showo(scratch / "showo", args.size))},
            "janus sampler vs generate": lambda: janus_sampling(scratch / "janus", args.device, batches),
            "showo sampler": lambda: showo_sampling(scratch / "showo", args.device, showo_batch),
            "grpo step": lambda: grpo_step(scratch / "janus", args.device, scratch / "run", group),
            "fsdp smoke": lambda: fsdp_smoke(scratch / "janus", args.device, scratch / "fsdp"),
        }
        for name, phase in phases.items():
            started = time.perf_counter()
            try:
                report["phases"][name] = {"ok": True, **phase()}
            except Exception as err:  # record and go on: one broken phase must not hide the others
                report["phases"][name] = {"ok": False, "error": f"{type(err).__name__}: {err}",
                                          "trace": traceback.format_exc()[-2000:]}
            report["phases"][name]["wall_s"] = time.perf_counter() - started
            print(f"{name}: {json.dumps({k: v for k, v in report['phases'][name].items() if k != 'trace'})}",
                  flush=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n| phase | ok | wall s | numbers |\n|---|---|---|---|")
    for name, row in report["phases"].items():
        numbers = {k: v for k, v in row.items() if k not in ("ok", "wall_s", "trace")}
        print(f"| {name} | {row['ok']} | {row['wall_s']:.1f} | {json.dumps(numbers)} |")
    print(f"\nwrote {args.out}")
    if os.environ.get("GPU_CHECK_STRICT") and not all(row["ok"] for row in report["phases"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
