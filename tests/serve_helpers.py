"""Shared pieces of the `vitune serve` tests: a tiny saved Llava, images, request bodies, a poster."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import httpx
from PIL import Image

from model_helpers import save_random_llava

SENTENCES = [
    "What color is the cube? red",
    "How many circles are there? 3",
    "Is there a dog in the picture? no",
    "Describe the image briefly. A small blue square next to a large green triangle.",
] * 20
NAME = "tiny-llava"


def tiny_model(d: Path) -> Path:
    return save_random_llava(d, SENTENCES)


def png_bytes(size: tuple[int, int], colour=(255, 0, 0)) -> bytes:
    img = Image.new("RGB", size, colour)
    img.putpixel((0, 0), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def data_url(data: bytes | Path) -> str:
    raw = data.read_bytes() if isinstance(data, Path) else data
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def user_with_image(text: str, url: str) -> dict:
    return {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
    }


def text_body(text: str, max_tokens: int = 6, **extra) -> dict:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens, **extra}


def post(url: str, body, client: httpx.Client | None = None, **kw) -> httpx.Response:
    """POST to `url`/chat/completions: `body` as JSON, or bytes as they are."""
    if isinstance(body, bytes):
        kw["content"] = body
        kw.setdefault("headers", {"Content-Type": "application/json"})
    else:
        kw["json"] = body
    send = client.post if client is not None else httpx.post
    return send(f"{url}/chat/completions", timeout=60, **kw)


def rss_bytes() -> int:
    """This process's resident memory (the test server runs on a thread of it)."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")
