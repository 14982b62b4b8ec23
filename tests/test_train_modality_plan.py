"""Modality-aligned plans for FSDP: every micro-step's W micro-batches (one per process) share a
modality, every sample is seen once per epoch or counted as dropped, and the plan is a pure
function of (seed, epoch). Checked the way the loop deals the plan out, across epoch boundaries."""

from __future__ import annotations

import random
from functools import partial

import pytest
import torch

from vitune.train.loop import MicroBatchStream, _check_same_modules
from vitune.train.packing import PackedBatchSampler
from vitune.train.recipe import RecipeError, StageSpec
from vitune.train.sampler import (
    ModalityLengthGroupedBatchSampler,
    dropped_samples,
    micro_steps,
    modality_random_batches,
)
from vitune.train.stages import modality_alignment


def mixture(n: int, seed: int) -> tuple[list[int], list[bool]]:
    """Image samples (64 image tokens + text) and shorter text-only ones, about 1 in 4."""
    rng = random.Random(seed)
    has_image = [rng.random() < 0.75 for _ in range(n)]
    return [(64 if f else 0) + rng.randint(8, 120) for f in has_image], has_image


def plans(variant: str, lengths, has_image, batch: int, world: int, accum: int, seed: int):
    """(plan, samples dropped from an epoch) for one batching variant, aligned for `world` processes."""
    group = world * accum
    if variant == "random":
        counts = (sum(has_image), len(has_image) - sum(has_image))
        dropped = sum(dropped_samples(n, batch, world) for n in counts)
        return partial(modality_random_batches, has_image, batch, world, seed), lambda e: dropped
    if variant == "grouped":
        s = ModalityLengthGroupedBatchSampler(
            lengths, has_image, batch, seed=seed, group=group, align=world, mega_batch_mult=4
        )
        return s.batches, lambda e: s.dropped_per_epoch()
    s = PackedBatchSampler(
        lengths, 256, batch, seed=seed, window=64, group=group, has_image=has_image, align=world
    )
    return s.batches, s.dropped_in_epoch


def samples_of(batch) -> list[int]:
    # A packed plan's batch holds rows (tuples of samples); the others hold samples.
    return [i for x in batch for i in (x if isinstance(x, tuple) else (x,))]


@pytest.mark.parametrize("variant", ["random", "grouped", "packed"])
@pytest.mark.parametrize(("world", "accum", "batch", "n"), [(2, 1, 3, 301), (2, 3, 2, 250), (3, 2, 4, 407)])
def test_micro_steps_share_a_modality_and_epochs_cover_every_sample(variant, world, accum, batch, n):
    lengths, has_image = mixture(n, seed=world * 100 + n)
    plan, dropped = plans(variant, lengths, has_image, batch, world, accum, seed=7)
    for epoch in range(3):
        batches = plan(epoch)
        assert len(batches) % world == 0  # so the next epoch starts on a micro-step boundary too
        flat = [i for b in batches for i in samples_of(b)]
        assert len(flat) == len(set(flat)) and all(samples_of(b) for b in batches)
        assert len(flat) + dropped(epoch) == n
        if variant != "packed":  # only a modality's last samples, too few for one per process
            missing = set(range(n)) - set(flat)
            for f in (True, False):
                left = sum(has_image[i] is f for i in missing)
                assert left == dropped_samples(sum(x is f for x in has_image), batch, world)

    # The loop's dealing: step s, accumulation a, process r takes micro-batch (s*A + a)*W + r of
    # the endless stream of epochs; every step over three epochs passes the FSDP safety check.
    stream = MicroBatchStream(plan)
    steps = 3 * stream.per_epoch() // (world * accum) + 1
    seen_text = seen_image = False
    for s in range(steps):
        with_images = []
        for a in range(accum):
            kinds = [
                any(has_image[i] for i in samples_of(stream[(s * accum + a) * world + r][1]))
                for r in range(world)
            ]
            with_images.append(sum(kinds))
            seen_text |= not any(kinds)
            seen_image |= all(kinds)
        _check_same_modules(with_images, world)
    assert seen_text and seen_image


def test_tail_micro_steps_keep_what_gives_every_process_a_batch():
    # 13 samples, 2 processes x batch 4: one whole micro-step, then 5 left: batches of 3 and 2.
    assert micro_steps(list(range(13)), 4, 2) == ([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10], [11, 12]], [])
    # 9 samples: the 1 left over cannot give both processes a batch, so it is dropped (and counted).
    assert micro_steps(list(range(9)), 4, 2) == ([[0, 1, 2, 3], [4, 5, 6, 7]], [8])
    assert [dropped_samples(n, 4, 2) for n in (13, 9, 8)] == [0, 1, 0]
    assert micro_steps(list(range(13)), 4, 2, drop_last=True)[1] == [8, 9, 10, 11, 12]


@pytest.mark.parametrize("variant", ["random", "grouped", "packed"])
def test_aligned_plan_is_a_pure_function_of_seed_and_epoch(variant):
    lengths, has_image = mixture(300, seed=1)
    a, _ = plans(variant, lengths, has_image, 3, 2, 2, seed=5)
    torch.manual_seed(1)  # the global RNG must not matter
    e0, e1 = a(0), a(1)
    torch.manual_seed(2)
    random.seed(2)
    b, _ = plans(variant, lengths, has_image, 3, 2, 2, seed=5)
    assert b(1) == e1 and b(0) == e0 and a(0) == e0
    assert e0 != e1
    assert plans(variant, lengths, has_image, 3, 2, 2, seed=6)[0](0) != e0


def test_grouped_plan_keeps_whole_groups_on_step_boundaries():
    # LLaVA's group (processes x accumulation) of one sorted window = one optimizer step: whole
    # groups come first, each on a step boundary; the partial tails of each modality come last.
    lengths, has_image = mixture(500, seed=3)
    world, accum, batch = 2, 3, 4
    group = world * accum
    s = ModalityLengthGroupedBatchSampler(lengths, has_image, batch, seed=0, group=group, align=world)
    batches = s.batches(0)
    assert len(batches) == len(s)
    n_img = sum(has_image)
    whole = (n_img // (group * batch) + (len(has_image) - n_img) // (group * batch)) * group
    for k in range(0, whole, group):
        step = batches[k : k + group]
        assert len({has_image[i] for b in step for i in b}) == 1
        assert all(len(b) == batch for b in step)
    assert whole < len(batches)  # this mixture has tails: they follow the whole groups


def test_align_one_is_the_unaligned_plan():
    lengths, has_image = mixture(301, seed=2)
    for kw in ({}, {"group": 3}):
        plain = ModalityLengthGroupedBatchSampler(lengths, has_image, 4, seed=1, **kw)
        one = ModalityLengthGroupedBatchSampler(lengths, has_image, 4, seed=1, align=1, **kw)
        assert plain.batches(0) == one.batches(0) and len(plain) == len(one)
        assert plain.dropped_per_epoch() == 0


def test_stage_alignment_only_where_fsdp_needs_it():
    st = StageSpec(name="s", data=[{"path": "x"}], global_batch=8, per_device_batch=2)
    mixed, images = [True, False, True], [True, True]
    # 1 process and DDP keep today's plans; FSDP aligns a mixture on its process count.
    assert modality_alignment(st, 1, False, mixed) == 1
    assert modality_alignment(st, 2, False, mixed) == 1
    assert modality_alignment(st, 2, True, mixed) == 2
    assert modality_alignment(st, 2, True, images) == 1  # one modality: nothing to align
    # One process trains on an FSDP run's batches when asked to.
    emulate = st.model_copy(update={"modality_aligned_processes": 2})
    assert modality_alignment(emulate, 1, False, mixed) == 2
    assert modality_alignment(emulate, 1, False, [False, False]) == 1  # as FSDP would
    with pytest.raises(RecipeError, match="multiple of 2"):
        modality_alignment(st.model_copy(update={"modality_aligned_processes": 1}), 2, True, mixed)
    with pytest.raises(ValueError, match="must divide"):
        StageSpec(
            name="s", data=[{"path": "x"}], global_batch=6, per_device_batch=2, modality_aligned_processes=2
        )
