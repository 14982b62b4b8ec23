"""`vitune serve` under concurrent clients: one request at a time (batch size 1), micro-batched
(batch size N) and streamed (`stream: true`), side by side, same model, same requests, same HTTP path.

A `tiny128` LLaVA with random weights (every answer runs to the token limit; the same model as
`eval_throughput.py`) is served on 127.0.0.1, answering `--requests` chat requests (image as a
base64 data URL, the world benchmarks' questions) sent by 1, 16 and 64 concurrent closed-loop
clients (`--clients`). For each client count it prints requests/s, the latency of a whole answer
(median and 95th percentile) and, streamed, the time to the first text chunk. It fails if any answer
differs between the three ways (micro-batching and streaming must not change answers).

    .venv/bin/python benchmarks/serve_throughput.py [--requests 96] [--clients 1 16 64] [--batch-size 16]
        [--max-tokens 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # for eval_throughput

import httpx
import torch
from eval_throughput import tiny_model, world_items
from PIL import Image

from vitune.serve import BackgroundServer, Limits, load_app


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
        out.append(
            {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
        )
    return out


@dataclass
class Run:
    answers: list[str]
    seconds: float
    latency: list[float]  # whole answer, per request
    first: list[float]  # first text chunk (streamed) or whole answer, per request


def ask(http: httpx.Client, url: str, body: dict) -> tuple[str, float, float]:
    t0 = time.perf_counter()
    r = http.post(f"{url}/chat/completions", json=body)
    r.raise_for_status()
    done = time.perf_counter() - t0
    return r.json()["choices"][0]["message"]["content"], done, done


def ask_streamed(http: httpx.Client, url: str, body: dict) -> tuple[str, float, float]:
    t0 = time.perf_counter()
    first = None
    text = []
    with http.stream("POST", f"{url}/chat/completions", json={**body, "stream": True}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:])["choices"]
            piece = choices[0]["delta"].get("content") if choices else None
            if piece:
                first = first if first is not None else time.perf_counter() - t0
                text.append(piece)
    done = time.perf_counter() - t0
    return "".join(text), done, first if first is not None else done


def run(url: str, reqs: list[dict], clients: int, streamed: bool) -> Run:
    send = ask_streamed if streamed else ask
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=clients + 4)) as http:
        for body in reqs[:4]:  # warm-up: first-call allocations are not throughput
            send(http, url, body)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            out = list(pool.map(lambda b: send(http, url, b), reqs))
        seconds = time.perf_counter() - t0
    return Run([a for a, _, _ in out], seconds, [d for _, d, _ in out], [f for _, _, f in out])


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


def row(name: str, r: Run, n: int) -> str:
    ms = lambda v: f"{v * 1000:7.0f}"  # noqa: E731
    return (f"  {name:<22} {n / r.seconds:7.2f} req/s   answer p50 {ms(pct(r.latency, 50))} ms  p95 "
            f"{ms(pct(r.latency, 95))} ms   first text p50 {ms(pct(r.first, 50))} ms  p95 {ms(pct(r.first, 95))} ms")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    limits = Limits(max_queue=max(args.clients) + 8)
    failures = []
    with tempfile.TemporaryDirectory() as d:
        items, texts = world_items(Path(d), args.requests)
        model_dir = tiny_model(Path(d), texts)
        reqs = bodies(items, args.max_tokens)
        print(f"{len(reqs)} requests, max_tokens {args.max_tokens}, {torch.get_num_threads()} torch thread(s), "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        one_app = load_app(model_dir, model_name="m", batch_size=1, max_wait_ms=0, limits=limits)
        many_app = load_app(
            model_dir, model_name="m", batch_size=args.batch_size, max_wait_ms=20, limits=limits
        )
        with BackgroundServer(one_app) as one, BackgroundServer(many_app) as many:
            for clients in args.clients:
                print(f"{clients} concurrent client(s):")
                base = run(one.url, reqs, clients, streamed=False)
                stats0 = httpx.get(f"http://127.0.0.1:{many.port}/vitune/stats").json()["batches"]
                batched = run(many.url, reqs, clients, streamed=False)
                stats = httpx.get(f"http://127.0.0.1:{many.port}/vitune/stats").json()
                streamed = run(many.url, reqs, clients, streamed=True)
                mean = len(reqs) / max(1, stats["batches"] - stats0 - 4)  # less the warm-up's batches
                print(row("one at a time", base, len(reqs)))
                print(
                    row(f"micro-batched (<= {args.batch_size})", batched, len(reqs))
                    + f"   mean batch {mean:.1f}"
                )
                print(row("streamed", streamed, len(reqs)))
                print(f"  load average {os.getloadavg()[0]:.1f}; micro-batched / one at a time "
                      f"{base.seconds / batched.seconds:.2f}x, streamed / one at a time "
                      f"{base.seconds / streamed.seconds:.2f}x")  # fmt: skip
                for name, r in (("micro-batched", batched), ("streamed", streamed)):
                    same = sum(a == b for a, b in zip(base.answers, r.answers, strict=True))
                    if same != len(reqs):
                        failures.append(f"{clients} clients, {name}: {same}/{len(reqs)} answers identical")
    if failures:
        raise SystemExit("answers differ from one-at-a-time answers: " + "; ".join(failures))
    print("identical answers in every run")


if __name__ == "__main__":
    main()
