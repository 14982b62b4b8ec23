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
from vitune.synth.fakeserver import FakeChatServer, default_reply


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


def test_unparsable_replies_are_reasked_under_new_keys_then_recorded(tmp_path: Path) -> None:
    recs = [make_record(str(i)) for i in range(3)]

    def reply(body: dict) -> str:  # image 2 always gets text in no format; the others a good reply
        return (
            "Sure! Here is some prose." if "(2)." in body["messages"][-1]["content"] else default_reply(body)
        )

    def faults(n: int, key: str, attempt: int) -> str | None:
        return "malformed" if n == 0 else None  # the very first reply (image 0) is malformed once

    with FakeChatServer(reply_fn=reply, faults=faults) as srv:
        ledger = Ledger()
        s = synth(recs, ["complex_reasoning"], _backend(srv, concurrency=1), tmp_path, ledger=ledger)
        r = s["requests"]
        assert (r["unique"], r["ok"], r["failed"], r["failed_unparsable"]) == (3, 2, 1, 1)
        assert r["reasks"] == 1 + 2 and r["sent_ok"] == 6 and len(srv.log) == 6
        # every attempt had its own cache key, so a bad reply is never served in place of a re-ask
        assert len(set(srv.keys_seen())) == 6
        with ResponseCache(tmp_path / "cache.sqlite") as c:
            rows = c.conn.execute("SELECT request FROM replies").fetchall()
        assert sorted(json.loads(row[0])["reask"] for row in rows) == [0, 0, 0, 1, 1, 2]
        assert s["per_generator"]["complex_reasoning"] == {
            **s["per_generator"]["complex_reasoning"], "parse_failed": 1, "reasked": 1, "items_kept": 2,
        }  # fmt: skip
        (rej,) = ledger.items
        assert (rej.stage, rej.reason) == ("synth.parse", "unparsable reply")
        assert rej.detail["attempts"] == 3 and "no question/answer pairs" in rej.detail["error"]
        assert rej.locator == "image_id=2 generator=complex_reasoning"
        assert s["item_counts"] == {
            "in": 3,
            "kept": 2,
            "rejected": 1,
            "rejected_by_reason": {"unparsable reply": 1},
        }

        # A resumed run follows the chains through the cache: nothing is sent again ...
        s2 = synth(recs, ["complex_reasoning"], _backend(srv), tmp_path)
        assert (
            len(srv.log) == 6 and s2["requests"]["cached"] == 3 and s2["requests"]["failed_unparsable"] == 1
        )
        # ... and a larger re-ask budget continues the exhausted chain where it stopped.
        s3 = synth(recs, ["complex_reasoning"], _backend(srv), tmp_path, max_reasks=3)
        assert len(srv.log) == 7 and s3["requests"]["reasks"] == 1 and s3["requests"]["cached"] == 2


def test_permanent_http_errors_go_to_ledger(tmp_path: Path) -> None:
    recs = [make_record(str(i)) for i in range(3)]
    with FakeChatServer() as srv:
        # a wrong path gives 404: permanent, not retried, recorded, and the run still finishes
        bad = OpenAIBackend(srv.url + "/nope", "m", api_key="k", max_retries=3)
        ledger = Ledger()
        s = synth(recs, ["dialog"], bad, tmp_path, ledger=ledger)
        assert s["requests"]["failed"] == 3 and len(srv.log) == 0  # 404 before the handler logs
        assert {(r.stage, r.reason) for r in ledger.items} == {("synth.request", "request failed")}
        assert "HTTP 404" in ledger.items[0].detail["error"]


def test_retries_exhausted_is_failure_not_crash(tmp_path: Path) -> None:
    with FakeChatServer(faults=lambda n, k, a: "500") as srv:
        s = synth([make_record("1")], ["dialog"], _backend(srv, max_retries=2), tmp_path)
        assert s["requests"]["failed"] == 1 and len(srv.log) == 3
        assert "gave up after 3 attempts" in json.dumps(Ledger.read(tmp_path / "ledger.jsonl"))


def test_cache_hits_send_nothing(tmp_path: Path) -> None:
    recs = [make_record(str(i)) for i in range(5)]
    seen: list = []
    with FakeChatServer() as srv:
        s1 = synth(
            recs, ["complex_reasoning", "dialog"], _backend(srv), tmp_path, prices={"fake-model": (1.0, 2.0)},
            progress=seen.append,
        )  # fmt: skip
        assert len(srv.log) == 10 and s1["cost_usd_this_run"] > 0
        # progress: one report per reply, with the rate and an ETA that reaches 0
        assert [p.done for p in seen] == list(range(1, 11)) and seen[-1].total == 10
        assert all(p.rate > 0 for p in seen) and seen[-1].eta_s == 0 and "req/s" in seen[-1].line()
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


def test_cache_is_wal_and_durable_option(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "a.sqlite") as c:  # WAL + NORMAL: a commit survives kill -9
        assert c.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        c.put("k", "reply", prompt_tokens=3)
    with ResponseCache(tmp_path / "a.sqlite", durable=True) as c:  # FULL: also survives power loss
        assert c.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert c.get("k").text == "reply" and c.get("k").prompt_tokens == 3


CHILD = """
import json, os, sys
from vitune.data.records import ImageRecord
from vitune.synth import OpenAIBackend, synth
recs = [ImageRecord.from_dict(d) for d in json.load(open(sys.argv[2]))]
be = OpenAIBackend(sys.argv[1], "fake-model", api_key="k", concurrency=4, timeout=5)
ack = os.open(sys.argv[4], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
# the run reports a reply as finished only after it was handed to the cache: log every report
report = lambda p: os.write(ack, b"%d\\n" % p.sent)
synth(recs, ["complex_reasoning", "dialog"], be, sys.argv[3], progress=report)
"""


def test_resume_after_kill_9(tmp_path: Path) -> None:
    recs = [make_record(str(i)) for i in range(30)]  # 60 requests
    (tmp_path / "recs.json").write_text(json.dumps([r.to_dict() for r in recs]))
    out, ack = tmp_path / "out", tmp_path / "ack.txt"
    with FakeChatServer(latency=0.1, capacity=4) as srv:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, srv.url, str(tmp_path / "recs.json"), str(out), str(ack)], env=env
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
        # Every reply the run had reported finished survived the kill (committed before the report);
        # of the replies the server wrote, at most the 4 in flight had not reached the client yet.
        acked = max(int(x) for x in ack.read_text().split())
        assert 16 <= acked <= len(cached)
        assert len(cached) >= len(served_before) - 4 and cached <= served_before
        n_before = len(srv.log)

        s = synth(recs, ["complex_reasoning", "dialog"], _backend(srv, timeout=5), out)
        resent = srv.keys_seen()[n_before:]
        assert not set(resent) & cached  # no finished request sent again
        assert len(set(resent) & served_before) <= 4  # only replies lost in flight at the kill
        assert len(resent) == len(set(resent)) == 60 - len(cached)
        r = s["requests"]
        assert r["cached"] == len(cached) and r["sent_ok"] == 60 - len(cached) and r["failed"] == 0
        assert r["ok"] == r["unique"] == 60
        assert s["per_generator"]["dialog"]["items_kept"] == 30
        assert s["per_generator"]["complex_reasoning"]["items_kept"] == 30
        # the resumed output equals an uninterrupted run's
        fresh = synth(recs, ["complex_reasoning", "dialog"], _backend(srv), tmp_path / "fresh")
        assert (out / "synth_llava.json").read_bytes() == (
            tmp_path / "fresh" / "synth_llava.json"
        ).read_bytes()
        assert fresh["kept"] == s["kept"]
