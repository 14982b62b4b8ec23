"""Prepared stage data: the same items as in-memory encoding, on a process pool or inline, reused
from disk, bad images rejected with reasons, a bounded pixel cache, and a DataLoader with workers
that yields the 0-worker batches in the same order from any resume step."""

from __future__ import annotations

import struct
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitune.data.instance import Instance, Turn
from vitune.train.labels import ImageCache, LabelEncoder, build_dataset, collate
from vitune.train.loop import MicroBatchStream, StepBatches, make_loader, random_plan
from vitune.train.model import build_processor
from vitune.train.prepare import PreparedDataset, PreparedPart, prepare
from vitune.train.tokenizer import corpus_texts, train_tokenizer

N_IMG = 4


def bomb_png(path: Path, side: int = 30000) -> None:
    """A valid 1x1 PNG whose header claims side x side pixels (a decompression bomb's header)."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    imgs = root / "images"
    imgs.mkdir()
    for k in range(5):
        Image.new("RGB", (40 + 7 * k, 30), (40 * k, 200 - 30 * k, 20)).save(imgs / f"ok{k}.png")
    (imgs / "empty.png").write_bytes(b"")
    (imgs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png at all")
    bomb_png(imgs / "bomb.png")
    (root / "outside.png").write_bytes((imgs / "ok0.png").read_bytes())
    insts = []
    for i in range(40):
        img = f"ok{i % 5}.png" if i % 4 else None
        turns = [
            Turn("user", "Describe it." + " More?" * (i % 3)),
            Turn("assistant", "a red one " * (1 + i % 3)),
        ]
        insts.append(Instance(f"x{i}", img, "t", turns))
    bad = ["empty.png", "corrupt.png", "bomb.png", "../outside.png", str(imgs / "ok0.png")]
    for k, rel in enumerate(bad):
        insts.append(Instance(f"bad{k}", rel, "t", [Turn("user", "What?"), Turn("assistant", "x")]))
    tok = train_tokenizer(corpus_texts(insts * 2), vocab_size=300)
    proc = build_processor(tok, 32, 8)
    enc = LabelEncoder(tok, N_IMG, max_length=256)
    return root, imgs, insts, enc, proc


def _items(ds, n):
    return [ds[i] for i in range(n)]


@pytest.mark.parametrize("processes", [1, 2])
def test_prepared_items_equal_in_memory_encoding_and_bad_images_are_rejected(setup, tmp_path, processes):
    _root, imgs, insts, enc, proc = setup
    mem, mem_rejected, mem_stats = build_dataset(insts, enc, ImageCache(imgs, proc.image_processor))
    folder = prepare(insts, enc, ImageCache(imgs, proc.image_processor), tmp_path / "p", processes=processes)
    part = PreparedPart.open(folder)
    ds = PreparedDataset([part], [ImageCache(imgs, proc.image_processor)], enc.image_id, N_IMG)
    assert part.stats == {**mem_stats, "seen": 45}
    assert len(ds) == len(mem) == 40
    for a, b in zip(_items(ds, len(ds)), _items(mem, len(mem)), strict=True):
        assert a["input_ids"].tolist() == b["input_ids"] and a["labels"].tolist() == b["labels"]
        assert (a["pixel_values"] is None) == (b["pixel_values"] is None)
        if a["pixel_values"] is not None:
            assert torch.equal(a["pixel_values"], b["pixel_values"])
    assert ds.lengths() == [len(e.input_ids) for e in mem.items]
    assert ds.has_image() == [e.image is not None for e in mem.items]
    reasons = {r["locator"]: (r["reason"], r["detail"]["error"]) for r in part.rejections()}
    assert reasons == {f"id={r.id}": (r.reason, r.detail["error"]) for r in mem_rejected}
    assert reasons["id=bad0"] == ("unreadable image", "empty image file")
    assert reasons["id=bad1"][0] == "unreadable image"
    assert "bomb" in reasons["id=bad2"][1] or "too large" in reasons["id=bad2"][1]  # not decoded
    assert reasons["id=bad3"][0] == reasons["id=bad4"][0] == "unsafe image path"
    # Stored without the image expansion: one placeholder per image sample on disk.
    assert part.ids.size == sum(ds.lengths()) - (N_IMG - 1) * sum(ds.has_image())


def test_prepared_folder_is_reused_not_rebuilt(setup, tmp_path):
    _root, imgs, insts, enc, proc = setup
    folder = prepare(insts, enc, ImageCache(imgs, proc.image_processor), tmp_path / "p", processes=1)
    stamp = (folder / "ids.bin").stat().st_mtime_ns
    # Reusing must not read the instances at all: an empty list would prepare an empty folder.
    again = prepare([], enc, ImageCache(imgs, proc.image_processor), tmp_path / "p")
    assert again == folder and (folder / "ids.bin").stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary folder left behind


def test_pixel_cache_is_a_bounded_lru(setup):
    _root, imgs, _insts, _enc, proc = setup
    one = ImageCache(imgs, proc.image_processor)("ok0.png")
    size = one.numel() * one.element_size()
    cache = ImageCache(imgs, proc.image_processor, cache_mb=2.5 * size / 2**20)  # room for two
    for k in range(5):
        cache(f"ok{k}.png")
    assert list(cache._store) == ["ok3.png", "ok4.png"] and cache.bytes == 2 * size <= cache.max_bytes
    cache("ok3.png")  # a hit moves it to the most recent end
    cache("ok0.png")
    assert list(cache._store) == ["ok3.png", "ok0.png"]
    off = ImageCache(imgs, proc.image_processor)
    off("ok1.png")
    assert not off._store and off.bytes == 0  # the default keeps nothing


@pytest.mark.parametrize("start", [0, 3])
def test_loader_with_workers_yields_the_step_batches_of_zero_workers(setup, tmp_path, start):
    _root, imgs, insts, enc, proc = setup
    folder = prepare(insts, enc, ImageCache(imgs, proc.image_processor), tmp_path / "p", processes=1)
    ds = PreparedDataset(
        [PreparedPart.open(folder)], [ImageCache(imgs, proc.image_processor)], enc.image_id, N_IMG
    )
    col = partial(collate, pad_id=enc.tok.pad_token_id)
    plan = random_plan(len(ds), 3, seed=5)

    def run(workers: int, rank: int) -> list[dict]:
        # 2 processes x 2 accumulation steps, 8 steps: several epochs of 14 micro-batches.
        batches = StepBatches(plan, start, 8, world=2, rank=rank, accum=2)
        torch.manual_seed(0)
        out = list(make_loader(ds, col, batches, workers, seed=0))
        after = torch.rand(1)
        torch.manual_seed(0)
        assert torch.equal(after, torch.rand(1))  # the loader draws nothing from the global RNG
        return out

    for rank in (0, 1):
        stream = MicroBatchStream(plan)
        ref, got = run(0, rank), run(2, rank)
        assert len(ref) == len(got) == (8 - start) * 2
        for k, (a, b) in enumerate(zip(ref, got, strict=True)):
            step, acc = divmod(k, 2)
            idx = stream[(start + step) * 4 + acc * 2 + rank][1]
            expect = col([ds[i] for i in idx])
            for key in ("input_ids", "labels", "attention_mask"):
                assert torch.equal(a[key], expect[key]) and torch.equal(b[key], expect[key])
            assert (a["pixel_values"] is None) == (b["pixel_values"] is None)
            if a["pixel_values"] is not None:
                assert torch.equal(a["pixel_values"], b["pixel_values"])


def test_memory_maps_not_arrays(setup, tmp_path):
    _root, _imgs, insts, enc, _proc = setup
    part = PreparedPart.open(prepare(insts, enc, None, tmp_path / "p", processes=1))
    # Image samples without an image root are rejected, text-only ones kept, arrays mapped from disk.
    assert part.stats["kept"] == 10 and part.stats["rejected"] == 35
    assert isinstance(part.ids, np.memmap) and isinstance(part.offsets, np.memmap)
