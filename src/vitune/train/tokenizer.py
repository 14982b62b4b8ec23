"""A small byte-level BPE tokenizer trained on the instruction corpus, wrapped for transformers.

The tiny models are trained from scratch, so their tokenizer is too: a byte-level BPE (no unknown
characters, ever) with the LLaVA special tokens. `<image>` is a single special token so that the
processor can expand it into `image_seq_length` placeholders and the model can find them.

Encoding with special tokens prepends BOS (via the post-processor saved inside `tokenizer.json`), so
`processor(text=prompt, ...)` at inference time starts exactly like the training ids (`labels.py` tokenizes
the rendered conversation whole, with the same special tokens).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from vitune.data.instance import IMAGE_TOKEN, Instance
from vitune.data.templates import VICUNA_V1_CHAT_TEMPLATE, render_segments

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
SPECIAL_TOKENS = [UNK, BOS, EOS, PAD, IMAGE_TOKEN]
DEFAULT_VOCAB_SIZE = 2000


def corpus_texts(instances: Iterable[Instance], template: str = "vicuna_v1") -> Iterator[str]:
    """The texts the tokenizer is trained on: each instance rendered with its training template.

    Rendering (rather than only the raw turns) puts the system prompt and role tags into the corpus,
    so BPE learns them as a few cheap tokens, which shortens every training sequence.
    """
    for inst in instances:
        turns = [(t.role, t.text) for t in inst.turns]
        yield "".join(s.text for s in render_segments(template, turns, inst.image is not None, EOS))


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    chat_template: str | None = VICUNA_V1_CHAT_TEMPLATE,
    model_max_length: int = 2048,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` and wrap it as a `PreTrainedTokenizerFast`.

    Deterministic: the same texts in the same order give the same vocabulary and merges (the
    `tokenizers` BPE trainer breaks frequency ties by pair order, not by hash order).
    """
    tok = Tokenizer(models.BPE(unk_token=UNK))
    # add_prefix_space=False: segments carry their own leading spaces (see templates.py), and a
    # prompt must tokenize the same whether it is encoded whole or segment by segment.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,  # ids 0..4 in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    # BOS first when special tokens are requested (the LLaMA convention); no EOS at the end of a
    # prompt, since the model must go on to generate the reply.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return wrap_tokenizer(tok, chat_template=chat_template, model_max_length=model_max_length)


def wrap_tokenizer(
    tok: Tokenizer, chat_template: str | None = VICUNA_V1_CHAT_TEMPLATE, model_max_length: int = 2048
) -> PreTrainedTokenizerFast:
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def image_token_id(tokenizer: PreTrainedTokenizerFast) -> int:
    ids = tokenizer.encode(IMAGE_TOKEN, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{IMAGE_TOKEN!r} is not a single token in this tokenizer: {ids}")
    return ids[0]
