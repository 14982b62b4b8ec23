"""The direct (Rust) tokenizer path of `LabelEncoder` gives exactly what the transformers wrapper gives.

`LabelEncoder` calls the backend tokenizer itself when the wrapper would only forward to it (the
wrapper's Python was a third of preparation's per-sample cost). These tests encode varied
conversations (images, several rounds, truncation, non-ASCII, special tokens in the text, rejections)
both ways, for Qwen2-, Llama-legacy-, Llama-metaspace- and add-eos-style tokenizers, and check that
a tokenizer class changing how text is encoded is never bypassed.
"""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import processors as tk_processors

from tokenizer_helpers import llama_tokenizer, qwen2_tokenizer, rendered
from vitune.data.instance import Instance, Turn
from vitune.train.compose import prepare_tokenizer
from vitune.train.labels import Compact, Encoded, LabelEncoder, Rejected

N_IMG = 7
CORPUS = [
    [("user", "What color is the circle?"), ("assistant", "red")],
    [("user", "Über café, 12,5 ¿por qué?"), ("assistant", "Weil es rot ist.")],
]


def _inst(i: int, turns: list[tuple[str, str]], image: bool = True) -> Instance:
    return Instance(f"s{i}", "img/0.jpg" if image else None, "t", [Turn(r, t) for r, t in turns])


INSTANCES = [
    _inst(0, [("user", "What color is the circle?"), ("assistant", "red")]),
    _inst(
        1,
        [("user", "Über café? 12,5"), ("assistant", "Weil es rot ist."), ("user", "x"), ("assistant", "y z")],
    ),
    _inst(2, [("user", "Say hi."), ("assistant", "hi   there\n\nok")], image=False),
    _inst(3, [("user", "q"), ("assistant", "a"), ("user", "more " * 60), ("assistant", "b")]),
    _inst(7, [("user", "long " * 60), ("assistant", "a")]),
    _inst(4, [("user", "q"), ("assistant", "an </s> inside, and <|im_end|> too")]),
    _inst(5, [("user", "q <image> again"), ("assistant", "a")]),
    _inst(6, [("user", "only a question")]),
]


def _qwen2():
    tok = qwen2_tokenizer(rendered("chatml", CORPUS, "<|im_end|>") * 4)
    prepare_tokenizer(tok, "chatml")  # adds <image>
    return tok


def _tokenizers():
    yield "qwen2", _qwen2(), "chatml"
    for legacy in (True, False):
        yield (
            f"llama-legacy={legacy}",
            llama_tokenizer(rendered("vicuna_v1", CORPUS, "</s>") * 4, legacy),
            "vicuna_v1",
        )
    tok = llama_tokenizer(rendered("vicuna_v1", CORPUS, "</s>") * 4, legacy=False)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    tok.backend_tokenizer.post_processor = tk_processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    yield "llama-add-eos", tok, "vicuna_v1"


TOKENIZERS = list(_tokenizers())


def _same(a: Encoded | Rejected, b: Encoded | Rejected) -> bool:
    if isinstance(a, Rejected) or isinstance(b, Rejected):
        return (type(a), a.reason, a.detail) == (type(b), b.reason, b.detail)
    return (a.input_ids, a.labels, a.pairs_kept) == (b.input_ids, b.labels, b.pairs_kept)


@pytest.mark.parametrize(("name", "tok", "template"), TOKENIZERS, ids=[t[0] for t in TOKENIZERS])
def test_direct_path_equals_the_wrapper(name, tok, template):
    direct = LabelEncoder(tok, N_IMG, template, max_length=120)
    wrapped = LabelEncoder(tok, N_IMG, template, max_length=120)
    wrapped._backend = None
    assert direct._backend is not None, f"{name}: the probe should allow the direct path"
    got = [direct.encode(i) for i in INSTANCES]
    want = [wrapped.encode(i) for i in INSTANCES]
    assert all(_same(a, b) for a, b in zip(got, want, strict=True))
    # The set covers what matters: kept, truncated, text-only and rejected samples.
    kinds = {type(r).__name__ for r in got}
    assert kinds == {"Encoded", "Rejected"}
    assert any(isinstance(r, Encoded) and r.truncated for r in got)


@pytest.mark.parametrize(("name", "tok", "template"), TOKENIZERS, ids=[t[0] for t in TOKENIZERS])
def test_compact_expands_to_encode(name, tok, template):
    enc = LabelEncoder(tok, N_IMG, template, max_length=120)
    for inst in INSTANCES:
        c, e = enc.encode_compact(inst), enc.encode(inst)
        if isinstance(e, Rejected):
            assert isinstance(c, Rejected) and (c.reason, c.detail) == (e.reason, e.detail)
            continue
        assert isinstance(c, Compact) and c.ids.dtype == np.int32
        assert c.length == len(e.input_ids)
        reps = np.where(c.ids == enc.image_id, N_IMG, 1)
        assert np.repeat(c.ids, reps).tolist() == e.input_ids
        assert np.repeat(c.labels, reps).tolist() == e.labels
        assert int((c.ids == enc.image_id).sum()) == (inst.image is not None)


def test_a_tokenizer_class_that_changes_encoding_is_not_bypassed():
    _, base, template = TOKENIZERS[0]

    class Shouting(type(base)):
        def _encode_plus(self, text, *args, **kwargs):
            t = text.replace("red", "RED") if isinstance(text, str) else text
            return super()._encode_plus(t, *args, **kwargs)

    tok = _qwen2()
    tok.__class__ = Shouting
    enc = LabelEncoder(tok, N_IMG, template, max_length=120)
    assert enc._backend is None
    e = enc.encode(INSTANCES[0])
    assert isinstance(e, Encoded)
    assert tok.decode([i for i in e.labels if i >= 0]).startswith("RED")


def test_a_backend_with_truncation_state_goes_through_the_wrapper():
    _, tok, template = TOKENIZERS[1]
    want = LabelEncoder(tok, N_IMG, template, max_length=120).encode(INSTANCES[1])
    enc = LabelEncoder(tok, N_IMG, template, max_length=120)
    tok.backend_tokenizer.enable_truncation(8)
    try:
        got = enc.encode(INSTANCES[1])
    finally:
        tok.backend_tokenizer.no_truncation()
    assert _same(got, want)
