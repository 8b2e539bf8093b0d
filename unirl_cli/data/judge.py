"""An optional LLM judge for answers, as UniRL's evaluation used (it ran Qwen2.5-7B-Instruct-1M).

Any local Hugging Face causal chat model works: it is loaded with AutoModelForCausalLM + AutoTokenizer (never
with remote code), shown UniRL's judge prompt, and its first words are read as "same" or "not same". The
deterministic matcher in `matching.py` stays the default reward: it is free, exact and reproducible.
"""

from __future__ import annotations

import re
from typing import Any

from unirl_cli.errors import UnirlError

# UniRL's judge prompt (inference_cycle.py), kept byte for byte, including the missing space after "not.".
JUDGE_PROMPT = ("Please help to judge the two answers same or not.The question is {question} One is the standard "
                "answer, another is model's output. The standard answer is {gt} and the model's output is "
                "{llm_output}. Please only use one word to answer me same or not same")


def judge_prompt(question: str, reference_answer: str, answer: str) -> str:
    """UniRL's judge prompt filled with one question, its ground-truth answer and the model's answer."""
    return JUDGE_PROMPT.format(question=question, gt=reference_answer, llm_output=answer)


def parse_judge_reply(reply: str) -> float:
    """1.0 if the judge's reply says "same", 0.0 for "not same", a negation, or anything else.

    UniRL compared the lower-cased reply with "same"; we also accept "Same." and "same, because ...", and
    read a reply that never says "same" as a rejection rather than an error.
    """
    words = re.findall(r"[a-z]+", reply.lower())
    if not words or "not" in words[:3] or "different" in words[:3]:
        return 0.0
    return 1.0 if words[0] == "same" else 0.0


class AnswerJudge:
    """A causal chat model that decides whether two answers agree. Load it once with `AnswerJudge.load`."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int = 8):
        if not getattr(tokenizer, "chat_template", None):
            raise UnirlError("the judge's tokenizer has no chat template; use an instruction-tuned chat model")
        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens

    @classmethod
    def load(cls, name_or_path: str, device: str = "cpu", dtype: str = "auto") -> "AnswerJudge":
        """Load a judge from a local folder or the HF cache (offline-safe: a missing model raises UnirlError)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch_dtype)
        except (OSError, ValueError) as error:
            raise UnirlError(f"cannot load judge model {name_or_path!r} ({str(error).splitlines()[0]}); pass a "
                             f"local folder with a causal chat model, or download it first") from None
        return cls(model.to(device).eval(), tokenizer)

    def reply(self, question: str, reference_answer: str, answer: str) -> str:
        """The judge's raw reply (greedy decoding) to UniRL's prompt for one answer."""
        import torch

        messages = [{"role": "user", "content": judge_prompt(question, reference_answer, answer)}]
        inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                    return_dict=True)
        inputs = {name: tensor.to(self.model.device) for name, tensor in inputs.items()}
        pad_token_id = self.tokenizer.pad_token_id
        if pad_token_id is None:
            pad_token_id = self.tokenizer.eos_token_id
        with torch.no_grad():
            output_ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                             pad_token_id=pad_token_id)
        new_ids = output_ids[0, inputs["input_ids"].shape[1]:]  # (num_new_tokens,)
        return self.tokenizer.decode(new_ids, skip_special_tokens=True)

    def score(self, question: str, reference_answer: str, answer: str) -> float:
        """1.0 if the judge says the answer matches the reference, else 0.0."""
        return parse_judge_reply(self.reply(question, reference_answer, answer))
