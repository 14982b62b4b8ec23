"""`vitune serve` is safe by default: request isolation, limits, closed by default, operability.

Real servers on 127.0.0.1 (port 0) with a tiny saved Llava. A poisoned request must fail alone and
leave its batch-mates' answers as they are alone; a server fault is a 500 with a request id and no
internals; limits answer 413 / 400 / 429 / 504; local files and other hosts' requests are refused
unless the server is configured for them; `/health`, `/metrics` and the access log report what
happened; a graceful stop answers the request in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
import time
import zlib

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from serve_helpers import NAME, data_url, png_bytes, post, rss_bytes, text_body, tiny_model, user_with_image
from vitune.eval.generate import Generator, GenItem
from vitune.serve import BackgroundServer, Limits, load_app
from vitune.serve.engine import Engine, Job, Prepared, ServerFault
from vitune.serve.server import check_bind
from vitune.serve.streaming import TokenSink

QUESTIONS = ["Hi", "Is there a dog?", "How many circles are there?", "What color is the cube?"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture(scope="module")
def gen(model_dir):
    return Generator.from_dir(model_dir, batch_size=1, max_new_tokens=6)


@pytest.fixture(scope="module")
def server(model_dir):
    """Default limits, no image root, no key: what `vitune serve MODEL` runs."""
    with BackgroundServer(load_app(model_dir, model_name=NAME, max_wait_ms=2, max_tokens_cap=16)) as srv:
        yield srv


def answers_alone(gen: Generator, questions: list[str], n: int = 6) -> list[str]:
    return [gen.generate([GenItem(q)])[0] for q in questions]


def huge_png(width: int, height: int) -> bytes:
    """A valid grayscale PNG of any size, written row by row (its pixels never in memory)."""

    def block(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(6)
    rows = b"\x00" * (width + 1) * 100  # 100 rows: a filter byte + one byte per pixel each
    full, rest = divmod(height, 100)
    idat = (
        b"".join(z.compress(rows) for _ in range(full)) + z.compress(rows[: rest * (width + 1)]) + z.flush()
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + block(b"IHDR", header) + block(b"IDAT", idat) + block(b"IEND", b"")


# --- request isolation ---------------------------------------------------------------------------


def test_a_poisoned_job_fails_alone_in_its_batch(model_dir, gen):
    """A job the tokenizer cannot take (a lone surrogate, past every check) in a batch of 6, one
    of them streamed: the others, the stream included, get their answers alone."""
    engine = Engine(Generator.from_dir(model_dir), max_tokens_cap=16, batch_size=6, max_wait_ms=3000)
    loop = asyncio.new_event_loop()  # the sink's queue lives on a loop; it runs after the batch
    sink = TokenSink(engine.tokenizer, loop)
    jobs = [
        Job(engine.prepare([("user", q)], False, 6), None, request_id=f"req-{i}")
        for i, q in enumerate(QUESTIONS)
    ]
    jobs.append(Job(engine.prepare([("user", "Hi")], False, 6), None, sink=sink, request_id="req-stream"))
    bad = Prepared(engine.render([("user", "hi \ud800")], False), 30, 6)
    jobs.insert(2, Job(bad, None, request_id="req-poison"))
    engine.start()
    try:
        futures = [engine.submit(j) for j in jobs]
        results = []
        for f in futures:
            try:
                results.append(f.result(60).text)
            except ServerFault as e:
                results.append(e)
    finally:
        engine.stop()

    async def streamed() -> str:
        pieces = []
        while (piece := await sink.queue.get()) is not None:
            pieces.append(piece)
        return "".join(pieces)

    try:
        text = loop.run_until_complete(streamed())
    finally:
        loop.close()
    assert engine.batcher.batch_sizes[0] == 6  # they did share a batch
    assert isinstance(results[2], ServerFault) and str(results[2]) == "req-poison"
    alone = answers_alone(gen, QUESTIONS)
    assert results[:2] + results[3:5] == alone and results[5] == alone[0] == text


def test_a_surrogate_request_is_a_400_and_its_batch_mates_are_unchanged(model_dir, gen):
    app = load_app(model_dir, model_name=NAME, batch_size=5, max_wait_ms=500, max_tokens_cap=16)
    bodies = [text_body(q) for q in QUESTIONS]
    # As bytes: json.dumps writes the lone surrogate as the escape \ud800, which decodes back to it.
    bodies.insert(1, json.dumps(text_body("hi \ud800 there")).encode())
    out: list[httpx.Response | None] = [None] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def ask(k: int, url: str) -> None:
        barrier.wait()
        out[k] = post(url, bodies[k])

    with BackgroundServer(app) as srv:
        threads = [threading.Thread(target=ask, args=(k, srv.url)) for k in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert out[1].status_code == 400 and "lone surrogate" in out[1].json()["error"]["message"]
    valid = [r for k, r in enumerate(out) if k != 1]
    assert [r.status_code for r in valid] == [200] * 4
    assert [r.json()["choices"][0]["message"]["content"] for r in valid] == answers_alone(gen, QUESTIONS)


def test_a_server_fault_is_a_500_with_a_request_id_and_no_internals(model_dir, caplog):
    app = load_app(model_dir, model_name=NAME, max_wait_ms=1, max_tokens_cap=16)
    engine = app.state.engine
    real = engine.generator.complete

    def broken(prompts, images, *streamers):
        if any("explode" in p for p in prompts):
            raise RuntimeError("secret internals at /root/models/x")
        return real(prompts, images, *streamers)

    engine.generator.complete = broken
    with BackgroundServer(app) as srv, httpx.Client() as client, caplog.at_level(logging.INFO, "vitune"):
        r = post(srv.url, text_body("please explode"), client)
        assert r.status_code == 500
        rid = r.headers["x-request-id"]
        assert r.json()["error"] == {
            "message": f"internal server error (request id {rid})",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        assert "secret" not in r.text and "RuntimeError" not in r.text
        failed = [rec for rec in caplog.records if rid in rec.getMessage() and rec.exc_info]
        assert failed and "secret internals" in str(failed[0].exc_info[1])
        # The same keep-alive client goes on working.
        ok = post(srv.url, text_body("Hi"), client)
        assert ok.status_code == 200 and ok.headers["x-request-id"] != rid


# --- limits --------------------------------------------------------------------------------------


def test_limits_answer_413_and_400(model_dir):
    limits = Limits(
        max_body_bytes=30_000, max_chars=300, max_image_bytes=12_000, max_image_pixels=10_000,
        max_image_side=150, max_image_aspect=4.0,
    )  # fmt: skip
    app = load_app(model_dir, model_name=NAME, max_wait_ms=1, max_tokens_cap=16, limits=limits)

    def image(raw: bytes) -> dict:
        return {"messages": [user_with_image("q", data_url(raw))], "max_tokens": 2}

    noisy = bytes(range(256)) * 60  # not an image, but over the byte limit first
    cases = [
        (b'{"messages": "' + b"x" * 40_000 + b'"}', 413, "over 30000 bytes"),
        (text_body("y" * 301), 400, "more than 300 characters"),
        (image(noisy), 400, "over 12000 bytes"),
        (image(png_bytes((120, 100))), 400, "12000 pixels > 10000"),
        (image(png_bytes((160, 40))), 400, "a side > 150"),
        (image(png_bytes((90, 20))), 400, "aspect ratio 4:1 > 4:1"),
        (image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), 400, "the image cannot be used: unreadable image"),
    ]
    with BackgroundServer(app) as srv:
        for body, status, message in cases:
            r = post(srv.url, body)
            assert r.status_code == status, (message, r.text)
            assert message in r.json()["error"]["message"]
        assert post(srv.url, image(png_bytes((60, 40)))).status_code == 200
        # Without a Content-Length (chunked upload) the limit holds while reading.
        chunked = httpx.post(f"{srv.url}/chat/completions", content=iter([b"x" * 20_000] * 3), timeout=60)
        assert chunked.request.headers["transfer-encoding"] == "chunked"
        assert chunked.status_code == 413 and "over 30000 bytes" in chunked.json()["error"]["message"]


def test_hostile_images_cost_no_memory(server):
    """A 1 x 20000 PNG (its padded square: 400 M pixels) and a 144-megapixel PNG, 4 at once."""
    strip, bomb = huge_png(1, 20000), huge_png(12000, 12000)
    assert len(strip) < 1000 and len(bomb) < 300_000
    bodies = [{"messages": [user_with_image("q", data_url(b))], "max_tokens": 2} for b in (strip, bomb) * 2]
    before = rss_bytes()
    out: list[httpx.Response | None] = [None] * len(bodies)

    def ask(k: int) -> None:
        out[k] = post(server.url, bodies[k])

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.status_code for r in out] == [400] * 4
    assert "image too large (1x20000: a side > 4096)" in out[0].json()["error"]["message"]
    assert "image too large (12000x12000: a side > 4096)" in out[1].json()["error"]["message"]
    # Decoding either would take 400+ MB (RGB, padded to a square); the check reads the header only.
    assert rss_bytes() - before < 60 * 2**20


def _blocking(engine: Engine) -> threading.Event:
    """Make the worker wait for the returned event before each batch."""
    go = threading.Event()
    real = engine.generator.complete

    def wait_then_answer(prompts, images, *streamers):
        assert go.wait(60)
        return real(prompts, images, *streamers)

    engine.generator.complete = wait_then_answer
    return go


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.01)


def test_a_full_queue_is_a_429_with_retry_after_and_a_slow_answer_a_504(model_dir, gen):
    limits = Limits(max_queue=1, timeout_s=2.0)
    app = load_app(model_dir, model_name=NAME, batch_size=1, max_wait_ms=0, max_tokens_cap=16, limits=limits)
    engine = app.state.engine
    go = _blocking(engine)
    out: dict[str, httpx.Response] = {}

    def ask(key: str, url: str) -> None:
        out[key] = post(url, text_body(key))

    with BackgroundServer(app) as srv:
        first = threading.Thread(target=ask, args=("Hi", srv.url))
        first.start()
        _wait_for(lambda: engine.batcher.n_batches == 1)  # the worker holds it (not queued)
        second = threading.Thread(target=ask, args=("Is there a dog?", srv.url))
        second.start()
        _wait_for(lambda: engine.pending == 1)  # queued: the queue (1) is full
        busy = post(srv.url, text_body("one too many"))
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["type"] == "rate_limit_error"
        first.join(30)
        second.join(30)
        assert out["Hi"].status_code == 504 and "longer than 2 s" in out["Hi"].json()["error"]["message"]
        assert out["Is there a dog?"].status_code == 504  # it waited in the queue past its deadline
        go.set()
        _wait_for(lambda: engine.pending == 0)  # the worker drops the timed-out job it had queued
        ok = post(srv.url, text_body("Hi"))
        assert ok.status_code == 200
        assert ok.json()["choices"][0]["message"]["content"] == answers_alone(gen, ["Hi"])[0]


# --- closed by default ---------------------------------------------------------------------------


def test_local_paths_are_refused_without_an_image_root(server, tmp_path):
    real = tmp_path / "real.png"
    real.write_bytes(png_bytes((20, 20)))
    bodies = {}
    for url in (str(real), real.as_uri(), str(tmp_path / "missing.png"), "relative/x.png", "/etc/passwd"):
        r = post(server.url, {"messages": [user_with_image("q", url)], "max_tokens": 2})
        assert r.status_code == 400
        bodies[url] = r.json()["error"]["message"]
    assert len(set(bodies.values())) == 1  # nothing tells an existing file from a missing one
    assert "started without --image-root" in bodies["/etc/passwd"]
    assert str(tmp_path) not in str(bodies.values())
    r = post(server.url, {"messages": [user_with_image("q", "http://127.0.0.1:1/x.png")]})
    assert r.status_code == 400 and "remote image URLs are not fetched" in r.text


def test_image_root_refuses_every_escape_the_same_way(model_dir, tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "ok.png").write_bytes(png_bytes((30, 20)))
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes((30, 20)))
    (root / "link.png").symlink_to(outside)
    escapes = [
        "../secret.png", "../nothing.png", "sub/../../secret.png", str(outside), str(tmp_path / "nothing.png"),
        outside.as_uri(), "link.png", "ok.png\x00.txt", "/etc/passwd", "..\\secret.png",
    ]  # fmt: skip
    app = load_app(model_dir, model_name=NAME, max_wait_ms=1, max_tokens_cap=16, image_root=root)
    with BackgroundServer(app) as srv:
        for url in ["ok.png", str(root / "ok.png"), (root / "ok.png").as_uri()]:
            assert (
                post(srv.url, {"messages": [user_with_image("q", url)], "max_tokens": 2}).status_code == 200
            )
        texts = set()
        for url in escapes:
            r = post(srv.url, {"messages": [user_with_image("q", url)], "max_tokens": 2})
            assert r.status_code == 400, url
            texts.add(r.text)
        missing = post(srv.url, {"messages": [user_with_image("q", "sub/none.png")], "max_tokens": 2})
    assert len(texts) == 1 and "not under the server's image root" in texts.pop()
    assert missing.status_code == 400 and str(root) not in missing.text and str(tmp_path) not in missing.text


def test_api_key_is_required_when_set(model_dir, gen):
    app = load_app(model_dir, model_name=NAME, max_wait_ms=1, max_tokens_cap=16, api_key="s3cret-key")
    with BackgroundServer(app) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"}):
            r = post(srv.url, text_body("Hi"), headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["type"] == "authentication_error"
        assert httpx.get(f"{base}/metrics").status_code == 401
        assert httpx.get(f"{srv.url}/models").status_code == 401
        assert httpx.get(f"{base}/health").status_code == 200  # probes need no key
        ok = post(srv.url, text_body("Hi"), headers={"Authorization": "Bearer s3cret-key"})
        assert ok.status_code == 200
        client = openai.OpenAI(base_url=srv.url, api_key="s3cret-key")
        out = client.chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=6
        )
        assert out.choices[0].message.content == answers_alone(gen, ["Hi"])[0]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=srv.url, api_key="nope", max_retries=0).models.list()


def test_non_loopback_needs_a_key_or_insecure(model_dir, monkeypatch):
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind(host, api_key_required=False)
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.com"):
        with pytest.raises(ValueError, match="refusing to listen"):
            check_bind(host, api_key_required=False)
        check_bind(host, api_key_required=True)
        check_bind(host, api_key_required=False, insecure=True)

    from vitune.cli import app

    seen: dict = {}
    monkeypatch.setattr("vitune.serve.server.serve", lambda api, **kw: seen.update(api=api, **kw))
    monkeypatch.setenv("COLUMNS", "200")
    run = CliRunner().invoke
    res = run(app, ["serve", str(model_dir), "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "refusing to listen" in res.output and not seen
    monkeypatch.delenv("VITUNE_TEST_KEY", raising=False)
    res = run(app, ["serve", str(model_dir), "--host", "0.0.0.0", "--api-key-env", "VITUNE_TEST_KEY"])
    assert res.exit_code == 2 and "VITUNE_TEST_KEY" in res.output and not seen
    monkeypatch.setenv("VITUNE_TEST_KEY", "k")
    res = run(app, ["serve", str(model_dir), "--host", "0.0.0.0", "--api-key-env", "VITUNE_TEST_KEY",
                    "--max-queue", "3", "--max-image-side", "512"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert seen["api"].state.api_key_required and seen["api"].state.limits.max_queue == 3
    assert seen["api"].state.limits.max_image_side == 512
    res = run(app, ["serve", str(model_dir), "--host", "0.0.0.0", "--insecure"])
    assert res.exit_code == 0 and seen["insecure"] is True


# --- operability ---------------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_health_metrics_and_access_log(model_dir, caplog):
    app = load_app(model_dir, model_name=NAME, batch_size=4, max_wait_ms=1, max_tokens_cap=16)
    with BackgroundServer(app) as srv, caplog.at_level(logging.INFO, "vitune.serve.access"):
        base = f"http://127.0.0.1:{srv.port}"
        health = httpx.get(f"{base}/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        ids = [post(srv.url, text_body(q, 3)).headers["x-request-id"] for q in QUESTIONS[:3]]
        bad = post(srv.url, b"{nope")
        assert bad.status_code == 400
        assert httpx.get(f"{base}/no/such/path").status_code == 404
        metrics = httpx.get(f"{base}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    m = _samples(metrics.text)
    route = "/v1/chat/completions"
    assert m[("vitune_requests_total", (("route", route), ("status", "200")))] == 3
    assert m[("vitune_requests_total", (("route", route), ("status", "400")))] == 1
    assert m[("vitune_requests_total", (("route", "other"), ("status", "404")))] == 1
    assert m[("vitune_request_seconds_count", (("route", route),))] == 4
    assert m[("vitune_batch_size_count", ())] == 3 and m[("vitune_batch_size_sum", ())] == 3
    assert m[("vitune_queue_length", ())] == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "vitune.serve.access"]
    # One line per request: health, 3 answers, the bad one, the 404 (the /metrics line comes after).
    assert len(lines) >= 6 and sum(route in line for line in lines) == 4
    for rid in ids:
        (line,) = [x for x in lines if rid in x]
        assert f'"POST {route}" 200 ' in line and line.startswith("127.0.0.1:")
    assert any(f'"POST {route}" 400 ' in x and bad.headers["x-request-id"] in x for x in lines)
    app.state.engine.stop()  # a dead worker shows in the health check
    with BackgroundServer(app) as srv:
        app.state.engine.stop()
        assert httpx.get(f"http://127.0.0.1:{srv.port}/health").status_code == 503


def test_graceful_shutdown_answers_the_request_in_flight(model_dir, gen):
    app = load_app(model_dir, model_name=NAME, batch_size=2, max_wait_ms=0, max_tokens_cap=16)
    engine = app.state.engine
    go = _blocking(engine)
    srv = BackgroundServer(app).start()
    out: dict[str, httpx.Response] = {}
    asker = threading.Thread(target=lambda: out.update(r=post(srv.url, text_body("Hi"))))
    asker.start()
    _wait_for(lambda: engine.batcher.n_batches == 1)
    stopper = threading.Thread(target=srv.stop)
    stopper.start()

    def refused() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{srv.port}/health", timeout=1)
        except httpx.TransportError:
            return True
        return False

    _wait_for(refused)  # no longer accepting, while the request is still being answered
    assert asker.is_alive()
    go.set()
    asker.join(30)
    stopper.join(30)
    assert not stopper.is_alive()
    assert out["r"].status_code == 200
    assert out["r"].json()["choices"][0]["message"]["content"] == answers_alone(gen, ["Hi"])[0]


def test_limits_are_checked_and_a_text_only_server_refuses_images():
    from vitune.serve.protocol import RequestError, parse_chat

    for bad in ({"max_images": 2}, {"max_queue": 0}, {"timeout_s": -1}, {"max_image_aspect": 0.5}):
        with pytest.raises(ValueError):
            Limits(**bad)
    body = {"messages": [user_with_image("q", data_url(png_bytes((8, 8))))]}
    assert parse_chat(body, 16, Limits()).image_url is not None
    with pytest.raises(RequestError, match="text only"):
        parse_chat(body, 16, Limits(max_images=0))
    assert Limits(max_image_side=300).image_limits().max_side == 300
