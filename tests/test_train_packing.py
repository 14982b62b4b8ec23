"""Packing: rows hold whole samples once; a packed batch gives each sample its unpacked loss and gradient."""

from __future__ import annotations

import random
from functools import partial

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vitune.data.instance import Instance, Turn
from vitune.train.labels import IGNORE_INDEX, ImageCache, LabelEncoder, build_dataset, collate
from vitune.train.model import PRESETS, build_model, processor_for
from vitune.train.packing import (
    PackedBatchSampler,
    PackedDataset,
    best_fit_decreasing,
    block_causal_mask,
    collate_packed,
    pack_rows,
    packing_stats,
)
from vitune.train.tokenizer import corpus_texts, image_token_id, train_tokenizer

PRESET = "micro"
N_IMG = PRESETS[PRESET].image_seq_length


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Micro-model matmuls are too small to gain from threads; on a busy 2-core box they only contend.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _inst(i: int, image: str | None, turns: int) -> Instance:
    qa = [
        (
            Turn("user", f"Question {k} about item {i}: what colour is the thing?"),
            Turn("assistant", f"answer {k}"),
        )
        for k in range(turns)
    ]
    return Instance(f"s{i}", image, "t", [t for pair in qa for t in pair])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    for i, rgb in enumerate([(220, 30, 30), (30, 60, 220), (30, 170, 40), (200, 200, 20)]):
        Image.new("RGB", (40, 32), rgb).save(root / f"{i}.png")
    # Image and text-only samples of different lengths (1-3 turn pairs).
    insts = [
        _inst(0, "0.png", 1),
        _inst(1, None, 2),
        _inst(2, "1.png", 3),
        _inst(3, None, 1),
        _inst(4, "2.png", 2),
        _inst(5, "3.png", 1),
        _inst(6, None, 3),
    ]
    tok = train_tokenizer(corpus_texts(insts * 3), vocab_size=300)
    proc = processor_for(build_model(PRESET, tok), tok)
    ds, rejected, _ = build_dataset(
        insts, LabelEncoder(tok, N_IMG, max_length=256), ImageCache(root, proc.image_processor)
    )
    assert not rejected
    return tok, ds


@pytest.fixture(scope="module")
def items(world):
    """The data set's items plus one fully supervised text sample (labels == input_ids, as in plain
    language-model data): its first label is not -100, so only the packing boundary mask hides it."""
    _, ds = world
    raw = {"input_ids": ds[1]["input_ids"], "labels": list(ds[1]["input_ids"]), "pixel_values": None}
    return [ds[i] for i in range(len(ds))] + [raw]


def loop_loss_terms(model, b: dict) -> torch.Tensor:
    """Per-position cross-entropy under exactly the training loop's call and shift."""
    out = model(
        input_ids=b["input_ids"],
        attention_mask=b.get("attention_mask"),
        position_ids=b.get("position_ids"),
        pixel_values=b["pixel_values"],
    )
    logits = out.logits[:, :-1].float()
    target = b["labels"][:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    )
    return ce.view(target.shape)


def per_sample_sums(terms: torch.Tensor, seq_lens: list[list[int]]) -> list[torch.Tensor]:
    out = []
    for r, lens in enumerate(seq_lens):
        off = 0
        for k in lens:
            # Positions off .. off+k-2 predict this sample's tokens 1 .. k-1; position off+k-1 would
            # predict the next sample's first token, which is masked.
            out.append(terms[r, off : off + k].sum())
            off += k
    return out


# ---- packing plans -------------------------------------------------------------------------


def test_pack_rows_every_index_once_and_nothing_split():
    rng = random.Random(0)
    lengths = [rng.randint(5, 120) for _ in range(500)] + [130, 300]  # two longer than max_length
    rows = pack_rows(lengths, 128, seed=3, window=100)
    flat = [i for r in rows for i in r]
    assert sorted(flat) == list(range(len(lengths)))
    for r in rows:
        total = sum(lengths[i] for i in r)
        assert total <= 128 or len(r) == 1
    assert [500] in rows and [501] in rows  # over-long samples alone, whole


def test_pack_rows_seeded_per_epoch():
    lengths = [random.Random(1).randint(5, 120) for _ in range(300)]
    a = pack_rows(lengths, 128, seed=0, epoch=0)
    assert a == pack_rows(lengths, 128, seed=0, epoch=0)
    assert a != pack_rows(lengths, 128, seed=0, epoch=1)
    assert a != pack_rows(lengths, 128, seed=1, epoch=0)


def test_best_fit_fills_rows():
    rng = random.Random(2)
    lengths = [rng.choice([118, 124, 130, 200, 60, 45]) for _ in range(2000)]
    rows = best_fit_decreasing(range(len(lengths)), lengths, 256)
    fill = sum(lengths) / (256 * len(rows))
    assert fill > 0.95
    # Best fit beats one sample per row by far, and every row respects the limit.
    assert len(rows) < len(lengths) / 1.8
    assert all(sum(lengths[i] for i in r) <= 256 for r in rows)


def test_packed_batch_sampler_epoch_covers_all_once_with_little_padding():
    rng = random.Random(4)
    lengths = [rng.choice([118, 124, 130, 200, 60, 45]) for _ in range(3000)]
    s = PackedBatchSampler(lengths, 256, rows_per_batch=8, seed=0)
    n0 = len(s)
    e0 = list(s)
    assert len(e0) == n0 and s.epoch == 1
    flat = [i for batch in e0 for row in batch for i in row]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(b) <= 8 for b in e0)
    assert packing_stats(e0, lengths)["pad_frac"] < 0.05
    e1 = list(s)
    assert e1 != e0 and sorted(i for b in e1 for r in b for i in r) == list(range(len(lengths)))
    s.set_epoch(0)
    assert list(s) == e0


# ---- collate layout --------------------------------------------------------------------------


def test_collate_packed_layout(world, items):
    tok, ds = world
    rows = [[items[0], items[7], items[2]], [items[3], items[4]]]
    assert items[7]["labels"][0] != IGNORE_INDEX  # only the boundary mask can hide it
    b = collate_packed(rows, pad_id=tok.pad_token_id)
    lens = [[len(x["input_ids"]) for x in r] for r in rows]
    assert b["seq_lens"] == lens
    n = max(sum(r) for r in lens)
    assert b["input_ids"].shape == b["labels"].shape == b["position_ids"].shape == (2, n)
    assert b["attention_mask"].shape == (2, 1, n, n) and b["attention_mask"].dtype == torch.float32
    off = 0
    for x, k in zip(rows[0], lens[0], strict=True):
        assert b["input_ids"][0, off : off + k].tolist() == x["input_ids"]
        assert b["position_ids"][0, off : off + k].tolist() == list(range(k))
        assert b["labels"][0, off].item() == IGNORE_INDEX
        assert b["labels"][0, off + 1 : off + k].tolist() == x["labels"][1:]
        off += k
    k1 = sum(lens[1])
    assert b["n_real"] == sum(lens[0]) + k1
    assert b["position_ids"][1, k1:].tolist() == list(range(n - k1))  # padding: a segment of its own
    assert (b["input_ids"][1, k1:] == tok.pad_token_id).all() and (b["labels"][1, k1:] == IGNORE_INDEX).all()
    # Mask: sample 2 of row 0 sees itself causally, nothing of samples 0-1.
    m = b["attention_mask"][0, 0] == 0
    s2 = lens[0][0] + lens[0][1]
    assert not m[s2:, :s2].any()
    assert m[s2 + 3, s2 : s2 + 4].all() and not m[s2 + 3, s2 + 4 :].any()
    # Images in placeholder order: row 0 sample 0, row 0 sample 2, row 1 sample 1.
    assert b["pixel_values"].shape[0] == 3
    for got, want in zip(b["pixel_values"], [ds[0], ds[2], ds[4]], strict=True):
        assert torch.equal(got, want["pixel_values"])
    assert (b["input_ids"] == image_token_id(tok)).sum() == 3 * N_IMG


def test_block_causal_mask_values():
    m = block_causal_mask(torch.tensor([[0, 0, 1, 1, 1, 2]]), torch.float32)[0, 0]
    allowed = (m == 0).int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ]
    assert m.min().item() == torch.finfo(torch.float32).min


# ---- the model sees each packed sample as if it were alone -----------------------------------


def _unpacked(model, tok, item) -> torch.Tensor:
    b = collate([item], pad_id=tok.pad_token_id)
    return loop_loss_terms(model, b).sum()


ROWS = [[0, 1, 2], [3, 7, 4], [5, 6]]  # 7: the fully supervised sample, second in its row


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_loss_and_gradient_equal_unpacked(world, items, impl):
    tok, _ = world
    model = build_model(PRESET, tok, seed=0)
    model.set_attn_implementation(impl)
    assert model.config.text_config._attn_implementation == impl
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]

    b = collate_packed([[items[i] for i in r] for r in ROWS], pad_id=tok.pad_token_id)
    assert b["n_real"] < b["input_ids"].numel()  # rows of unequal length: padding is exercised too
    packed = per_sample_sums(loop_loss_terms(model, b), b["seq_lens"])
    sum(packed).backward()
    # Parameters outside the loss path (CLIP's last layer: LLaVA reads layer -2) get no gradient.
    g_packed = [None if p.grad is None else p.grad.clone() for p in params]
    model.zero_grad(set_to_none=True)

    alone = []
    for r in ROWS:
        for i in r:
            loss = _unpacked(model, tok, items[i])
            loss.backward()  # gradients accumulate: the sum over samples
            alone.append(loss.detach())
    for got, want in zip(packed, alone, strict=True):
        assert got.item() == pytest.approx(want.item(), abs=1e-5, rel=1e-6)
    g_alone = [p.grad for p in params]
    assert [g is None for g in g_packed] == [g is None for g in g_alone]
    pairs = [(gp, ga) for gp, ga in zip(g_packed, g_alone, strict=True) if ga is not None]
    assert len(pairs) > len(params) // 2
    # Relative to the largest gradient anywhere: some entries (CLIP's key biases) are exactly zero in
    # theory and round-off noise (~1e-10) in practice, so a per-tensor relative test would be noise.
    scale = max(ga.abs().max().item() for _, ga in pairs)
    for gp, ga in pairs:
        torch.testing.assert_close(gp, ga, rtol=1e-4, atol=1e-6 * scale)
    # Every sample's loss is counted: the packed total equals the total over all positions.
    assert sum(packed).item() == pytest.approx(loop_loss_terms(model, b).sum().item(), rel=1e-6)


def test_position_ids_route_with_use_cache_false(world, items):
    """The 2D-mask-free route: packed sequences found from position_ids (needs use_cache=False)."""
    tok, _ = world
    model = build_model(PRESET, tok, seed=0).eval()
    b = collate_packed(
        [[items[i] for i in r] for r in ROWS], pad_id=tok.pad_token_id, attention="position_ids"
    )
    assert b["attention_mask"] is None
    with torch.no_grad():
        out = model(
            input_ids=b["input_ids"],
            position_ids=b["position_ids"],
            pixel_values=b["pixel_values"],
            use_cache=False,
        )
        logits = out.logits[:, :-1]
        terms = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), b["labels"][:, 1:].reshape(-1), reduction="none"
        ).view(b["labels"][:, 1:].shape)
        packed = per_sample_sums(terms, b["seq_lens"])
        alone = [_unpacked(model, tok, items[i]) for r in ROWS for i in r]
    for got, want in zip(packed, alone, strict=True):
        assert got.item() == pytest.approx(want.item(), abs=1e-5, rel=1e-6)


def test_without_block_mask_samples_leak(world, items):
    """Control: the same packed row under a plain causal mask gives different losses to later samples."""
    tok, _ = world
    model = build_model(PRESET, tok, seed=0).eval()
    b = collate_packed([[items[i] for i in r] for r in ROWS], pad_id=tok.pad_token_id)
    plain = {**b, "attention_mask": None, "position_ids": None}
    with torch.no_grad():
        leaky = per_sample_sums(loop_loss_terms(model, plain), b["seq_lens"])
        alone = [_unpacked(model, tok, items[i]) for r in ROWS for i in r]
    firsts = {0, 3, 6}  # first sample of each row: nothing before it to leak from
    for k, (got, want) in enumerate(zip(leaky, alone, strict=True)):
        if k in firsts:
            assert got.item() == pytest.approx(want.item(), abs=1e-5)
        else:
            assert abs(got.item() - want.item()) > 1e-3


def test_dataloader_packed_epoch_forward(world):
    tok, ds = world
    model = build_model(PRESET, tok, seed=0).eval()
    longest = max(len(e.input_ids) for e in ds.items)
    sampler = PackedBatchSampler.from_dataset(ds, max_length=longest + 20, rows_per_batch=2, seed=0)
    loader = DataLoader(
        PackedDataset(ds), batch_sampler=sampler, collate_fn=partial(collate_packed, pad_id=tok.pad_token_id)
    )
    seen = 0
    with torch.no_grad():
        for b in loader:
            assert b["input_ids"].shape[1] <= longest + 20
            seen += sum(len(r) for r in b["seq_lens"])
            n_img = int((b["input_ids"] == image_token_id(tok)).sum()) // N_IMG
            assert (0 if b["pixel_values"] is None else b["pixel_values"].shape[0]) == n_img
            terms = loop_loss_terms(model, b)
            assert torch.isfinite(terms).all()
    assert seen == len(ds)
