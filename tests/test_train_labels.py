"""Labels token by token, truncation at turn boundaries, rejection, train/infer prompt consistency."""

from __future__ import annotations

import pytest

from vitune.data.instance import Instance, Turn
from vitune.data.templates import VICUNA_SYSTEM
from vitune.train.labels import IGNORE_INDEX, Encoded, LabelEncoder, Rejected, collate, prompt_is_consistent
from vitune.train.tokenizer import corpus_texts, image_token_id, train_tokenizer

N_IMG = 16  # image_seq_length used in these tests

CONV = Instance(
    "conv",
    "img/0.jpg",
    "vqa",
    [
        Turn("user", "What color is the circle?"),
        Turn("assistant", "red"),
        Turn("user", "How many stars are there?"),
        Turn("assistant", "two"),
        Turn("user", "Is there a square?"),
        Turn("assistant", "no"),
    ],
)
CAPTION = Instance(
    "cap", "img/1.jpg", "caption", [Turn("user", "Describe."), Turn("assistant", "a red circle")]
)
TEXT_ONLY = Instance("txt", None, "chat", [Turn("user", "Say hi."), Turn("assistant", "hi")])


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(corpus_texts([CONV, CAPTION, TEXT_ONLY] * 3), vocab_size=300)


def enc(tok, text):
    return tok.encode(text, add_special_tokens=False)


def build_expected(tok, spans):
    """spans: list of (text | "IMAGE", supervised) written out by hand."""
    ids, labels = [tok.bos_token_id], [IGNORE_INDEX]
    for text, sup in spans:
        piece = [image_token_id(tok)] * N_IMG if text == "IMAGE" else enc(tok, text)
        ids += piece
        labels += piece if sup else [IGNORE_INDEX] * len(piece)
    return ids, labels


def supervised_runs(tok, ids, labels):
    """Decoded text of each maximal run of supervised positions."""
    runs, cur = [], []
    for i, lab in zip(ids, labels, strict=True):
        if lab != IGNORE_INDEX:
            assert lab == i
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return [tok.decode(r) for r in runs]


def test_vicuna_v1_multi_turn_token_by_token(tok):
    e = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=1024).encode(CONV)
    assert isinstance(e, Encoded)
    exp_ids, exp_labels = build_expected(
        tok,
        [
            (VICUNA_SYSTEM, False),
            (" USER: ", False),
            ("IMAGE", False),
            ("\nWhat color is the circle? ASSISTANT:", False),
            (" red</s>", True),
            ("USER: How many stars are there? ASSISTANT:", False),
            (" two</s>", True),
            ("USER: Is there a square? ASSISTANT:", False),
            (" no</s>", True),
        ],
    )
    assert e.input_ids == exp_ids
    assert e.labels == exp_labels
    assert e.input_ids[0] == tok.bos_token_id and e.labels[0] == IGNORE_INDEX
    assert supervised_runs(tok, e.input_ids, e.labels) == [" red</s>", " two</s>", " no</s>"]
    assert e.input_ids.count(image_token_id(tok)) == N_IMG
    assert (e.pairs_kept, e.pairs_total, e.truncated) == (3, 3, False)


def test_plain_template(tok):
    e = LabelEncoder(tok, N_IMG, "plain", max_length=1024).encode(CAPTION)
    exp_ids, exp_labels = build_expected(tok, [("IMAGE", False), ("a red circle\n", True)])
    assert (e.input_ids, e.labels) == (exp_ids, exp_labels)


def test_chatml_template(tok):
    e = LabelEncoder(tok, N_IMG, "chatml", max_length=1024).encode(TEXT_ONLY)
    exp_ids, exp_labels = build_expected(
        tok,
        [
            ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", False),
            ("<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n", False),
            ("hi<|im_end|>", True),
            ("\n", False),
        ],
    )
    assert (e.input_ids, e.labels) == (exp_ids, exp_labels)
    assert image_token_id(tok) not in e.input_ids


def test_truncation_drops_whole_pairs(tok):
    full = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=1024).encode(CONV)
    two = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=1024).encode(
        Instance("two", CONV.image, CONV.task, CONV.turns[:4])
    )
    # Anything from the length of two pairs up to one token short of three pairs keeps two pairs.
    for max_length in (len(two.input_ids), len(full.input_ids) - 1):
        e = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=max_length).encode(CONV)
        assert (e.pairs_kept, e.pairs_total, e.truncated) == (2, 3, True)
        assert (e.input_ids, e.labels) == (two.input_ids, two.labels)
        assert e.input_ids[-1] == tok.eos_token_id and e.labels[-1] == tok.eos_token_id


def test_image_tokens_never_cut_and_unfittable_sample_rejected(tok):
    one = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=1024).encode(
        Instance("one", CONV.image, CONV.task, CONV.turns[:2])
    )
    img = image_token_id(tok)
    first_img = one.input_ids.index(img)
    # Limits inside the image run, just after it, and one short of the first pair: all rejected.
    for max_length in (first_img + N_IMG // 2, first_img + N_IMG, len(one.input_ids) - 1):
        r = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=max_length).encode(CONV)
        assert isinstance(r, Rejected)
        assert r.id == "conv" and r.reason == "first turn pair longer than max_length"
        assert r.detail == {"length": len(one.input_ids), "max_length": max_length}


def test_other_rejections(tok):
    e = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=1024)
    stray = Instance("stray", "x.jpg", "t", [Turn("user", "<image>\nQ"), Turn("assistant", "A")])
    assert e.encode(stray).reason == "<image> inside turn text"
    no_reply = Instance("nr", None, "t", [Turn("user", "Q")])
    assert e.encode(no_reply).reason == "no assistant reply"


def test_collate_right_pads_and_keeps_image_order(tok):
    import torch

    e = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=1024)
    a, b, c = e.encode(TEXT_ONLY), e.encode(CAPTION), e.encode(CONV)
    pa, pc = torch.zeros(3, 4, 4), torch.ones(3, 4, 4)
    batch = collate(
        [
            {"input_ids": c.input_ids, "labels": c.labels, "pixel_values": pc},
            {"input_ids": a.input_ids, "labels": a.labels, "pixel_values": None},
            {"input_ids": b.input_ids, "labels": b.labels, "pixel_values": pa},
        ],
        pad_id=tok.pad_token_id,
    )
    n = len(c.input_ids)
    assert batch["input_ids"].shape == (3, n)
    k = len(a.input_ids)
    assert batch["input_ids"][1, :k].tolist() == a.input_ids
    assert (batch["input_ids"][1, k:] == tok.pad_token_id).all()
    assert (batch["labels"][1, k:] == IGNORE_INDEX).all()
    assert batch["attention_mask"][1].tolist() == [1] * k + [0] * (n - k)
    # Only image samples contribute pixel values, in batch order (CONV first, then CAPTION).
    assert batch["pixel_values"].shape == (2, 3, 4, 4)
    assert batch["pixel_values"][0].eq(1).all() and batch["pixel_values"][1].eq(0).all()


@pytest.mark.parametrize(
    ("turns", "has_image"),
    [
        ([("user", "What color is the circle? Answer the question using a single word or phrase.")], True),
        ([("user", "Say hi.")], False),
        ([("user", "Q1?"), ("assistant", "red"), ("user", "How many stars are there?")], True),
        ([("user", "  spaced   out\n\ntext "), ("assistant", " lead space"), ("user", "x\n")], True),
        ([("user", "Ünïcode — 42 + 7 = 49?")], False),
    ],
)
def test_prompt_ids_are_a_prefix_of_the_training_ids(tok, turns, has_image):
    assert prompt_is_consistent(tok, "vicuna_v1", turns, has_image)
