"""Fuzz and load: hostile requests mixed with valid ones against a real `vitune serve` on 127.0.0.1.

Over 200 hostile requests (malformed JSON, 1000-level nesting, wrong types, lone surrogates, NUL
bytes, huge fields, bad base64, tiny files that claim huge images, paths escaping the image root,
`file://` and `http://` URLs, wrong methods and routes), seeded and shuffled with 48 valid ones,
sent by 8 concurrent keep-alive clients (16 of the valid ones streamed). Every hostile request must
get a 4xx, every valid one its exact answer (the `Generator`'s, alone), none a 5xx or a dropped connection, and the server's
memory must not grow with what it was sent. A keep-alive connection must serve its next request
after each kind of bad one.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import struct
import threading
import zlib

import httpx
import pytest
from PIL import Image

from serve_helpers import NAME, data_url, png_bytes, rss_bytes, tiny_model, user_with_image
from vitune.eval.generate import Generator, GenItem
from vitune.serve import BackgroundServer, Limits, load_app

MAX_TOKENS = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    model_dir = tiny_model(d / "model")
    root = d / "images"
    root.mkdir()
    (root / "ok.png").write_bytes(png_bytes((36, 24), (20, 200, 90)))
    (d / "secret.png").write_bytes(png_bytes((8, 8)))
    (root / "link.png").symlink_to(d / "secret.png")
    limits = Limits(max_body_bytes=2**20, max_chars=20_000)
    app = load_app(
        model_dir,
        model_name=NAME,
        batch_size=8,
        max_wait_ms=5,
        max_tokens_cap=8,
        image_root=root,
        limits=limits,
    )
    with BackgroundServer(app) as srv:
        yield srv, model_dir, root


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and header claiming `width` x `height`, and no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def _zero_png(width: int, height: int) -> bytes:
    """A complete, valid grayscale PNG of zeros (tiny however large it claims to be)."""
    z = zlib.compressobj(6)
    rows = b"\x00" * (width + 1) * 50
    full, rest = divmod(height, 50)
    data = (
        b"".join(z.compress(rows) for _ in range(full)) + z.compress(rows[: rest * (width + 1)]) + z.flush()
    )

    def block(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    head = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + block(b"IHDR", head) + block(b"IDAT", data) + block(b"IEND", b"")


def _msg(text="q") -> dict:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": MAX_TOKENS}


def _img(url: str) -> dict:
    return {"messages": [user_with_image("q", url)], "max_tokens": MAX_TOKENS}


def _j(obj) -> bytes:
    return json.dumps(obj).encode()  # ensure_ascii: lone surrogates travel as \ud800 escapes


def hostile(rng: random.Random) -> list[tuple[str, str, bytes]]:
    """(method, path, body) of requests the server must refuse with a 4xx."""
    valid = _j(_msg("hello"))
    out: list[bytes] = []
    # Malformed JSON: truncations, garbage, other encodings' bytes.
    out += [valid[: rng.randrange(1, len(valid) - 1)] for _ in range(12)]
    out += [b"", b"{", b"}", b"null", b"[]", b'"x"', b"1", b"\xff\xfe\x00", b"{'a': 1}", b'{"messages": [}']
    out += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))) for _ in range(8)]
    # Deep nesting, in every position.
    for depth in (100, 1000, 5000, 100_000):
        out += [b"[" * depth + b"]" * depth, b'{"messages": ' + b"[" * depth + b"]" * depth + b"}"]
        out.append(b'{"a": ' * depth + b"1" + b"}" * depth)
        out.append(b'{"messages": [{"role": "user", "content": ' + b"[" * depth + b"]" * depth + b"}]}")
        out.append(
            b'{"messages": [{"role": "user", "content": "q"}], "temperature": '
            + b"[" * depth
            + b"]" * depth
            + b"}"
        )
    # Wrong types and out-of-range values, field by field.
    wrong = {
        "messages": [None, 1, "x", {}, [], [1], [None], [[]], [{"role": "user"}], [{"content": "q"}]],
        "max_tokens": ["x", 1.5, True, -1, 0, [], {}, 10**6, 9],
        "temperature": ["x", True, [], {}, -1, 3, 1e308],
        "top_p": ["x", True, [], 0, -0.5, 2],
        "seed": ["x", 1.5, True, [], {}, 2**65],
        "model": [1, [], {}, True, "other-model"],
        "stream": ["x", 1, [], {}],
        "n": [0, 2, "x", True, []],
        "stop": ["x", ["\n"], 1],
        "stream_options": [{"include_usage": True}, "x", 1],
    }
    for field, values in wrong.items():
        out += [_j({**_msg(), field: v} if field != "messages" else {"messages": v}) for v in values]
    for v in [None, 1, 1.5, True, {}, [], "robot", "tool"]:
        out.append(_j({"messages": [{"role": v, "content": "q"}]}))
    for v in [None, 1, 1.5, True, {}, {"a": 1}, [1], [{"type": "x"}], [{"type": "text", "text": 1}]]:
        out.append(_j({"messages": [{"role": "user", "content": v}]}))
    for v in [None, 1, [], {}, True, ""]:
        out.append(
            _j({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": v}}]}]})
        )
    # Lone surrogates and NUL bytes in every string.
    for s in ("\ud800", "\udfff", "a\udc80b", "\x00", "a\x00b"):
        # (NUL in a text is fine: a valid request below has one; here a bad max_tokens goes with it.)
        text = _msg(s) if "\x00" not in s else {**_msg(s), "max_tokens": 0}
        out += [_j(text), _j({**_msg(), "model": s}), _j(_img(s))]
        out.append(_j({"messages": [{"role": "user", "content": [{"type": "text", "text": s}]}], "n": 3}))
    # Huge fields: over the character limit, over the body limit, huge numbers.
    out += [_j(_msg("z" * 20_001)), _j(_msg("\u00e9" * 30_000)), _j({**_msg(), "model": "m" * 500_000})]
    out += [b'{"messages": "' + b"x" * (2**20 + 10) + b'"}', _j(_msg("w" * 1_500_000))]
    out += [
        b'{"messages": [], "max_tokens": 1' + b"0" * 5000 + b"}",
        b'{"temperature": 1e400, "messages": []}',
    ]
    out += [
        _j({**_msg(), "max_tokens": 10**30}),
        _j({**_msg(), "seed": 2**70}),
        _j({**_msg(), "temperature": -1e-9}),
    ]
    # Bad base64 and bad data URLs.
    for url in [
        "data:image/png;base64,@@@@", "data:image/png;base64,aGk", "data:image/png;base64,", "data:image/png,abc",
        "data:text/plain;base64,aGVsbG8=", "data:image/png;base64," + base64.b64encode(b"not a png").decode(),
        "data:image/png;base64," + base64.b64encode(png_bytes((9, 9))[:40]).decode(), "data:;base64,aGk=",
        "data:image/png;base64," + "A" * 9_000_000, "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
    ]:  # fmt: skip
        out.append(_j(_img(url)))
    # Tiny files that claim huge images (header only, and complete zero-filled PNGs).
    for w, h in [
        (1, 20000),
        (20000, 1),
        (12000, 12000),
        (100000, 100000),
        (5000, 10),
        (0, 0),
        (2**31 - 1, 2),
    ]:
        out.append(_j(_img(data_url(_png_header_only(w, h)))))
    for w, h in [(1, 20000), (12000, 12000), (400, 10)]:
        out.append(_j(_img(data_url(_zero_png(w, h)))))
    # Paths escaping the image root, file:// and remote URLs.
    for url in [
        "../secret.png", "../../../../etc/passwd", "/etc/passwd", "link.png", "..\\secret.png", "ok.png\x00",
        "file:///etc/passwd", "file://localhost/etc/passwd", "file:///../secret.png", "file:ok.png/../../x",
        "%2e%2e/secret.png", "file:///%2e%2e/secret.png", "~/secret.png", "/proc/self/environ", "",
        "http://127.0.0.1:1/x.png", "https://example.com/x.png", "ftp://example.com/x", "gopher://x/y",
        "javascript:alert(1)", "HTTP://EXAMPLE.COM/X.PNG", "//example.com/x.png", "C:\\Windows\\win.ini",
    ]:  # fmt: skip
        out.append(_j(_img(url)))
    # Protocol misuse: roles, order, several images, unsupported settings.
    out += [_j({"messages": [{"role": "assistant", "content": "a"}]}), _j({**_msg(), "logprobs": True})]
    out += [_j({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}]})]
    two = {"type": "image_url", "image_url": {"url": data_url(png_bytes((8, 8)))}}
    out += [_j({"messages": [{"role": "user", "content": [two, two]}]}), _j({**_msg("<image>")})]
    requests = [("POST", "/v1/chat/completions", b) for b in out]
    requests += [
        ("GET", "/v1/chat/completions", b""),
        ("PUT", "/v1/models", b"{}"),
        ("POST", "/v1/nothing", valid),
    ]
    requests += [
        ("GET", "/../../etc/passwd", b""),
        ("DELETE", "/health", b""),
        ("POST", "/v1/completions", valid),
    ]
    return requests


def test_fuzz_and_load(setup):
    srv, model_dir, root = setup
    rng = random.Random(0)
    gen = Generator.from_dir(model_dir, batch_size=1, max_new_tokens=MAX_TOKENS)
    ok_png = (root / "ok.png").read_bytes()
    valid_bodies = [
        (_msg("Hi"), GenItem("Hi")),
        (_msg("Is there a dog?"), GenItem("Is there a dog?")),
        (_img(data_url(ok_png)), GenItem("q", root / "ok.png")),
        (_img("ok.png"), GenItem("q", root / "ok.png")),
        (_msg("a\x00b"), GenItem("a\x00b")),
    ]
    expected = [gen.generate([item])[0] for _, item in valid_bodies]
    bad = hostile(rng)
    assert len(bad) >= 200, len(bad)
    work = [("bad", k) for k in range(len(bad))] + [("ok", k % len(valid_bodies)) for k in range(48)]
    work += [("stream", k % len(valid_bodies)) for k in range(16)]
    rng.shuffle(work)

    with httpx.Client() as warm:  # first calls allocate caches; memory is measured after them
        for body, _ in valid_bodies:
            warm.post(f"{srv.url}/chat/completions", json=body, timeout=60).raise_for_status()
    before = rss_bytes()
    results: list[tuple[str, int, int, str]] = []
    lock = threading.Lock()

    def client(part: list[tuple[str, int]]) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{srv.port}", timeout=60) as http:
            for kind, k in part:
                if kind == "stream":
                    status, text = _streamed(http, valid_bodies[k][0])
                else:
                    if kind == "ok":
                        r = http.post("/v1/chat/completions", json=valid_bodies[k][0])
                    else:
                        method, path, body = bad[k]
                        r = http.request(
                            method, path, content=body, headers={"Content-Type": "application/json"}
                        )
                    status = r.status_code
                    text = r.json()["choices"][0]["message"]["content"] if status == 200 else r.text
                with lock:
                    results.append((kind, k, status, text))

    threads = [threading.Thread(target=client, args=(work[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    grown = rss_bytes() - before

    assert len(results) == len(work)  # no request was dropped (a client error would end its thread)
    assert [r for r in results if r[2] >= 500] == []
    for kind, k, status, text in results:
        if kind in ("ok", "stream"):
            assert (status, text) == (200, expected[k]), (kind, k, status, text[:300])
        else:
            assert 400 <= status < 500, (bad[k][:2], bad[k][2][:120], status, text[:300])
            assert str(root) not in text and "Traceback" not in text
    assert grown < 150 * 2**20, f"RSS grew by {grown / 2**20:.0f} MB"
    stats = httpx.get(f"http://127.0.0.1:{srv.port}/vitune/stats").json()
    assert max(stats["batch_sizes"]) > 1  # the load did batch


def _streamed(http: httpx.Client, body: dict) -> tuple[int, str]:
    """(status, the text of the chunks) of a streamed request; the stream must end with [DONE]."""
    with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        if r.status_code != 200:
            return r.status_code, r.read().decode()
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    return 200, "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def _exchange(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes, bool]:
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read(), resp.will_close


def test_keep_alive_survives_every_kind_of_bad_request(setup):
    srv, model_dir, _ = setup
    expected = Generator.from_dir(model_dir, max_new_tokens=MAX_TOKENS).generate([GenItem("Hi")])[0]
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        status, _, _ = _exchange(conn, _j(_msg("Hi")))
        sock = conn.sock
        for bad in [
            b"[" * 1000 + b"]" * 1000, b'{"messages": [', _j(_msg("\ud800")), _j(_img("ok.png\x00")),
            _j(_img("../secret.png")), _j(_img(data_url(_png_header_only(12000, 12000)))), b"\xff",
            _j(_img("data:image/png;base64,@@")), _j({**_msg(), "temperature": [[[[1]]]]}),
        ]:  # fmt: skip
            status, body, closes = _exchange(conn, bad)
            assert status == 400 and not closes, body
            status, body, closes = _exchange(conn, _j(_msg("Hi")))
            assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == expected
            assert conn.sock is sock  # the same connection, never re-opened
    finally:
        conn.close()


def test_zero_png_helper_is_a_real_image():
    """The fuzz's 'tiny but huge' PNGs are real images (so refusing them proves the header check)."""
    import io

    with Image.open(io.BytesIO(_zero_png(300, 7))) as im:
        im.load()
        assert im.size == (300, 7) and im.getextrema() == (0, 0)
