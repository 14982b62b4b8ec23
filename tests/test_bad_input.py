"""The bad-input corpus: every case is one bad input to one command (or reader), with its outcome.

Each case asserts one of two outcomes, never a traceback or a silent acceptance:
- a clear error: exit 2, one message naming the file (or option) and the reason, no traceback;
- a ledgered rejection: the run finishes, the bad record is in the ledger with its reason, and the
  counts reconcile (seen = kept + rejected).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from build_helpers import write_dataset
from vitune.cli import app
from vitune.data.ledger import Ledger
from vitune.data.llava import read_llava_json

runner = CliRunner()


def _cli(*args: str, columns: int = 80) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    return res.exit_code, res.stdout, res.stderr


def _clear_error(code: int, err: str, *needles: str) -> None:
    """Exit 2, no traceback, and every needle in the (unwrapped) error text."""
    assert code == 2, err
    assert "Traceback" not in err, err
    flat = " ".join(err.split())
    for n in needles:
        assert n in flat, (n, flat)


def _img(path: Path, size: tuple[int, int] = (16, 12), color: str = "red") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _bomb(path: Path, side: int = 30000) -> Path:
    """A 100-byte PNG whose header claims side x side pixels (900 MP): refused before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return _write(path, png)


def _truncated(path: Path) -> Path:
    _img(path, (64, 48))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _rec(
    i: int, image: object = "a.jpg", q: object = "<image>\nWhat colour is it?", a: object = "Red."
) -> dict:
    return {
        "id": f"r{i}",
        "image": image,
        "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}],
    }


# What a bomb is refused with: our own pixel limit, or Pillow's bomb check when the header claims
# more than twice its limit (it refuses before we see the size).
BOMB = ("image too large", "decompression bomb")


def _says(text: str, what: str | tuple[str, ...]) -> bool:
    return any(w in text for w in ((what,) if isinstance(what, str) else what))


# --- 1. LLaVA JSON records: each bad one is ledgered with its reason, the good one kept ----------------

LLAVA_RECORDS: list[tuple[str, object, str]] = [
    ("null reply", _rec(1, a=None), "value is not a string (NoneType)"),
    ("dict reply", _rec(1, a={"text": "A"}), "value is not a string (dict)"),
    ("number question", _rec(1, q=3), "value is not a string (int)"),
    ("empty reply", _rec(1, a="   "), "turn 1 (assistant) is empty"),
    ("empty question", _rec(1, q="<image>\n"), "turn 0 (user) is empty"),
    ("image token in reply", _rec(1, a="It is <image> red."), "<image> in an assistant reply"),
    ("two image tokens", _rec(1, q="<image>\n<image>\nWhat?"), "2 <image> tokens"),
    (
        "ends on a human turn",
        {"id": "x", "image": "a.jpg", "conversations": [{"from": "human", "value": "<image>\nHi?"}]},
        "ends on a human turn",
    ),
    (
        "two human turns in a row",
        {
            "id": "x",
            "image": "a.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nA?"},
                {"from": "human", "value": "B?"},
                {"from": "gpt", "value": "C."},
            ],
        },
        "breaks user/assistant alternation",
    ),
    ("absolute image path", _rec(1, image="/etc/passwd"), "absolute image path '/etc/passwd'"),
    ("dot-dot image path", _rec(1, image="../../x.jpg"), "escapes the image root"),
    ("windows dot-dot path", _rec(1, image="..\\x.jpg"), "escapes the image root"),
    ("image not a string", _rec(1, image=7), "'image' is not a string"),
    ("two images", _rec(1, image=["a.jpg", "b.jpg"]), "2 images in one sample"),
    ("unknown role", {"id": "x", "conversations": [{"from": "bot", "value": "A"}]}, "unknown role 'bot'"),
    ("not an object", ["a", "b"], "record is not an object"),
    ("no conversations", {"id": "x", "image": "a.jpg"}, "missing or empty 'conversations'"),
    (
        "token without image",
        {
            "id": "x",
            "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A."}],
        },
        "<image> token without an 'image' field",
    ),
    ("duplicate id", _rec(0), "duplicate id 'r0'"),
]


@pytest.mark.parametrize("bad,reason", [c[1:] for c in LLAVA_RECORDS], ids=[c[0] for c in LLAVA_RECORDS])
def test_llava_reader_ledgers_bad_records(tmp_path: Path, bad: object, reason: str) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps([_rec(0), bad]), encoding="utf-8")
    ledger = Ledger()
    got = read_llava_json(path, ledger)
    assert [i.id for i in got] == ["r0"]
    assert len(got) + len(ledger) == 2  # counts reconcile
    (r,) = ledger.items
    assert r.file == str(path) and r.locator == "[1]" and reason in r.reason, r.reason
    # The values a bad record carried never become training text.
    assert all(t.text not in ("None", "{'text': 'A'}") for t in got[0].turns)


# --- 2. curate: clear errors for unusable inputs, ledger entries for bad records --------------------


def _synth_recipe_args(json_path: Path, images: Path, out: Path) -> list[str]:
    return ["curate", "vision_flan_stage2_1k_synth", str(out), "--var", f"synth_json={json_path}",
            "--var", f"synth_images={images}"]  # fmt: skip


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


CURATE_ERRORS: list[tuple[str, Callable[[Path], Path], list[str]]] = [
    (
        "truncated JSON",
        lambda d: _write(d / "in.json", json.dumps([_rec(0)])[:30]),
        ["in.json", "invalid JSON"],
    ),
    (
        "wrong top-level type",
        lambda d: _write(d / "in.json", '{"a": 1}'),
        ["in.json", "expected a JSON list"],
    ),
    ("not UTF-8", lambda d: _write(d / "in.json", b'[{"id": "\xe9"}]'), ["in.json", "not UTF-8"]),
    ("missing file", lambda d: d / "nope.json", ["nope.json", "does not exist"]),
    ("empty file", lambda d: _write(d / "in.json", ""), ["in.json", "invalid JSON"]),
    ("a folder", lambda d: (d / "dir.json").mkdir() or d / "dir.json", ["dir.json"]),
]


@pytest.mark.parametrize("make,needles", [c[1:] for c in CURATE_ERRORS], ids=[c[0] for c in CURATE_ERRORS])
def test_curate_unusable_input_is_one_clear_error(tmp_path: Path, make, needles: list[str]) -> None:
    path = make(tmp_path)
    code, _, err = _cli(*_synth_recipe_args(path, tmp_path, tmp_path / "out"))
    _clear_error(code, err, *needles)


def test_curate_unknown_var_and_recipe_are_errors(tmp_path: Path) -> None:
    code, _, err = _cli("curate", "vision_flan_stage2_1k_synth", str(tmp_path / "o"), "--var", "synth_jsn=x")
    _clear_error(code, err, "unknown variable(s) synth_jsn", "synth_json")
    code, _, err = _cli("curate", "no_such_recipe", str(tmp_path / "o"))
    _clear_error(code, err, "no_such_recipe", "no such recipe")


def test_curate_var_paths_are_relative_to_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _img(tmp_path / "imgs" / "a.jpg")
    _write(tmp_path / "data" / "in.json", json.dumps([_rec(0)]))
    code, _, err = _cli(*_synth_recipe_args(Path("data/in.json"), Path("imgs"), Path("out")))
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "llava.json").read_text())[0]["id"] == "r0"


def test_curate_keeps_escaping_paths_and_bad_images_out_and_reconciles(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    _img(images / "a.jpg")
    _img(images / "b.jpg", color="blue")
    _write(images / "corrupt.jpg", b"not an image at all")
    _write(images / "empty.jpg", b"")
    _bomb(images / "bomb.png")
    _truncated(images / "trunc.jpg")
    outside = _img(tmp_path / "secret.jpg")
    (images / "link.jpg").symlink_to(outside)  # inside the root by name, outside by target
    recs = [
        _rec(0, "a.jpg"),
        _rec(1, "b.jpg", q="<image>\nAnd this one?", a="Blue."),
        _rec(2, "/etc/passwd", q="<image>\nQ2?"),
        _rec(3, "../secret.jpg", q="<image>\nQ3?"),
        _rec(4, "corrupt.jpg", q="<image>\nQ4?"),
        _rec(5, "empty.jpg", q="<image>\nQ5?"),
        _rec(6, "bomb.png", q="<image>\nQ6?"),
        _rec(7, "trunc.jpg", q="<image>\nQ7?"),
        _rec(8, "link.jpg", q="<image>\nQ8?"),
        _rec(9, "missing.jpg", q="<image>\nQ9?"),
        _rec(10, "a.jpg", a=None),
    ]
    src = _write(tmp_path / "in.json", json.dumps(recs))
    code, _, err = _cli(*_synth_recipe_args(src, images, tmp_path / "out"))
    assert code == 0, err
    kept = json.loads((tmp_path / "out" / "llava.json").read_text())
    assert sorted(r["id"] for r in kept) == ["r0", "r1"]
    assert all(r["image"] in ("a.jpg", "b.jpg") for r in kept)
    removed = [json.loads(x) for x in (tmp_path / "out" / "removed.jsonl").read_text().splitlines()]
    by_loc = {r["locator"]: r for r in removed}
    assert len(removed) + len(kept) == len(recs)  # counts reconcile
    reasons = " | ".join(f"{r['locator']}: {r['reason']} {r.get('detail', {})}" for r in removed)
    assert "absolute image path '/etc/passwd'" in by_loc["[2]"]["reason"]
    assert "escapes the image root" in by_loc["[3]"]["reason"]
    assert "[10]" in by_loc and "not a string" in by_loc["[10]"]["reason"]
    for rid, what in (("4", "unreadable image"), ("5", "empty image file"), ("6", BOMB),
                      ("7", "unreadable image"), ("8", "outside the image root"), ("9", "missing image file")):  # fmt: skip
        (hit,) = [r for r in removed if r["locator"].endswith(f"id=r{rid}")]
        assert _says(hit["reason"] + str(hit.get("detail", "")), what), (rid, reasons)


def test_curate_all_rejected_pool_finishes_with_zero(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.json", json.dumps([_rec(0, "/etc/passwd"), _rec(1, "../x.jpg")]))
    code, _, err = _cli(*_synth_recipe_args(src, tmp_path, tmp_path / "out"))
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "llava.json").read_text()) == []
    summary = json.loads((tmp_path / "out" / "curation.json").read_text())
    assert summary["loaded"]["count"] == 0 and summary["loaded"]["unreadable"] == 2


# --- 3. build: bad images are ledgered (check_images is on by default), bad files are errors -----


def test_build_ledgers_bad_images_and_reconciles(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds")
    img = ds["image_root"] / "train2014"
    bad = {
        1: lambda p: _write(p, b""),
        2: lambda p: _write(p, b"\x89PNG garbage"),
        3: lambda p: (p.unlink(), _bomb(p)),
        4: _truncated,
    }
    for i, spoil in bad.items():
        spoil(img / f"COCO_train2014_{i:012d}.jpg")
    out = tmp_path / "out"
    code, _, err = _cli("build", "--sources", str(ds["yaml"]), "--out", str(out), "--task", "object_counting",
                        "--workers", "1")  # fmt: skip
    assert code == 0, err
    manifest = json.loads((out / "instances" / "manifest.json").read_text())
    images = manifest["reconcile"]["images"]
    assert (
        images["in"] == images["kept"] + images["rejected"] and images["rejected"] == 5
    )  # 4 bad + 1 missing
    ledger = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    by_id = {r["locator"]: r["reason"] for r in ledger if r["stage"] == "build.images"}
    assert "empty image file" in by_id["image_id=1"]
    assert "unreadable image" in by_id["image_id=2"]
    assert _says(by_id["image_id=3"], BOMB)
    assert "unreadable image" in by_id["image_id=4"]
    assert "image file missing" in by_id["image_id=30"]
    used = {r["image"] for r in json.loads((out / "llava.json").read_text())}
    assert not any(f"{i:012d}" in u for u in used for i in (1, 2, 3, 4, 30))


BUILD_ERRORS: list[tuple[str, Callable[[dict], None], list[str]]] = [
    ("truncated annotations", lambda ds: ds["captions"].write_text('{"images": ['), ["captions_train2014.json", "invalid JSON"]),
    ("non-UTF-8 annotations", lambda ds: ds["instances"].write_bytes(b'{"images": "\xff"}'), ["instances_train2014.json", "not UTF-8"]),
    ("wrong type annotations", lambda ds: ds["instances"].write_text("[1, 2]"), ["instances_train2014.json", "expected"]),
    ("missing annotations", lambda ds: ds["questions"].unlink(), ["v2_OpenEnded_mscoco_train2014_questions.json"]),
    ("unknown yaml key", lambda ds: ds["yaml"].write_text(ds["yaml"].read_text() + "bogus: 1\n"), ["bogus"]),
    ("escaping image subdir", lambda ds: ds["yaml"].write_text(ds["yaml"].read_text().replace("coco_image_subdir: train2014", "coco_image_subdir: ../x")), ["escapes"]),
]  # fmt: skip


@pytest.mark.parametrize("spoil,needles", [c[1:] for c in BUILD_ERRORS], ids=[c[0] for c in BUILD_ERRORS])
def test_build_unusable_input_is_one_clear_error(tmp_path: Path, spoil, needles: list[str]) -> None:
    ds = write_dataset(tmp_path / "ds")
    spoil(ds)
    code, _, err = _cli(
        "build", "--sources", str(ds["yaml"]), "--out", str(tmp_path / "out"), "--workers", "1"
    )
    _clear_error(code, err, *needles)


# --- 4. synth: clear errors before any generation ---------------------------------------------


SYNTH_ERRORS: list[tuple[str, Callable[[Path], list[str]], list[str]]] = [
    ("missing world", lambda d: ["--world", str(d / "nope")], ["nope"]),
    (
        "two inputs",
        lambda d: ["--world", str(d), "--sources", str(d / "s.yaml")],
        ["exactly one of --world, --sources, --source"],
    ),
    ("bad backend", lambda d: ["--world", str(d), "--backend", "gpt5"], ["unknown backend 'gpt5'"]),
    ("openai without url", lambda d: ["--world", str(d), "--backend", "openai"], ["--base-url"]),
    ("bad hallucination", lambda d: ["--world", str(d), "--hallucination", "maybe"], ["drop, flag or off"]),
    ("bad price", lambda d: ["--world", str(d), "--price", "cheap"], ["--price"]),
    ("source without image root", lambda d: ["--source", f"coco_instances={d / 'i.json'}"], ["--image-root"]),
    (
        "truncated sources yaml",
        lambda d: ["--sources", str(_write(d / "s.yaml", "image_root: [x"))],
        ["s.yaml"],
    ),
]


@pytest.mark.parametrize("make,needles", [c[1:] for c in SYNTH_ERRORS], ids=[c[0] for c in SYNTH_ERRORS])
def test_synth_bad_input_is_one_clear_error(tmp_path: Path, make, needles: list[str]) -> None:
    code, _, err = _cli("synth", "--out", str(tmp_path / "out"), *make(tmp_path))
    _clear_error(code, err, *needles)
    assert not (tmp_path / "out" / "synth_llava.json").exists()


# --- 5. train, eval, serve: the CLI's validation, before any model is built -------------------------


def _recipe(d: Path, body: str) -> Path:
    return _write(d / "r.yaml", "name: r\nmodel: {preset: micro}\n" + body)


TRAIN_ERRORS: list[tuple[str, Callable[[Path], list[str]], list[str]]] = [
    ("unknown recipe", lambda d: ["no-such-recipe"], ["no-such-recipe"]),
    ("unknown var", lambda d: ["tiny-two-stage", "--var", "wrld=x"], ["unknown variable(s) wrld"]),
    ("missing data", lambda d: [str(_recipe(d, "stages: [{name: s, data: [{path: nope.json}]}]\n"))],
     ["nope.json", "stage s: data not found"]),
    ("missing local model", lambda d: [str(_write(d / "m.yaml", "name: r\nmodel: {checkpoint: ./runs/gone}\n"
                                               "stages: [{name: s, data: [{path: m.yaml}]}]\n"))],
     ["runs/gone", "never fetched from the hub"]),
    ("bad field", lambda d: [str(_recipe(d, "stages: [{name: s, data: [{path: r.yaml}], lr: -1}]\n"))],
     ["r.yaml", "stages.0.lr"]),
    ("unknown stage", lambda d: [str(_recipe(d, "stages: [{name: s, data: [{path: r.yaml}]}]\n")), "--stage", "t"],
     ["no stage 't'"]),
    ("not UTF-8 recipe", lambda d: [str(_write(d / "r.yaml", b"name: \xff\n"))], ["r.yaml", "not UTF-8"]),
]  # fmt: skip


@pytest.mark.parametrize("make,needles", [c[1:] for c in TRAIN_ERRORS], ids=[c[0] for c in TRAIN_ERRORS])
def test_train_bad_input_is_one_clear_error(tmp_path: Path, make, needles: list[str]) -> None:
    code, _, err = _cli("train", *make(tmp_path), "--out", str(tmp_path / "run"))
    _clear_error(code, err, *needles)
    assert not (tmp_path / "run" / "model").exists()


def _model(d: Path) -> Path:
    _write(d / "model" / "config.json", '{"model_type": "llava"}')  # enough for the validation, never loaded
    return d / "model"


EVAL_ERRORS: list[tuple[str, Callable[[Path], list[str]], list[str]]] = [
    ("missing model", lambda d: ["--model", str(d / "nomodel"), "--bench", f"pope={d}"], ["nomodel", "no config.json"]),
    ("missing benchmark folder", lambda d: ["--model", str(_model(d)), "--bench", f"pope={d / 'gone'}"], ["gone", "--bench pope"]),
    ("unknown benchmark", lambda d: ["--model", str(_model(d)), "--bench", f"nope={d}"], ["unknown benchmark"]),
    ("bench without =", lambda d: ["--model", str(_model(d)), "--bench", "pope"], ["NAME=PATH"]),
    ("missing image folder", lambda d: ["--model", str(_model(d)), "--bench", f"pope={d}", "--images", f"pope={d / 'noimg'}"], ["noimg"]),
]  # fmt: skip


@pytest.mark.parametrize("make,needles", [c[1:] for c in EVAL_ERRORS], ids=[c[0] for c in EVAL_ERRORS])
def test_eval_bad_input_is_one_clear_error(tmp_path: Path, make, needles: list[str]) -> None:
    code, _, err = _cli("eval", *make(tmp_path), "--out", str(tmp_path / "ev"))
    _clear_error(code, err, *needles)
    assert not (tmp_path / "ev" / "results.json").exists()


def test_eval_items_with_bad_images_are_ledgered_not_fatal(tmp_path: Path) -> None:
    from vitune.eval.runner import BenchSpec, ResponseCache, run_benchmark

    root = tmp_path / "pope"
    _img(root / "ok.jpg")
    _write(root / "corrupt.jpg", b"nope")
    _bomb(root / "bomb.png")
    lines = [
        {"question_id": 1, "image": "ok.jpg", "text": "Is there a cat in the image?", "label": "yes"},
        {"question_id": 2, "image": "corrupt.jpg", "text": "Is there a dog in the image?", "label": "no"},
        {"question_id": 3, "image": "../secret.jpg", "text": "Is there a car in the image?", "label": "no"},
        {"question_id": 4, "image": "bomb.png", "text": "Is there a bus in the image?", "label": "no"},
    ]
    _write(root / "coco_pope_random.json", "\n".join(json.dumps(x) for x in lines) + "\n")
    asked: list = []

    def answer(items):
        asked.extend(items)
        return ["yes"] * len(items)

    out = tmp_path / "ev"
    summary = run_benchmark(BenchSpec("pope", root), out, ResponseCache(tmp_path / "c.jsonl"), lambda: answer,
                            model_id="m", params={}, chunk_size=8)  # fmt: skip
    assert len(asked) == 1 and str(asked[0].image).endswith("ok.jpg")
    assert summary["n_bad_images"] == 3 and summary["n_unanswered"] == 3
    rejected = [json.loads(x) for x in (out / "pope" / "rejected.jsonl").read_text().splitlines()]
    reasons = {r["detail"]["image"]: r["reason"] for r in rejected}
    assert "unreadable image" in reasons["corrupt.jpg"]
    assert "escapes the image root" in reasons["../secret.jpg"]
    assert _says(reasons["bomb.png"], BOMB)


SERVE_ERRORS: list[tuple[str, Callable[[Path], list[str]], list[str]]] = [
    ("missing model", lambda d: [str(d / "nomodel")], ["nomodel", "no config.json"]),
    ("bad port", lambda d: [str(d), "--port", "70000"], ["--port"]),
    ("bad batch size", lambda d: [str(d), "--batch-size", "0"], ["--batch-size"]),
]


@pytest.mark.parametrize("make,needles", [c[1:] for c in SERVE_ERRORS], ids=[c[0] for c in SERVE_ERRORS])
def test_serve_bad_input_is_one_clear_error(tmp_path: Path, make, needles: list[str]) -> None:
    code, _, err = _cli("serve", *make(tmp_path))
    _clear_error(code, err, *needles)


# --- 6. readers: RefCOCO's pickle, TextVQA's key spellings, COCO crowds, the path rule ----------------


def _refcoco_files(d: Path, refs: bytes) -> tuple[Path, Path]:
    inst = {"images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "width": 64, "height": 48}],
            "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 20, 20], "iscrowd": 0, "area": 400}],
            "categories": [{"id": 1, "name": "dog"}]}  # fmt: skip
    return _write(d / "refs(unc).p", refs), _write(d / "instances.json", json.dumps(inst))


def test_refcoco_official_pickle_is_read_as_plain_data(tmp_path: Path) -> None:
    from vitune.sources.refcoco import read_refcoco

    # What Python 2 wrote: protocol 2, byte strings (SHORT_BINSTRING) for every text.
    refs = [{"ref_id": 0, "ann_id": 5, "image_id": 1, "split": "train", "category_id": 1, "sent_ids": [0],
             "sentences": [{"sent": "left dog", "raw": "Left dog", "tokens": ["left", "dog"], "sent_id": 0}]}]  # fmt: skip
    blob = pickle.dumps(refs, protocol=2)
    res = read_refcoco(*_refcoco_files(tmp_path, blob))
    assert [r.phrase for r in res.records["1"].regions] == ["left dog"]


def test_refcoco_pickle_naming_code_is_refused(tmp_path: Path) -> None:
    from vitune.sources.refcoco import read_refcoco

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    refs, inst = _refcoco_files(tmp_path, pickle.dumps([Evil()], protocol=2))
    with pytest.raises(
        ValueError, match=r"refs\(unc\)\.p: refused pickle: refers to (builtins|__builtin__)\.print"
    ):
        read_refcoco(refs, inst)


def test_textvqa_camel_case_ocr_boxes_keep_their_tokens(tmp_path: Path) -> None:
    from vitune.sources.textvqa import read_textvqa

    q = {"data": [{"image_id": "ab", "question_id": 1, "question": "What does it say?", "answers": ["stop"] * 10,
                   "image_width": 100, "image_height": 50, "set_name": "train"}]}  # fmt: skip
    ocr = {"data": [{"image_id": "ab", "ocr_tokens": ["STOP"], "set_name": "train",
                     "ocr_info": [{"word": "STOP", "bounding_box": {"topLeftX": 0.1, "topLeftY": 0.2, "width": 0.3,
                                                                    "height": 0.4, "rotation": 0}}]}]}  # fmt: skip
    ledger = Ledger()
    res = read_textvqa(_write(tmp_path / "q.json", json.dumps(q)), _write(tmp_path / "o.json", json.dumps(ocr)),
                       ledger=ledger)  # fmt: skip
    (rec,) = res.records.values()
    assert rec.ocr_tokens == ["STOP"] and rec.meta["ocr_boxes"] == [[0.1, 0.2, 0.3, 0.4]]
    assert len(ledger) == 0


def test_coco_crowd_regions_are_not_counted_detected_or_called_absent() -> None:
    from conftest import make_record
    from vitune.data.records import Box, ObjectAnn
    from vitune.tasks.build import build_instances

    objs = [ObjectAnn("coco:1", "person", Box(10, 10, 30, 30), [], "coco"),
            ObjectAnn("coco:2", "person", Box(0, 0, 300, 200), [], "coco", crowd=True),
            ObjectAnn("coco:3", "dog", Box(100, 100, 50, 50), [], "coco")]  # fmt: skip
    others = [make_record(str(i)) for i in range(2, 6)]
    recs = [make_record("1", objects=objs), *others]
    got = build_instances(
        recs, ["object_counting", "object_detection_list", "object_existence"], cap=100, seed=0
    )
    mine = [i for i in got if i.image == "train/1.jpg"]
    for inst in mine:
        text = inst.turns[-1].text
        if inst.task == "object_detection_list":
            assert text.count("person") == 1, text  # the crowd box is not a detection
        if inst.task == "object_counting" and "person" in inst.turns[0].text:
            assert "1" in text or "one" in text.lower(), text
        if inst.task == "object_existence" and "person" in inst.turns[0].text:
            assert "Yes" in text, text  # a crowd of people still means people are there
    assert {i.task for i in mine} >= {"object_detection_list", "object_counting"}


def test_path_rule_symlinks_and_absolute_opt_in(tmp_path: Path) -> None:
    from vitune.data.paths import UnsafePathError, check_model_source, resolve_image

    root = tmp_path / "root"
    _img(root / "a.jpg")
    (root / "out.jpg").symlink_to(_img(tmp_path / "secret.jpg"))
    assert resolve_image(root, "a.jpg") == (root / "a.jpg").resolve()
    with pytest.raises(UnsafePathError, match="outside the image root"):
        resolve_image(root, "out.jpg")
    with pytest.raises(UnsafePathError, match="absolute image path"):
        resolve_image(root, str(tmp_path / "secret.jpg"))
    assert resolve_image(root, str(tmp_path / "secret.jpg"), allow_absolute=True).name == "secret.jpg"
    assert check_model_source("lmsys/vicuna-7b-v1.5") is None  # a hub id stays a hub id
    assert check_model_source(str(root)) is None
    assert "no such local folder" in (check_model_source("./gone") or "")
    assert "no such local folder" in (check_model_source(f"{root}/gone") or "")


# --- 7. the CLI's conventions: exit 2 with one line, -v for the traceback, stdout for listings ------


@pytest.mark.parametrize("columns", [40, 200])
def test_error_text_is_never_wrapped_and_verbose_shows_the_traceback(tmp_path: Path, columns: int) -> None:
    long_dir = tmp_path / ("d" * 60)
    long_dir.mkdir()
    src = _write(long_dir / "in.json", "{broken")
    code, _, err = _cli(*_synth_recipe_args(src, tmp_path, tmp_path / "out"), columns=columns)
    _clear_error(code, err)
    assert f"{src}: invalid JSON" in err  # the whole path on one line, whatever the width
    res = runner.invoke(app, ["-v", *_synth_recipe_args(src, tmp_path, tmp_path / "out")])
    assert res.exit_code != 0 and isinstance(res.exception, ValueError)  # -v: the real exception


@pytest.mark.parametrize("columns", [40, 200])
@pytest.mark.parametrize(
    "args,needle",
    [(["tasks", "list"], "object_counting"), (["eval", "list"], "pope"), (["train", "--list"], "tiny-two-stage"),
     (["curate", "--list"], "svit_core")],
)  # fmt: skip
def test_listings_go_to_stdout_unwrapped(args: list[str], needle: str, columns: int) -> None:
    code, out, err = _cli(*args, columns=columns)
    assert code == 0, err
    assert any(line.split()[:1] == [needle] for line in out.splitlines()), out  # a whole row, grep-able


COMMANDS = [[], ["world"], ["build"], ["synth"], ["curate"], ["train"], ["eval"], ["eval", "compare"],
            ["eval", "multiround"], ["serve"], ["report"], ["quickstart"], ["tasks"], ["tasks", "show"]]  # fmt: skip


@pytest.mark.parametrize("cmd", COMMANDS, ids=[" ".join(c) or "root" for c in COMMANDS])
def test_help_is_readable_at_80_columns(cmd: list[str]) -> None:
    code, out, err = _cli(*cmd, "--help", columns=80)
    assert code == 0, err
    assert "…" not in out, out  # rich's cut-off
    listing = out.split("Commands:")[1] if "Commands:" in out else ""
    assert not any(line.rstrip().endswith("...") for line in listing.splitlines()), out  # click's cut-off
    assert max(len(line) for line in out.splitlines()) <= 80, out


# --- 8. outputs survive failures: staged and swapped in, a full disk named, orphans cleaned --------


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _full_disk_after(monkeypatch, n_ok: int) -> None:
    """Every fsync after the first `n_ok` fails as a full disk does (no file named by the OS)."""
    import errno
    import os

    calls = [0]
    real = os.fsync

    def fsync(fd: int) -> None:
        calls[0] += 1
        if calls[0] > n_ok:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_failed_rebuild_keeps_the_previous_build_and_names_the_full_disk(tmp_path: Path, monkeypatch) -> None:
    ds = write_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    args = [
        "build",
        "--sources",
        str(ds["yaml"]),
        "--out",
        str(out),
        "--workers",
        "1",
        "--task",
        "object_counting",
    ]
    code, _, err = _cli(*args)
    assert code == 0, err
    before = _tree(out)
    _write(out / "instances" / ".manifest.json.k3j9x_2a.tmp", "half")  # what a kill -9 leaves
    _full_disk_after(monkeypatch, 2)
    code, _, err = _cli(*args, "--task", "object_existence")
    _clear_error(code, err, "disk full (no space left on device)", str(out))
    monkeypatch.undo()
    assert _tree(out) == before  # the previous build untouched (not a mix), the orphan cleaned
    code, _, err = _cli(*args)
    assert code == 0, err
    assert _tree(out) == before  # the same bytes again
    assert not (out / ".staging").exists()


def test_failed_resynth_and_recurate_keep_the_previous_outputs(tmp_path: Path, monkeypatch) -> None:
    from vitune.world.generate import generate_world

    world = tmp_path / "w"
    generate_world(world, 12, seed=1, workers=1)
    out = tmp_path / "s"
    args = ["synth", "--world", str(world), "--out", str(out), "--limit", "4", "--generators", "conversation"]
    code, _, err = _cli(*args)
    assert code == 0, err
    before = {k: v for k, v in _tree(out).items() if not k.startswith("cache.sqlite")}
    _full_disk_after(monkeypatch, 1)
    code, _, err = _cli(*args[:-1], "conversation,dialog")
    _clear_error(code, err, "disk full", str(out))
    monkeypatch.undo()
    assert {k: v for k, v in _tree(out).items() if not k.startswith("cache.sqlite")} == before

    cur = tmp_path / "c"
    cargs = _synth_recipe_args(out / "synth_llava.json", world / "images", cur)
    code, _, err = _cli(*cargs)
    assert code == 0, err
    kept = _tree(cur)
    _full_disk_after(monkeypatch, 0)
    code, _, err = _cli(*cargs)
    _clear_error(code, err, "disk full", str(cur))
    monkeypatch.undo()
    assert {k: v for k, v in _tree(cur).items() if not k.startswith(".cache")} == {
        k: v for k, v in kept.items() if not k.startswith(".cache")
    }


def test_svit_release_layout_is_read_per_topic_and_bad_records_ledgered(tmp_path: Path) -> None:
    turns = [{"from": "user", "value": "What is on the table?"}, {"from": "gpt", "value": "A red cup."}]
    data = [
        {"image_id": 2, "conversations": [{"topic": "table", "content": turns}, {"topic": "cup", "content": turns[:1]}]},
        {"image_id": 3, "conversations": turns},  # detail_description: the turns directly
        {"image_id": None, "conversations": turns},
        {"image_id": 4, "conversations": [{"topic": "x", "content": [{"from": "user", "value": "Q?"},
                                                                      {"from": "gpt", "value": None}]}]},
    ]  # fmt: skip
    path = _write(tmp_path / "conversation.json", json.dumps(data))
    ledger = Ledger()
    got = read_llava_json(path, ledger)
    assert [(i.id, i.image) for i in got] == [("svit-2-0", "2.jpg"), ("svit-3", "3.jpg")]
    assert got[0].turns[1].text == "A red cup."
    reasons = {r.locator: r.reason for r in ledger.items}
    assert "ends on a human turn" in reasons["[0].conversations[1]"]
    assert "invalid 'image_id'" in reasons["[2]"]
    assert "not a string (NoneType)" in reasons["[3].conversations[0]"]
    assert len(got) + len(ledger) == 5  # samples seen: 2 topics + 1 + 1 + 1 topic


def test_var_paths_are_cwd_relative_for_train_recipe_files_too(tmp_path: Path, monkeypatch) -> None:
    from vitune.train.recipe import load_recipe

    monkeypatch.chdir(tmp_path)
    sub = _write(tmp_path / "recipes" / "r.yaml",
                 "name: r\nvariables: {d: null}\nmodel: {preset: micro}\n"
                 "stages: [{name: s, data: [{path: '${d}/x.json'}, {path: lit.json}]}]\n")  # fmt: skip
    data = load_recipe(sub, {"d": "mydata"}).stages[0].data
    assert data[0].path == str(tmp_path / "mydata" / "x.json")  # a --var value: the working directory
    assert data[1].path == str(tmp_path / "recipes" / "lit.json")  # written in the file: its folder
