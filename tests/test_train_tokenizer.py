"""Tokenizer: deterministic training, `<image>` as one token, BOS first, vicuna_v1 chat template."""

from __future__ import annotations

from vitune.data.instance import Instance, Turn
from vitune.data.templates import generation_prompt
from vitune.train.tokenizer import SPECIAL_TOKENS, corpus_texts, image_token_id, train_tokenizer

INSTANCES = [
    Instance("a", "img/a.jpg", "vqa", [Turn("user", "What color is the circle?"), Turn("assistant", "red")]),
    Instance(
        "b",
        None,
        "chat",
        [Turn("user", "Hello there."), Turn("assistant", "Hi! How can I help?"), Turn("user", "Count to 3.")],
    ),
    Instance(
        "c", "img/c.jpg", "cap", [Turn("user", "Describe the image."), Turn("assistant", "A blue star.")]
    ),
] * 5


def _tok(vocab_size: int = 400):
    return train_tokenizer(corpus_texts(INSTANCES), vocab_size=vocab_size)


def test_deterministic_for_the_same_corpus():
    a, b = _tok(), _tok()
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    text = "USER: <image>\nWhat color is the star? ASSISTANT: blue</s>"
    assert a.encode(text) == b.encode(text)


def test_special_tokens_and_image_token_is_one_token():
    tok = _tok()
    assert tok.convert_ids_to_tokens(list(range(len(SPECIAL_TOKENS)))) == SPECIAL_TOKENS
    assert (tok.unk_token, tok.bos_token, tok.eos_token, tok.pad_token) == ("<unk>", "<s>", "</s>", "<pad>")
    img = image_token_id(tok)
    assert tok.encode("<image>", add_special_tokens=False) == [img]
    # Glued to text on both sides it still comes out as exactly one token.
    ids = tok.encode("x<image>y", add_special_tokens=False)
    assert ids.count(img) == 1
    assert tok.decode(ids) == "x<image>y"


def test_bos_first_and_no_eos_on_prompts():
    tok = _tok()
    ids = tok.encode("USER: hi ASSISTANT:")
    assert ids[0] == tok.bos_token_id
    assert ids[1:] == tok.encode("USER: hi ASSISTANT:", add_special_tokens=False)
    assert tok.eos_token_id not in ids


def test_chat_template_renders_generation_prompt_exactly():
    tok = _tok()
    msgs = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "What color is the circle?"}],
        }
    ]
    rendered = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert rendered == generation_prompt("vicuna_v1", [("user", "What color is the circle?")], True)
    multi = [
        {"role": "user", "content": "Hello there."},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Count to 3."},
    ]
    turns = [("user", "Hello there."), ("assistant", "Hi!"), ("user", "Count to 3.")]
    assert tok.apply_chat_template(multi, tokenize=False, add_generation_prompt=True) == generation_prompt(
        "vicuna_v1", turns, False
    )
