"""Deduplication: planted exact / near-duplicate texts and images are found, distinct items kept."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from vitune.curate.dedup import dedup_exact, dedup_images, dedup_minhash, minhash_signatures
from vitune.curate.images import ImageHashes, phash_clusters
from vitune.data.instance import Instance, Turn


def _inst(i, q, a, image="img.jpg", task="t"):
    return Instance(str(i), image, task, [Turn("user", q), Turn("assistant", a)])


def _sentence(rng: random.Random, n: int = 40) -> str:
    return " ".join(f"w{rng.randrange(3000)}" for _ in range(n))


def test_exact_duplicates_normalized_and_image_aware():
    items = [
        _inst(0, "What is this?", "A dog."),
        _inst(1, "what  is THIS?", "a dog."),  # same after normalization
        _inst(2, "What is this?", "A dog.", image="other.jpg"),  # other image: kept
        _inst(3, "What is that?", "A cat."),
    ]
    kept, removed = dedup_exact(items, [x.image for x in items])
    assert kept.tolist() == [0, 2, 3]
    assert removed == [(1, "exact duplicate", {"kept_id": "0", "kept_index": 0})]


def test_minhash_estimate_matches_jaccard():
    rng = random.Random(0)
    a = _sentence(rng, 80).split()
    b = list(a)
    for k in range(0, 80, 20):
        b[k] = "changed"
    sh = lambda ws: {tuple(ws[i : i + 5]) for i in range(len(ws) - 4)}  # noqa: E731
    true = len(sh(a) & sh(b)) / len(sh(a) | sh(b))
    sig = minhash_signatures([" ".join(a), " ".join(b)], num_perm=512)
    assert abs((sig[0] == sig[1]).mean() - true) < 0.08
    # workers do not change the result
    texts = [_sentence(rng) for _ in range(300)]
    assert np.array_equal(minhash_signatures(texts, chunk=64), minhash_signatures(texts, chunk=64, workers=2))


def test_minhash_finds_planted_near_duplicates():
    rng = random.Random(1)
    base = [_sentence(rng, 60) for _ in range(200)]
    items = [_inst(i, "Describe the image.", t, image=None) for i, t in enumerate(base)]
    planted = {}
    for k, src in enumerate(range(0, 200, 10)):
        words = base[src].split()
        words[30] = "different"  # one word changed: Jaccard ~0.84
        planted[len(items)] = src
        items.append(_inst(1000 + k, "Describe the image.", " ".join(words), image=None))
    kept, removed = dedup_minhash(items)
    assert len(kept) == 200 and sorted(kept.tolist()) == list(range(200))
    got = {i: d["kept_index"] for i, _, d in removed}
    assert got == planted
    assert all(r.startswith("near-duplicate text") and d["jaccard_estimate"] >= 0.7 for _, r, d in removed)


def test_minhash_scope_keeps_same_text_on_other_images():
    items = [
        _inst(0, "Is there a dog in the picture here?", "Yes there is a dog.", image="a.jpg"),
        _inst(1, "Is there a dog in the picture here?", "Yes there is a dog.", image="b.jpg"),
    ]
    kept, _ = dedup_minhash(items, scope_keys=["a", "b"])
    assert kept.tolist() == [0, 1]
    kept, _ = dedup_minhash(items, scope_keys=None)
    assert kept.tolist() == [0]


def _draw(path, shapes, size=128):
    im = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(im)
    for kind, box, color in shapes:
        (d.ellipse if kind == "circle" else d.rectangle)(box, fill=color)
    im.save(path)


def test_near_duplicate_images_by_phash(tmp_path):
    scenes = [
        [("circle", (10, 10, 60, 60), "red"), ("rect", (70, 70, 120, 110), "blue")],
        [("rect", (5, 60, 50, 120), "green")],
        [("circle", (40, 5, 120, 90), "black"), ("rect", (0, 0, 30, 30), "orange")],
    ]
    for k, s in enumerate(scenes):
        _draw(tmp_path / f"s{k}.png", s)
    # a resized, re-encoded copy of scene 0
    Image.open(tmp_path / "s0.png").resize((200, 200)).save(tmp_path / "s0_copy.jpg", quality=85)
    hashes = ImageHashes(tmp_path / "cache.tsv")
    files = ["s0.png", "s1.png", "s2.png", "s0_copy.jpg"]
    ph = np.array([hashes.phash(str(tmp_path / f)) for f in files], dtype=np.uint64)
    hashes.save()
    assert (tmp_path / "cache.tsv").exists()
    labels = phash_clusters(ph, 6)
    assert labels.tolist() == [0, 1, 2, 0]
    items = [_inst(k, "Describe.", "A scene.", image=f) for k, f in enumerate(files)]
    kept, removed = dedup_images(items, ph, max_distance=6)
    assert kept.tolist() == [0, 1, 2]
    assert removed[0][0] == 3 and removed[0][2]["kept_id"] == "0"
    # same text on a different image stays
    assert len(kept) == 3


def test_cached_phash_of_another_hash_size_is_recomputed(tmp_path):
    from PIL import Image

    from vitune.curate.images import ImageHashes

    p = tmp_path / "a.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p)
    h = ImageHashes(tmp_path / "cache.tsv", hash_size=8)
    small = h.phash(str(p))
    h.save()
    again = ImageHashes(tmp_path / "cache.tsv", hash_size=16)
    big = again.phash(str(p))
    assert small < 2**64 < big  # a 256-bit hash, not the cached 64-bit one
    import imagehash

    with Image.open(p) as im:
        assert big == int(str(imagehash.phash(im, hash_size=16)), 16)
        assert small == int(str(imagehash.phash(im, hash_size=8)), 16)
