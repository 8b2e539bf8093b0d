"""Show-o's joint vocabulary, its t2i and mmu sequence layouts, and the omni-attention masks.

Joint vocabulary (real model): Phi-1.5 text ids 0..50294 (50256 `<|endoftext|>` is both start and end of
text), `[PAD]` 50295, nine task tokens 50296..50304 (soi, eoi, sov, eov, t2i, mmu, t2v, v2v, lvg), image
code c at `c + len(text tokenizer)` = c + 50305, and `[MASK]` = vocab_size - 1 = 58497. Offsets are derived
from the tokenizer length exactly as the official code does, so tiny tokenizers work the same way.

Masks are boolean (batch, 1, L, L), True = may attend, which `scaled_dot_product_attention` accepts.
Positions are plain `arange(L)`: left pads consume positions, as in the official code (RoPE is relative,
so a row's result does not depend on how much padding its batch needed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SPECIAL_TOKENS = ("<|soi|>", "<|eoi|>", "<|sov|>", "<|eov|>", "<|t2i|>", "<|mmu|>", "<|t2v|>", "<|v2v|>", "<|lvg|>")
PAD_TOKEN = "[PAD]"


def add_showo_tokens(tokenizer) -> None:
    """Add `[PAD]` and the nine task tokens in the official order (a no-op when they are already there)."""
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    tokenizer.add_tokens(list(SPECIAL_TOKENS))
    tokenizer.padding_side = "left"


@dataclass(frozen=True)
class ShowoVocab:
    """Ids of the special tokens and the image-code block of the joint vocabulary."""

    pad_id: int
    soi_id: int
    eoi_id: int
    t2i_id: int
    mmu_id: int
    text_start_id: int  # <|sot|> = the tokenizer's BOS (50256 for Phi-1.5)
    text_end_id: int  # <|eot|> = the tokenizer's EOS (the same id for Phi-1.5)
    text_vocab_size: int  # ids below this are plain text (Phi's own vocabulary, 50295)
    image_offset: int  # code c has id c + image_offset (= len(tokenizer with Show-o tokens), 50305)
    codebook_size: int
    mask_id: int

    @classmethod
    def from_tokenizer(cls, tokenizer, codebook_size: int, mask_id: int) -> "ShowoVocab":
        """Read the ids from a tokenizer that `add_showo_tokens` has extended."""
        ids = dict(zip(SPECIAL_TOKENS, tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))))
        return cls(pad_id=tokenizer.pad_token_id, soi_id=ids["<|soi|>"], eoi_id=ids["<|eoi|>"],
                   t2i_id=ids["<|t2i|>"], mmu_id=ids["<|mmu|>"], text_start_id=tokenizer.bos_token_id,
                   text_end_id=tokenizer.eos_token_id, text_vocab_size=tokenizer.pad_token_id,
                   image_offset=len(tokenizer), codebook_size=codebook_size, mask_id=mask_id)

    def image_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook indices -> joint-vocabulary ids."""
        return codes + self.image_offset


# --------------------------------------------------------------------------------------------------
# Sequences
# --------------------------------------------------------------------------------------------------


def t2i_text_block(text_ids: list[int], vocab: ShowoVocab, max_text_length: int) -> list[int]:
    """`[pad...] <|t2i|> <|sot|> text <|eot|>`, left-padded to `max_text_length + 1` slots (129 for 128).

    Too-long prompts keep their first `max_text_length` ids and end with `<|eot|>`, as the official code does.
    """
    if not text_ids or text_ids[0] != vocab.text_start_id:
        text_ids = [vocab.text_start_id] + text_ids
    block = [vocab.t2i_id] + text_ids + [vocab.text_end_id]
    slots = max_text_length + 1
    if len(block) > slots:
        return block[: slots - 1] + [vocab.text_end_id]
    return [vocab.pad_id] * (slots - len(block)) + block


def t2i_text_blocks(text_ids: list[list[int]], vocab: ShowoVocab, max_text_length: int,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """The text blocks of a batch: (batch, max_text_length + 1) int64."""
    blocks = [t2i_text_block(list(ids), vocab, max_text_length) for ids in text_ids]
    return torch.tensor(blocks, dtype=torch.long, device=device)


def t2i_with_image(text_blocks: torch.Tensor, image_ids: torch.Tensor, vocab: ShowoVocab) -> torch.Tensor:
    """t2i input ids (batch, text slots + 2 + N): text block, `<|soi|>`, image ids, `<|eoi|>`."""
    batch = image_ids.shape[0]
    soi = torch.full((batch, 1), vocab.soi_id, dtype=torch.long, device=image_ids.device)
    eoi = torch.full((batch, 1), vocab.eoi_id, dtype=torch.long, device=image_ids.device)
    return torch.cat([text_blocks, soi, image_ids, eoi], dim=1)


def t2i_sequences(text_ids: list[list[int]], image_ids: torch.Tensor, vocab: ShowoVocab,
                  max_text_length: int) -> torch.Tensor:
    """t2i input ids (batch, max_text_length + 3 + N): text block, `<|soi|>`, image ids, `<|eoi|>`.

    `image_ids` are joint-vocabulary ids (codes + offset, or `mask_id`), shape (batch, N). An empty
    prompt gives the unconditional block `[pad...] <|t2i|> <|sot|> <|eot|>` used for guidance.
    """
    text = t2i_text_blocks(text_ids, vocab, max_text_length, image_ids.device)
    return t2i_with_image(text, image_ids, vocab)


def question_prompt(question: str) -> str:
    """The text Show-o's MAGVIT understanding demo puts after the image."""
    return f"USER: \n{question} ASSISTANT:"


def left_pad(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """Left-pad id lists to one length: (batch, max_len) int64."""
    length = max(len(row) for row in rows)
    return torch.tensor([[pad_id] * (length - len(row)) + row for row in rows], dtype=torch.long)


# --------------------------------------------------------------------------------------------------
# Attention masks
# --------------------------------------------------------------------------------------------------


def _pad_aware_causal(is_pad: torch.Tensor) -> torch.Tensor:
    """Causal (batch, L, L) mask where real rows never see pad columns; pad rows stay causal (no empty rows)."""
    length = is_pad.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=is_pad.device).tril()
    real_row_sees_pad = (~is_pad)[:, :, None] & is_pad[:, None, :]
    return causal.unsqueeze(0) & ~real_row_sees_pad


def t2i_attention_mask(input_ids: torch.Tensor, vocab: ShowoVocab) -> torch.Tensor:
    """Omni-attention for t2i rows (batch, L) -> bool (batch, 1, L, L).

    Text is causal; the image block (`<|soi|>` through `<|eoi|>`) attends bidirectionally to itself and
    to the whole non-pad text before it; no real token attends to a pad.
    """
    is_pad = input_ids == vocab.pad_id
    is_soi, is_eoi = input_ids == vocab.soi_id, input_ids == vocab.eoi_id
    in_image = (is_soi.cumsum(1) > is_eoi.cumsum(1)) | is_eoi
    allowed = _pad_aware_causal(is_pad)
    image_rows = in_image[:, :, None] & ~is_pad[:, None, :]
    allowed = torch.where(in_image[:, :, None], image_rows, allowed)
    return allowed.unsqueeze(1)


def mmu_attention_mask(input_ids: torch.Tensor, vocab: ShowoVocab) -> torch.Tensor:
    """Attention for (left-padded) mmu rows (batch, L) -> bool (batch, 1, L, L).

    Causal, except that every real row may see the whole `<|mmu|> <|soi|> image <|eoi|>` prefix, so the
    image block is bidirectional; pads are invisible to real rows.
    """
    is_pad = input_ids == vocab.pad_id
    is_eoi = input_ids == vocab.eoi_id
    # Columns up to and including the (first) <|eoi|> of each row.
    upto_eoi = (is_eoi.cumsum(1) - is_eoi.long()) == 0
    prefix_columns = upto_eoi & ~is_pad
    allowed = _pad_aware_causal(is_pad) | ((~is_pad)[:, :, None] & prefix_columns[:, None, :])
    return allowed.unsqueeze(1)


def decode_step_mask(is_pad_prefix: torch.Tensor, num_new: int) -> torch.Tensor:
    """Mask (batch, 1, 1, L + num_new) for one new token after a prefilled mmu prefix: all real columns."""
    batch = is_pad_prefix.shape[0]
    new_columns = torch.ones(batch, num_new, dtype=torch.bool, device=is_pad_prefix.device)
    return torch.cat([~is_pad_prefix, new_columns], dim=1)[:, None, None, :]
