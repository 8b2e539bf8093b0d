"""Janus rollout speed: our KV-cached CFG sampler vs transformers' `generate(generation_mode="image")`.

Runs on the tiny-but-realistic config: 384 px, 576 image tokens (the real token count) with a tiny LLM,
batch 8, CFG 5. Greedy decoding makes both produce the same tokens, which is asserted. The two are timed
alternately (median of `--repeats`) so that load from other processes hits both alike.

    python benchmarks/rollout.py [--batch 8] [--repeats 3] [--device cpu] [--threads 1]

One CPU thread by default: on a shared CPU, multi-threaded OpenMP kernels stall in their barriers whenever
another process takes a core, and single calls then vary by 50x; one thread gives repeatable numbers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from unirl_cli.config import SamplingConfig
from unirl_cli.models.janus import JanusModel
from unirl_cli.models.janus.tiny import build_tiny_janus

PROMPTS = ["a photo of a red cube", "two blue circles", "a dog left of a cat", "three green apples on a table",
           "a purple giraffe", "a black and white photo of a bus", "a yellow banana", "an orange clock"]


def _timed(function) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process); CPU time is less disturbed by other processes."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def run(batch: int, repeats: int, device: str, guidance_scale: float = 5.0) -> list[tuple[str, float, float, float]]:
    """Rows (method, median wall seconds, median CPU seconds, images per wall second)."""
    with tempfile.TemporaryDirectory() as folder:
        model = JanusModel.load(str(build_tiny_janus(folder, image_size=384)), device=device)
    prompts = (PROMPTS * (batch // len(PROMPTS) + 1))[:batch]
    seeds = list(range(batch))
    greedy = SamplingConfig(guidance_scale=guidance_scale, greedy=True)
    sampled = SamplingConfig(guidance_scale=guidance_scale, temperature=1.0)
    encoded = model.tokenizer([model.prompt_format.generation_prompt(p) for p in prompts], padding=True, padding_side="left",
                              return_tensors="pt").to(device)

    def ours_greedy():
        return model.generate_images(prompts, seeds, greedy).image_tokens

    def hf_greedy():
        return model.hf_model.generate(**encoded, generation_mode="image", do_sample=False,
                                       guidance_scale=guidance_scale)

    def ours_sampled():
        return model.generate_images(prompts, seeds, sampled).image_tokens

    def hf_sampled():
        return model.hf_model.generate(**encoded, generation_mode="image", do_sample=True, top_k=0,
                                       guidance_scale=guidance_scale)

    methods = {"unirl sampler, greedy": ours_greedy, "transformers generate, greedy": hf_greedy,
               "unirl sampler, sampling + logprobs": ours_sampled, "transformers generate, sampling": hf_sampled}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    outputs = {}
    for name, function in methods.items():  # warm-up
        outputs[name] = function()
    for _ in range(repeats):
        for name, function in methods.items():
            times[name].append(_timed(function))
    identical = torch.equal(outputs["unirl sampler, greedy"], outputs["transformers generate, greedy"])
    print(f"greedy tokens identical to transformers generate: {identical} "
          f"(shape {tuple(outputs['unirl sampler, greedy'].shape)})")
    assert identical, "greedy tokens differ from transformers' generate"
    rows = []
    for name, samples in times.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        rows.append((name, wall, cpu, batch / wall))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (see the module docstring)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, "
          f"batch {args.batch}, CFG 5, 576 image tokens (384 px tiny Janus)")
    rows = run(args.batch, args.repeats, args.device)
    reference = {"greedy": rows[1], "sampling": rows[3]}
    print(f"\n| {'method':<36} | wall s | CPU s | images/s | speed-up (wall) | speed-up (CPU) |")
    print(f"|{'-' * 38}|-------:|------:|---------:|----------------:|---------------:|")
    for name, wall, cpu, images_per_second in rows:
        baseline = reference["greedy" if "greedy" in name else "sampling"]
        print(f"| {name:<36} | {wall:6.2f} | {cpu:5.2f} | {images_per_second:8.2f} | "
              f"{baseline[1] / wall:14.2f}x | {baseline[2] / cpu:13.2f}x |")


if __name__ == "__main__":
    main()
