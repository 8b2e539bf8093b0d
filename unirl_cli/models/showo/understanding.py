"""Show-o image understanding over MAGVIT tokens: batched answering with a KV cache, differentiable answer scores.

Layout (the official MAGVIT mmu demo): `<|mmu|> <|soi|> image <|eoi|> <|sot|> "USER: \\n{question} ASSISTANT:"`,
causal text attention with a bidirectional image block (`prompting.mmu_attention_mask`).

Two choices the official demo leaves open (it runs one image at a time and samples over the whole joint
vocabulary): answers are decoded and scored over the text vocabulary only (ids below `[PAD]`), so an answer
is always text; and an answer is scored as the model would write it after "ASSISTANT:", a leading space then
the end-of-text token (`" yes<|endoftext|>"`), the same convention as the Janus backend.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from unirl_cli.errors import UnirlError
from unirl_cli.models.base import AnswerScores
from unirl_cli.models.showo.prompting import decode_step_mask, left_pad, mmu_attention_mask, question_prompt


def _image_inputs(model, images, batch_size: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(hard codes (B, N) int64, or None; soft code vectors (B, N, K), or None) from any accepted image input."""
    if isinstance(images, torch.Tensor):
        images = images.to(model.device)
        expected_tokens = model.num_image_tokens
        if images.dim() == 3 and images.is_floating_point():
            if images.shape != (batch_size, expected_tokens, model.codebook_size):
                raise UnirlError(f"soft image tokens must have shape ({batch_size}, {expected_tokens}, "
                                 f"{model.codebook_size}), got {tuple(images.shape)}")
            return None, images
        if images.dim() == 2 and not images.is_floating_point():
            if images.shape != (batch_size, expected_tokens):
                raise UnirlError(f"image tokens must have shape ({batch_size}, {expected_tokens}), got {tuple(images.shape)}")
            model.check_image_tokens(images)
            return images.long(), None
        raise UnirlError("images must be PIL images, token ids (batch, N) or soft tokens (batch, N, codebook_size)")
    if len(images) != batch_size:
        raise UnirlError(f"got {len(images)} images for {batch_size} questions; pass one image per question")
    if not all(isinstance(image, Image.Image) for image in images):
        raise UnirlError("images must be PIL images, token ids (batch, N) or soft tokens (batch, N, codebook_size)")
    return model.encode_images(images), None


def _text_ids(model, text: str) -> list[int]:
    return model.tokenizer(text, add_special_tokens=False)["input_ids"]


def _pick_next(logits: torch.Tensor, greedy: bool, temperature: float,
               generators: Sequence[torch.Generator] | None) -> torch.Tensor:
    """Next token per row from text logits (B, V)."""
    if greedy:
        return logits.argmax(dim=-1)
    probs = (logits / temperature).softmax(dim=-1)
    return torch.stack([torch.multinomial(probs[row], 1, generator=generators[row])[0] for row in range(len(probs))])


@torch.no_grad()
def answer_questions(model, images, questions: Sequence[str], max_new_tokens: int = 32, greedy: bool = True,
                     temperature: float = 1.0, seeds: Sequence[int] | None = None) -> list[str]:
    """Answer `questions[i]` about image i; left-padded batch, prefill then KV-cached decoding; stripped text.

    Sampling (greedy=False) draws row i from its own generator seeded `seeds[i]` (default: i).
    """
    if not questions:
        return []
    token_ids = generate_answer_ids(model, images, questions, max_new_tokens, greedy, temperature, seeds)
    return [_decode_answer(model, ids) for ids in token_ids]


@torch.no_grad()
def generate_answer_ids(model, images, questions: Sequence[str], max_new_tokens: int, greedy: bool,
                        temperature: float, seeds: Sequence[int] | None) -> list[list[int]]:
    """The answer token ids per row, each ending with the end-of-text id unless `max_new_tokens` ran out."""
    from transformers.cache_utils import DynamicCache

    if not greedy and temperature <= 0:
        raise UnirlError(f"temperature must be > 0 when sampling answers, got {temperature}")
    if max_new_tokens < 1:
        raise UnirlError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if seeds is not None and len(seeds) != len(questions):
        raise UnirlError(f"got {len(seeds)} seeds for {len(questions)} questions; pass one seed per question")
    codes, soft = _image_inputs(model, images, len(questions))
    if codes is None:
        codes = soft.argmax(dim=-1)
    vocab, device = model.vocab, model.device
    rows = [[vocab.mmu_id, vocab.soi_id] + vocab.image_ids(row).tolist() + [vocab.eoi_id, vocab.text_start_id]
            + _text_ids(model, question_prompt(question)) for row, question in zip(codes.cpu(), questions)]
    input_ids = left_pad(rows, vocab.pad_id).to(device)
    is_pad, prefix_length = input_ids == vocab.pad_id, input_ids.shape[1]
    seeds = list(range(len(questions))) if seeds is None else list(seeds)
    generators = None if greedy else [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    cache = DynamicCache(config=model.hf_model.config)
    output = model.hf_model(input_ids=input_ids, attention_mask=mmu_attention_mask(input_ids, vocab), cache=cache,
                            use_cache=True, logits_to_keep=1)
    finished = torch.zeros(len(questions), dtype=torch.bool, device=device)
    answers: list[torch.Tensor] = []
    for step in range(max_new_tokens):
        logits = output.logits[:, -1, :vocab.text_vocab_size].float()
        token = torch.where(finished, vocab.text_end_id, _pick_next(logits, greedy, temperature, generators))
        answers.append(token)
        finished |= token == vocab.text_end_id
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        position = torch.full((len(questions), 1), prefix_length + step, device=device)
        output = model.hf_model(input_ids=token[:, None], attention_mask=decode_step_mask(is_pad, step + 1),
                                position_ids=position, cache=cache, use_cache=True)
    end = vocab.text_end_id
    rows_out = [[int(t[row]) for t in answers] for row in range(len(questions))]
    return [ids[:ids.index(end) + 1] if end in ids else ids for ids in rows_out]


def _decode_answer(model, token_ids: list[int]) -> str:
    end = model.vocab.text_end_id
    if end in token_ids:
        token_ids = token_ids[:token_ids.index(end)]
    return model.tokenizer.decode(token_ids, skip_special_tokens=True).strip()


def answer_logprobs(model, images, questions: Sequence[str], answers: Sequence[str]) -> AnswerScores:
    """Differentiable log-likelihood of `answers[i]` given image i and `questions[i]` (teacher forcing).

    Rows are right-padded so the image block sits at the same positions in every row; soft images
    (B, N, K) enter as `soft @ embedding rows of the image codes`, so gradients reach whatever produced them.
    """
    if len(questions) != len(answers) or not questions:
        raise UnirlError(f"need one answer per question, got {len(questions)} questions and {len(answers)} answers")
    answer_ids = [_text_ids(model, " " + a.strip()) + [model.vocab.text_end_id] for a in answers]
    return score_answer_ids(model, images, questions, answer_ids)


def score_answer_ids(model, images, questions: Sequence[str], answer_ids: list[list[int]]) -> AnswerScores:
    """`answer_logprobs` for answers given as token ids (each a non-empty list)."""
    if any(not ids for ids in answer_ids):
        raise UnirlError("every answer must contain at least one token; got an empty answer")
    codes, soft = _image_inputs(model, images, len(questions))
    vocab, device, num_tokens = model.vocab, model.device, model.num_image_tokens
    question_ids = [[vocab.eoi_id, vocab.text_start_id] + _text_ids(model, question_prompt(q)) for q in questions]
    tails = [q + a for q, a in zip(question_ids, answer_ids)]
    tail_length = max(len(t) for t in tails)
    tail = torch.tensor([t + [vocab.pad_id] * (tail_length - len(t)) for t in tails], device=device)
    head = torch.tensor([vocab.mmu_id, vocab.soi_id], device=device).expand(len(questions), 2)
    image_ids = vocab.image_ids(codes) if codes is not None else torch.full(
        (len(questions), num_tokens), vocab.mask_id, device=device)
    input_ids = torch.cat([head, image_ids, tail], dim=1)  # (B, 2 + N + tail)

    embed = model.hf_model.model.embed_tokens
    embeds = embed(input_ids)
    if soft is not None:
        code_rows = embed.weight[vocab.image_offset: vocab.image_offset + model.codebook_size]
        soft_embeds = soft.to(code_rows.dtype) @ code_rows  # (B, N, hidden)
        embeds = torch.cat([embeds[:, :2], soft_embeds, embeds[:, 2 + num_tokens:]], dim=1)
    hidden = model.hf_model.model(inputs_embeds=embeds, attention_mask=mmu_attention_mask(input_ids, vocab)).last_hidden_state

    max_answer = max(len(a) for a in answer_ids)
    token_mask = torch.tensor([[1.0] * len(a) + [0.0] * (max_answer - len(a)) for a in answer_ids], device=device)
    targets = torch.tensor([a + [0] * (max_answer - len(a)) for a in answer_ids], device=device)
    # The hidden state before each answer token predicts it (text logits are shifted, image logits are not).
    starts = torch.tensor([2 + num_tokens + len(q) - 1 for q in question_ids], device=device)
    positions = (starts[:, None] + torch.arange(max_answer, device=device)).clamp(max=input_ids.shape[1] - 1)
    picked_hidden = hidden.gather(1, positions[:, :, None].expand(-1, -1, hidden.shape[-1]))
    head_layer = model.hf_model.lm_head
    text = slice(0, vocab.text_vocab_size)
    logits = F.linear(picked_hidden, head_layer.weight[text], head_layer.bias[text]).float()
    picked = logits.log_softmax(dim=-1).gather(-1, targets[:, :, None]).squeeze(-1)
    token_logprobs = torch.where(token_mask.bool(), picked, 0.0)
    return AnswerScores(total_logprob=token_logprobs.sum(dim=-1), token_logprobs=token_logprobs,
                        token_mask=token_mask)
