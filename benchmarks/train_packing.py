"""Training throughput of three batching schemes on the same tiny LLaVA and data, side by side.

(a) LLaVA-style plain random batches, right-padded (`labels.collate`, shuffling DataLoader);
(b) length-grouped batches that never mix modalities (`sampler.ModalityLengthGroupedBatchSampler`);
(c) packed rows (`packing.PackedBatchSampler` + `collate_packed`, block-diagonal 4D mask), rows
    length-grouped into batches; rows per batch are chosen so a step holds about as many real
    tokens as a step of (a).

Data (`--mix`), both from a small embedded world (`generate_world`) read back through the
public-format readers:

- `world` (default): the quickstart's tasks plus multi-turn VQA dialogues, and a seeded share
  (`--text-frac`) of text-only copies (images dropped) standing in for LLaVA's ShareGPT
  conversations. Narrow lengths (~50-250 tokens), `max_length` 256.
- `llava665`: a length distribution shaped like LLaVA-1.5's mix-665K (REFERENCE.md §4, see
  `MIX_665K`): per-image multi-turn VQA merges, multi-turn region QA, synthesized conversations,
  detailed descriptions and reasoning (`vitune.synth`, offline template backend), short answers,
  multiple choice, captions, and long text-only multi-turn conversations up to `max_length`
  (several dialogues concatenated) for ShareGPT. `max_length` 512 (the `tiny` preset's positions).

Each scheme gets its own copy of the same initial model and runs the same number of optimizer steps
with the training loop's exact model call and loss. The schemes take turns in rounds, so load from
other jobs on the machine falls on all three alike.

Tokens are real (non-pad) tokens, image placeholders included (they go through the LLM too).

    .venv/bin/python benchmarks/train_packing.py [--images 400] [--steps 60] [--threads 1]
    .venv/bin/python benchmarks/train_packing.py --mix llava665 [--images 600] [--steps 40]
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

from vitune.data.instance import Instance, Turn
from vitune.sources.merge import load_world
from vitune.synth import TemplateBackend, get_generator, item_instances, synth
from vitune.tasks.build import build_instances
from vitune.train.labels import IGNORE_INDEX, ImageCache, LabelEncoder, build_dataset, collate
from vitune.train.model import build_model, get_preset, processor_for
from vitune.train.packing import PackedBatchSampler, PackedDataset, collate_packed, pack_rows
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


# mix-665K's composition (REFERENCE.md §4, samples per source) and each part's stand-in from the
# embedded world. LLaVA-Instruct's 157,712 split as LLaVA-Instruct-158K does (LLaVA paper: 58K
# conversations, 23K detailed descriptions, 77K complex reasoning). In LLaVA-1.5 an image's VQAv2,
# GQA and OCR-VQA questions are merged into one multi-turn sample, and RefCOCO / VG samples hold
# several region questions, so those are multi-turn here too.
INSTRUCT = 157_712
MIX_665K: dict[str, tuple[int, str]] = {
    "vqa_dialog": (82_783 + 72_140 + 80_000, "VQAv2 + GQA + OCR-VQA, questions merged per image"),
    "referring_qa": (48_447 + 86_417, "RefCOCO + VG, several region questions per sample"),
    "conversation": (INSTRUCT * 58 // 158, "LLaVA-Instruct conversations"),
    "detail_description": (INSTRUCT * 23 // 158, "LLaVA-Instruct detailed descriptions"),
    "complex_reasoning": (INSTRUCT - INSTRUCT * 58 // 158 - INSTRUCT * 23 // 158, "LLaVA-Instruct reasoning"),
    "vqa_multiple_choice": (66_160, "A-OKVQA, multiple choice"),
    "coco_caption_coarse": (21_953, "TextCaps, short captions"),
    "vqa_short_answer": (8_998, "OKVQA, short answers"),
    "sharegpt": (40_688, "ShareGPT, text-only, up to max_length"),
}
# Synthesized types and their QA pairs per sample. The template writers' defaults (15 reasoning QAs,
# 10 referring QAs: ~530-630 tokens) would run past max_length; LLaVA's samples of these sources (576
# image tokens plus text) take ~30-50% of its 2048, and with these counts ours take ~35-55% of 512.
SYNTH_ITEMS = {"conversation": 5, "detail_description": 1, "complex_reasoning": 4, "referring_qa": 4}
CHARS_PER_TOKEN = 3.5  # of this benchmark's 2,000-token BPE on world text (measured: 3.1-4.2)


def sharegpt_like(dialogs: list[Instance], n: int, max_length: int, rng: random.Random) -> list[Instance]:
    """`n` text-only multi-turn samples, each several dialogues' turns concatenated up to a target length.

    ShareGPT conversations are long and varied, and LLaVA truncates them at max_length. The targets
    are uniform between max_length / 8 and max_length tokens (estimated from characters; the label
    encoder drops whole turn pairs past max_length, so the longest end up just under it). The text is
    the world's synthesized dialogues with their images dropped: only its length matters here.
    """
    out = []
    for k in range(n):
        target = rng.uniform(max_length / 8, max_length) * CHARS_PER_TOKEN
        turns: list[Turn] = []
        chars = 0
        while chars < target:
            for q, a in rng.choice(dialogs).pairs():
                turns += [Turn("user", q), Turn("assistant", a)]
                chars += len(q) + len(a)
                if chars >= target:
                    break
        out.append(Instance(f"sharegpt-{k}", None, "sharegpt", turns))
    return out


def make_llava665(world: Path, images: int, seed: int, max_length: int) -> list[Instance]:
    """A seeded mix with mix-665K's proportions (`MIX_665K`): as many samples as the world's pools allow
    without reusing one."""
    generate_world(world, images, seed, workers=1)
    records = load_world(world, "train")
    built = build_instances(
        records, ["vqa_dialog", "vqa_multiple_choice", "coco_caption_coarse", "vqa_short_answer"], seed=seed
    )
    specs = [replace(get_generator(g), n_items=k) for g, k in SYNTH_ITEMS.items()]
    specs.append(get_generator("dialog"))  # source text of the ShareGPT stand-ins only
    res = synth(records, specs, TemplateBackend(), world.parent / "synth", seed=seed, export=False)
    synthesized = [i for it in res["items"] for i in item_instances(it, seed=seed)]
    pools: dict[str, list[Instance]] = {name: [] for name in MIX_665K}
    for inst in built + synthesized:
        pools.setdefault(inst.task, []).append(inst)
    total = sum(n for n, _ in MIX_665K.values())
    share = {name: n / total for name, (n, _) in MIX_665K.items()}
    n = int(min(len(pools[c]) / share[c] for c in MIX_665K if c != "sharegpt"))
    rng = random.Random(derive_seed(seed, "bench-llava665"))
    dialogs = pools["dialog"] + pools["conversation"]
    pools["sharegpt"] = sharegpt_like(dialogs, round(share["sharegpt"] * n), max_length, rng)
    out: list[Instance] = []
    for c in MIX_665K:
        out += rng.sample(pools[c], min(len(pools[c]), round(share[c] * n)))
    return out


def percentiles(xs: list[int], ps: tuple[int, ...] = (10, 25, 50, 75, 90, 99)) -> str:
    xs = sorted(xs)
    return " ".join(f"p{p} {xs[min(len(xs) - 1, len(xs) * p // 100)]}" for p in ps)


def print_lengths(items: list, insts: list[Instance], max_length: int, notes: dict[str, str]) -> None:
    """The token-length distribution, overall and per task (image placeholders included)."""
    by_id = {i.id: i.task for i in insts}
    lengths = [len(e.input_ids) for e in items]
    at_max = sum(n > 0.9 * max_length for n in lengths) / len(lengths)
    print(f"lengths: {percentiles(lengths)} max {max(lengths)}; {at_max:.1%} over 0.9 x max_length")
    tasks: dict[str, list[int]] = {}
    for e, n in zip(items, lengths, strict=True):
        tasks.setdefault(by_id.get(e.id, "?"), []).append(n)
    for task, ns in sorted(tasks.items(), key=lambda kv: -len(kv[1])):
        print(
            f"  {task:<24}{len(ns) / len(lengths):>6.1%}  mean {sum(ns) / len(ns):>4.0f}  "
            f"{percentiles(ns, (10, 50, 90)):<24}  {notes.get(task, '')}"
        )


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
    ap.add_argument(
        "--mix", choices=["world", "llava665"], default="world", help="the data (see the module docstring)"
    )
    ap.add_argument("--images", type=int, default=None, help="world images (default 400; llava665: 600)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument(
        "--steps", type=int, default=None, help="timed optimizer steps per scheme (default 60; llava665: 40)"
    )
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per scheme first")
    ap.add_argument("--rounds", type=int, default=12, help="the schemes take turns this many times")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=None, help="default 256; llava665: 512")
    ap.add_argument(
        "--text-frac",
        type=float,
        default=0.1,
        help="text-only copies, as a share of the instances (world mix; llava665 has its ShareGPT share)",
    )
    ap.add_argument(
        "--pack-length",
        type=int,
        nargs="+",
        default=None,
        help="row length(s) of (c), one scheme each (default max_length); a longer sample gets a row alone",
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
    # Per-mix defaults: llava665's samples are ~1.8x longer, so fewer steps keep the run as short.
    llava = args.mix == "llava665"
    args.images = args.images or (600 if llava else 400)
    args.steps = args.steps or (40 if llava else 60)
    args.max_length = args.max_length or (512 if llava else 256)
    torch.set_num_threads(args.threads)
    print(f"cpus={os.cpu_count()} threads={args.threads} load before={os.getloadavg()[0]:.2f}")

    t0 = time.perf_counter()
    preset = get_preset(args.preset)
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        world = Path(d) / "world"
        if llava:
            insts = make_llava665(world, args.images, args.seed, args.max_length)
        else:
            insts = make_data(world, args.images, args.seed, args.text_frac)
        tok = train_tokenizer(corpus_texts(insts), vocab_size=2000)
        proc = processor_for(build_model(preset, tok, seed=args.seed), tok)
        images = ImageCache(WorldLayout(world).image_root, proc.image_processor, cache_mb=2048)
        enc = LabelEncoder(tok, preset.image_seq_length, "vicuna_v1", args.max_length)
        ds, rejected, stats = build_dataset(insts, enc, images)  # decodes and caches every image now
    lengths = [len(e.input_ids) for e in ds.items]
    mean_len = sum(lengths) / len(lengths)
    print(
        f"data: {stats['kept']} samples ({stats['image']} image, {stats['text_only']} text-only), "
        f"{len(rejected)} rejected, {stats['truncated']} truncated to max_length, "
        f"length mean {mean_len:.0f} min {min(lengths)} max {max(lengths)}; "
        f"prepared in {time.perf_counter() - t0:.0f} s"
    )
    print_lengths(ds.items, insts, args.max_length, {k: v for k, (_, v) in MIX_665K.items()} if llava else {})

    bs, seed = args.batch_size, args.seed
    pad = partial(collate, pad_id=tok.pad_token_id)
    g = torch.Generator().manual_seed(seed)
    loaders = {
        "(a) random, right-padded": DataLoader(ds, batch_size=bs, shuffle=True, generator=g, collate_fn=pad),
        "(b) modality length-grouped": DataLoader(
            ds,
            batch_sampler=ModalityLengthGroupedBatchSampler.from_dataset(ds, bs, seed=seed),
            collate_fn=pad,
        ),
    }
    for pack_len in args.pack_length or [args.max_length]:
        # Rows of pack_len tokens (a longer sample gets a row of its own); rows per batch such that a
        # step holds about as many real tokens as a step of (a): bs samples of the mean length.
        rows = pack_rows(lengths, pack_len, seed=seed)
        mean_row = sum(lengths) / len(rows)
        rows_per_batch = max(1, round(bs * mean_len / mean_row))
        loaders[f"(c) packed {rows_per_batch}x{pack_len} + grouped"] = DataLoader(
            PackedDataset(ds),
            batch_sampler=PackedBatchSampler.from_dataset(ds, pack_len, rows_per_batch, seed=seed),
            collate_fn=partial(collate_packed, pad_id=tok.pad_token_id),
        )
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
