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

Modality alignment across processes (`align`, for FSDP). Under FSDP every process must run the same
modules in each micro-step (the loop gives micro-step a of optimizer step s the micro-batches
[s*G + a*W, s*G + (a+1)*W) of the plan, G = W processes x A accumulation steps, one per process), so
with text-only samples in the mixture every run of `align` = W consecutive batches must share a
modality, and epochs must hold a multiple of W batches (a step may run on into the next epoch). With
`align` > 1 (and `group` = G, a multiple of it):

- whole groups (G full batches of one modality) are shuffled together as usual; the one partial
  group of each modality is not shuffled in, since it would shift every later group off the step
  boundaries: it goes to the end of the epoch (image tail, then text-only tail);
- a tail is cut into micro-steps of W full batches; what remains, r < W*B samples, becomes one more
  micro-step of W short batches (sizes differ by at most one) when r >= W, and is dropped otherwise
  (or always, with `drop_last`). `dropped_samples` counts it; it depends only on the modality sizes.

`modality_random_batches` is the aligned variant of the default random order (no length grouping):
each modality is shuffled and cut into micro-steps of W batches, and the micro-steps of both
modalities are shuffled together. A micro-batch is then never mixed, but an optimizer step still
mixes both modalities whenever it has more than one micro-step, like LLaVA's random global batches.
With `align` = 1 the grouped batches are exactly the unaligned ones (stages use the aligned random
variant only for `align` > 1 and keep the loop's `random_plan` otherwise).
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


def micro_steps(
    samples: Sequence[int], batch_size: int, align: int, *, drop_last: bool = False
) -> tuple[list[list[int]], list[int]]:
    """Cut `samples` (one modality) into batches, `align` per micro-step; returns (batches, dropped).

    Full batches while `align * batch_size` samples remain; the rest r becomes one micro-step of
    `align` short batches (contiguous, sizes differing by at most one) if r >= align and not
    `drop_last`, else it is dropped: one process must not get a micro-batch the others lack.
    """
    whole = len(samples) // (align * batch_size) * align * batch_size
    batches = [list(samples[k : k + batch_size]) for k in range(0, whole, batch_size)]
    rest = list(samples[whole:])
    if rest and len(rest) >= align and not drop_last:
        q, r = divmod(len(rest), align)
        start = 0
        for k in range(align):
            size = q + (k < r)
            batches.append(rest[start : start + size])
            start += size
        rest = []
    return batches, rest


def dropped_samples(n: int, batch_size: int, align: int, *, drop_last: bool = False) -> int:
    """How many of a modality's `n` samples an aligned plan drops per epoch (see `micro_steps`)."""
    r = n % (align * batch_size)
    return r if (drop_last or r < align) else 0


def modality_grouped_batches(
    lengths: Sequence[int],
    has_image: Sequence[bool],
    batch_size: int,
    generator: torch.Generator,
    *,
    group: int = 1,
    align: int = 1,
    mega_batch_mult: int = 50,
    drop_last: bool = False,
) -> list[list[int]]:
    """One epoch of length-grouped batches that never mix modalities (the module docstring's rules;
    `align` > 1: every `align` consecutive batches share a modality and groups stay on step bounds)."""
    if align > 1 and group % align:
        raise ValueError(f"group {group} must be a multiple of align {align}")
    steps: list[list[list[int]]] = []
    tails: list[list[int]] = []
    for modality in (True, False):
        idx = [i for i, f in enumerate(has_image) if f is modality]
        if not idx:
            continue
        s = length_grouped_steps(
            idx, lengths, batch_size, generator, group=group, mega_batch_mult=mega_batch_mult
        )
        # Only the last group of a modality can be partial (fewer batches, or a short last batch).
        if align > 1 and (len(s[-1]) < group or len(s[-1][-1]) < batch_size):
            tails.append([i for b in s.pop() for i in b])
        steps += s
    if drop_last:
        steps = [[b for b in s if len(b) == batch_size] for s in steps]
        steps = [s for s in steps if s]
    order = torch.randperm(len(steps), generator=generator).tolist()
    out = [b for k in order for b in steps[k]]
    for tail in tails:  # at the end, where they shift no whole group off the step boundaries
        out += micro_steps(tail, batch_size, align, drop_last=drop_last)[0]
    return out


def modality_random_batches(
    has_image: Sequence[bool], batch_size: int, align: int, seed: int, epoch: int
) -> list[list[int]]:
    """The random order's aligned variant: per-modality shuffles cut into micro-steps of `align`
    batches, micro-steps of both modalities shuffled together; pure in (seed, epoch). Use
    `partial(modality_random_batches, has_image, batch_size, align, seed)` as a plan."""
    g = epoch_generator(seed, epoch, "modality-random")
    units: list[list[list[int]]] = []
    for modality in (True, False):
        idx = [i for i, f in enumerate(has_image) if f is modality]
        perm = torch.randperm(len(idx), generator=g).tolist()
        batches, _ = micro_steps([idx[p] for p in perm], batch_size, align)
        units += [batches[k : k + align] for k in range(0, len(batches), align)]
    order = torch.randperm(len(units), generator=g).tolist()
    return [b for k in order for b in units[k]]


class ModalityLengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of one modality each, grouped by length, shuffled; seeded by (seed, epoch).

    `lengths[i]` is the token length of sample i and `has_image[i]` its modality. `group` is LLaVA's
    `world_size` (processes x gradient-accumulation steps): that many consecutive batches come from
    the same sorted window and stay adjacent. `align` > 1 (the process count, for FSDP) also makes
    every `align` consecutive batches share a modality across steps and epochs (module docstring).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        has_image: Sequence[bool],
        batch_size: int,
        *,
        seed: int = 0,
        group: int = 1,
        align: int = 1,
        mega_batch_mult: int = 50,
        drop_last: bool = False,
    ) -> None:
        if len(lengths) != len(has_image):
            raise ValueError(f"{len(lengths)} lengths but {len(has_image)} modality flags")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if align < 1 or group % align:
            raise ValueError(f"align must be at least 1 and divide group {group}, not {align}")
        self.lengths = list(lengths)
        self.has_image = [bool(f) for f in has_image]
        self.batch_size = batch_size
        self.seed = seed
        self.group = group
        self.align = align
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
        return modality_grouped_batches(
            self.lengths,
            self.has_image,
            self.batch_size,
            g,
            group=self.group,
            align=self.align,
            mega_batch_mult=self.mega_batch_mult,
            drop_last=self.drop_last,
        )

    def dropped_per_epoch(self) -> int:
        """Samples left out of every epoch: short tails with `drop_last`, and with `align` > 1 the
        fewer than `align` samples of a modality that cannot give every process a batch."""
        counts = (sum(self.has_image), len(self.has_image) - sum(self.has_image))
        return sum(dropped_samples(n, self.batch_size, self.align, drop_last=self.drop_last) for n in counts)

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        # Advance now (not lazily) so that re-iterating, as a training loop does per epoch, reshuffles.
        self.epoch += 1
        return iter(self.batches(epoch))

    def __len__(self) -> int:
        n_img = sum(self.has_image)
        unit = self.align * self.batch_size
        total = 0
        for n in (n_img, len(self.has_image) - n_img):
            # Whole micro-steps, plus one of short batches when the remainder is kept (`micro_steps`).
            lost = dropped_samples(n, self.batch_size, self.align, drop_last=self.drop_last)
            total += n // unit * self.align + (self.align if n % unit and not lost else 0)
        return total


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Pad slots / all slots when every batch is right-padded to its longest sample."""
    slots = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    real = sum(lengths[i] for b in batches for i in b)
    return 1.0 - real / slots if slots else 0.0
