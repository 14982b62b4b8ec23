"""`vitune eval --api-url`: benchmarks answered by an OpenAI-compatible server.

Against `vitune serve` (a real uvicorn server on 127.0.0.1) the predictions equal those of evaluating
the same checkpoint locally with `--model`; against the fault-injecting `synth.fakeserver` every
item is answered despite 429 / 500 / dropped connections / truncated bodies / slow replies, with at
most `concurrency` requests in flight; the served model's name (not the URL) keys the cache.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from model_helpers import save_random_llava
from vitune.cli import app
from vitune.eval.runner import BenchSpec, run_benchmarks
from vitune.eval.world_bench import write_world_benchmarks
from vitune.models import GenItem, api_source
from vitune.models.api import APIError, APIGenerator
from vitune.serve import BackgroundServer, load_app
from vitune.synth.fakeserver import FakeChatServer
from vitune.world import generate_world


def flat(output: str) -> str:
    """CLI output as one line: rich wraps error panels at the terminal width, with box borders."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


SENTENCES = [
    "Is there a red circle in the image? yes",
    "What color is the cube? blue",
    "Answer the question using a single word or phrase. no",
] * 20


@pytest.fixture(scope="module")
def bench_paths(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("world")
    generate_world(root / "w", 24, seed=3, workers=1, split_fractions=(0.5, 0.0, 0.5))
    return write_world_benchmarks(
        root / "w", root / "bench", "test", seed=0, max_images=5, pope_pairs=1, benchmarks=["pope", "vqav2"]
    )


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory) -> Path:
    return save_random_llava(tmp_path_factory.mktemp("micro"), SENTENCES, seed=4)


def _specs(paths: dict[str, Path]) -> list[BenchSpec]:
    return [BenchSpec("pope", paths["pope"]), BenchSpec("vqav2", paths["vqav2"])]


def _preds(out: Path, name: str) -> dict[str, str]:
    return json.loads((out / name / "predictions.json").read_text())


def test_served_checkpoint_answers_as_the_local_one(bench_paths, micro_dir, tmp_path):
    specs = _specs(bench_paths)
    local = run_benchmarks(
        specs, tmp_path / "local", model_dir=micro_dir, max_new_tokens=8, show_progress=False
    )
    app_ = load_app(micro_dir, model_name="micro", batch_size=4, max_wait_ms=5)
    with BackgroundServer(app_) as srv:
        source = api_source(srv.url, "micro", max_new_tokens=8, concurrency=4)
        served = run_benchmarks(specs, tmp_path / "api", source=source, show_progress=False)
    for name in ("pope", "vqav2"):
        a, b = _preds(tmp_path / "local", name), _preds(tmp_path / "api", name)
        assert a == b and len(a) == local["benchmarks"][name]["n_items"] > 0
        assert len(set(a.values())) > 1  # a random model whose answers depend on the question
        assert served["benchmarks"][name]["overall"] == local["benchmarks"][name]["overall"]
    assert served["model_fingerprint"] == "api:micro" and served["model"] == f"micro @ {srv.url}"


def echo(body: dict) -> str:
    """A deterministic answer from the request: the question and a digest of the image's bytes."""
    content = body["messages"][0]["content"]
    if isinstance(content, str):
        return f"text-only: {content}"
    url = content[0]["image_url"]["url"]
    assert url.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))  # the file's own format
    digest = hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest()[:8]
    return f"{content[1]['text']} [{digest}]"


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> list[GenItem]:
    d = tmp_path_factory.mktemp("imgs")
    out = []
    for k in range(12):
        Image.new("RGB", (20 + k, 20), (20 * k, 0, 0)).save(d / f"{k}.png")
        out.append(GenItem(f"question {k}?", d / f"{k}.png" if k % 4 else None))
    return out


def _expected(items: list[GenItem]) -> list[str]:
    out = []
    for it in items:
        if it.image is None:
            out.append(f"text-only: {it.text}")
        else:
            out.append(f"{it.text} [{hashlib.sha256(Path(it.image).read_bytes()).hexdigest()[:8]}]")
    return out


FAULTS = ["429", "500", "drop", "badjson", "timeout"]


def test_faults_are_retried_and_concurrency_is_bounded(items):
    # Every request fails on its first attempt (each kind of fault), then is answered.
    def faults(n: int, key: str, attempt: int) -> str | None:
        return FAULTS[int(key[:4], 16) % len(FAULTS)] if attempt == 0 else None

    with FakeChatServer(reply_fn=echo, faults=faults, latency=0.05, slow_s=3, retry_after="0") as srv:
        gen = APIGenerator(srv.url, "fake", concurrency=3, timeout=1.0, backoff_base=0.01, max_new_tokens=8)
        answers = gen(items)
    assert answers == _expected(items)
    assert gen.stats["retries"] == len(items)  # one retry per item
    kinds = {e["fault"] for e in srv.log if e["fault"]}
    assert len(kinds) >= 3, kinds  # the 12 keys hit several kinds of fault
    # (No bound on srv.max_active here: a timed-out request goes on sleeping server-side after the
    # client gave up on it; test_concurrency_is_used checks the bound.)
    served = [e for e in srv.log if e["status"] == 200 and e.get("completed")]
    assert len(served) == len(items)


def test_concurrency_is_used(items):
    with FakeChatServer(reply_fn=echo, latency=0.1) as srv:
        gen = APIGenerator(srv.url, "fake", concurrency=4, max_new_tokens=8)
        assert gen(items) == _expected(items)
    assert srv.max_active == 4  # the bound is reached, never passed


def test_request_body_is_greedy_with_the_token_budget(items):
    seen: list[dict] = []

    def record(body: dict) -> str:
        seen.append(body)
        return echo(body)

    with FakeChatServer(reply_fn=record) as srv:
        APIGenerator(srv.url, "served-name", max_new_tokens=7)(items[:2])
    assert {b["model"] for b in seen} == {"served-name"}
    assert all(b["temperature"] == 0 and b["max_tokens"] == 7 for b in seen)


def test_permanent_failure_names_the_item(items):
    with FakeChatServer(reply_fn=echo, faults=lambda n, k, a: "500") as srv:
        gen = APIGenerator(srv.url, "fake", max_retries=1, backoff_base=0.01)
        with pytest.raises(APIError, match=r"no answer to 'question 1\?'.*gave up after 2 attempts"):
            gen(items[1:2])


def test_cache_is_keyed_by_the_served_model_name(bench_paths, tmp_path):
    specs = [BenchSpec("pope", bench_paths["pope"])]
    with FakeChatServer(reply_fn=echo) as srv:
        first = run_benchmarks(specs, tmp_path / "o", source=api_source(srv.url, "m1"), show_progress=False)
    n = first["benchmarks"]["pope"]["n_items"]
    assert first["benchmarks"]["pope"]["n_generated"] == n
    with FakeChatServer(reply_fn=echo) as srv2:  # the same model behind another port: all cached
        again = run_benchmarks(specs, tmp_path / "o", source=api_source(srv2.url, "m1"), show_progress=False)
        assert again["benchmarks"]["pope"]["n_cached"] == n and not srv2.log
        other = run_benchmarks(specs, tmp_path / "o", source=api_source(srv2.url, "m2"), show_progress=False)
    assert other["benchmarks"]["pope"]["n_generated"] == n


def test_cli_api_options(bench_paths, micro_dir, tmp_path):
    out = tmp_path / "ev"
    runner = CliRunner()
    with FakeChatServer(reply_fn=echo) as srv:
        base = ["eval", "--bench", f"pope={bench_paths['pope']}", "--out", str(out)]
        r = runner.invoke(app, [*base, "--api-url", srv.url, "--api-model", "fake"], env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        res = json.loads((out / "results.json").read_text())
        assert res["model"] == f"fake @ {srv.url}" and res["benchmarks"]["pope"]["n_generated"] > 0
        r = runner.invoke(app, [*base, "--api-url", srv.url])
        assert r.exit_code == 2 and "--api-model" in flat(r.output)
        r = runner.invoke(app, [*base, "--api-url", srv.url, "--api-model", "x", "--model", str(micro_dir)])
        assert r.exit_code == 2 and "one of --model and --api-url" in flat(r.output)
        r = runner.invoke(app, [*base, "--api-url", "127.0.0.1:8000", "--api-model", "x"])
        assert r.exit_code == 2 and "http(s) URL" in flat(r.output)
