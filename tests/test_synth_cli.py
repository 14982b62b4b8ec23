"""`vitune synth` end to end: real annotation files in, a real local server with faults, resume.

The records come from COCO + Visual Genome files (written by the embedded world, read through a
`SourceSpec` file or ``--source KIND=PATH`` items); the openai backend talks over a real socket to
`FakeChatServer`, which injects 429 (with Retry-After), 500, a slow reply past the timeout, a
dropped connection and malformed text, plus one image whose requests always fail and one whose
replies are never parsable.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vitune.cli import app
from vitune.data.ledger import Ledger
from vitune.sources.spec import load, load_spec_file
from vitune.synth import BUILTIN, OpenAIBackend, build_messages, get_generator, request_key
from vitune.synth.fakeserver import FakeChatServer, default_reply
from vitune.world.generate import generate_world
from vitune.world.layout import WorldLayout

runner = CliRunner()
GENS = ["complex_reasoning", "dialog"]
MODEL = "fake-model"
MAX_RETRIES = 4


@pytest.fixture(scope="module")
def annotations(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("coco_vg")
    generate_world(root, 6, seed=2, workers=1)
    lay = WorldLayout(root)
    fields = {
        "image_root": "images",
        "split": "train",
        "coco_instances": str(lay.coco_instances("train").relative_to(root)),
        "coco_captions": str(lay.coco_captions("train").relative_to(root)),
        "coco_image_subdir": "train",
        "vg_dir": "vg",
        "restrict_to_coco": True,
    }
    spec_file = root / "sources.yaml"
    spec_file.write_text(yaml.safe_dump(fields))  # relative paths: resolved against the file's folder
    pairs = ["--image-root", str(lay.image_root), "--split", "train"]
    for pair in (
        f"coco_instances={lay.coco_instances('train')}",
        f"coco_captions={lay.coco_captions('train')}",
        f"vg={lay.vg_dir}",
        "coco_image_subdir=train",
        "restrict_to_coco=true",
    ):
        pairs += ["--source", pair]
    return {"spec": spec_file, "pairs": pairs, "records": load(load_spec_file(spec_file))}


def _keys(url: str, rec) -> set[str]:
    ident = OpenAIBackend(url, MODEL).identity()
    return {
        request_key(ident, build_messages(get_generator(g), rec), get_generator(g).sampling()) for g in GENS
    }


def _args(url: str, out: Path, *inputs: str) -> list[str]:
    return [
        "synth", *inputs, "--out", str(out), "--generators", ",".join(GENS), "--backend", "openai",
        "--base-url", url, "--model", MODEL, "--concurrency", "4", "--timeout", "1.0",
        "--max-retries", str(MAX_RETRIES), "--backoff", "0.01", "--price", "1.5,2.0",
    ]  # fmt: skip


def test_cli_openai_backend_faults_ledger_and_resume(annotations: dict, tmp_path: Path) -> None:
    recs = annotations["records"]
    assert len(recs) == 5 and all(r.objects and r.captions for r in recs)
    unparsable_img, doomed_img = recs[1], recs[3]
    transient = ["429", "500", "timeout", "drop", "malformed"]

    def reply(body: dict) -> str:  # one image's prompts always get prose in no format
        if unparsable_img.captions[0] in body["messages"][-1]["content"]:
            return "I would be happy to help! This image is lovely."
        return default_reply(body)

    doomed: set[str] = set()  # cache keys embed the server's URL: filled in once it listens
    unparsable: set[str] = set()
    faulty = iter(transient)

    def faults(n: int, key: str, attempt: int) -> str | None:
        if key in doomed:
            return "500"  # every attempt: retries exhausted
        if key in unparsable:
            return None
        return next(faulty, None)  # the first five other arrivals, one fault each

    with FakeChatServer(reply_fn=reply, faults=faults, slow_s=1.6, retry_after="0.3") as srv:
        doomed |= _keys(srv.url, doomed_img)
        unparsable |= _keys(srv.url, unparsable_img)
        out = tmp_path / "out"
        secret = {"OPENAI_API_KEY": "sk-test-not-for-logs"}  # read from the environment, stored nowhere
        res = runner.invoke(app, _args(srv.url, out, "--sources", str(annotations["spec"])), env=secret)
        assert res.exit_code == 0, res.output
        for f in (out / "summary.json", out / "ledger.jsonl", out / "cache.sqlite", out / "synth_llava.json"):
            assert b"sk-test-not-for-logs" not in f.read_bytes()
        log = list(srv.log)

        s = json.loads((out / "summary.json").read_text())
        r = s["requests"]
        # 5 images x 2 generators; requests = ok + failed, failed = transport + unparsable
        assert (r["unique"], r["ok"], r["failed_transport"], r["failed_unparsable"]) == (10, 6, 2, 2)
        assert r["unique"] == r["ok"] + r["failed"] and r["cached"] == 0
        assert r["reasks"] == 1 + 2 * 2  # the malformed reply once, the unparsable image's 2 x 2
        assert s["backend_stats"]["errors"] == {
            "429": 1, "500": 1 + 2 * (MAX_RETRIES + 1), "timeout": 1, "connection": 1,
        }  # fmt: skip
        assert s["backend_stats"]["retries"] == 4 + 2 * MAX_RETRIES
        # server side: the 6 good prompts' replies (one malformed) + its re-ask + 4 faulted attempts,
        # the doomed image's 2 x 5 attempts and the unparsable image's 2 x 3 prose replies
        assert len(log) == 6 + 1 + 4 + 2 * (MAX_RETRIES + 1) + 2 * 3
        assert Counter(e["fault"] for e in log) == {
            None: 5 + 1 + 2 * 3, "500": 1 + 2 * (MAX_RETRIES + 1),
            "429": 1, "timeout": 1, "drop": 1, "malformed": 1,
        }  # fmt: skip
        (limited,) = [e for e in log if e["fault"] == "429"]
        retry = min(e["t0"] for e in log if e["key"] == limited["key"] and e["n"] > limited["n"])
        assert retry - limited["t1"] >= 0.25  # Retry-After: 0.3 s honoured over the 0.01 s backoff

        # items in = kept + rejected, each rejection in the ledger with its reason and image
        items, pairs = s["item_counts"], s["pair_counts"]
        assert items["in"] == 10 and items["kept"] + items["rejected"] == 10
        assert items["rejected_by_reason"] == {"request failed": 2, "unparsable reply": 2}
        assert (
            pairs["in"] == pairs["kept"] + pairs["dropped"] and pairs["kept"] == s["kept"]["all"]["answers"]
        )
        ledger = Ledger.read(out / "ledger.jsonl")
        by_stage = Counter(e["stage"] for e in ledger)
        assert (
            by_stage["synth.request"] + by_stage["synth.parse"] + by_stage["synth.item"] == items["rejected"]
        )
        assert by_stage["synth.filter"] == pairs["dropped"]
        failed = [e for e in ledger if e["stage"] == "synth.request"]
        assert {e["locator"].split()[0] for e in failed} == {f"image_id={doomed_img.image_id}"}
        assert all(
            f"gave up after {MAX_RETRIES + 1} attempts: HTTP 500" in e["detail"]["error"] for e in failed
        )
        bad = [e for e in ledger if e["stage"] == "synth.parse"]
        assert {e["locator"].split()[0] for e in bad} == {f"image_id={unparsable_img.image_id}"}
        assert all(e["reason"] == "unparsable reply" and e["detail"]["attempts"] == 3 for e in bad)

        # tokens and cost: every reply of this run, at the prices given
        with sqlite3.connect(out / "cache.sqlite") as db:
            pt, ct, n_rows = db.execute(
                "SELECT SUM(prompt_tokens), SUM(completion_tokens), COUNT(*) FROM replies"
            ).fetchone()
        assert n_rows == r["sent_ok"] == 6 + 1 + 6
        assert s["tokens_this_run"] == {"prompt": pt, "completion": ct} and pt > 0 and ct > 0
        assert s["cost_usd_this_run"] == round((pt * 1.5 + ct * 2.0) / 1e6, 6) > 0

        # outputs: the kept items in LLaVA format, <image> once, in the first human turn
        llava = json.loads((out / "synth_llava.json").read_text())
        assert len(llava) == items["kept"] == 6
        assert {x["image"] for x in llava} == {
            rec.file_name for rec in recs if rec not in (doomed_img, unparsable_img)
        }
        for x in llava:
            assert x["conversations"][0]["value"].startswith("<image>\n")
            assert sum("<image>" in t["value"] for t in x["conversations"]) == 1
        # yes/no ratio and length statistics describe exactly the answers exported
        answers = [t["value"] for x in llava for t in x["conversations"] if t["from"] == "gpt"]
        yes = sum(a.lower().startswith("yes") for a in answers)
        no = sum(a.lower().startswith("no") for a in answers)
        kept = s["kept"]["all"]
        assert (kept["answers"], kept["yes"], kept["no"]) == (len(answers), yes, no) and yes > 0
        assert kept["yes_ratio"] == round(yes / (yes + no), 4)
        assert kept["words_max"] == max(len(a.split()) for a in answers)
        assert kept["words_min"] == min(len(a.split()) for a in answers)

        # Resume, this time naming the files with --source KIND=PATH: the same records, so nothing
        # finished is sent again; only the failed requests are retried (and fail again).
        res = runner.invoke(app, _args(srv.url, out, *annotations["pairs"], "--durable-cache"))
        assert res.exit_code == 0, res.output
        again = srv.log[len(log) :]
        assert {e["key"] for e in again} == doomed and len(again) == 2 * (MAX_RETRIES + 1)
        s2 = json.loads((out / "summary.json").read_text())
        assert s2["requests"]["cached"] == 8 and s2["requests"]["sent_ok"] == 0
        assert s2["cost_usd_this_run"] == 0 and s2["cost_usd_all_replies"] == s["cost_usd_all_replies"]
        assert s2["item_counts"] == items and s2["kept"] == s["kept"]
        assert json.loads((out / "synth_llava.json").read_text()) == llava


def test_cli_sources_template_and_input_errors(annotations: dict, tmp_path: Path) -> None:
    res = runner.invoke(app, ["synth", "--sources", str(annotations["spec"]), "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert s["records"] == 5 and s["item_counts"]["kept"] == 5 * 5 and s["requests"]["failed"] == 0
    assert set(s["export"]["instances"]) == set(BUILTIN)  # every type by default, dialogs included
    # exactly one input, and a bad one is reported, not a traceback
    world = str(annotations["spec"].parent)
    res = runner.invoke(
        app, ["synth", "--world", world, "--sources", str(annotations["spec"]), "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "exactly one of --world, --sources, --source" in res.output
    res = runner.invoke(
        app,
        [
            "synth",
            "--sources",
            str(annotations["spec"]),
            "--out",
            str(tmp_path / "x"),
            "--hallucination",
            "maybe",
        ],
    )
    assert res.exit_code != 0 and "drop, flag or off" in res.output
    e = ["--out", str(tmp_path / "e"), "--image-root", str(tmp_path)]
    res = runner.invoke(app, ["synth", "--source", "cocoo=/nope.json", *e])
    assert res.exit_code == 2 and "unknown kind" in res.output
    res = runner.invoke(app, ["synth", "--source", f"coco_captions={tmp_path}/missing.json", *e])
    assert res.exit_code == 2 and "missing.json" in res.output
    res = runner.invoke(
        app, ["synth", "--source", f"coco_captions={tmp_path}/missing.json", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "--image-root" in res.output
