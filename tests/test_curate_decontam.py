"""Decontamination as a curation step: planted copies of benchmark images (byte-identical and
re-encoded) and a planted benchmark question are removed and ledgered; nothing else is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitune.curate import curate
from vitune.curate.decontam import nearest_hashes, ngrams
from vitune.eval.benchmarks import get_benchmark
from vitune.eval.world_bench import write_world_benchmarks
from vitune.sources.merge import load_world
from vitune.world import WorldLayout, generate_world


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("dc")
    generate_world(root / "w", 40, seed=6, workers=1, split_fractions=(0.5, 0.0, 0.5))
    bench = write_world_benchmarks(root / "w", root / "bench", "test", seed=0, benchmarks=("vqav2", "pope"))
    vqa = get_benchmark("vqav2").load(bench["vqav2"])
    target = vqa[0]
    src = bench["vqav2"] / target.image
    images = root / "train_images"
    images.mkdir()
    shutil.copyfile(src, images / "exact.jpg")
    with Image.open(src) as im:  # a re-encoded, slightly resized copy: other bytes, near pHash
        im.convert("RGB").resize((im.width * 9 // 10, im.height * 9 // 10)).save(
            images / "near.jpg", quality=70
        )
    rows = []
    train = load_world(root / "w", "train")
    for k, rec in enumerate(train[:15]):
        shutil.copyfile(WorldLayout(root / "w").image_root / rec.file_name, images / f"t{k}.jpg")
        rows.append(_row(f"clean{k}", f"t{k}.jpg", f"Describe picture {k}.", "Shapes."))
    question = target.meta["raw_question"]
    rows += [
        _row("exact_caption", "exact.jpg", "Describe the image.", "Some shapes."),
        _row("exact_question", "exact.jpg", f"{question} Answer briefly.", target.answers[0]),
        _row("near_caption", "near.jpg", "What do you see?", "Shapes."),
        _row("text_only", None, question, "a text-only sample is never on a benchmark image"),
    ]
    (root / "train.json").write_text(json.dumps(rows))
    return {"root": root, "bench": bench, "images": images, "target": target}


def _row(rid: str, image: str | None, q: str, a: str) -> dict:
    row = {"id": rid, "conversations": [{"from": "human", "value": ("<image>\n" if image else "") + q},
                                        {"from": "gpt", "value": a}]}  # fmt: skip
    return {**row, "image": image} if image else row


def _recipe(setup: dict, match: str) -> Path:
    b = setup["bench"]
    text = f"""
name: decontam-test
variables: {{extra: ""}}
inputs:
  - {{name: train, kind: llava, path: "{setup["root"] / "train.json"}", image_root: "{setup["images"]}"}}
steps:
  - {{type: decontaminate, match: {match}, benchmarks: ["vqav2={b["vqav2"]}", "pope={b["pope"]}", "${{extra}}"]}}
"""
    p = setup["root"] / f"r_{match}.yaml"
    p.write_text(text)
    return p


def _removed(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "removed.jsonl").read_text().splitlines()]
    return {r["locator"].split("id=")[-1]: r for r in rows}


def test_image_policy_removes_every_sample_on_a_benchmark_image(setup, tmp_path):
    summary = curate(_recipe(setup, "image"), tmp_path / "o")
    removed = _removed(tmp_path / "o")
    assert set(removed) == {"exact_caption", "exact_question", "near_caption"}
    assert removed["exact_caption"]["detail"]["match"] == "sha256"
    assert removed["near_caption"]["detail"]["match"].startswith("phash distance")
    assert removed["exact_caption"]["detail"]["benchmark"] in ("vqav2", "pope")
    kept = json.loads((tmp_path / "o" / "llava.json").read_text())
    assert {r["id"] for r in kept} == {f"clean{k}" for k in range(15)} | {"text_only"}
    step = summary["steps"][0]
    assert step["in"] == step["kept"] + step["removed"] == 19


def test_question_policy_removes_only_the_benchmark_question(setup, tmp_path):
    curate(_recipe(setup, "question"), tmp_path / "o")
    removed = _removed(tmp_path / "o")
    assert set(removed) == {"exact_question"}
    d = removed["exact_question"]["detail"]
    assert d["benchmark"] == "vqav2" and d["item"] == setup["target"].item_id and d["overlap"] == 1.0


def test_nearest_hashes_banding_matches_brute_force():
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64)
    flips = [np.uint64(1) << np.uint64(b) for b in (3, 17, 40, 41, 62)]
    queries = np.array([refs[5] ^ flips[0] ^ flips[1], refs[9] ^ flips[2] ^ flips[3] ^ flips[4],
                        refs[7] ^ flips[0] ^ flips[1] ^ flips[2] ^ flips[3] ^ flips[4], refs[1]], np.uint64)  # fmt: skip
    best, dist = nearest_hashes(queries, refs, 4)
    assert best.tolist() == [5, 9, -1, 1] and dist.tolist()[:2] == [2, 3] and dist[3] == 0
    assert ngrams("Is there a Red circle?", 3) == {("is", "there", "a"), ("there", "a", "red"),
                                                   ("a", "red", "circle")}  # fmt: skip


def test_an_undecodable_training_image_is_no_match_and_no_crash(setup, tmp_path):
    from vitune.curate.decontam import DecontamConfig, decontaminate
    from vitune.curate.images import ImageHashes

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    good = setup["images"] / "exact.jpg"
    cfg = DecontamConfig((f"vqav2={setup['bench']['vqav2']}",))
    kept, removed = decontaminate([str(broken), str(good)], lambda pos: [""] * len(pos), cfg, ImageHashes())
    assert kept == [0] and [r[0] for r in removed] == [1]


def test_a_decompression_bomb_training_image_is_no_match_and_no_crash(setup, tmp_path, monkeypatch):
    # Pillow refuses an image over twice MAX_IMAGE_PIXELS with DecompressionBombError (no OSError):
    # like any other undecodable training image it has no near copy to find, and the step goes on.
    from vitune.curate.decontam import DecontamConfig, decontaminate
    from vitune.curate.images import ImageHashes

    bomb = tmp_path / "bomb.png"
    Image.new("L", (1200, 1200)).save(bomb)
    good = setup["images"] / "exact.jpg"
    with Image.open(good) as im:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", max(im.width * im.height, 1200 * 1200 // 3))
    cfg = DecontamConfig((f"vqav2={setup['bench']['vqav2']}",))
    kept, removed = decontaminate([str(bomb), str(good)], lambda pos: [""] * len(pos), cfg, ImageHashes())
    assert kept == [0] and [r[0] for r in removed] == [1]
