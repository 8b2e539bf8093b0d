"""Show-o sequence layouts and omni-attention masks, checked by hand on small cases."""

from __future__ import annotations

import torch

from unirl_cli.models.showo.prompting import ShowoVocab, mmu_attention_mask, t2i_attention_mask, t2i_sequences

VOCAB = ShowoVocab(pad_id=0, soi_id=1, eoi_id=2, t2i_id=3, mmu_id=4, text_start_id=5, text_end_id=5,
                   text_vocab_size=0, image_offset=10, codebook_size=4, mask_id=14)


def _rows(*allowed_columns: list[int]) -> torch.Tensor:
    length = len(allowed_columns)
    mask = torch.zeros(length, length, dtype=torch.bool)
    for row, columns in enumerate(allowed_columns):
        mask[row, columns] = True
    return mask


def test_t2i_layout_left_pads_and_wraps_text():
    image = torch.tensor([[10, 14]])
    ids = t2i_sequences([[7]], image, VOCAB, max_text_length=4)
    assert ids.tolist() == [[0, 3, 5, 7, 5, 1, 10, 14, 2]]
    unconditional = t2i_sequences([[]], image, VOCAB, max_text_length=4)
    assert unconditional.tolist() == [[0, 0, 3, 5, 5, 1, 10, 14, 2]]
    too_long = t2i_sequences([[6, 7, 8, 9]], image, VOCAB, max_text_length=4)
    assert too_long[0, :5].tolist() == [3, 5, 6, 7, 5]  # cut to the slots, still ends with <|eot|>


def test_t2i_mask_hand_checked():
    ids = torch.tensor([[0, 3, 5, 7, 5, 1, 10, 14, 2]])
    real = list(range(1, 9))
    expected = _rows([0], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4], real, real, real, real)
    mask = t2i_attention_mask(ids, VOCAB)
    assert mask.shape == (1, 1, 9, 9) and mask.dtype == torch.bool
    assert torch.equal(mask[0, 0], expected)


def test_t2i_mask_is_per_row_in_a_batch():
    ids = torch.tensor([[0, 3, 5, 7, 5, 1, 10, 14, 2], [0, 0, 3, 5, 5, 1, 10, 14, 2]])
    mask = t2i_attention_mask(ids, VOCAB)[:, 0]
    assert mask[1, 5].tolist() == [False, False, True, True, True, True, True, True, True]
    assert mask[1, 1].tolist() == [True, True] + [False] * 7  # a pad row stays causal, never empty
    assert torch.equal(mask[0], t2i_attention_mask(ids[:1], VOCAB)[0, 0])


def test_mmu_mask_hand_checked():
    ids = torch.tensor([[0, 4, 1, 11, 12, 2, 5, 7, 8]])
    prefix = [1, 2, 3, 4, 5]
    expected = _rows([0], prefix, prefix, prefix, prefix, prefix, prefix + [6], prefix + [6, 7], prefix + [6, 7, 8])
    assert torch.equal(mmu_attention_mask(ids, VOCAB)[0, 0], expected)


def test_masks_work_in_sdpa_without_nan():
    ids = torch.tensor([[0, 3, 5, 7, 5, 1, 10, 14, 2]])
    query = torch.randn(1, 2, 9, 8)
    out = torch.nn.functional.scaled_dot_product_attention(query, query, query, attn_mask=t2i_attention_mask(ids, VOCAB))
    assert torch.isfinite(out).all()
