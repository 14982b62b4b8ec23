"""Batched greedy answers from a Llava model + processor, prompted exactly as in training.

Prompts come from `templates.generation_prompt` (BOS is added by the tokenizer), images go through
the processor, which pads them to a square with the CLIP mean colour as training did. Batches are
left-padded so every sequence ends at the position where generation starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from vitune.train.templates import generation_prompt


@torch.inference_mode()
def generate_answers(
    model,
    processor,
    questions: Sequence[tuple[Image.Image | None, str]],
    template: str = "vicuna_v1",
    max_new_tokens: int = 16,
    batch_size: int = 32,
) -> list[str]:
    """Greedy replies to single-turn `(image or None, question)` pairs, in order."""
    tok = processor.tokenizer
    old_side = tok.padding_side
    tok.padding_side = "left"
    model.eval()
    answers: list[str] = []
    try:
        for s in range(0, len(questions), batch_size):
            chunk = questions[s : s + batch_size]
            prompts = [
                generation_prompt(template, [("user", q)], img is not None, tok.eos_token) for img, q in chunk
            ]
            images = [img for img, _ in chunk if img is not None]
            inputs = processor(text=prompts, images=images or None, return_tensors="pt", padding=True)
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            new = out[:, inputs["input_ids"].shape[1] :]
            answers.extend(t.strip() for t in tok.batch_decode(new, skip_special_tokens=True))
    finally:
        tok.padding_side = old_side
    return answers
