"""Modality length-grouped batches: one modality per batch, every index once, seeded, less padding."""

from __future__ import annotations

import random
from functools import partial
from itertools import pairwise

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vitune.data.instance import Instance, Turn
from vitune.train.labels import ImageCache, LabelEncoder, build_dataset, collate
from vitune.train.model import build_processor
from vitune.train.sampler import ModalityLengthGroupedBatchSampler, padding_fraction
from vitune.train.tokenizer import corpus_texts, train_tokenizer


def skewed(n: int = 1000, seed: int = 0) -> tuple[list[int], list[bool]]:
    """LLaVA-like mix: image samples (image tokens + text) and shorter text-only ones, long tails both."""
    rng = random.Random(seed)
    lengths, has_image = [], []
    for _ in range(n):
        img = rng.random() < 0.7
        base = 64 if img else 0
        text = rng.choice([20, 25, 30, 40]) if rng.random() < 0.85 else rng.randint(80, 180)
        lengths.append(base + text)
        has_image.append(img)
    return lengths, has_image


@pytest.mark.parametrize(("batch_size", "group", "mult"), [(16, 1, 50), (7, 3, 50), (16, 1, 1), (5, 2, 4)])
def test_one_modality_per_batch_and_every_index_once(batch_size, group, mult):
    lengths, has_image = skewed(997)
    s = ModalityLengthGroupedBatchSampler(
        lengths, has_image, batch_size, seed=1, group=group, mega_batch_mult=mult
    )
    batches = list(s)
    assert len(batches) == len(s)
    for b in batches:
        assert 1 <= len(b) <= batch_size
        assert len({has_image[i] for i in b}) == 1
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    # Only the last batch of each modality may be short.
    assert sum(len(b) < batch_size for b in batches) <= 2


def test_drop_last_drops_only_the_short_tails():
    lengths, has_image = skewed(997)
    s = ModalityLengthGroupedBatchSampler(lengths, has_image, 16, seed=0, drop_last=True)
    batches = list(s)
    assert len(batches) == len(s) and all(len(b) == 16 for b in batches)
    n_img = sum(has_image)
    assert len({i for b in batches for i in b}) == 16 * (n_img // 16 + (len(lengths) - n_img) // 16)


def test_deterministic_per_seed_and_epoch():
    lengths, has_image = skewed(500)
    a = ModalityLengthGroupedBatchSampler(lengths, has_image, 8, seed=3)
    b = ModalityLengthGroupedBatchSampler(lengths, has_image, 8, seed=3)
    torch.manual_seed(123)  # the global RNG must not matter
    e0, e1 = list(a), list(a)
    torch.manual_seed(456)
    assert list(b) == e0 and list(b) == e1
    assert e0 != e1  # each iteration is the next epoch
    assert a.batches(0) == e0 and a.batches(1) == e1
    a.set_epoch(1)
    assert list(a) == e1 and a.epoch == 2
    assert ModalityLengthGroupedBatchSampler(lengths, has_image, 8, seed=4).batches(0) != e0


def test_less_padding_than_random_batches():
    lengths, has_image = skewed(2000)
    bs = 16
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    random_batches = [perm[k : k + bs] for k in range(0, len(perm), bs)]
    grouped = ModalityLengthGroupedBatchSampler(lengths, has_image, bs, seed=0).batches(0)
    # LLaVA's window (one step): the modality split alone already cuts padding.
    llava_window = ModalityLengthGroupedBatchSampler(
        lengths, has_image, bs, seed=0, mega_batch_mult=1
    ).batches(0)
    p_rand = padding_fraction(random_batches, lengths)
    p_llava = padding_fraction(llava_window, lengths)
    p_grouped = padding_fraction(grouped, lengths)
    assert p_rand > 0.4
    assert p_llava < p_rand
    assert p_grouped < 0.1 and p_grouped < p_llava / 2


def test_batches_still_vary_in_length_order():
    """Shuffled steps: the epoch must not run from longest to shortest (or be sorted at all)."""
    lengths, has_image = skewed(2000)
    batches = ModalityLengthGroupedBatchSampler(lengths, has_image, 16, seed=0).batches(0)
    maxima = [max(lengths[i] for i in b) for b in batches]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)
    mods = [has_image[b[0]] for b in batches]
    switches = sum(x != y for x, y in pairwise(mods))
    assert switches > 10  # modalities interleave across the epoch, not one block after the other


def test_with_dataloader_and_collate(tmp_path):
    Image.new("RGB", (40, 30), (200, 20, 20)).save(tmp_path / "a.png")
    insts = []
    for i in range(12):
        img = "a.png" if i % 3 else None
        turns = [
            Turn("user", "Describe it." + " More?" * (i % 4)),
            Turn("assistant", "a red thing" * (1 + i % 2)),
        ]
        insts.append(Instance(f"x{i}", img, "t", turns))
    tok = train_tokenizer(corpus_texts(insts * 2), vocab_size=280)
    proc = build_processor(tok, 32, 8)
    ds, rejected, stats = build_dataset(
        insts, LabelEncoder(tok, 16, max_length=256), ImageCache(tmp_path, proc.image_processor)
    )
    assert not rejected and stats["text_only"] == 4
    sampler = ModalityLengthGroupedBatchSampler.from_dataset(ds, 3, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=partial(collate, pad_id=tok.pad_token_id))
    n = 0
    for b in loader:
        rows = b["input_ids"].shape[0]
        n += rows
        # A batch is all image samples (one image each) or all text-only (no pixel values at all).
        assert b["pixel_values"] is None or b["pixel_values"].shape[0] == rows
    assert n == len(ds) and len(loader) == len(sampler)
