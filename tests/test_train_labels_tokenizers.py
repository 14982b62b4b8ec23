"""Labels with real LLM tokenizer layouts: Qwen2 (no BOS, chatml) and Llama-2 (SentencePiece-style).

Expectations are built by hand (span by span) or the way LLaVA computes them (lengths of tokenized
prefixes), and compared token by token with `LabelEncoder`; the ids must also be exactly what the
tokenizer gives for the whole rendered text, which is what inference tokenizes.
"""

from __future__ import annotations

import pytest
from tokenizers import processors as tk_processors

from tokenizer_helpers import llama_tokenizer, qwen2_tokenizer, rendered
from vitune.data.instance import Instance, Turn
from vitune.data.templates import VICUNA_SYSTEM, generation_prompt, render_segments
from vitune.train.compose import prepare_tokenizer
from vitune.train.labels import IGNORE_INDEX, Encoded, LabelEncoder, Rejected, prompt_is_consistent
from vitune.train.tokenizer import image_token_id

N_IMG = 5

TURNS = [
    ("user", "What color is the circle?"),
    ("assistant", "red"),
    ("user", "How many stars are there?"),
    ("assistant", "two stars"),
]
CONV = Instance("conv", "img/0.jpg", "vqa", [Turn(r, t) for r, t in TURNS])
TEXT = Instance("txt", None, "chat", [Turn("user", "Say hi."), Turn("assistant", "hi there")])
CORPUS_TURNS = [
    TURNS,
    [("user", "Say hi."), ("assistant", "hi there")],
    [("user", "a\n\nb"), ("assistant", "c")],
]


@pytest.fixture(scope="module", params=["<|endoftext|>", "<|im_end|>"], ids=["base-eos", "instruct-eos"])
def qwen(request):
    corpus = rendered("chatml", CORPUS_TURNS, "<|im_end|>") * 4
    tok = qwen2_tokenizer(corpus, eos=request.param)
    assert prepare_tokenizer(tok, "chatml") == ["<image>"]  # pad is <|endoftext|>, as Qwen2 ships
    return tok


def _check_against_spans(tok, e: Encoded, spans):
    """spans: (text | "IMAGE", supervised), written out by hand; each text encoded on its own."""
    ids, labels = [], []
    for text, sup in spans:
        piece = (
            [image_token_id(tok)] * N_IMG if text == "IMAGE" else tok.encode(text, add_special_tokens=False)
        )
        ids += piece
        labels += piece if sup else [IGNORE_INDEX] * len(piece)
    assert e.input_ids == ids
    assert e.labels == labels


def _whole(tok, inst: Instance, template: str) -> list[int]:
    """The tokenizer's ids for the whole rendered conversation (as inference tokenizes it), expanded."""
    turns = [(t.role, t.text) for t in inst.turns]
    text = "".join(s.text for s in render_segments(template, turns, inst.image is not None, tok.eos_token))
    out = []
    for i in tok(text)["input_ids"]:
        out += [i] * (N_IMG if i == image_token_id(tok) else 1)
    return out


def _runs(ids, labels):
    runs, cur = [], []
    for i, lab in zip(ids, labels, strict=True):
        if lab != IGNORE_INDEX:
            assert lab == i
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    return [*runs, cur] if cur else runs


def test_qwen2_chatml_multi_turn_with_image(qwen):
    tok = qwen
    assert tok.bos_token is None and tok.bos_token_id is None
    e = LabelEncoder(tok, N_IMG, "chatml", max_length=512).encode(CONV)
    assert isinstance(e, Encoded)
    _check_against_spans(
        tok,
        e,
        [
            ("<|im_start|>", False),
            ("system\nYou are a helpful assistant.", False),
            ("<|im_end|>", False),
            ("\n", False),
            ("<|im_start|>", False),
            ("user\n", False),
            ("IMAGE", False),
            ("\nWhat color is the circle?", False),
            ("<|im_end|>", False),
            ("\n", False),
            ("<|im_start|>", False),
            ("assistant\n", False),
            ("red", True),
            ("<|im_end|>", True),
            ("\n", False),
            ("<|im_start|>", False),
            ("user\nHow many stars are there?", False),
            ("<|im_end|>", False),
            ("\n", False),
            ("<|im_start|>", False),
            ("assistant\n", False),
            ("two stars", True),
            ("<|im_end|>", True),
            ("\n", False),
        ],
    )
    im_start, im_end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    # No BOS and no None: the sequence starts with the system turn, as Qwen2's tokenizer does it.
    assert e.input_ids[0] == im_start and None not in e.input_ids and None not in e.labels
    assert e.input_ids == _whole(tok, CONV, "chatml")
    # Replies are closed by <|im_end|> (one token), whatever the eos; the other four are masked.
    assert [tok.decode(r) for r in _runs(e.input_ids, e.labels)] == ["red<|im_end|>", "two stars<|im_end|>"]
    ends = [i for i, t in enumerate(e.input_ids) if t == im_end]
    assert len(ends) == 5 and [e.labels[i] == im_end for i in ends] == [False, False, True, False, True]
    assert e.input_ids.count(image_token_id(tok)) == N_IMG


def test_qwen2_chatml_text_only(qwen):
    tok = qwen
    e = LabelEncoder(tok, N_IMG, "chatml", max_length=512).encode(TEXT)
    _check_against_spans(
        tok,
        e,
        [
            ("<|im_start|>", False),
            ("system\nYou are a helpful assistant.", False),
            ("<|im_end|>", False),
            ("\n", False),
            ("<|im_start|>", False),
            ("user\nSay hi.", False),
            ("<|im_end|>", False),
            ("\n", False),
            ("<|im_start|>", False),
            ("assistant\n", False),
            ("hi there", True),
            ("<|im_end|>", True),
            ("\n", False),
        ],
    )
    assert e.input_ids == _whole(tok, TEXT, "chatml") and image_token_id(tok) not in e.input_ids


def test_qwen2_truncation_and_prompt_consistency(qwen):
    tok = qwen
    enc = LabelEncoder(tok, N_IMG, "chatml", max_length=512)
    one = enc.encode(Instance("one", CONV.image, CONV.task, CONV.turns[:2]))
    cut = LabelEncoder(tok, N_IMG, "chatml", max_length=len(one.input_ids)).encode(CONV)
    assert (cut.pairs_kept, cut.input_ids, cut.labels) == (1, one.input_ids, one.labels)
    for turns, img in [(TURNS[:1], True), (TURNS[:3], True), ([("user", "Say hi.")], False)]:
        assert prompt_is_consistent(tok, "chatml", turns, img)
        # The inference prompt is exactly the training ids before the reply (no BOS on either side).
        assert tok(generation_prompt("chatml", turns, img))["input_ids"][0] == tok.convert_tokens_to_ids(
            "<|im_start|>"
        )


def test_qwen2_vicuna_template_has_no_bos_and_ends_replies_with_eos(qwen):
    tok = qwen
    e = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=512).encode(CONV)
    assert None not in e.input_ids and e.input_ids == _whole(tok, CONV, "vicuna_v1")
    assert e.input_ids[: len(tok.encode(VICUNA_SYSTEM))] == tok.encode(VICUNA_SYSTEM)
    eos = tok.eos_token
    assert [tok.decode(r) for r in _runs(e.input_ids, e.labels)] == [f" red{eos}", f" two stars{eos}"]
    assert prompt_is_consistent(tok, "vicuna_v1", TURNS[:3], True)


def test_token_spanning_two_segments_is_rejected_not_guessed(qwen):
    tok = qwen
    # Qwen2's regex makes "\n\n" one token: the header's newline and the reply's first one.
    assert len(tok.encode("\n\n")) == 1
    inst = Instance("nl", None, "chat", [Turn("user", "a"), Turn("assistant", "\nc")])
    r = LabelEncoder(tok, N_IMG, "chatml", max_length=512).encode(inst)
    assert isinstance(r, Rejected) and r.reason == "token spans a label boundary"
    assert r.detail["token"] == tok.convert_ids_to_tokens(tok.encode("\n\n"))[0]


def test_vicuna_without_eos_is_refused():
    tok = qwen2_tokenizer(rendered("chatml", CORPUS_TURNS, "<|im_end|>"))
    prepare_tokenizer(tok, "chatml")
    tok.eos_token = None
    with pytest.raises(ValueError, match="eos"):
        LabelEncoder(tok, N_IMG, "vicuna_v1")
    assert LabelEncoder(tok, N_IMG, "chatml").encode(TEXT).labels[-2] == tok.convert_tokens_to_ids(
        "<|im_end|>"
    )


# --------------------------------------------------------------------------------------------------
# Llama-2 / Vicuna: SentencePiece-style tokenizers


@pytest.fixture(scope="module", params=[True, False], ids=["legacy", "metaspace"])
def llama(request):
    return llama_tokenizer(rendered("vicuna_v1", CORPUS_TURNS, "</s>") * 4, legacy=request.param)


def test_llama_ids_are_whole_text_ids_not_segment_concatenation(llama):
    tok = llama
    e = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=512).encode(CONV)
    assert e.input_ids == _whole(tok, CONV, "vicuna_v1")
    assert e.input_ids[0] == tok.bos_token_id and e.labels[0] == IGNORE_INDEX
    # Why whole-text: each segment alone gets a `▁` prepended that the joined text does not have.
    segs = render_segments("vicuna_v1", TURNS, True, "</s>")
    by_segment = [tok.bos_token_id]
    for s in segs:
        for i in tok.encode(s.text, add_special_tokens=False):
            by_segment += [i] * (N_IMG if i == image_token_id(tok) else 1)
    assert by_segment != e.input_ids


def test_llama_labels_match_llava_style_prefix_lengths(llama):
    """Supervised spans = [len(tok(prompt_t)), len(tok(prompt_t + reply_t + </s>))) for each round,
    the way LLaVA measures them, with one id per <image> so positions line up."""
    tok = llama
    e = LabelEncoder(tok, 1, "vicuna_v1", max_length=512).encode(CONV)
    want = [IGNORE_INDEX] * len(e.input_ids)
    for t in (1, 3):
        start = len(tok(generation_prompt("vicuna_v1", TURNS[:t], True))["input_ids"])
        upto = "".join(s.text for s in render_segments("vicuna_v1", TURNS[: t + 1], True, "</s>"))
        end = len(tok(upto)["input_ids"])
        want[start:end] = e.input_ids[start:end]
        assert e.input_ids[end - 1] == tok.eos_token_id
    assert e.labels == want
    assert [tok.decode(r).strip() for r in _runs(e.input_ids, e.labels)] == ["red</s>", "two stars</s>"]


@pytest.mark.parametrize(
    ("turns", "has_image"),
    [(TURNS[:1], True), (TURNS[:3], True), ([("user", "Say hi.")], False), ([("user", "x 2?")], False)],
)
def test_llama_prompt_is_prefix_of_training_ids(llama, turns, has_image):
    assert prompt_is_consistent(llama, "vicuna_v1", turns, has_image)


def test_eos_appended_by_the_tokenizer_is_dropped():
    """A tokenizer set to add eos at the end (Llama's add_eos_token) must not add an unsupervised
    second `</s>` after the last reply's own."""
    tok = llama_tokenizer(rendered("vicuna_v1", CORPUS_TURNS, "</s>"), legacy=False)
    want = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=512).encode(CONV)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    tok.backend_tokenizer.post_processor = tk_processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    assert tok.encode("hi")[-1] == eos
    got = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=512).encode(CONV)
    assert (got.input_ids, got.labels) == (want.input_ids, want.labels)
    assert got.input_ids[-1] == got.labels[-1] == eos
