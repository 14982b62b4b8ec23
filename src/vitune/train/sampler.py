"""Length-grouped batches that never mix image and text-only samples (LLaVA's `group_by_modality_length`).

What LLaVA-1.5 does (`llava/train/llava_trainer.py`, `LengthGroupedSampler(group_by_modality=True)`):

1. split the indices into image samples and text-only samples and shuffle each list;
2. cut each shuffled list into mega-batches of `world_size * batch_size` samples, where LLaVA passes
   `world_size = processes * gradient_accumulation_steps` (one optimizer step's worth), sort each
   mega-batch by length, longest first, and deal it into `world_size` batches of equal size whose
   total lengths are balanced;
3. shuffle the full mega-batches of both modalities together and append the two incomplete tail
   mega-batches, merged into one final (mixed) mega-batch.

LLaVA's lengths are word counts of the conversation text (the image's tokens left out; the sign
carries the modality), and its per-modality shuffles draw from the global torch RNG.

`ModalityLengthGroupedBatchSampler` keeps the idea and differs where that serves us better:

- The sorting window is `mega_batch_mult` optimizer steps (transformers' own `LengthGroupedSampler`
  uses up to 50). With one process and no accumulation LLaVA's window is a single batch, so sorting
  inside it changes nothing and only the modality split cuts padding; a wider window groups lengths
  within a modality too. `mega_batch_mult=1` gives LLaVA's window.
- A sorted window is cut into consecutive batches (similar lengths in each), and `group` consecutive
  batches (one optimizer step, LLaVA's `world_size`) stay together when the steps are shuffled.
- The tails are never merged: the last batch of each modality is just smaller (or dropped with
  `drop_last`), so no batch ever mixes modalities.
- It yields whole batches (a batch sampler: `DataLoader(ds, batch_sampler=s, collate_fn=...)`), since a
  flat index order would let the DataLoader glue one modality's tail onto the other's head.
- Lengths are token counts, image placeholders included (they cost as much compute as text).
- Every random choice comes from a generator seeded by `(seed, epoch)`: the same seed and epoch give
  the same batches, and each new iteration moves to the next epoch, like a shuffling DataLoader.
  `batches(epoch)` is a pure function, usable directly as the training loop's `plan`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from vitune.train.labels import Encoded, TrainDataset
from vitune.utils.hashing import derive_seed


def epoch_generator(seed: int, epoch: int, purpose: str) -> torch.Generator:
    """A torch generator for one (seed, epoch, purpose); independent of the global torch RNG."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, purpose, epoch))
    return g


def modality_lengths(items: Sequence[Encoded]) -> tuple[list[int], list[bool]]:
    """Token lengths (image placeholders included: they cost compute) and whether each has an image."""
    return [len(e.input_ids) for e in items], [e.image is not None for e in items]


def length_grouped_steps(
    indices: Sequence[int],
    lengths: Sequence[int],
    batch_size: int,
    generator: torch.Generator,
    *,
    group: int = 1,
    mega_batch_mult: int = 50,
) -> list[list[list[int]]]:
    """Shuffle `indices`, sort them by length inside mega-batches, cut into batches of `batch_size`.

    Returns steps: lists of up to `group` consecutive batches that stay together when the caller
    shuffles. Only the very last batch can be short (mega-batches are multiples of the batch size).
    """
    if batch_size < 1 or group < 1 or mega_batch_mult < 1:
        raise ValueError("batch_size, group and mega_batch_mult must be at least 1")
    perm = torch.randperm(len(indices), generator=generator).tolist()
    order = [indices[p] for p in perm]
    step = batch_size * group
    # At least ~4 mega-batches per modality, so that small data sets still get shuffled batches
    # rather than one globally sorted list (transformers' sampler caps the window the same way).
    mult = max(1, min(mega_batch_mult, len(order) // (4 * step)))
    window = step * mult
    steps: list[list[list[int]]] = []
    for start in range(0, len(order), window):
        # Stable sort: equal lengths keep their shuffled order, so ties do not reintroduce bias.
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches = [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
        steps.extend(batches[k : k + group] for k in range(0, len(batches), group))
    return steps


class ModalityLengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of one modality each, grouped by length, shuffled; seeded by (seed, epoch).

    `lengths[i]` is the token length of sample i and `has_image[i]` its modality. `group` is LLaVA's
    `world_size` (processes x gradient-accumulation steps): that many consecutive batches come from
    the same sorted window and stay adjacent.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        has_image: Sequence[bool],
        batch_size: int,
        *,
        seed: int = 0,
        group: int = 1,
        mega_batch_mult: int = 50,
        drop_last: bool = False,
    ) -> None:
        if len(lengths) != len(has_image):
            raise ValueError(f"{len(lengths)} lengths but {len(has_image)} modality flags")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.lengths = list(lengths)
        self.has_image = [bool(f) for f in has_image]
        self.batch_size = batch_size
        self.seed = seed
        self.group = group
        self.mega_batch_mult = mega_batch_mult
        self.drop_last = drop_last
        self.epoch = 0

    @classmethod
    def from_dataset(
        cls, dataset: TrainDataset, batch_size: int, **kwargs
    ) -> ModalityLengthGroupedBatchSampler:
        lengths, has_image = modality_lengths(dataset.items)
        return cls(lengths, has_image, batch_size, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration uses (then it keeps counting up from there)."""
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of `epoch`; a pure function of (lengths, modalities, settings, seed, epoch)."""
        g = epoch_generator(self.seed, epoch, "modality-length-grouped")
        steps: list[list[list[int]]] = []
        for modality in (True, False):
            idx = [i for i, f in enumerate(self.has_image) if f is modality]
            if idx:
                steps += length_grouped_steps(
                    idx,
                    self.lengths,
                    self.batch_size,
                    g,
                    group=self.group,
                    mega_batch_mult=self.mega_batch_mult,
                )
        if self.drop_last:
            steps = [[b for b in s if len(b) == self.batch_size] for s in steps]
            steps = [s for s in steps if s]
        order = torch.randperm(len(steps), generator=g).tolist()
        return [b for k in order for b in steps[k]]

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        # Advance now (not lazily) so that re-iterating, as a training loop does per epoch, reshuffles.
        self.epoch += 1
        return iter(self.batches(epoch))

    def __len__(self) -> int:
        n_img = sum(self.has_image)
        counts = (n_img, len(self.has_image) - n_img)
        if self.drop_last:
            return sum(n // self.batch_size for n in counts)
        return sum(-(-n // self.batch_size) for n in counts)


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Pad slots / all slots when every batch is right-padded to its longest sample."""
    slots = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    real = sum(lengths[i] for b in batches for i in b)
    return 1.0 - real / slots if slots else 0.0
