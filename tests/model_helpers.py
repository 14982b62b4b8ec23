"""A tiny random LLaVA saved to disk, for tests of everything that loads a checkpoint (generation,
the eval runner, multi-round evaluation, the server)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from vitune.train.model import build_model, processor_for
from vitune.train.tokenizer import train_tokenizer


def save_random_llava(d: Path, texts: Sequence[str], *, vocab_size: int = 300, seed: int = 0) -> Path:
    """`micro` preset with a BPE tokenizer trained on `texts`, saved with its processor into `d`.

    The weights are redrawn with std 0.15: at the default init (0.02) a random model answers almost
    the same whatever the input, while a wide init makes every answer depend on its prompt and
    image, so a rendering, padding, batching or caching bug changes answers.
    """
    tok = train_tokenizer(list(texts), vocab_size=vocab_size)
    model = build_model("micro", tok, seed=seed)
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for w in model.parameters():
            if w.dim() >= 2:
                w.normal_(0.0, 0.15)
    model.save_pretrained(d)
    processor_for(model, tok).save_pretrained(d)
    return d


def train_steps(model: torch.nn.Module, batch: dict, steps: int, lr: float = 1e-2) -> float:
    """`steps` AdamW steps on one collated batch (labels shifted as in the training loop); returns
    the last loss and leaves the model in eval mode."""
    from vitune.train.labels import IGNORE_INDEX

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
        ).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=IGNORE_INDEX
        )
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return loss.item()
