"""The OpenAI chat-completions request format, read into a `ChatRequest` or refused with a clear error.

What is accepted (and why):

- `messages`: roles `system` / `developer`, `user`, `assistant`; content a string or a list of parts
  `{"type": "text", "text": ...}` and `{"type": "image_url", "image_url": {"url": ...}}`. Text parts
  of one message are joined without a separator, as the checkpoint's saved Jinja chat template does.
- After any system messages, user and assistant alternate, starting and ending with user: the
  template renders exactly that shape (`data/templates.generation_prompt`).
- System messages: LLaVA's templates have a fixed system prompt, and training never saw another,
  so it stays; the text of leading system messages is put before the first user message (joined
  by a blank line), so what the client asked for still reaches the model. A system message after
  the first user message is refused.
- At most one image per conversation, in the first user message: LLaVA-1.5 was trained with one
  image, placed at the start of the first user turn. The literal `<image>` token in text is refused
  (it would be an image slot with no image).
- Decoding: greedy unless `temperature` > 0 (at most 2, OpenAI's range); a missing or null
  `temperature` is 0 here, not OpenAI's 1, so a plain request gets the answer `vitune eval` gives.
  With temperature > 0 the answer is sampled with nucleus `top_p` (0 < top_p <= 1; no top-k) from
  the integer `seed` (drawn by the server and reported back when absent), so it can be reproduced;
  `top_p` and `seed` leave a greedy answer unchanged (the argmax is always in the nucleus). Every
  other decoding field is accepted only when absent, null or at its neutral value (`n` 1, penalties 0,
  ...); any other value is refused with a 400 naming the field, never silently
  ignored. Fields that do not change an answer (`user`, `metadata`, ...) are ignored.
- `stream: true`: the answer comes as Server-Sent Events (`stream_options.include_usage` adds
  OpenAI's usage chunk).
- Limits (`limits.Limits`): text characters of the whole request, images per request. Every text
  must be valid Unicode (a lone surrogate such as `"\ud800"` is refused here, before it reaches the
  tokenizer and a batch). Values echoed in error messages are shortened and escaped (`show`).
- `max_tokens` (or `max_completion_tokens`): at least 1 and at most the server's cap; when absent,
  the cap (or what the model's positions leave, if less).
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Any

from vitune.data.instance import IMAGE_TOKEN
from vitune.serve.limits import Limits

MAX_TEMPERATURE = 2.0  # OpenAI's cap; MM-Vet's judge retries reach it
# torch.manual_seed's range, so every accepted seed can be used.
SEED_RANGE = (-(2**63), 2**64 - 1)

# Field -> the values that leave decoding unchanged (None is always accepted too).
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "top_k": (-1, 0),  # vLLM's spelling of "off"
    "min_p": (0,),
    "frequency_penalty": (0,),
    "presence_penalty": (0,),
    "repetition_penalty": (1,),
    "best_of": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "stop": ("", ()),
    "logit_bias": ({},),
    "tools": ((),),
    "response_format": ({"type": "text"},),
}


class RequestError(Exception):
    """A request the server refuses: an HTTP status, a message for the client and the field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")
        self.headers = headers

    def payload(self) -> dict[str, Any]:
        """OpenAI's error body, which its clients parse."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": None}}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat request: `(role, text)` turns ending with a user turn, and the image source."""

    turns: list[tuple[str, str]]
    image_url: str | None
    max_tokens: int | None  # None: the server's default
    model: str | None
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int | None = None  # None: the server draws one when sampling
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage


_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 40
_SHOW.maxlevel = 2


def show(value: Any) -> str:
    """`repr(value)` for an error message: short (a client's 10 MB field is not echoed back), and
    escaped (a lone surrogate would make the JSON error body itself unencodable)."""
    return _SHOW.repr(value).encode("ascii", "backslashreplace").decode("ascii")


def _bad(message: str, param: str | None = None) -> RequestError:
    return RequestError(400, message, param)


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(f"{where}: the text is not valid Unicode (a lone surrogate)", where) from None


def _is_neutral(value: Any, neutral: tuple[Any, ...]) -> bool:
    if isinstance(value, list):
        value = tuple(value)
    # bool is an int, but `temperature: false` is not a temperature (nor `logprobs: 0` a flag).
    return any(v == value and isinstance(v, bool) == isinstance(value, bool) for v in neutral)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_sampling(body: dict[str, Any]) -> tuple[float, float, int | None]:
    """(temperature, top_p, seed) of a request, each checked; temperature 0 means greedy."""
    t = body.get("temperature")
    if t is not None and not (_number(t) and 0 <= t <= MAX_TEMPERATURE):
        raise _bad(
            f"temperature must be a number from 0 to {MAX_TEMPERATURE:g} (0: greedy), got {show(t)}",
            "temperature",
        )
    p = body.get("top_p")
    if p is not None and not (_number(p) and 0 < p <= 1):
        raise _bad(f"top_p must be a number above 0 and at most 1, got {show(p)}", "top_p")
    seed = body.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]
    ):
        raise _bad(f"seed must be an integer (at most 64 bits), got {show(seed)}", "seed")
    return float(t or 0.0), float(1.0 if p is None else p), seed


def read_stream(body: dict[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage) of a request."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad(f"stream must be true or false, got {show(stream)}", "stream")
    options = body.get("stream_options")
    if options is None:
        return bool(stream), False
    usage = options.get("include_usage") if isinstance(options, dict) else None
    if not isinstance(options, dict) or set(options) - {"include_usage"} or not isinstance(usage, bool):
        raise _bad('stream_options must be {"include_usage": true or false}', "stream_options")
    if not stream:
        raise _bad("stream_options is only accepted with stream=true", "stream_options")
    return True, usage


def check_decoding(body: dict[str, Any]) -> None:
    """Refuse every setting this single-choice server cannot honour (besides temperature, top_p,
    seed and stream, which `read_sampling` and `read_stream` check)."""
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise _bad(f"n must be 1 (this server returns one choice), got {show(n)}", "n")
    for field, neutral in NEUTRAL.items():
        value = body.get(field)
        if value is not None and not _is_neutral(value, neutral):
            shown = " or ".join(repr(v) for v in neutral)
            raise _bad(
                f"{field}={show(value)} is not supported: this server samples with temperature, top_p "
                f"and seed only; leave {field} out or set it to {shown}",
                field,
            )


def read_max_tokens(body: dict[str, Any], cap: int) -> int | None:
    field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(f"{field} must be a positive integer, got {show(value)}", field)
    if value > cap:
        raise _bad(
            f"{field}={value} is above this server's cap of {cap} (vitune serve --max-tokens-cap)", field
        )
    return value


def _content(content: Any, param: str, allow_images: bool) -> tuple[str, list[str]]:
    """(text, image urls) of one message's content."""
    if isinstance(content, str):
        _check_text(content, f"{param}.content")
        return content, []
    if not isinstance(content, list):
        raise _bad(f"{param}.content must be a string or a list of content parts", f"{param}.content")
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        where = f"{param}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            _check_text(part["text"], where)
            texts.append(part["text"])
        elif kind == "image_url":
            if not allow_images:
                raise _bad(f"{where}: only user messages may hold an image", where)
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str) or not url:
                raise _bad(f'{where}: image_url needs a "url" string', where)
            _check_text(url, where)
            images.append(url)
        else:
            raise _bad(
                f'{where}: unsupported content part (expected {{"type": "text", "text": ...}} or '
                f'{{"type": "image_url", "image_url": {{"url": ...}}}})',
                where,
            )
    return "".join(texts), images


def parse_chat(body: Any, max_tokens_cap: int, limits: Limits | None = None) -> ChatRequest:
    """Validate an OpenAI chat-completions body (already JSON-decoded); see the module doc."""
    limits = limits or Limits()
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    check_decoding(body)
    stream, include_usage = read_stream(body)
    temperature, top_p, seed = read_sampling(body)
    max_tokens = read_max_tokens(body, max_tokens_cap)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad("model must be a string", "model")
    if model is not None:
        _check_text(model, "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list of chat messages", "messages")

    system: list[str] = []
    turns: list[tuple[str, str]] = []
    image: str | None = None
    chars = 0
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(f"{param} must be an object with role and content", param)
        role = msg.get("role")
        if role in ("system", "developer"):
            if turns:
                raise _bad(f"{param}: system messages are only accepted before the first user message", param)
            text, _ = _content(msg.get("content"), param, allow_images=False)
            chars = _count_chars(chars, text, limits)
            system.append(text)
            continue
        if role not in ("user", "assistant"):
            raise _bad(f"{param}: unsupported role {show(role)} (system, user, assistant)", f"{param}.role")
        expected = "user" if not turns or turns[-1][0] == "assistant" else "assistant"
        if role != expected:
            raise _bad(
                f"{param}: expected a {expected} message; after any system messages, user and assistant "
                "messages must alternate, starting with user",
                f"{param}.role",
            )
        text, images = _content(msg.get("content"), param, allow_images=role == "user")
        chars = _count_chars(chars, text, limits)
        if IMAGE_TOKEN in text:
            raise _bad(
                f"{param}: the text must not contain {IMAGE_TOKEN}; send the image as an image_url part"
            )
        if images:
            if limits.max_images == 0:
                raise _bad(f"{param}: this server answers text only (vitune serve --max-images 0)", param)
            if image is not None or len(images) > 1:
                raise _bad(f"{param}: at most one image per conversation (LLaVA-1.5 sees one image)", param)
            if turns:
                raise _bad(
                    f"{param}: the image must be in the first user message, where LLaVA places it", param
                )
            image = images[0]
        turns.append((role, text))
    if not turns:
        raise _bad("messages holds no user message", "messages")
    if turns[-1][0] != "user":
        raise _bad("the last message must be a user message (the server answers it)", "messages")
    if system:
        first = "\n\n".join([*system, turns[0][1]])
        turns[0] = ("user", first)
    return ChatRequest(turns, image, max_tokens, model, temperature, top_p, seed, stream, include_usage)


def _count_chars(total: int, text: str, limits: Limits) -> int:
    total += len(text)
    if total > limits.max_chars:
        raise _bad(
            f"the messages hold more than {limits.max_chars} characters of text, this server's limit "
            "(vitune serve --max-chars)",
            "messages",
        )
    return total
