"""Conversation templates (LLaVA `vicuna_v1`, `plain`, `chatml`) rendered as labelled segments.

A template turns an instance's turns into a list of `Segment(text, supervised)`. The joined text is
what inference renders (the Jinja chat templates below render the same string); `LabelEncoder`
tokenizes it whole and labels each token by the segment its characters come from, so labels are
exact and the ids are the ones inference produces. Segment boundaries sit before a space or at a
special token, where no tokenizer merges across (a token that would is reported, not guessed at).

`vicuna_v1` (REFERENCE.md §4)::

    SYSTEM + " USER: <image>\\nQ1 ASSISTANT: A1</s>USER: Q2 ASSISTANT: A2</s>"

Supervised: each assistant reply and its `</s>`; everything else (system, user turns, the
`ASSISTANT:` tag) is masked. `plain`: `<image>` + caption + `\\n`, only the image is masked.

`chatml` (Qwen2 / Qwen2.5, LLaVA-NeXT's `qwen` conversation)::

    <|im_start|>system\\nSYSTEM<|im_end|>\\n<|im_start|>user\\n<image>\\nQ1<|im_end|>\\n
    <|im_start|>assistant\\nA1<|im_end|>\\n<|im_start|>user\\nQ2<|im_end|>\\n<|im_start|>assistant\\nA2<|im_end|>\\n

Supervised: each reply and its `<|im_end|>` (the turn terminator, whatever the tokenizer's eos is:
Qwen2.5 base models say `<|endoftext|>`); role headers and the newline after `<|im_end|>` are masked.
`turn_terminator` names the token generation must stop on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vitune.data.instance import IMAGE_TOKEN

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


# chatml's turn delimiters (special tokens in Qwen2 tokenizers) and LLaVA-NeXT's Qwen system prompt.
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHATML_SYSTEM = "You are a helpful assistant."


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
    # `eos` is not used: a chatml turn ends with <|im_end|> whatever the tokenizer calls its eos.
    segs = [Segment(f"{IM_START}system\n{CHATML_SYSTEM}{IM_END}\n", False)]
    for i, (role, text) in enumerate(turns):
        if role == "user":
            user = _user_text(text, i == 0, has_image)
            segs.append(Segment(f"{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n", False))
        else:
            segs.append(Segment(f"{text}{IM_END}", True))
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


def turn_terminator(template: str, eos: str | None) -> str | None:
    """The text that closes a supervised reply, i.e. what generation has to stop on.

    `vicuna_v1` ends replies with the tokenizer's eos (so it needs one), `chatml` with `<|im_end|>`;
    `plain` (captions for projector pretraining) has no terminator token.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; known: {sorted(TEMPLATES)}")
    if template == "chatml":
        return IM_END
    if template == "vicuna_v1":
        if eos is None:
            raise ValueError("template vicuna_v1 ends replies with the eos token, but the tokenizer has none")
        return eos
    return None


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


# Jinja chat template equivalent to `chatml`, in the standard chatml layout (the assistant header
# comes from `add_generation_prompt`), so the generation prompt is `chatml`'s rendering exactly.
# Images are rendered as `<image>\n` in user turns, as training places them. A leading string system
# message replaces the default system prompt (training always used the default).
CHATML_CHAT_TEMPLATE = (
    "{% if messages and messages[0]['role'] == 'system' and messages[0]['content'] is string %}"
    "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{% else %}{{ '<|im_start|>system\\n" + CHATML_SYSTEM + "<|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' or message['role'] == 'assistant' %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' and message['role'] == 'user' %}{{ '<image>\\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


# Chat templates saved as Jinja with the processor, so plain transformers / vLLM render what training saw.
CHAT_TEMPLATES = {"vicuna_v1": VICUNA_V1_CHAT_TEMPLATE, "chatml": CHATML_CHAT_TEMPLATE}


def chat_template_name(chat_template: str | None) -> str | None:
    """Which template a Jinja chat template is (None: not one of ours)."""
    return next((k for k, v in CHAT_TEMPLATES.items() if v == chat_template), None)


def saved_template(model_dir: str | os.PathLike | None) -> str:
    """The conversation template a saved checkpoint was trained with, read from its chat template
    (`chat_template.jinja`, `chat_template.json` or `tokenizer_config.json`); `vicuna_v1` when the
    checkpoint has none or one vitune did not write."""
    if model_dir is None:
        return "vicuna_v1"
    d = Path(model_dir)
    candidates: list[str | None] = []
    if (d / "chat_template.jinja").exists():
        candidates.append((d / "chat_template.jinja").read_text(encoding="utf-8"))
    for name in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        if (d / name).exists():
            candidates.append(json.loads((d / name).read_text(encoding="utf-8")).get("chat_template"))
    return next((t for t in map(chat_template_name, candidates) if t), "vicuna_v1")
