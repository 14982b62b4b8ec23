"""`vitune serve` streaming: `stream: true` as Server-Sent Events in OpenAI's chunk format.

Greedy streamed text must equal the non-streamed answer (and the `Generator`'s), sampled streamed
text the sampled answer with the same seed; the raw stream must be well-formed SSE ending with
`data: [DONE]`; the official `openai` SDK must read it.
"""

from __future__ import annotations

import io
import json
import threading
import time

import httpx
import openai
import pytest
from PIL import Image

from serve_helpers import NAME, data_url, png_bytes, post, text_body, tiny_model, user_with_image
from vitune.eval.generate import Generator, GenItem
from vitune.serve import BackgroundServer, load_app


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture(scope="module")
def server(model_dir):
    app = load_app(model_dir, model_name=NAME, batch_size=8, max_wait_ms=2, max_tokens_cap=24)
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def gen(model_dir):
    return Generator.from_dir(model_dir, batch_size=1, max_new_tokens=12)


def events(srv: BackgroundServer, body: dict) -> list[str]:
    """The raw `data:` payloads of a streamed answer, checking the SSE framing on the way."""
    with httpx.stream("POST", f"{srv.url}/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    blocks = raw.split("\n\n")
    assert blocks[-1] == ""  # every event ends with a blank line
    assert all(b.startswith("data: ") for b in blocks[:-1]), raw
    return [b.removeprefix("data: ") for b in blocks[:-1]]


def test_raw_stream_is_openai_chunks_ending_with_done(server, gen):
    body = text_body("Describe the image briefly.", 12, stream=True, stream_options={"include_usage": True})
    payloads = events(server, body)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == NAME for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] >= 1
    finish = chunks[-2]["choices"][0]
    assert finish["delta"] == {} and finish["finish_reason"] in ("stop", "length")
    texts = [c["choices"][0]["delta"].get("content", "") for c in chunks[1:-2]]
    expected = gen.generate([GenItem("Describe the image briefly.")])[0]
    assert "".join(texts) == expected
    # Token by token: a 12-token answer comes in several pieces, not one at the end.
    assert len([t for t in texts if t]) >= 3, texts
    plain = post(server.url, text_body("Describe the image briefly.", 12)).json()
    assert plain["usage"] == usage["usage"]
    assert plain["choices"][0]["finish_reason"] == finish["finish_reason"]


@pytest.mark.parametrize("image", [False, True], ids=["text", "image"])
def test_sdk_streamed_text_equals_the_answer(server, gen, image):
    client = openai.OpenAI(base_url=server.url, api_key="unused")
    question = "What color is the cube?"
    png = png_bytes((30, 18), (0, 120, 40))
    content = [user_with_image(question, data_url(png))] if image else [{"role": "user", "content": question}]
    kw = dict(model=NAME, messages=content, max_tokens=10)
    whole = client.chat.completions.create(**kw).choices[0].message.content
    streamed = client.chat.completions.create(**kw, stream=True)
    pieces = [c.choices[0].delta.content or "" for c in streamed if c.choices]
    assert "".join(pieces) == whole
    gen.max_new_tokens = 10
    try:
        img = Image.open(io.BytesIO(png)) if image else None
        assert whole == gen.generate([GenItem(question, img)])[0]
    finally:
        gen.max_new_tokens = 12
    # Sampled: the same seed streams the same text the non-streamed request gets.
    hot = dict(kw, temperature=1.5, seed=9)
    sampled = client.chat.completions.create(**hot).choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(**hot, stream=True)]
    assert "".join(pieces) == sampled


def test_streamed_errors_before_the_stream_are_plain_4xx(server):
    client = openai.OpenAI(base_url=server.url, api_key="unused")
    with pytest.raises(openai.BadRequestError, match="positions"):
        client.chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": "describe " * 400}], max_tokens=4, stream=True
        )
    r = post(server.url, text_body("hi", 4, stream=True, stream_options={"include_usage": "yes"}))
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options"


def test_streams_share_a_batch_with_plain_requests(model_dir, gen):
    """2 streamed and 2 plain greedy requests at once: one batch, one `generate` call, and each
    gets the answer it gets alone."""
    questions = ["Hi", "Is there a dog?", "How many circles are there?", "What color is the cube?"]
    app = load_app(model_dir, model_name=NAME, batch_size=4, max_wait_ms=3000, max_tokens_cap=24)
    out: dict[int, str] = {}
    barrier = threading.Barrier(len(questions))

    def ask(k: int, srv: BackgroundServer) -> None:
        body = text_body(questions[k], 8)
        barrier.wait()
        if k % 2:
            chunks = [json.loads(p) for p in events(srv, {**body, "stream": True})[:-1]]
            out[k] = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        else:
            out[k] = post(srv.url, body).json()["choices"][0]["message"]["content"]

    with BackgroundServer(app) as srv:
        threads = [threading.Thread(target=ask, args=(k, srv)) for k in range(len(questions))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stats = httpx.get(f"http://127.0.0.1:{srv.port}/vitune/stats").json()
    assert stats["batch_sizes"] == [4] and stats["generate_calls"] == 1
    gen.max_new_tokens = 8
    try:
        expected = [gen.generate([GenItem(q)])[0] for q in questions]
    finally:
        gen.max_new_tokens = 12
    assert [out[k] for k in range(len(questions))] == expected


def test_a_client_that_goes_away_stops_its_generation(model_dir, monkeypatch):
    """Reading the first text and closing the connection ends `generate` early (tokens slowed to 50 ms)."""
    from vitune.serve.streaming import TokenSink

    app = load_app(model_dir, model_name=NAME, max_wait_ms=1, max_tokens_cap=40)
    engine = app.state.engine
    done: list[int] = []
    real_complete, real_put = engine.generator.complete, TokenSink.put

    def recording(*args, **kw):
        out = real_complete(*args, **kw)
        if len(args) > 2 and args[2]:  # the engine passes the streamers third
            done.append(out[0].n_tokens)
        return out

    def slow_put(self, value):
        time.sleep(0.05)
        real_put(self, value)

    engine.generator.complete = recording
    body = text_body("Describe the image briefly.", 40)
    with BackgroundServer(app) as srv:
        full = post(srv.url, body).json()["usage"]["completion_tokens"]
        assert full >= 20  # long enough for an early stop to show
        monkeypatch.setattr(TokenSink, "put", slow_put)
        with httpx.stream(
            "POST", f"{srv.url}/chat/completions", json={**body, "stream": True}, timeout=60
        ) as r:
            # The first text (so the job is generating, not still queued: a queued one is just
            # dropped), then hang up.
            next(line for line in r.iter_lines() if '"delta": {"content"' in line)
        deadline = time.monotonic() + 30
        while not done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done and done[0] < full // 2, (done, full)
        # The server is fine afterwards.
        assert post(srv.url, body).json()["usage"]["completion_tokens"] == full


def test_a_stream_past_its_deadline_ends_with_an_error_event(model_dir, monkeypatch):
    from vitune.serve import Limits
    from vitune.serve.streaming import TokenSink

    real_put = TokenSink.put

    def slow_put(self, value):
        time.sleep(0.2)
        real_put(self, value)

    monkeypatch.setattr(TokenSink, "put", slow_put)
    limits = Limits(timeout_s=1.5)
    app = load_app(model_dir, model_name=NAME, max_wait_ms=1, max_tokens_cap=40, limits=limits)
    with BackgroundServer(app) as srv:
        payloads = events(srv, text_body("Describe the image briefly.", 40, stream=True))
    assert payloads[-1] == "[DONE]"
    error = json.loads(payloads[-2])["error"]
    assert error["type"] == "timeout" and "longer than 1.5 s" in error["message"]
    texts = [json.loads(p)["choices"][0]["delta"].get("content") for p in payloads[1:-2]]
    # 40 tokens at 0.2 s each cannot all come within 1.5 s; what came is well-formed text.
    assert len(texts) < 20 and all(isinstance(t, str) and t for t in texts)
