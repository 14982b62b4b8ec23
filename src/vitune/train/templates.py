"""Conversation templates (LLaVA `vicuna_v1`, `plain`, `chatml`) rendered as labelled segments.

A template turns an instance's turns into a list of `Segment(text, supervised)`. Tokenizing each
segment separately and concatenating gives input ids whose labels are exact by construction (no
re-tokenization, so no "tokenization mismatch" and no silently masked samples). Segment boundaries
sit before a space so that the concatenation tokenizes like the joined string with a byte-level BPE.

`vicuna_v1` (REFERENCE.md §4)::

    SYSTEM + " USER: <image>\\nQ1 ASSISTANT: A1</s>USER: Q2 ASSISTANT: A2</s>"

Supervised: each assistant reply and its `</s>`; everything else (system, user turns, the
`ASSISTANT:` tag) is masked. `plain`: `<image>` + caption + `\\n`, only the image is masked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vitune.data.instance import IMAGE_TOKEN

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    supervised: bool


def _user_text(text: str, first: bool, has_image: bool) -> str:
    return f"{IMAGE_TOKEN}\n{text}" if (first and has_image) else text


def vicuna_v1(turns: list[tuple[str, str]], has_image: bool, eos: str) -> list[Segment]:
    segs = [Segment(VICUNA_SYSTEM, False)]
    for i, (role, text) in enumerate(turns):
        if role == "user":
            sep = " " if i == 0 else ""
            segs.append(Segment(f"{sep}USER: {_user_text(text, i == 0, has_image)} ASSISTANT:", False))
        else:
            segs.append(Segment(f" {text}{eos}", True))
    return segs


def plain(turns: list[tuple[str, str]], has_image: bool, eos: str) -> list[Segment]:
    # Projector pretraining: the caption (first assistant turn) follows the image; the user turn is dropped.
    caption = next((t for r, t in turns if r == "assistant"), "")
    segs = [Segment(IMAGE_TOKEN, False)] if has_image else []
    segs.append(Segment(f"{caption}\n", True))
    return segs


def chatml(turns: list[tuple[str, str]], has_image: bool, eos: str) -> list[Segment]:
    segs = [Segment("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", False)]
    for i, (role, text) in enumerate(turns):
        if role == "user":
            segs.append(
                Segment(
                    f"<|im_start|>user\n{_user_text(text, i == 0, has_image)}<|im_end|>\n<|im_start|>assistant\n",
                    False,
                )
            )
        else:
            segs.append(Segment(f"{text}<|im_end|>", True))
            segs.append(Segment("\n", False))
    return segs


TEMPLATES: dict[str, Callable[[list[tuple[str, str]], bool, str], list[Segment]]] = {
    "vicuna_v1": vicuna_v1,
    "plain": plain,
    "chatml": chatml,
}


def render_segments(
    template: str, turns: list[tuple[str, str]], has_image: bool, eos: str = "</s>"
) -> list[Segment]:
    """Render `(role, text)` turns (roles "user"/"assistant", starting with user) as segments."""
    try:
        fn = TEMPLATES[template]
    except KeyError:
        raise ValueError(f"unknown template {template!r}; known: {sorted(TEMPLATES)}") from None
    return fn(turns, has_image, eos)


def generation_prompt(template: str, turns: list[tuple[str, str]], has_image: bool, eos: str = "</s>") -> str:
    """The prompt text for generating the next assistant reply after `turns` (which end with a user turn)."""
    if not turns or turns[-1][0] != "user":
        raise ValueError("a generation prompt needs turns ending with a user turn")
    return "".join(s.text for s in render_segments(template, turns, has_image, eos))


# Jinja chat template equivalent to `vicuna_v1`, saved with the processor so that plain
# transformers / vLLM render the same prompt. Content may be a string or a list of
# {"type": "image"} / {"type": "text"} parts (transformers' multimodal message format).
VICUNA_V1_CHAT_TEMPLATE = (
    "{{ '" + VICUNA_SYSTEM.replace("'", "\\'") + "' }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ ' ' if loop.first else '' }}USER: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>\n' }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    " ASSISTANT:"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' }}{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)
