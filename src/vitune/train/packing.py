"""Sequence packing: several encoded samples in one row, each one attending only to itself.

A packed row holds whole samples (a sample is never split; one longer than `max_length` gets a
row of its own) chosen by best-fit-decreasing inside seeded windows of the shuffled data set, so
rows come out nearly full and still change from epoch to epoch.

`collate_packed` turns a batch of rows into exactly what `LlavaForConditionalGeneration` needs for
per-sample results identical to running each sample alone:

- `position_ids` restart at 0 at every sample (rotary positions as if the sample were alone);
- `attention_mask` is a 4D additive block-diagonal causal mask `(batch, 1, L, L)`: 0 where a token
  may attend (same sample, not in the future), the dtype's minimum elsewhere. transformers uses a 4D
  mask as given, for both "sdpa" and "eager". Why not the position_ids route (2D mask None, packed
  sequences detected from position_ids)? In transformers 5.23 `create_causal_mask` only looks at
  position_ids when `past_key_values is None`, and Llama creates a `DynamicCache` whenever
  `use_cache` is on, which is the config default, also in training: a plain
  `model(input_ids=..., position_ids=...)` then silently attends across samples. `attention="position_ids"`
  is still offered: for sdpa/eager with `use_cache=False`, and for flash-attention, whose varlen path
  (which skips the masked work) transformers takes from position_ids for a batch of one row;
- `labels` are the samples' labels with each sample's first token set to -100: the loss compares
  logits[:, :-1] with labels[:, 1:], so without it the last token of one sample would be trained to
  predict the first token of the next;
- `pixel_values` are the images of the image samples in the order their placeholder tokens appear
  (row by row, sample by sample), because Llava scatters image features into the placeholders in
  that order.

Padding (only at the end of a row) forms a segment of its own, so no real token ever attends to it.
Since there is no 2D padding mask any more, batches carry `n_real` (real tokens) for throughput and
padding counts.

With the training loop: `train(model, PackedDataset(ds), partial(collate_packed, pad_id=...), cfg,
plan=PackedBatchSampler.from_dataset(ds, max_length, rows).batches)`; the loop's
`collate_fn([dataset[i] for i in micro_batch])` then receives rows, since a micro-batch of this plan
is a list of rows and `PackedDataset[row]` is the list of that row's samples.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from torch.utils.data import Dataset, Sampler

from vitune.train.labels import IGNORE_INDEX, TrainDataset
from vitune.train.sampler import epoch_generator, length_grouped_steps, modality_grouped_batches

Row = tuple[int, ...]


def best_fit_decreasing(indices: Sequence[int], lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """Rows of `indices` with total length <= max_length: longest first, each into the fullest row it fits.

    A sample of `max_length` tokens or more takes a row alone (it is never split).
    """
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row number), kept sorted for a binary search
    for i in sorted(indices, key=lambda i: -lengths[i]):  # stable: ties keep the seeded order
        n = lengths[i]
        if n >= max_length:
            rows.append([i])
            continue
        k = bisect_left(free, (n, -1))  # the row with the least room that still fits n
        if k < len(free):
            room, r = free.pop(k)
            rows[r].append(i)
            if room > n:
                insort(free, (room - n, r))
        else:
            rows.append([i])
            insort(free, (max_length - n, len(rows) - 1))
    return rows


def pack_rows(
    lengths: Sequence[int],
    max_length: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    window: int = 1024,
    has_image: Sequence[bool] | None = None,
) -> list[list[int]]:
    """Pack every index once into rows of at most `max_length` tokens.

    The data set is shuffled with a generator seeded by (seed, epoch) and packed window by window:
    a window of ~1K samples already fills rows almost perfectly, while packing the whole data set at
    once would put the same samples together in every epoch. With `has_image`, image and text-only
    samples are packed apart (image rows first), so every row holds one modality.
    """
    if max_length < 1 or window < 1:
        raise ValueError("max_length and window must be at least 1")
    g = epoch_generator(seed, epoch, "pack")
    order = torch.randperm(len(lengths), generator=g).tolist()
    parts = [order] if has_image is None else [[i for i in order if has_image[i] is m] for m in (True, False)]
    rows: list[list[int]] = []
    for part in parts:
        for start in range(0, len(part), window):
            rows += best_fit_decreasing(part[start : start + window], lengths, max_length)
    return rows


class PackedBatchSampler(Sampler[list[Row]]):
    """Batches of packed rows: rows re-packed every epoch, then length-grouped into batches.

    Yields lists of rows (tuples of sample indices); use with `PackedDataset` and `collate_packed`:
    `DataLoader(PackedDataset(ds), batch_sampler=sampler, collate_fn=partial(collate_packed, pad_id=...))`.
    Rows mix image and text-only samples freely (Llava handles mixed rows); grouping the rows by
    length puts the few part-filled rows of each window together, so padding between rows stays low.

    For FSDP, where every process must run the vision tower in the same micro-steps, pass
    `has_image` and `align` (the process count; `group` = processes x accumulation steps, a multiple
    of it): rows are then packed per modality, and batched like `sampler.modality_grouped_batches`
    (every `align` consecutive batches share a modality; a modality's last rows that cannot give
    every process a batch are dropped and counted by `dropped_in_epoch`).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_length: int,
        rows_per_batch: int,
        *,
        seed: int = 0,
        window: int = 1024,
        group: int = 1,
        mega_batch_mult: int = 50,
        has_image: Sequence[bool] | None = None,
        align: int = 1,
    ) -> None:
        if rows_per_batch < 1:
            raise ValueError("rows_per_batch must be at least 1")
        if align > 1 and has_image is None:
            raise ValueError("align > 1 needs has_image: rows are then packed per modality")
        if has_image is not None and len(has_image) != len(lengths):
            raise ValueError(f"{len(lengths)} lengths but {len(has_image)} modality flags")
        if align < 1 or group % align:
            raise ValueError(f"align must be at least 1 and divide group {group}, not {align}")
        self.has_image = None if has_image is None else [bool(f) for f in has_image]
        self.align = align
        self.lengths = list(lengths)
        self.max_length = max_length
        self.rows_per_batch = rows_per_batch
        self.seed = seed
        self.window = window
        self.group = group
        self.mega_batch_mult = mega_batch_mult
        self.epoch = 0
        self._cache: tuple[int, list[list[Row]], int] | None = None  # (epoch, batches, dropped)

    @classmethod
    def from_dataset(
        cls, dataset: TrainDataset, max_length: int, rows_per_batch: int, **kwargs
    ) -> PackedBatchSampler:
        return cls([len(e.input_ids) for e in dataset.items], max_length, rows_per_batch, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[Row]]:
        """The batches of `epoch`; a pure function of (lengths, settings, seed, epoch)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rows = pack_rows(
            self.lengths,
            self.max_length,
            seed=self.seed,
            epoch=epoch,
            window=self.window,
            has_image=self.has_image,
        )
        row_len = [sum(self.lengths[i] for i in r) for r in rows]
        g = epoch_generator(self.seed, epoch, "packed-batches")
        if self.has_image is not None:
            flags = [self.has_image[r[0]] for r in rows]  # one modality per row
            grouped = modality_grouped_batches(
                row_len,
                flags,
                self.rows_per_batch,
                g,
                group=self.group,
                align=self.align,
                mega_batch_mult=self.mega_batch_mult,
            )
            out = [[tuple(rows[r]) for r in batch] for batch in grouped]
            kept = sum(len(row) for batch in out for row in batch)
            self._cache = (epoch, out, len(self.lengths) - kept)
            return out
        steps = length_grouped_steps(
            range(len(rows)),
            row_len,
            self.rows_per_batch,
            g,
            group=self.group,
            mega_batch_mult=self.mega_batch_mult,
        )
        order = torch.randperm(len(steps), generator=g).tolist()
        out = [[tuple(rows[r]) for r in batch] for k in order for batch in steps[k]]
        self._cache = (epoch, out, 0)
        return out

    def dropped_in_epoch(self, epoch: int) -> int:
        """Samples left out of `epoch` (rows re-pack every epoch, so the count can change)."""
        self.batches(epoch)
        assert self._cache is not None
        return self._cache[2]

    def __iter__(self) -> Iterator[list[Row]]:
        epoch = self.epoch
        self.epoch += 1  # the next iteration re-packs with new rows, like a shuffling DataLoader
        return iter(self.batches(epoch))

    def __len__(self) -> int:
        # The row count depends on the packing, so this is the length of the epoch about to run.
        return len(self.batches(self.epoch))


class PackedDataset(Dataset):
    """`dataset[row]` for a row of indices: the list of those samples, for `collate_packed`."""

    def __init__(self, base: TrainDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, row: Sequence[int]) -> list[dict[str, Any]]:
        return [self.base[i] for i in row]


def block_causal_mask(segments: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(batch, 1, L, L) additive mask: 0 where query and key are in the same segment and key <= query."""
    n = segments.shape[1]
    same = segments[:, :, None] == segments[:, None, :]
    allowed = same & torch.ones(n, n, dtype=torch.bool).tril()
    # The dtype's minimum, not -inf: a fully masked row would give NaN with -inf (none exist here,
    # since every token sees itself, but the transformers masks make the same choice).
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def collate_packed(
    rows: Sequence[Sequence[dict[str, Any]]],
    pad_id: int,
    *,
    attention: Literal["4d", "position_ids"] = "4d",
    mask_dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """A batch of packed rows (each a list of `TrainDataset` items) as model inputs.

    Returns `input_ids`, `labels`, `position_ids` (B, L); `attention_mask` (B, 1, L, L) additive in
    `mask_dtype` (use the model's dtype), or None with `attention="position_ids"` (then call the model
    with `use_cache=False`); `pixel_values` (images in placeholder order) or None; `n_real`, the number
    of real (non-pad) tokens, for token and padding counts (the 2D padding mask no longer exists);
    `seq_lens`, the sample lengths of each row.
    """
    if attention not in ("4d", "position_ids"):
        raise ValueError(f"attention must be '4d' or 'position_ids', not {attention!r}")
    lens = [[len(s["input_ids"]) for s in row] for row in rows]
    n = max(sum(r) for r in lens)
    b = len(rows)
    ids = torch.full((b, n), pad_id, dtype=torch.long)
    labels = torch.full((b, n), IGNORE_INDEX, dtype=torch.long)
    pos = torch.zeros((b, n), dtype=torch.long)
    seg = torch.zeros((b, n), dtype=torch.long)
    pvs: list[torch.Tensor] = []
    for r, row in enumerate(rows):
        off = 0
        for s, item in enumerate(row):
            k = len(item["input_ids"])
            ids[r, off : off + k] = torch.tensor(item["input_ids"])
            labels[r, off : off + k] = torch.tensor(item["labels"])
            labels[r, off] = IGNORE_INDEX  # never predicted from the previous sample's last token
            pos[r, off : off + k] = torch.arange(k)
            seg[r, off : off + k] = s
            if item["pixel_values"] is not None:
                pvs.append(item["pixel_values"])
            off += k
        # Padding: its own segment with positions from 0, so the position_ids route sees a boundary too.
        pos[r, off:] = torch.arange(n - off)
        seg[r, off:] = len(row)
    return {
        "input_ids": ids,
        "labels": labels,
        "position_ids": pos,
        "attention_mask": block_causal_mask(seg, mask_dtype) if attention == "4d" else None,
        "pixel_values": torch.stack(pvs) if pvs else None,
        "n_real": sum(map(sum, lens)),
        "seq_lens": lens,
    }


def packing_stats(batches: Sequence[Sequence[Row]], lengths: Sequence[int]) -> dict[str, float]:
    """Real tokens, slots and padding fraction when each batch is padded to its longest row."""
    real = slots = 0
    for batch in batches:
        row_len = [sum(lengths[i] for i in row) for row in batch]
        real += sum(row_len)
        slots += len(row_len) * max(row_len)
    return {"tokens": real, "slots": slots, "pad_frac": 1.0 - real / slots if slots else 0.0}
