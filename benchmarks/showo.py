"""Show-o sampler and replay cost on a mid-size tiny model with the real token layout.

Config: 128 px images on a 16x16 grid (256 image tokens, like Show-o 256), the real 8192-code codebook,
128 text slots (Show-o's max_seq_length), a 4-layer Phi of width 256; CFG 5, batch 4.

Rows:
- unirl sampler: the image-slot hidden states go through only the 8192 code rows of the LM head;
- reference-style sampler: the official computation, full-vocabulary logits at every position, then sliced
  (greedy on both, and the tokens are asserted equal);
- replay: teacher-forced per-step log-probs of the whole trajectory, without and with backward.
Each is timed alternately, median of `--repeats`.

    python benchmarks/showo.py [--batch 4] [--steps 16] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from unirl_cli.config import SamplingConfig
from unirl_cli.models.showo import ShowoModel
from unirl_cli.models.showo.prompting import t2i_attention_mask, t2i_sequences
from unirl_cli.models.showo.sampling import MASKED, sample_masked
from unirl_cli.models.showo.tiny import build_tiny_showo

PROMPTS = ["a photo of a red cube", "two blue circles", "a dog left of a cat", "three green apples on a table"]


def reference_code_logits(model: ShowoModel, prompts: list[str], guidance_scale: float):
    """Official-style step: logits of the whole sequence over the whole vocabulary, then the image slice."""
    text = [model.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    vocab, num_tokens = model.vocab, model.num_image_tokens

    def code_logits(rows, states):
        image_ids = torch.where(states == MASKED, vocab.mask_id, vocab.image_ids(states))
        cond = t2i_sequences([text[int(r)] for r in rows], image_ids, vocab, model.max_text_length)
        uncond = t2i_sequences([[]] * len(rows), image_ids, vocab, model.max_text_length)
        ids = torch.cat([cond, uncond])
        logits = model.hf_model(input_ids=ids, attention_mask=t2i_attention_mask(ids, vocab)).logits.float()
        cond_logits, uncond_logits = logits.chunk(2)
        guided = (1 + guidance_scale) * cond_logits - guidance_scale * uncond_logits
        return guided[:, -(num_tokens + 1):-1, vocab.image_offset:vocab.image_offset + model.codebook_size]

    return code_logits


def _timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def run(batch: int, steps: int, repeats: int, device: str, guidance_scale: float = 5.0) -> list[tuple[str, float, float]]:
    """Rows (what, median seconds per call, images per second)."""
    with tempfile.TemporaryDirectory() as folder:
        path = build_tiny_showo(folder, image_size=128, grid_side=16, codebook_bits=13, hidden_size=256,
                                num_layers=4, num_heads=8, max_text_length=128)
        model = ShowoModel.load(str(path), device=device)
    prompts = (PROMPTS * (batch // len(PROMPTS) + 1))[:batch]
    seeds = list(range(batch))
    greedy = SamplingConfig(guidance_scale=guidance_scale, num_steps=steps, greedy=True)
    sampled = SamplingConfig(guidance_scale=guidance_scale, num_steps=steps, temperature=1.0)
    rollout = model.generate_images(prompts, seeds, sampled)

    def ours_greedy():
        return model.generate_images(prompts, seeds, greedy).image_tokens

    def reference_greedy():
        generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        with torch.no_grad():
            return sample_masked(reference_code_logits(model, prompts, guidance_scale), batch, model.num_image_tokens,
                                 steps, 0.0, generators, model.device, greedy=True).codes

    def ours_sampled():
        return model.generate_images(prompts, seeds, sampled).image_tokens

    def replay_forward():
        with torch.no_grad():
            return model.image_logprobs(rollout)

    def replay_backward():
        model.zero_grad(set_to_none=True)
        logprobs = model.image_logprobs(rollout)
        logprobs.sum().backward()
        return logprobs.detach()

    methods = {"unirl sampler, greedy": ours_greedy, "reference-style sampler, greedy": reference_greedy,
               "unirl sampler, sampling + logprobs": ours_sampled, "replay, forward only": replay_forward,
               "replay, forward + backward": replay_backward}
    times: dict[str, list[float]] = {name: [] for name in methods}
    outputs: dict[str, object] = {}
    for _ in range(repeats):
        for name, function in methods.items():
            seconds, outputs[name] = _timed(function)
            times[name].append(seconds)
    assert torch.equal(outputs["unirl sampler, greedy"], outputs["reference-style sampler, greedy"])
    assert torch.allclose(outputs["replay, forward only"], rollout.token_logprobs, atol=1e-4)
    return [(name, statistics.median(values), batch / statistics.median(values)) for name, values in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = run(args.batch, args.steps, args.repeats, args.device)
    print(f"Show-o, 256 image tokens, 8192 codes, {args.steps} steps, CFG 5, batch {args.batch}, {args.device}")
    print(f"{'what':<38}{'s / call':>10}{'images/s':>10}{'vs sampler':>12}")
    base = dict((name, seconds) for name, seconds, _ in rows)["unirl sampler, sampling + logprobs"]
    for name, seconds, per_second in rows:
        print(f"{name:<38}{seconds:>10.3f}{per_second:>10.2f}{seconds / base:>11.2f}x")


if __name__ == "__main__":
    main()
