"""Where a UniRL training step spends its time, one process vs two (DDP), on a mid-size random Janus.

Model: 128 px (64 image tokens), a 4-layer LLM of width 256, the real 16384-entry codebook. Step: 4 prompts x
G=4 images (16 images over all processes), self-reward (the model answers its own images, matcher scores),
GRPO with beta=0.1 (a frozen reference) in micro-batches of 8. The first step is warm-up and not counted.
Each configuration runs as fresh processes through the real entry point (`accelerate launch` for two), and
every rank reports its peak resident memory. Every process runs one torch thread (`--threads`), so two
processes use two cores: on a shared 2-core box, two threads per process oversubscribe the CPU.

    python benchmarks/train_step.py [--steps 5] [--method grpo|sft]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

THREADS_PER_PROCESS = 1
PHASES = ["rollout", "answering", "reward", "logprob_fwd_bwd", "optimizer"]


def worker(model_dir: str, out_dir: str, steps: int, method: str) -> None:
    """Run the training loop and write this rank's peak memory next to metrics.jsonl."""
    import torch

    from unirl_cli.config import build_config
    from unirl_cli.train.config import TrainConfig
    from unirl_cli.train.loop import train

    config = build_config(TrainConfig, {
        "method": method, "model": model_dir, "steps": steps, "prompts_per_step": 4, "group_size": 4,
        "micro_batch_size": 8, "output_dir": out_dir, "prompts": {"num_generated": 64},
        "grpo": {"beta": 0.1}, "optim": {"lr": 1e-5}, "log": {"live": False, "plots": False}})
    train(config)
    rank = int(os.environ.get("RANK", "0"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    Path(out_dir, f"memory_rank{rank}.json").write_text(json.dumps({"peak_mb": peak_mb}))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(model_dir: Path, out_dir: Path, processes: int, steps: int, method: str) -> dict:
    """Run one configuration in fresh processes; returns mean phase seconds per step and peak memory."""
    threads = THREADS_PER_PROCESS
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    worker_args = [__file__, "--worker", str(model_dir), str(out_dir), "--steps", str(steps), "--method", method]
    if processes == 1:
        command = [sys.executable, *worker_args]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(_free_port()), *worker_args]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{processes}-process run failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()][1:]
    summary = {phase: sum(r.get(f"time/{phase}", 0.0) for r in rows) / len(rows) for phase in PHASES}
    summary["step"] = sum(r["time/step"] for r in rows) / len(rows)
    summary["images_per_s"] = sum(r["images_per_s"] for r in rows) / len(rows)
    summary["peak_mb"] = max(json.loads(p.read_text())["peak_mb"] for p in out_dir.glob("memory_rank*.json"))
    summary["threads"] = threads
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("MODEL_DIR", "OUT_DIR"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--method", choices=["grpo", "sft"], default="grpo")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, steps=args.steps, method=args.method)
        return
    from rich.console import Console
    from rich.table import Table

    from unirl_cli.models.janus.tiny import build_tiny_janus

    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_tiny_janus(Path(folder) / "model", image_size=128, hidden_size=256, num_layers=4)
        results = {n: launch(model_dir, Path(folder) / f"run{n}", n, args.steps, args.method) for n in (1, 2)}
    table = Table(title=f"{args.method} step on mid-size Janus (64 tokens, 16 images/step), mean of "
                        f"{args.steps - 1} steps")
    table.add_column("phase")
    for n, result in results.items():
        table.add_column(f"{n} proc x {result['threads']} thr (s)", justify="right")
    table.add_column("2 proc / 1 proc", justify="right")
    for phase in PHASES + ["step"]:
        one, two = results[1][phase], results[2][phase]
        table.add_row(phase, f"{one:.3f}", f"{two:.3f}", f"{two / one:.2f}" if one else "-")
    table.add_row("images/s", f"{results[1]['images_per_s']:.1f}", f"{results[2]['images_per_s']:.1f}",
                  f"{results[2]['images_per_s'] / results[1]['images_per_s']:.2f}")
    table.add_row("peak memory / process (MB)", f"{results[1]['peak_mb']:.0f}", f"{results[2]['peak_mb']:.0f}",
                  f"{results[2]['peak_mb'] / results[1]['peak_mb']:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
