"""synth: OpenAI-compatible backend against a real local server (retries, cache, kill -9 resume)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import make_record
from vitune.data.ledger import Ledger
from vitune.synth import OpenAIBackend, ResponseCache, synth
from vitune.synth.fakeserver import FakeChatServer


def _backend(srv: FakeChatServer, **kw) -> OpenAIBackend:
    kw = {"concurrency": 4, "timeout": 0.5, "backoff_base": 0.01, "backoff_max": 0.05, **kw}
    return OpenAIBackend(srv.url, "fake-model", api_key="test-key", **kw)


def test_retries_on_every_fault_and_succeed(tmp_path: Path) -> None:
    recs = [make_record(str(i)) for i in range(6)]
    faults = ["429", "500", "timeout", "drop", "badjson", "500"]
    with FakeChatServer(faults=faults, slow_s=2.0, retry_after="0.3") as srv:
        be = _backend(srv, concurrency=1)
        t0 = time.monotonic()
        s = synth(recs, ["complex_reasoning"], be, tmp_path)
        elapsed = time.monotonic() - t0
        assert s["requests"]["sent_ok"] == 6 and s["requests"]["failed"] == 0
        assert len(srv.log) == 12  # 6 faulty attempts + 6 good ones
        assert [e["fault"] for e in srv.log[:6]] == faults
        assert be.stats["retries"] == 6
        assert be.stats["errors"] == {"429": 1, "500": 2, "timeout": 1, "connection": 1, "bad_body": 1}
        assert elapsed >= 0.3  # Retry-After honoured over the 0.01 s backoff
        assert s["per_generator"]["complex_reasoning"]["items_kept"] == 6


def test_malformed_text_and_permanent_errors_go_to_ledger(tmp_path: Path) -> None:
    recs = [make_record(str(i)) for i in range(3)]

    def faults(n: int, key: str, attempt: int) -> str | None:
        return "malformed" if n == 0 else None

    with FakeChatServer(faults=faults) as srv:
        ledger = Ledger()
        s = synth(recs, ["complex_reasoning"], _backend(srv, concurrency=1), tmp_path / "a", ledger=ledger)
        assert s["per_generator"]["complex_reasoning"]["parse_failed"] == 1
        assert [r.stage for r in ledger.items] == ["synth.parse"]
        # a wrong path gives 404: permanent, not retried, recorded, and the run still finishes
        bad = OpenAIBackend(srv.url + "/nope", "m", api_key="k", max_retries=3)
        n0 = len(srv.log)
        ledger = Ledger()
        s = synth(recs, ["dialog"], bad, tmp_path / "b", ledger=ledger)
        assert s["requests"]["failed"] == 3 and len(srv.log) == n0  # 404 before the handler logs
        assert {r.stage for r in ledger.items} == {"synth.request"}


def test_retries_exhausted_is_failure_not_crash(tmp_path: Path) -> None:
    with FakeChatServer(faults=lambda n, k, a: "500") as srv:
        s = synth([make_record("1")], ["dialog"], _backend(srv, max_retries=2), tmp_path)
        assert s["requests"]["failed"] == 1 and len(srv.log) == 3
        assert "gave up after 3 attempts" in json.dumps(Ledger.read(tmp_path / "ledger.jsonl"))


def test_cache_hits_send_nothing(tmp_path: Path) -> None:
    recs = [make_record(str(i)) for i in range(5)]
    with FakeChatServer() as srv:
        s1 = synth(
            recs, ["complex_reasoning", "dialog"], _backend(srv), tmp_path, prices={"fake-model": (1.0, 2.0)}
        )
        assert len(srv.log) == 10 and s1["cost_usd_this_run"] > 0
        s2 = synth(
            recs, ["complex_reasoning", "dialog"], _backend(srv), tmp_path, prices={"fake-model": (1.0, 2.0)}
        )
        assert len(srv.log) == 10 and s2["requests"]["cached"] == 10 and s2["cost_usd_this_run"] == 0
        assert s2["cost_usd_all_replies"] == s1["cost_usd_all_replies"]
        assert s2["export"] == s1["export"] and s2["kept"] == s1["kept"]
        # a different model (or sampling, or prompt) is a different key: sent again
        other = OpenAIBackend(srv.url, "other-model", api_key="k")
        synth(recs[:1], ["dialog"], other, tmp_path)
        assert len(srv.log) == 11


CHILD = """
import json, sys
from vitune.data.records import ImageRecord
from vitune.synth import OpenAIBackend, synth
recs = [ImageRecord.from_dict(d) for d in json.load(open(sys.argv[2]))]
be = OpenAIBackend(sys.argv[1], "fake-model", api_key="k", concurrency=4, timeout=5)
synth(recs, ["complex_reasoning", "dialog"], be, sys.argv[3])
"""


def test_resume_after_kill_9(tmp_path: Path) -> None:
    recs = [make_record(str(i)) for i in range(30)]  # 60 requests
    (tmp_path / "recs.json").write_text(json.dumps([r.to_dict() for r in recs]))
    out = tmp_path / "out"
    with FakeChatServer(latency=0.1, capacity=4) as srv:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, srv.url, str(tmp_path / "recs.json"), str(out)], env=env
        )
        deadline = time.monotonic() + 60
        while len(srv.keys_served()) < 20 and time.monotonic() < deadline:
            assert proc.poll() is None, "synth finished before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        served_before = set(srv.keys_served())
        assert 20 <= len(served_before) < 60
        with ResponseCache(out / "cache.sqlite") as c:
            cached = c.keys()
        # every reply written before the kill survived; at most the in-flight ones are missing
        assert len(cached) >= len(served_before) - 4 and cached <= served_before
        n_before = len(srv.log)

        s = synth(recs, ["complex_reasoning", "dialog"], _backend(srv, timeout=5), out)
        resent = srv.keys_seen()[n_before:]
        assert not set(resent) & cached  # no finished request sent again
        assert len(set(resent) & served_before) <= 4  # only replies lost in flight at the kill
        assert len(resent) == len(set(resent)) == 60 - len(cached)
        assert s["requests"]["cached"] == len(cached) and s["requests"]["failed"] == 0
        assert s["per_generator"]["dialog"]["items_kept"] == 30
        assert s["per_generator"]["complex_reasoning"]["items_kept"] == 30
