"""Tiny stand-ins for real LLM tokenizers, trained locally with `tokenizers` (no download).

`qwen2_tokenizer`: Qwen2 / Qwen2.5's layout (byte-level BPE behind Qwen2's pre-tokenizer regex, no
BOS, `<|endoftext|>` / `<|im_start|>` / `<|im_end|>` as special tokens), wrapped in transformers'
own `Qwen2Tokenizer`, so a saved copy reloads through `AutoTokenizer` as the real one does.

`llama_tokenizer`: Llama-2 / Vicuna's SentencePiece-style BPE with byte fallback and `▁` for
spaces, BOS `<s>` added by the post-processor. `legacy=True` is the tokenizer.json layout of
Llama-2-era checkpoints (a normalizer prepends `▁` to every piece of text, also after special
tokens); `legacy=False` is transformers' current one (Metaspace, `▁` only before the first piece).
"""

from __future__ import annotations

import json

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import processors as tk_processors
from transformers import PreTrainedTokenizerFast, Qwen2Tokenizer
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from vitune.data.instance import IMAGE_TOKEN
from vitune.data.templates import render_segments

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def rendered(template: str, convs: list[list[tuple[str, str]]], eos: str) -> list[str]:
    """Training texts for a tokenizer: conversations rendered with `template` (with an image)."""
    return ["".join(s.text for s in render_segments(template, turns, True, eos)) for turns in convs]


def qwen2_tokenizer(corpus: list[str], eos: str = "<|endoftext|>", vocab_size: int = 400) -> Qwen2Tokenizer:
    """Qwen2.5's tokenizer in miniature: `eos` "<|endoftext|>" as base models, "<|im_end|>" as instruct."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    return Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=[tuple(m) for m in model["merges"]],
        unk_token=None,
        eos_token=eos,
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>", "<|im_end|>"],
    )


def llama_tokenizer(corpus: list[str], legacy: bool, vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A Llama-2-style tokenizer with `<image>` already added (as `compose.prepare_tokenizer` does)."""
    specials = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # SentencePiece never merges across words: train on `▁`-split words.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials + [f"<0x{b:02X}>" for b in range(256)],
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    if legacy:
        tok.pre_tokenizer = None
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    bos = tok.token_to_id("<s>")
    tok.post_processor = tk_processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    image = AddedToken(IMAGE_TOKEN, special=True, normalized=False, lstrip=False, rstrip=False)
    fast.add_special_tokens({"extra_special_tokens": [image]}, replace_extra_special_tokens=False)
    return fast
