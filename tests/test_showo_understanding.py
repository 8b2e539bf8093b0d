"""Show-o understanding: KV-cached answers, teacher-forced answer scores, soft-token gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unirl_cli.errors import UnirlError
from unirl_cli.models.showo import ShowoModel
from unirl_cli.models.showo.prompting import left_pad, mmu_attention_mask, question_prompt
from unirl_cli.models.showo.understanding import generate_answer_ids, score_answer_ids

QUESTIONS = ["what is this?", "how many red cats are in the picture on the left?"]


def _tokens(model, seed: int, batch: int = 2) -> torch.Tensor:
    return torch.randint(0, model.codebook_size, (batch, model.num_image_tokens),
                         generator=torch.Generator().manual_seed(seed))


def _greedy_without_cache(model, codes, questions, steps):
    """Greedy decoding by re-running the whole sequence every step, and the chosen tokens' log-probs."""
    vocab = model.vocab
    rows = [[vocab.mmu_id, vocab.soi_id] + vocab.image_ids(c).tolist() + [vocab.eoi_id, vocab.text_start_id]
            + model.tokenizer(question_prompt(q), add_special_tokens=False)["input_ids"] for c, q in zip(codes, questions)]
    ids, chosen, logprobs = left_pad(rows, vocab.pad_id), [], []
    for _ in range(steps):
        with torch.no_grad():
            hidden = model.hf_model(input_ids=ids, attention_mask=mmu_attention_mask(ids, vocab)).logits
        step_logprobs = hidden[:, -1, :vocab.text_vocab_size].float().log_softmax(-1)
        best = step_logprobs.max(dim=-1)
        chosen.append(best.indices)
        logprobs.append(best.values)
        ids = torch.cat([ids, best.indices[:, None]], dim=1)
    return torch.stack(chosen, 1), torch.stack(logprobs, 1)


def test_cached_greedy_answers_equal_full_recompute_and_score_back(tiny_showo):
    codes = _tokens(tiny_showo, 0)
    answer_ids = generate_answer_ids(tiny_showo, codes, QUESTIONS, max_new_tokens=6, greedy=True, temperature=1.0, seeds=None)
    reference, reference_logprobs = _greedy_without_cache(tiny_showo, codes, QUESTIONS, steps=6)
    for row, ids in enumerate(answer_ids):
        assert ids == reference[row, :len(ids)].tolist()
    # Round trip: teacher-forced scores of the greedy answers are the per-step maxima seen while decoding.
    scores = score_answer_ids(tiny_showo, codes, QUESTIONS, answer_ids)
    for row, ids in enumerate(answer_ids):
        assert torch.allclose(scores.token_logprobs[row, :len(ids)], reference_logprobs[row, :len(ids)], atol=1e-4)
        assert scores.token_mask[row].sum() == len(ids)


def test_answer_text_is_decoded_and_sampling_is_seeded(tiny_showo):
    codes = _tokens(tiny_showo, 1)
    answers = tiny_showo.answer_questions(codes, QUESTIONS, max_new_tokens=5)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    sampled = [tiny_showo.answer_questions(codes, QUESTIONS, max_new_tokens=5, greedy=False, seeds=[3, 4]) for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_answer_scores_are_batch_invariant_and_accept_one_hot_images(tiny_showo):
    codes = _tokens(tiny_showo, 2)
    answers = ["yes", "three cats"]
    batched = tiny_showo.answer_logprobs(codes, QUESTIONS, answers)
    alone = tiny_showo.answer_logprobs(codes[1:], QUESTIONS[1:], answers[1:])
    assert torch.allclose(batched.total_logprob[1:], alone.total_logprob, atol=1e-4)
    one_hot = F.one_hot(codes, tiny_showo.codebook_size).float()
    assert torch.allclose(tiny_showo.answer_logprobs(one_hot, QUESTIONS, answers).total_logprob,
                          batched.total_logprob, atol=1e-4)
    # Answers are scored as " answer<|endoftext|>" whatever spacing the caller used.
    assert torch.allclose(tiny_showo.answer_logprobs(codes, QUESTIONS, [" yes ", "three cats"]).total_logprob,
                          batched.total_logprob)
    ends = batched.token_logprobs.shape[1]
    assert batched.token_mask.shape == (2, ends) and batched.token_mask[1].sum() >= batched.token_mask[0].sum()


def test_soft_token_gradient_reaches_the_image_logits(tiny_showo_dir):
    model = ShowoModel.load(str(tiny_showo_dir))
    prompts = ["a red cat", "two dogs"]
    logits = model.image_logits(prompts, _tokens(model, 3))
    logits.retain_grad()
    soft = F.gumbel_softmax(logits, tau=1.0, hard=True)  # straight-through: one-hot forward, soft backward
    scores = model.answer_logprobs(soft, QUESTIONS, ["yes", "no"])
    scores.total_logprob.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    code_rows = slice(model.vocab.image_offset, model.vocab.image_offset + model.codebook_size)
    assert model.hf_model.lm_head.weight.grad[code_rows].abs().sum() > 0


def test_bad_image_inputs_are_user_errors(tiny_showo):
    with pytest.raises(UnirlError, match="soft image tokens must have shape"):
        tiny_showo.answer_logprobs(torch.rand(2, 5, 3), QUESTIONS, ["a", "b"])
    with pytest.raises(UnirlError, match="one answer per question"):
        tiny_showo.answer_logprobs(_tokens(tiny_showo, 0), QUESTIONS, ["a"])
    with pytest.raises(UnirlError, match="must lie in"):
        tiny_showo.answer_questions(_tokens(tiny_showo, 0) + 1000, QUESTIONS)
