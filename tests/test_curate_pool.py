"""The columnar pool: records read back from Parquet shards (and in-memory LLaVA inputs) are the
records that were written, in any index order, and a curation's output does not depend on how
its input set was sharded."""

from __future__ import annotations

import json

import numpy as np
import yaml

from vitune.curate import curate
from vitune.curate.pool import ItemView, TextView, load_pool
from vitune.curate.recipe import load_recipe
from vitune.data.instance import Instance, Turn
from vitune.data.ledger import Ledger
from vitune.data.llava import write_llava_json
from vitune.data.store import write_instance_set


def _instances(n: int, prefix: str) -> list[Instance]:
    out = []
    for k in range(n):
        turns = [
            Turn("user", f"What is object {k % 17}?"),
            Turn("assistant", f"It is a {['red', 'blue', 'green'][k % 3]} thing {k % 11}."),
        ]
        if k % 5 == 0:
            turns += [Turn("user", "And its size?"), Turn("assistant", "Small." if k % 2 else "Large.")]
        meta = {"category": "cat" + str(k // 4 % 2)} if k % 4 == 0 else {}
        out.append(
            Instance(f"{prefix}{k}", None if k % 7 == 0 else f"img/{k % 9}.jpg", f"t{k % 3}", turns, meta)
        )
    return out


def _recipe(tmp_path, set_dir, llava, shuffle=True):
    recipe = {
        "name": "pool-test",
        "seed": 3,
        "inputs": [
            {"name": "set", "kind": "instances", "path": str(set_dir)},
            {"name": "lj", "kind": "llava", "path": str(llava), "category": "chat"},
        ],
        "steps": [
            {"type": "dedup_exact"},
            {"type": "dedup_minhash", "threshold": 0.8, "num_perm": 64, "shingle": 2},
            {"type": "select", "method": "random", "size": 60},
        ],
        "output": {"llava_json": True, "with_task": True, "shuffle": shuffle},
    }
    path = tmp_path / f"recipe-{set_dir.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_records_come_back_from_shards_and_memory_in_any_order(tmp_path):
    insts = _instances(53, "s")
    write_instance_set(insts, tmp_path / "set", shard_size=10)  # 6 shards
    chat = _instances(12, "c")
    write_llava_json(chat, tmp_path / "chat.json", with_task=True)
    pool, _ = load_pool(
        load_recipe(_recipe(tmp_path, tmp_path / "set", tmp_path / "chat.json")), Ledger(), tmp_path / "c"
    )
    assert len(pool) == 65 and len(pool.segments) == 7
    idx = np.array([64, 3, 52, 10, 9, 0, 53, 31], dtype=np.int64)  # across shards, unsorted
    got = ItemView(pool, idx)
    want = [insts[i] if i < 53 else None for i in idx.tolist()]
    for g, w, i in zip(got, want, idx.tolist(), strict=True):
        if w is not None:
            assert (g.id, g.image, g.task, g.turns, g.meta) == (w.id, w.image, w.task, w.turns, w.meta)
        else:
            assert g.id == chat[i - 53].id and [t.text for t in g.turns][1] == chat[i - 53].turns[1].text
    assert TextView(pool, idx)[2] == "\n".join(t.text for t in insts[52].turns)
    assert TextView(pool, idx, "assistant")[1:3] == [
        "\n".join(t.text for t in insts[i].turns if t.role == "assistant") for i in (3, 52)
    ]
    lengths = got.reply_lengths()
    assert lengths[1] == sum(len(t.text) for t in insts[3].turns if t.role == "assistant")
    assert list(got.ids()) == [g.id for g in got]
    # Per-record attributes without decoding: codes, category from meta or the input, locators.
    assert pool.counts(np.arange(53))["category"] == {"cat0": 7, "cat1": 7, "uncategorized": 39}
    assert pool.counts(np.arange(53, 65))["category"] == {"chat": 12}
    assert pool.locator(12) == "set[12] id=s12" and pool.locator(60).startswith("lj[7] id=c7")


def test_output_is_the_same_whatever_the_input_sharding(tmp_path):
    insts = _instances(120, "s")
    insts += [
        Instance(f"d{k}", x.image, x.task, x.turns, x.meta) for k, x in enumerate(insts[:15])
    ]  # exact copies
    write_llava_json(_instances(20, "c"), tmp_path / "chat.json", with_task=True)
    outs = []
    for name, shard in (("one", 10_000), ("many", 7)):
        write_instance_set(insts, tmp_path / name / "set", shard_size=shard)
        summary = curate(
            _recipe(tmp_path, tmp_path / name / "set", tmp_path / "chat.json"), tmp_path / name / "out"
        )
        assert summary["steps"][0]["removed"] >= 15
        assert summary["loaded"]["count"] == summary["final"]["count"] + summary["removed_total"]
        ledger = [json.loads(x) for x in (tmp_path / name / "out" / "removed.jsonl").read_text().splitlines()]
        assert len(ledger) == summary["removed_total"]
        outs.append(
            (
                (tmp_path / name / "out" / "llava.json").read_bytes(),
                [(r["locator"], r["reason"]) for r in ledger],
            )
        )
    assert outs[0] == outs[1]


def test_forked_minhash_workers_read_their_chunks_from_the_shards(tmp_path):
    from vitune.curate.dedup import minhash_signatures

    insts = _instances(90, "s")
    write_instance_set(insts, tmp_path / "set", shard_size=16)
    write_llava_json(_instances(5, "c"), tmp_path / "chat.json", with_task=True)
    pool, _ = load_pool(
        load_recipe(_recipe(tmp_path, tmp_path / "set", tmp_path / "chat.json")), Ledger(), tmp_path / "c"
    )
    idx = np.arange(0, 90, 2, dtype=np.int64)
    texts = ["\n".join(t.text for t in insts[i].turns) for i in idx.tolist()]
    want = minhash_signatures(texts, num_perm=32, shingle=2, workers=1)
    got = minhash_signatures(TextView(pool, idx), num_perm=32, shingle=2, workers=2, chunk=8)
    assert np.array_equal(got, want)
