"""Real-size models on a CPU: build Janus-Pro-1B and Show-o-512 with random weights, save them in the hub layout,
load them through the path a download takes, and run the training path's pieces once.

    python benchmarks/full_size.py            # about 1.5 min and 12.4 GB peak on 2 cores (measured)
    python benchmarks/full_size.py --quick    # build, save, load, one forward each (the test suite runs it)

Per model and phase: parameters, seconds, and the process's peak RSS so far. Weights are bf16 (fp32 weights,
gradients and AdamW states of Janus-Pro-1B need ~33 GB, more than a 24 GB machine has). Janus: a CFG rollout of
`--tokens` image tokens with log-probs, then one GRPO step on them (group of 2, gradient checkpointing, AdamW).
Show-o: one MaskGIT step with CFG. See real_size.py for how close each architecture is.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_size import build_janus, build_showo, parameter_count  # noqa: E402

ROWS: list[tuple[str, str, float, float]] = []
NAMES = {"janus": "janus-pro-1b", "showo": "showo-512"}  # "tiny-janus", "tiny-showo" with --size tiny


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # Linux reports KiB


def phase(model: str, name: str, function):
    started = time.perf_counter()
    result = function()
    ROWS.append((model, name, time.perf_counter() - started, peak_rss_gib()))
    print(f"{model:12s} {name:34s} {ROWS[-1][2]:8.1f} s  peak RSS {ROWS[-1][3]:6.1f} GiB", flush=True)
    return result


def janus_grpo_step(model, tokens: int) -> None:
    """A CFG rollout of `tokens` image tokens for a group of 2, then one clipped-ratio GRPO update on them."""
    from unirl_cli.config import SamplingConfig
    from unirl_cli.models.janus import sampling as janus_sampling
    from unirl_cli.models.janus.model import _settings_from
    from unirl_cli.train.grpo_loss import ClipSettings, grpo_loss

    prompts = ["a photo of two red apples"] * 2
    input_ids, attention_mask, uncond_ids = model._prompt_batch(prompts)
    settings = _settings_from(model.resolve_sampling(SamplingConfig()))
    codes, old = phase(NAMES["janus"], f"rollout {tokens} tokens, CFG 5", lambda: janus_sampling.sample_image_tokens(
        model.hf_model, input_ids, attention_mask, uncond_ids, tokens, [0, 1], settings))
    model.hf_model.gradient_checkpointing_enable()
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)

    def step():
        logprobs = janus_sampling.teacher_forced_logprobs(model.hf_model, input_ids, attention_mask, uncond_ids, codes,
                                                          5.0, 1.0).float()
        loss = grpo_loss(logprobs, old.float(), torch.tensor([1.0, -1.0]), ClipSettings(0.2, 0.2, 0.0), "grpo").loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    phase(NAMES["janus"], "GRPO step (group 2, ckpt, AdamW)", step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop after loading and one forward per model")
    parser.add_argument("--tokens", type=int, default=8, help="image tokens in the Janus rollout")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", choices=["full", "tiny"], default="full", help="tiny: the test models (seconds)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.size == "tiny":
        NAMES.update(janus="tiny-janus", showo="tiny-showo")
    from unirl_cli.config import SamplingConfig
    from unirl_cli.models.loading import load_model

    with tempfile.TemporaryDirectory() as scratch:
        janus_dir = phase(NAMES["janus"], "build + save (bf16, hub layout)",
                          lambda: build_janus(Path(scratch) / "j", args.size))
        print(f"{NAMES['janus']} parameters: {parameter_count(janus_dir) / 1e9:.3f} B")
        model = phase(NAMES["janus"], "load (the download path)",
                      lambda: load_model(str(janus_dir), "cpu", "bfloat16"))
        ids, mask, _ = model._prompt_batch(["a photo of two red apples"])
        with torch.no_grad():
            phase(NAMES["janus"], "one forward (prompt)", lambda: model.hf_model.model.language_model(
                input_ids=ids, attention_mask=mask))
        if not args.quick:
            janus_grpo_step(model, args.tokens)
        del model
        gc.collect()
        showo_dir = phase(NAMES["showo"], "build + save (hub layout)",
                          lambda: build_showo(Path(scratch) / "s", args.size))
        print(f"{NAMES['showo']} parameters (with MAGVIT-v2): {parameter_count(showo_dir) / 1e9:.3f} B")
        showo = phase(NAMES["showo"], "load (the download path)", lambda: load_model(str(showo_dir), "cpu", "bfloat16"))
        steps = 1
        phase(NAMES["showo"], f"{steps} MaskGIT step, CFG 5 (1024 tokens)", lambda: showo.generate_images(
            ["a photo of two red apples"], [0], SamplingConfig(guidance_scale=5.0, num_steps=steps)))
    print("\n| model | phase | seconds | peak RSS (GiB) |\n|---|---|---|---|")
    for model_name, name, seconds, rss in ROWS:
        print(f"| {model_name} | {name} | {seconds:.1f} | {rss:.1f} |")


if __name__ == "__main__":
    main()
