"""Training throughput of three batching schemes on the same tiny LLaVA and data, side by side.

(a) LLaVA-style plain random batches, right-padded (`labels.collate`, shuffling DataLoader);
(b) length-grouped batches that never mix modalities (`sampler.ModalityLengthGroupedBatchSampler`);
(c) packed rows (`packing.PackedBatchSampler` + `collate_packed`, block-diagonal 4D mask), rows
    length-grouped into batches; rows per batch are chosen so a step holds about as many real
    tokens as a step of (a).

Data: a small embedded world (`generate_world`) read back through the public-format readers, the
quickstart's tasks plus multi-turn VQA dialogues, and a seeded share of text-only copies (images
dropped) standing in for LLaVA's ShareGPT conversations. Each scheme gets its own copy of the same initial model and runs the same
number of optimizer steps with the training loop's exact model call and loss. The schemes take turns
in rounds, so load from other jobs on the machine falls on all three alike.

Tokens are real (non-pad) tokens, image placeholders included (they go through the LLM too).

    .venv/bin/python benchmarks/train_packing.py [--images 400] [--steps 60] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from vitune.data.instance import Instance
from vitune.sources.merge import load_world
from vitune.tasks.build import build_instances
from vitune.train.labels import IGNORE_INDEX, ImageCache, LabelEncoder, build_dataset, collate
from vitune.train.model import build_model, get_preset, processor_for
from vitune.train.packing import PackedBatchSampler, PackedDataset, collate_packed
from vitune.train.sampler import ModalityLengthGroupedBatchSampler
from vitune.train.tokenizer import corpus_texts, train_tokenizer
from vitune.utils.hashing import derive_seed
from vitune.world.generate import generate_world
from vitune.world.layout import WorldLayout

# The quickstart's tasks plus multi-turn VQA dialogues, the long tail of the length distribution.
TASKS = [
    "vqa_short_answer",
    "vqa_dialog",
    "object_color",
    "object_shape",
    "object_counting",
    "object_existence",
    "coco_caption_coarse",
    "color_inventory",
    "object_inventory",
]


@dataclass
class Run:
    name: str
    loader: DataLoader
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    it: Any = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    steps: int = 0
    samples: int = 0
    tokens: int = 0
    slots: int = 0
    loss_sum: float = 0.0
    supervised: int = 0

    def next_batch(self) -> dict[str, Any]:
        while True:
            if self.it is None:
                self.it = iter(self.loader)  # a new epoch: the samplers reshuffle / repack
            try:
                return next(self.it)
            except StopIteration:
                self.it = None


def make_data(world: Path, images: int, seed: int, text_frac: float) -> list[Instance]:
    generate_world(world, images, seed, workers=1)
    records = load_world(world, "train")
    insts = build_instances(records, TASKS, seed=seed)
    rng = random.Random(derive_seed(seed, "bench-text-only"))
    text = [replace(i, id=i.id + ":text", image=None) for i in rng.sample(insts, int(text_frac * len(insts)))]
    return insts + text


def step(run: Run, max_grad_norm: float = 1.0) -> None:
    t0, c0 = time.perf_counter(), time.process_time()  # batch assembly counts: (c) builds its 4D mask there
    b = run.next_batch()
    # Exactly the training loop's call: attention_mask is 2D (a, b) or 4D (c); position_ids only for (c).
    out = run.model(
        input_ids=b["input_ids"],
        attention_mask=b.get("attention_mask"),
        position_ids=b.get("position_ids"),
        pixel_values=b["pixel_values"],
    )
    logits = out.logits[:, :-1].float()
    target = b["labels"][:, 1:]
    n_sup = int((target != IGNORE_INDEX).sum())
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    (loss / max(1, n_sup)).backward()
    torch.nn.utils.clip_grad_norm_([p for p in run.model.parameters() if p.requires_grad], max_grad_norm)
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    run.seconds += time.perf_counter() - t0
    run.cpu_seconds += time.process_time() - c0
    run.steps += 1
    run.tokens += int(b["n_real"]) if "n_real" in b else int(b["attention_mask"].sum())
    run.slots += b["input_ids"].numel()
    run.samples += sum(len(r) for r in b["seq_lens"]) if "seq_lens" in b else b["input_ids"].shape[0]
    run.loss_sum += float(loss.detach())
    run.supervised += n_sup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=60, help="timed optimizer steps per scheme")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per scheme first")
    ap.add_argument("--rounds", type=int, default=12, help="the schemes take turns this many times")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument(
        "--text-frac", type=float, default=0.1, help="text-only copies, as a share of the instances"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--freeze-vision",
        action="store_true",
        help="freeze the vision tower, as LLaVA (and vitune's tiny recipes after their dense stage) do",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"cpus={os.cpu_count()} threads={args.threads} load before={os.getloadavg()[0]:.2f}")

    t0 = time.perf_counter()
    preset = get_preset(args.preset)
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        world = Path(d) / "world"
        insts = make_data(world, args.images, args.seed, args.text_frac)
        tok = train_tokenizer(corpus_texts(insts), vocab_size=2000)
        proc = processor_for(build_model(preset, tok, seed=args.seed), tok)
        images = ImageCache(WorldLayout(world).image_root, proc.image_processor)
        enc = LabelEncoder(tok, preset.image_seq_length, "vicuna_v1", args.max_length)
        ds, rejected, stats = build_dataset(insts, enc, images)  # decodes and caches every image now
    lengths = [len(e.input_ids) for e in ds.items]
    mean_len = sum(lengths) / len(lengths)
    print(
        f"data: {stats['kept']} samples ({stats['image']} image, {stats['text_only']} text-only), "
        f"{len(rejected)} rejected, length mean {mean_len:.0f} min {min(lengths)} max {max(lengths)}; "
        f"prepared in {time.perf_counter() - t0:.0f} s"
    )

    bs, seed = args.batch_size, args.seed
    pad = partial(collate, pad_id=tok.pad_token_id)
    rows_per_batch = max(1, round(bs * mean_len / args.max_length))
    g = torch.Generator().manual_seed(seed)
    loaders = {
        "(a) random, right-padded": DataLoader(ds, batch_size=bs, shuffle=True, generator=g, collate_fn=pad),
        "(b) modality length-grouped": DataLoader(
            ds,
            batch_sampler=ModalityLengthGroupedBatchSampler.from_dataset(ds, bs, seed=seed),
            collate_fn=pad,
        ),
        f"(c) packed {rows_per_batch}x{args.max_length} + grouped": DataLoader(
            PackedDataset(ds),
            batch_sampler=PackedBatchSampler.from_dataset(ds, args.max_length, rows_per_batch, seed=seed),
            collate_fn=partial(collate_packed, pad_id=tok.pad_token_id),
        ),
    }
    runs = []
    for name, loader in loaders.items():
        model = build_model(preset, tok, seed=seed)  # identical initial weights for every scheme
        if args.freeze_vision:
            model.model.vision_tower.requires_grad_(False)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95))
        runs.append(Run(name, loader, model, opt))
    for run in runs:
        for _ in range(args.warmup):
            step(run)
        run.seconds = run.cpu_seconds = run.loss_sum = 0.0
        run.steps = run.samples = run.tokens = run.slots = run.supervised = 0
    per_round = [args.steps // args.rounds + (k < args.steps % args.rounds) for k in range(args.rounds)]
    for n in per_round:
        for run in runs:
            for _ in range(n):
                step(run)

    ref = runs[0]
    print(
        f"\n{args.steps} optimizer steps per scheme, preset {args.preset!r}, load after {os.getloadavg()[0]:.2f}"
    )
    print("tokens/s: wall clock; tokens/cpu-s: per CPU second of this process (robust to other jobs' load)\n")
    head = f"{'scheme':<34}{'samples/step':>13}{'tokens/step':>12}{'padding':>9}"
    head += f"{'tokens/s':>10}{'x (a)':>7}{'tokens/cpu-s':>14}{'x (a)':>7}{'samples/s':>11}{'x (a)':>7}{'loss/token':>12}"
    print(head)
    for r in runs:
        tps, cps, sps = r.tokens / r.seconds, r.tokens / r.cpu_seconds, r.samples / r.seconds
        ref_tps, ref_cps, ref_sps = (
            ref.tokens / ref.seconds,
            ref.tokens / ref.cpu_seconds,
            ref.samples / ref.seconds,
        )
        print(
            f"{r.name:<34}{r.samples / r.steps:>13.1f}{r.tokens / r.steps:>12.0f}{1 - r.tokens / r.slots:>9.1%}"
            f"{tps:>10.0f}{tps / ref_tps:>7.2f}{cps:>14.0f}{cps / ref_cps:>7.2f}{sps:>11.1f}{sps / ref_sps:>7.2f}"
            f"{r.loss_sum / r.supervised:>12.3f}"
        )
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
