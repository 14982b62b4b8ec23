"""Instance storage (Parquet + manifest), LLaVA JSON round trip, the ledger and atomic writes."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from vitune.data.instance import Instance, Turn
from vitune.data.ledger import Ledger
from vitune.data.llava import instance_to_llava, read_llava_json, write_llava_json
from vitune.data.store import read_instances, read_manifest, write_instance_set
from vitune.utils.atomic import atomic_open


def _instances() -> list[Instance]:
    return [
        Instance(
            "a", "train/1.jpg", "vqa", [Turn("user", "What is it?"), Turn("assistant", "A dog.")], {"k": 1}
        ),
        Instance(
            "b",
            None,
            "sharegpt",
            [Turn("user", "Hi"), Turn("assistant", "Hello."), Turn("user", "Bye"), Turn("assistant", "Bye!")],
        ),
        Instance(
            "c",
            "train/2.jpg",
            "cap",
            [Turn("user", "Describe ünïcode."), Turn("assistant", "Text\nwith newline")],
        ),
    ]


def test_instance_rejects_broken_alternation():
    with pytest.raises(ValueError, match="turn 1"):
        Instance("x", None, "t", [Turn("user", "a"), Turn("user", "b")])
    with pytest.raises(ValueError, match="no turns"):
        Instance("x", None, "t", [])


def test_parquet_round_trip_and_datasets_reads_it(tmp_path):
    insts = _instances()
    manifest = write_instance_set(insts, tmp_path / "set", shard_size=2, extra={"seed": 7})
    assert manifest["count"] == 3 and len(manifest["shards"]) == 2
    assert manifest["per_task"] == {"cap": 1, "sharegpt": 1, "vqa": 1}
    assert read_manifest(tmp_path / "set")["seed"] == 7
    assert read_instances(tmp_path / "set") == insts
    # Hugging Face datasets reads the shards directly.
    import datasets

    ds = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "set" / "data" / "*.parquet"), split="train"
    )
    assert ds.num_rows == 3
    assert ds[1]["turns"][2] == {"role": "user", "text": "Bye"}
    assert json.loads(ds[0]["meta"]) == {"k": 1}


def test_parquet_bytes_are_deterministic(tmp_path):
    write_instance_set(_instances(), tmp_path / "a")
    write_instance_set(_instances(), tmp_path / "b")
    a = (tmp_path / "a" / "data" / "shard-00000.parquet").read_bytes()
    b = (tmp_path / "b" / "data" / "shard-00000.parquet").read_bytes()
    assert a == b
    assert pq.read_table(tmp_path / "a" / "data" / "shard-00000.parquet").num_rows == 3


def test_llava_export_exact():
    rec = instance_to_llava(_instances()[0])
    assert rec == {
        "id": "a",
        "image": "train/1.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is it?"},
            {"from": "gpt", "value": "A dog."},
        ],
    }
    text_only = instance_to_llava(_instances()[1])
    assert "image" not in text_only and "<image>" not in json.dumps(text_only)


def test_llava_round_trip(tmp_path):
    insts = _instances()
    path = tmp_path / "llava.json"
    assert write_llava_json(insts, path, with_task=True) == 3
    back = read_llava_json(path)
    assert [(i.id, i.image, i.task, i.turns) for i in back] == [
        (i.id, i.image, i.task, i.turns) for i in insts
    ]


def test_llava_import_normalizes_like_llava(tmp_path):
    data = [
        # <image> after the question, leading gpt turn: normalized and dropped.
        {
            "id": 5,
            "image": "x.jpg",
            "conversations": [
                {"from": "gpt", "value": "stray"},
                {"from": "human", "value": "What is this?\n<image>"},
                {"from": "gpt", "value": "A cat."},
            ],
        },
        {"id": "t", "conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]},
        {"id": "bad1", "image": "y.jpg"},
        {"id": "bad2", "conversations": [{"from": "robot", "value": "x"}]},
        {
            "id": "bad3",
            "conversations": [{"from": "human", "value": "<image>\nno image"}, {"from": "gpt", "value": "?"}],
        },
        "not a dict",
    ]
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data))
    ledger = Ledger()
    got = read_llava_json(path, ledger)
    assert len(got) + len(ledger) == len(data)
    assert got[0].id == "5" and got[0].turns[0].text == "What is this?" and len(got[0].turns) == 2
    assert instance_to_llava(got[0])["conversations"][0]["value"] == "<image>\nWhat is this?"
    assert got[1].image is None
    reasons = {r.locator: r.reason for r in ledger.items}
    assert "conversations" in reasons["[2]"]
    assert "unknown role" in reasons["[3]"]
    assert "without an 'image'" in reasons["[4]"]
    assert reasons["[5]"] == "record is not an object"
    assert all(r.file == str(path) for r in ledger.items)


def test_llava_malformed_file_names_file_and_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n{"id": 1,\n "conversations": [}\n]')
    with pytest.raises(ValueError, match=r"broken\.json: invalid JSON at line 3"):
        read_llava_json(path)


def test_ledger_write_and_summary(tmp_path):
    ledger = Ledger()
    ledger.reject("sources.coco", "a.json", "annotations[3]", "box out of bounds", box=[1, 2, 3, 4])
    ledger.reject("sources.coco", "a.json", "annotations[4]", "box out of bounds")
    ledger.reject("sources.vqa", "q.json", "questions[0]", "unknown image")
    assert ledger.summary() == {"sources.coco: box out of bounds": 2, "sources.vqa: unknown image": 1}
    rows = Ledger.read(ledger.write(tmp_path / "rejected.jsonl"))
    assert rows[0] == {
        "stage": "sources.coco",
        "file": "a.json",
        "locator": "annotations[3]",
        "reason": "box out of bounds",
        "detail": {"box": [1, 2, 3, 4]},
    }


def test_atomic_open_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path) as fh:
        fh.write("partial")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_files_get_normal_permissions(tmp_path):
    import os

    from vitune.utils.atomic import write_text

    write_text(tmp_path / "x.txt", "hi")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_pixel_statistics_and_pad_colour(tmp_path):
    from PIL import Image

    from vitune.data.images import CLIP_MEAN, expand2square, pad_color, pixel_statistics

    Image.new("RGB", (4, 2), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (4, 2), (0, 0, 255)).save(tmp_path / "b.png")
    mean, std = pixel_statistics([tmp_path / "a.png", tmp_path / "b.png"])
    assert mean == (0.5, 0.0, 0.5)
    assert std[0] == pytest.approx(0.5) and std[1] == pytest.approx(0.001, abs=1e-3)

    class Proc:
        image_mean = (0.5, 0.25, 1.0)

    assert pad_color(Proc()) == (127, 63, 255)
    assert pad_color(object()) == tuple(int(c * 255) for c in CLIP_MEAN)
    sq = expand2square(Image.new("RGB", (4, 2), (0, 0, 0)), pad_color(Proc()))
    assert sq.size == (4, 4) and sq.getpixel((0, 0)) == (127, 63, 255) and sq.getpixel((0, 1)) == (0, 0, 0)


def test_dir_fingerprint_changes_when_weights_are_rewritten(tmp_path):
    import os

    from vitune.utils.hashing import dir_fingerprint

    (tmp_path / "config.json").write_text("{}")
    w = tmp_path / "model.safetensors"
    w.write_bytes(b"a" * 10)
    (tmp_path / "notes.txt").write_text("ignored")
    first = dir_fingerprint(tmp_path)
    (tmp_path / "notes.txt").write_text("still ignored")
    assert dir_fingerprint(tmp_path) == first
    st = w.stat()
    w.write_bytes(b"b" * 10)  # same size, retrained in place
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert dir_fingerprint(tmp_path) != first
