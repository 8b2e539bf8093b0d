"""The sampling maths of janus_sampling.py on hand-made logits."""

from __future__ import annotations

import torch

from unirl_cli.models.janus.sampling import (ImageSamplingSettings, guided_logits, per_row_uniforms,
                                             sample_from_logits, truncate_logits, unconditional_prompt_ids)

PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]])


def test_truncation_keeps_top_k_and_nucleus():
    logits = PROBS.log()
    assert torch.isinf(truncate_logits(logits, top_k=3, top_p=1.0)).tolist() == [[False, False, False, True]]
    # Mass before token 3 is 0.8 >= top_p, so tokens 3 and 4 go; the most likely token always stays.
    assert torch.isinf(truncate_logits(logits, top_k=0, top_p=0.8)).tolist() == [[False, False, True, True]]
    assert torch.isinf(truncate_logits(logits, top_k=0, top_p=0.01)).tolist() == [[False, True, True, True]]


def test_inverse_cdf_sampling_hits_each_token_in_proportion():
    uniforms = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000  # an exact quadrature of U(0, 1)
    logits = PROBS.log().expand(1000, -1)
    tokens = sample_from_logits(logits, uniforms, ImageSamplingSettings(guidance_scale=1.0, temperature=1.0))
    assert torch.bincount(tokens, minlength=4).tolist() == [500, 300, 150, 50]
    truncated = sample_from_logits(logits, uniforms, ImageSamplingSettings(1.0, 1.0, top_k=2))
    assert torch.bincount(truncated, minlength=4).tolist() == [625, 375, 0, 0]


def test_guidance_formula_and_unconditional_prompt():
    cond, uncond = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert guided_logits(cond, uncond, 5.0).tolist() == [[6.0, -4.0]]
    assert guided_logits(cond, None, 5.0).tolist() == cond.tolist()
    ids = torch.tensor([[2, 2, 0, 17, 18, 4]])  # pads, BOS, text, BOI
    assert unconditional_prompt_ids(ids, bos_token_id=0, boi_token_id=4, pad_token_id=2).tolist() == [[2, 2, 0, 2, 2, 4]]


def test_uniforms_depend_on_the_seed_only():
    together = per_row_uniforms([3, 4], 5)
    assert torch.equal(together[1], per_row_uniforms([4], 5)[0])
    assert not torch.equal(together[0], together[1])
