"""`vitune serve`: a tiny saved Llava behind the OpenAI-compatible API on a real 127.0.0.1 socket.

Answers must be the `Generator`'s (the same prompt and image, greedy), multi-turn prompts the
template's rendering, concurrent requests one batch with unchanged answers, sampled answers
(temperature > 0) reproducible from their seed whatever else is in flight, and every bad request
a 4xx with OpenAI's error body.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading

import httpx
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from serve_helpers import NAME, tiny_model
from vitune.data.templates import VICUNA_SYSTEM, generation_prompt
from vitune.eval.generate import Generator, GenItem, Sampling
from vitune.serve import BackgroundServer, load_app
from vitune.serve.protocol import parse_chat
from vitune.synth.backends import BackendError, OpenAIBackend, SynthRequest


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    paths = []
    for i, (size, colour) in enumerate([((40, 24), (255, 0, 0)), ((20, 50), (0, 90, 200))]):
        img = Image.new("RGB", size, colour)
        img.putpixel((1, 1), (255, 255, 255))
        paths.append(d / f"img{i}.png")
        img.save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def server(model_dir, images):
    app = load_app(
        model_dir,
        model_name=NAME,
        batch_size=8,
        max_wait_ms=2,
        max_tokens_cap=16,
        image_root=images[0].parent,
    )
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def gen(model_dir):
    return Generator.from_dir(model_dir, batch_size=1, max_new_tokens=6)


def data_url(path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def user_with_image(text: str, url: str) -> dict:
    return {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
    }


def post(srv: BackgroundServer, body, **kw) -> httpx.Response:
    if isinstance(body, bytes):
        kw["content"] = body
        kw.setdefault("headers", {"Content-Type": "application/json"})
    else:
        kw["json"] = body
    return httpx.post(f"{srv.url}/chat/completions", timeout=30, **kw)


def test_answer_equals_generator(server, gen, images):
    question = "What color is the cube?"
    body = {
        "model": NAME,
        "messages": [user_with_image(question, data_url(images[0]))],
        "max_tokens": 6,
        "temperature": 0,
        "top_p": 1,
        "seed": 3,
    }
    r = post(server, body)
    assert r.status_code == 200, r.text
    data = r.json()
    expected = gen.generate([GenItem(question, images[0])])[0]
    assert data["choices"][0]["message"] == {"role": "assistant", "content": expected}
    assert (
        data["object"] == "chat.completion" and data["model"] == NAME and data["id"].startswith("chatcmpl-")
    )
    assert isinstance(data["created"], int)
    usage, finish = data["usage"], data["choices"][0]["finish_reason"]
    # Prompt positions: the rendered prompt's tokens with <image> expanded into the image tokens.
    n_text = len(gen.tokenizer(gen.prompt(question, True))["input_ids"])
    assert usage["prompt_tokens"] == n_text + gen.model.config.image_seq_length - 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert finish in ("stop", "length") and 1 <= usage["completion_tokens"] <= 6
    assert (finish == "length") == (usage["completion_tokens"] == 6 and expected != "")

    # Text only, string content; and the same image as a local path and a file:// URL.
    r = post(server, {"messages": [{"role": "user", "content": "Hi there"}], "max_tokens": 6})
    assert r.json()["choices"][0]["message"]["content"] == gen.generate([GenItem("Hi there", None)])[0]
    for url in (str(images[0]), images[0].as_uri()):
        r = post(server, {"messages": [user_with_image(question, url)], "max_tokens": 6})
        assert r.json()["choices"][0]["message"]["content"] == expected


def test_max_tokens_and_finish_reason(server, gen):
    msgs = [{"role": "user", "content": "Describe the image briefly."}]
    short = post(server, {"messages": msgs, "max_tokens": 1}).json()
    assert short["usage"]["completion_tokens"] == 1
    gen.max_new_tokens = 1
    try:
        assert short["choices"][0]["message"]["content"] == gen.generate([GenItem(msgs[0]["content"])])[0]
    finally:
        gen.max_new_tokens = 6
    # No max_tokens: the server's cap (16 here).
    full = post(server, {"messages": msgs}).json()
    assert full["usage"]["completion_tokens"] <= 16
    if full["choices"][0]["finish_reason"] == "length":
        assert full["usage"]["completion_tokens"] == 16


def test_multi_turn_renders_with_the_template(server, gen, images):
    url = data_url(images[1])
    body = {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            user_with_image("What is it?", url),
            {"role": "assistant", "content": "a square"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "And its "}, {"type": "text", "text": "color?"}],
            },
        ],
        "max_tokens": 6,
    }
    chat = parse_chat(body, 16)
    turns = [
        ("user", "Answer briefly.\n\nWhat is it?"),
        ("assistant", "a square"),
        ("user", "And its color?"),
    ]
    assert chat.turns == turns and chat.image_url == url
    rendered = server._server.config.app.state.engine.render(chat.turns, True)
    assert rendered == generation_prompt("vicuna_v1", turns, True, "</s>")
    assert rendered == (
        f"{VICUNA_SYSTEM} USER: <image>\nAnswer briefly.\n\nWhat is it? ASSISTANT: a square</s>"
        "USER: And its color? ASSISTANT:"
    )
    # Without a system message it is exactly the checkpoint's saved Jinja chat template.
    plain = [("user", "What is it?"), ("assistant", "a square"), ("user", "And its color?")]
    jinja = gen.processor.apply_chat_template(
        [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
            {"role": "assistant", "content": "a square"},
            {"role": "user", "content": "And its color?"},
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert jinja == generation_prompt("vicuna_v1", plain, True, "</s>")

    r = post(server, body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == gen.answer([rendered], [images[1]])[0]


def _ask_together(app, bodies: list[dict]) -> tuple[list[str], dict]:
    """Send `bodies` at once (threads released by one barrier); their answers and the server's stats."""
    answers: list[str] = [""] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def ask(k: int, srv: BackgroundServer) -> None:
        barrier.wait()
        r = post(srv, bodies[k])
        answers[k] = r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else r.text

    with BackgroundServer(app) as srv:
        threads = [threading.Thread(target=ask, args=(k, srv)) for k in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stats = httpx.get(f"http://127.0.0.1:{srv.port}/vitune/stats").json()
    return answers, stats


def _messages(text: str, img) -> list[dict]:
    return [user_with_image(text, data_url(img))] if img else [{"role": "user", "content": text}]


def test_concurrent_requests_share_a_batch(model_dir, gen, images):
    # The batch closes when 6 have arrived, so the long wait only guards against a slow thread start.
    app = load_app(model_dir, model_name=NAME, batch_size=6, max_wait_ms=3000, max_tokens_cap=16)
    questions = [
        ("What color is the cube?", images[0], 6),
        ("How many circles are there in this picture?", images[1], 6),
        ("Is there a dog?", images[1], 4),
        ("Where is the ball?", images[0], 6),
        ("Say something without an image, please.", None, 6),
        ("Hi", None, 4),
    ]
    answers, stats = _ask_together(
        app, [{"messages": _messages(text, img), "max_tokens": n} for text, img, n in questions]
    )
    assert stats["batch_sizes"] == [6] and stats["requests"] == 6
    assert stats["generate_calls"] == 2  # one per distinct max_tokens
    sequential = []
    for text, img, n in questions:
        gen.max_new_tokens = n
        sequential.append(gen.generate([GenItem(text, img)])[0])
    gen.max_new_tokens = 6
    assert answers == sequential
    assert len(set(sequential)) >= 4, sequential


LONG = "describe every single object in the picture " * 120
Q = {"messages": [{"role": "user", "content": "q"}]}
IMG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
BAD = [
    ("malformed json", b'{"messages": [', 400, "not valid JSON", None),
    ("not an object", b"[1, 2]", 400, "must be a JSON object", None),
    ("no messages", {"model": NAME}, 400, "messages must be a non-empty list", "messages"),
    ("empty messages", {"messages": []}, 400, "messages must be a non-empty list", "messages"),
    ("only system", {"messages": [{"role": "system", "content": "x"}]}, 400, "no user message", "messages"),
    (
        "bad base64",
        {"messages": [user_with_image("q", "data:image/png;base64,@@not base64@@")]},
        400,
        "not valid base64",
        "messages",
    ),
    (
        "unreadable image",
        {"messages": [user_with_image("q", "data:image/png;base64," + base64.b64encode(b"nope").decode())]},
        400,
        "unreadable image",
        "messages",
    ),
    (
        "two images in one message",
        {"messages": [{"role": "user", "content": [IMG, IMG, {"type": "text", "text": "q"}]}]},
        400,
        "at most one image",
        "messages[0]",
    ),
    (
        "two images in two messages",
        {
            "messages": [
                {"role": "user", "content": [IMG]},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": [IMG]},
            ]
        },
        400,
        "at most one image",
        "messages[2]",
    ),
    (
        "image in a later turn",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": [IMG]},
            ]
        },
        400,
        "first user message",
        "messages[2]",
    ),
    ("prompt too long", {"messages": [{"role": "user", "content": LONG}]}, 400, "positions", "messages"),
    ("temperature < 0", {**Q, "temperature": -0.1}, 400, "temperature must be a number", "temperature"),
    ("temperature > 2", {**Q, "temperature": 2.5}, 400, "from 0 to 2", "temperature"),
    ("temperature string", {**Q, "temperature": "hot"}, 400, "temperature must be", "temperature"),
    ("temperature bool", {**Q, "temperature": True}, 400, "temperature must be", "temperature"),
    ("top_p 0", {**Q, "temperature": 1, "top_p": 0}, 400, "top_p must be", "top_p"),
    ("top_p > 1", {**Q, "top_p": 1.5}, 400, "at most 1", "top_p"),
    ("seed string", {**Q, "temperature": 1, "seed": "3"}, 400, "seed must be an integer", "seed"),
    ("seed float", {**Q, "seed": 1.5}, 400, "seed must be an integer", "seed"),
    ("seed bool", {**Q, "seed": True}, 400, "seed must be an integer", "seed"),
    ("seed too big", {**Q, "seed": 2**64}, 400, "seed must be an integer", "seed"),
    ("presence_penalty", {**Q, "presence_penalty": 0.5}, 400, "presence_penalty=0.5", "presence_penalty"),
    ("top_k", {**Q, "temperature": 1, "top_k": 5}, 400, "top_k=5", "top_k"),
    ("logprobs", {**Q, "logprobs": True}, 400, "logprobs=True", "logprobs"),
    ("stop", {"messages": [{"role": "user", "content": "q"}], "stop": ["\n"]}, 400, "stop=", "stop"),
    ("stream not a bool", {**Q, "stream": "yes"}, 400, "stream must be true or false", "stream"),
    (
        "stream_options without stream",
        {**Q, "stream_options": {"include_usage": True}},
        400,
        "only accepted with stream=true",
        "stream_options",
    ),
    ("n", {"messages": [{"role": "user", "content": "q"}], "n": 2}, 400, "n must be 1", "n"),
    (
        "max_tokens 0",
        {"messages": [{"role": "user", "content": "q"}], "max_tokens": 0},
        400,
        "positive integer",
        "max_tokens",
    ),
    (
        "max_tokens over cap",
        {"messages": [{"role": "user", "content": "q"}], "max_tokens": 17},
        400,
        "cap of 16",
        "max_tokens",
    ),
    (
        "ends with assistant",
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        400,
        "last message must be a user message",
        "messages",
    ),
    (
        "two user messages",
        {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"}]},
        400,
        "must alternate",
        "messages[1].role",
    ),
    (
        "tool role",
        {"messages": [{"role": "tool", "content": "q"}]},
        400,
        "unsupported role 'tool'",
        "messages[0].role",
    ),
    (
        "image token in text",
        {"messages": [{"role": "user", "content": "<image> q"}]},
        400,
        "must not contain <image>",
        None,
    ),
    (
        "remote url",
        {"messages": [user_with_image("q", "https://example.com/a.png")]},
        400,
        "remote image URLs are not fetched",
        "messages",
    ),
    (
        "missing file under the root",
        {"messages": [user_with_image("q", "nope.png")]},
        400,
        "no readable image file at that path",
        "messages",
    ),
    (
        "absolute path outside the root",
        {"messages": [user_with_image("q", "/nonexistent/vitune/a.png")]},
        400,
        "not under the server's image root",
        "messages",
    ),
    (
        "bad content part",
        {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        400,
        "unsupported content part",
        "messages[0].content[0]",
    ),
    (
        "unknown model",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "q"}]},
        404,
        "does not exist",
        "model",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "message", "param"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_requests(server, body, status, message, param):
    r = post(server, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert message in err["message"], err
    if param is not None:
        assert err["param"] == param
    assert err["type"] in ("invalid_request_error", "not_found_error", "context_length_exceeded")


def test_models_stats_and_unknown_route(server):
    models = httpx.get(f"{server.url}/models").json()
    assert [m["id"] for m in models["data"]] == [NAME]
    stats = httpx.get(f"http://127.0.0.1:{server.port}/vitune/stats").json()
    assert stats["template"] == "vicuna_v1" and stats["requests"] >= 1
    r = httpx.get(f"{server.url}/nothing-here")
    assert r.status_code == 404 and "error" in r.json()


def test_vitune_openai_backend_talks_to_it(server, gen):
    """The synthesis / judge client at its greedy and sampling settings (synthesis defaults to 0.7)."""
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is there a dog?"}]
    backend = OpenAIBackend(server.url, NAME, api_key="unused", max_retries=3)

    async def run(params):
        try:
            return await backend.complete(SynthRequest("k", None, None, msgs, params))  # type: ignore[arg-type]
        finally:
            await backend.aclose()

    res = asyncio.run(run({"temperature": 0.0, "max_tokens": 6}))
    prompt = generation_prompt("vicuna_v1", [("user", "Be brief.\n\nIs there a dog?")], False, "</s>")
    assert res.text == gen.answer([prompt], [None])[0]
    assert res.model == NAME and res.completion_tokens >= 1 and res.finish_reason in ("stop", "length")
    warm = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 6, "seed": 11}
    res = asyncio.run(run(warm))
    assert res.text == _sampled(gen, prompt, None, Sampling(0.7, 1.0, 11), 6)
    assert asyncio.run(run(warm)).text == res.text
    with pytest.raises(BackendError, match="top_p"):  # a 400 is permanent: no retries
        asyncio.run(run({"temperature": 0.7, "top_p": 0, "max_tokens": 6}))
    assert backend.stats["retries"] == 0


def test_openai_sdk_talks_to_it(server, gen):
    import openai  # the dev extra installs it: users call the server with the official SDK

    client = openai.OpenAI(base_url=server.url, api_key="unused")
    hi = [{"role": "user", "content": "Hi"}]
    out = client.chat.completions.create(model=NAME, messages=hi, max_tokens=6, temperature=0)
    assert out.choices[0].message.content == gen.generate([GenItem("Hi")])[0]
    sampled = client.chat.completions.create(
        model=NAME, messages=hi, max_tokens=6, temperature=1.0, top_p=0.5, seed=5
    )
    expected = _sampled(gen, gen.prompt("Hi", False), None, Sampling(1.0, 0.5, 5), 6)
    assert sampled.choices[0].message.content == expected
    assert sampled.model_extra["seed"] == 5
    with pytest.raises(openai.BadRequestError, match="top_p"):
        client.chat.completions.create(model=NAME, messages=hi, temperature=1, top_p=0)


def _sampled(gen: Generator, prompt: str, image, sampling: Sampling, n: int) -> str:
    gen.max_new_tokens = n
    try:
        return gen.sample(prompt, image, sampling).text
    finally:
        gen.max_new_tokens = 6


def test_generator_sample_is_seeded_and_leaves_the_rng_alone(gen, images):
    prompt = gen.prompt("What color is the cube?", True)
    before = torch.random.get_rng_state()
    a = gen.sample(prompt, images[0], Sampling(1.5, 1.0, 7))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert gen.sample(prompt, Image.open(images[0]), Sampling(1.5, 1.0, 7)) == a
    with pytest.raises(ValueError, match="temperature > 0"):
        gen.sample(prompt, None, Sampling(0.0, 1.0, 7))


def test_sampling_follows_temperature_top_p_and_seed(server, gen, images):
    question = "What color is the cube?"
    greedy = gen.generate([GenItem(question, images[0])])[0]
    msgs = [user_with_image(question, data_url(images[0]))]

    def ask(**params) -> dict:
        r = post(server, {"messages": msgs, "max_tokens": 6, **params})
        assert r.status_code == 200, r.text
        return r.json()

    hot = [ask(temperature=2.0, seed=s) for s in range(6)]
    texts = [h["choices"][0]["message"]["content"] for h in hot]
    # Sampling ignored would give the greedy answer every time.
    assert any(t != greedy for t in texts) and len(set(texts)) >= 2, (greedy, texts)
    assert [h["seed"] for h in hot] == list(range(6))
    prompt = gen.prompt(question, True)
    assert texts[3] == _sampled(gen, prompt, images[0], Sampling(2.0, 1.0, 3), 6)
    # A nucleus this small keeps only the top token: the greedy answer, whatever the seed.
    for s in range(3):
        assert ask(temperature=2.0, top_p=1e-6, seed=s)["choices"][0]["message"]["content"] == greedy
    # Greedy whatever top_p and seed say, and no seed reported.
    plain = ask(temperature=0, top_p=0.3, seed=4)
    assert plain["choices"][0]["message"]["content"] == greedy and "seed" not in plain
    # No seed: the server draws one and reports it; sending it back repeats the answer.
    drawn = ask(temperature=1.5)
    again = ask(temperature=1.5, seed=drawn["seed"])
    assert isinstance(drawn["seed"], int)
    assert again["choices"][0]["message"]["content"] == drawn["choices"][0]["message"]["content"]


def test_sampled_answers_do_not_depend_on_batch_mates(model_dir, gen, images):
    """Mixed greedy and sampled requests in one micro-batch get exactly what each gets alone."""
    app = load_app(model_dir, model_name=NAME, batch_size=6, max_wait_ms=3000, max_tokens_cap=16)
    # (question, image, max_tokens, temperature, top_p, seed); temperature 0 is greedy.
    questions = [
        ("What color is the cube?", images[0], 6, 1.3, 1.0, 1),
        ("What color is the cube?", images[0], 6, 0.0, 1.0, None),
        ("How many circles are there?", images[1], 6, 1.3, 0.9, 1),
        ("Is there a dog?", images[1], 4, 0.0, 1.0, None),
        ("Say something, please.", None, 6, 1.3, 1.0, 2),
        ("What color is the cube?", images[0], 6, 1.3, 1.0, 1),  # the first one again
    ]
    bodies = [
        {"messages": _messages(text, img), "max_tokens": n, "temperature": t, "top_p": p, "seed": seed}
        for text, img, n, t, p, seed in questions
    ]
    answers, stats = _ask_together(app, bodies)
    assert stats["batch_sizes"] == [6]
    assert stats["generate_calls"] == 2 + 4  # greedy: one per max_tokens; sampled: one each
    alone = []
    for text, img, n, t, p, seed in questions:
        prompt = gen.prompt(text, img is not None)
        if t == 0:
            gen.max_new_tokens = n
            alone.append(gen.answer([prompt], [img])[0])
            gen.max_new_tokens = 6
        else:
            alone.append(_sampled(gen, prompt, img, Sampling(t, p, seed), n))
    assert answers == alone
    assert answers[0] == answers[5]


def test_image_root_confines_local_files(model_dir, images, tmp_path):
    from vitune.serve.media import load_image
    from vitune.serve.protocol import RequestError

    root = images[0].parent
    assert load_image(images[0].name, root).size == (40, 24)
    other = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(other)
    with pytest.raises(RequestError, match="not under the server's image root"):
        load_image(str(other), root)
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    assert load_image("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()).size == (4, 4)


def test_cli_serve(model_dir, monkeypatch, tmp_path):
    from vitune.cli import app

    seen = {}
    monkeypatch.setattr(
        "vitune.serve.server.serve", lambda api, host, port, **kw: seen.update(api=api, port=port, **kw)
    )
    res = CliRunner().invoke(
        app, ["serve", str(model_dir), "--port", "8123", "--model-name", "m", "--batch-size", "3"]
    )
    assert res.exit_code == 0, res.output
    assert seen["port"] == 8123 and seen["api"].state.model_name == "m"
    assert seen["api"].state.engine.batcher.batch_size == 3
    res = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert res.exit_code == 2 and "not a saved model folder" in " ".join(res.output.split())


def test_cli_serve_errors_keep_brackets(tmp_path, monkeypatch):
    """A folder or variable name holding [brackets] is printed as it is (not read as rich markup)."""
    from vitune.cli import app

    monkeypatch.setenv("COLUMNS", "300")
    folder = tmp_path / "run[old]"
    folder.mkdir()
    res = CliRunner().invoke(app, ["serve", str(folder)])
    assert res.exit_code == 2 and f"{folder}: not a saved model folder" in res.output
    (folder / "config.json").write_text("{}")
    monkeypatch.delenv("KEY[1]", raising=False)
    res = CliRunner().invoke(app, ["serve", str(folder), "--api-key-env", "KEY[1]"])
    assert res.exit_code == 2 and "--api-key-env KEY[1]:" in res.output
