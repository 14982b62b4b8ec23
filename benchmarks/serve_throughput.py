"""`vitune serve` under concurrent clients: micro-batched (batch size N) vs one request at a time
(batch size 1), side by side, same model, same requests, same HTTP path.

A `tiny128` LLaVA with random weights (every answer runs to the token limit; the same model as
`eval_throughput.py`) is served on 127.0.0.1 twice, each time answering `--requests` chat requests
(image as a base64 data URL, the world benchmarks' questions) sent by `--clients` concurrent
clients. Prints requests/s and the ratio, and fails if any answer differs between the two servers
(micro-batching must not change answers).

    .venv/bin/python benchmarks/serve_throughput.py [--requests 96] [--clients 16] [--batch-size 16]
        [--max-tokens 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # for eval_throughput

import httpx
import torch
from eval_throughput import tiny_model, world_items
from PIL import Image

from vitune.serve.server import BackgroundServer, load_app


def data_url(image) -> str:
    img = image if isinstance(image, Image.Image) else Image.open(image)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def bodies(items, max_tokens: int) -> list[dict]:
    out = []
    for it in items:
        content: list[dict] = [{"type": "text", "text": it.text}]
        if it.image is not None:
            content.insert(0, {"type": "image_url", "image_url": {"url": data_url(it.image)}})
        out.append({"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens})
    return out


def run(
    model_dir: Path, reqs: list[dict], clients: int, batch_size: int
) -> tuple[list[str], float, list[int]]:
    app = load_app(model_dir, model_name="m", batch_size=batch_size, max_wait_ms=20)
    with BackgroundServer(app) as srv, httpx.Client(timeout=600) as http:

        def ask(body: dict) -> str:
            r = http.post(f"{srv.url}/chat/completions", json={"model": "m", **body})
            r.raise_for_status()
            return r.json()["choices"][0]["message"]["content"]

        ask(reqs[0])  # warm-up: first-call allocations are not throughput
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(ask, reqs))
        seconds = time.perf_counter() - t0
        stats = http.get(srv.url.removesuffix("/v1") + "/vitune/stats").json()
    return answers, seconds, stats["batch_sizes"][1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        items, texts = world_items(Path(d), args.requests)
        model_dir = tiny_model(Path(d), texts)
        reqs = bodies(items, args.max_tokens)
        print(f"{len(reqs)} requests, {args.clients} concurrent clients, max_tokens {args.max_tokens}, "
              f"{torch.get_num_threads()} torch thread(s), load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        one, t_one, _ = run(model_dir, reqs, args.clients, 1)
        many, t_many, sizes = run(model_dir, reqs, args.clients, args.batch_size)
    same = sum(a == b for a, b in zip(one, many, strict=True))
    mean = sum(sizes) / max(1, len(sizes))
    print(f"  batch size 1          : {len(reqs) / t_one:7.2f} requests/s  ({t_one:.1f} s)")
    print(f"  micro-batched (<= {args.batch_size:>2}) : {len(reqs) / t_many:7.2f} requests/s  ({t_many:.1f} s, "
          f"mean batch {mean:.1f})")  # fmt: skip
    print(f"  speed-up {t_one / t_many:.2f}x; identical answers {same}/{len(reqs)}")
    if same != len(reqs):
        raise SystemExit("micro-batched answers differ from one-at-a-time answers")


if __name__ == "__main__":
    main()
