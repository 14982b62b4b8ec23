"""Does the training input pipeline scale to LLaVA-665K-sized data? Memory, preparation, first step.

A LLaVA-665K-shaped mix at real shapes: a 336-px CLIP image processor (LLaVA's pad-to-square), 576
image tokens (patch 14), max length 2048, vicuna_v1, a 32K-vocabulary BPE tokenizer trained here on
generated text. Samples: ~90% image conversations (1-8 rounds; short VQA answers, longer
descriptions) and ~10% text-only multi-turn conversations, over `--images` distinct small JPEGs
(generated once, reused across sizes; each image is used by several samples, as COCO images are in
LLaVA's mix). Nothing is downloaded.

For each size (`--sizes`), in fresh processes:

1. `prepare`: read the LLaVA JSON, encode + image-check on a process pool, write the on-disk cache
   (`train/prepare.py`); samples/s and the peak RSS of that process.
2. `train`: with the cache prepared, open it, build the length-grouped modality plan, start the
   DataLoader and run 2 optimizer steps of a small LLaVA (a CLIP tower at 336 px / patch 14 and a
   Llama, random weights, both narrow) through `train/loop.py`: time to the first step, peak RSS of
   the training process (what must stay flat in the data size). Then the loader alone, `--workers`
   workers, over `--loader-batches` batches: samples/s per worker.

The rate to compare with: LLaVA-1.5-7B's instruction tuning consumed 665K samples in about 10 h on
8xA100, ~18.5 samples/s for the whole job, ~2.3 samples/s per GPU.

`--done-when`: issue #12's check instead: 2 training steps on a LLaVA JSON over 400 vs 4,000
distinct 336x336 images (one sample per image, unprepared: preparation is part of the run), peak
RSS and the time to the first step of each.

    .venv/bin/python benchmarks/train_input_scale.py --sizes 10000 50000 [--images 20000]
    .venv/bin/python benchmarks/train_input_scale.py --done-when
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LLAVA_RATE = 665_000 / (10 * 3600)  # samples/s of LLaVA-1.5-7B's run on 8xA100
WORDS = 6000  # distinct generated words: enough text for a 32K-vocabulary BPE


def _rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS in MB. For this process, the VmHWM of its own address space: `ru_maxrss` survives
    fork + exec on Linux, so a child started by a large parent would report the parent's peak."""
    if who == resource.RUSAGE_SELF and os.path.exists("/proc/self/status"):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KB


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _word(rng: random.Random) -> str:
    syl = ["ka", "lo", "mi", "tre", "su", "ven", "dor", "pha", "qui", "zel", "bra", "nu", "st", "xo", "ge"]
    return "".join(rng.choice(syl) for _ in range(rng.randint(1, 4)))


def make_images(folder: Path, n: int, side: tuple[int, int]) -> None:
    """`n` distinct small JPEGs (seeded noise over a colour; skipped when present)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(n)
    for i in range(n):
        path = folder / f"{i:07d}.jpg"
        if not path.exists():
            c = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            img = Image.effect_noise(side, 40 + i % 60).convert("RGB")
            Image.blend(img, Image.new("RGB", side, c), 0.6).save(path, quality=80)


def make_mix(path: Path, n: int, n_images: int, seed: int = 0) -> None:
    """A LLaVA JSON of `n` samples shaped like mix-665K (see the module docstring)."""
    rng = random.Random(seed)
    words = [_word(random.Random(k)) for k in range(WORDS)]

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi))).capitalize() + "."

    rows = []
    for i in range(n):
        image = i % 10 != 9
        kind = rng.random()
        rounds = rng.randint(1, 8) if kind < 0.6 else rng.randint(1, 3)
        conv = []
        for r in range(rounds):
            q = text(6, 20)
            if kind < 0.6:  # short VQA answers, LLaVA's "single word or phrase" prompt
                a = text(1, 3)
                q += " Answer the question using a single word or phrase."
            else:  # conversations, descriptions, reasoning
                a = text(20, 120)
            if r == 0 and image:
                q = "<image>\n" + q
            conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
        row: dict[str, Any] = {"id": str(i), "conversations": conv}
        if image:
            row["image"] = f"{rng.randrange(n_images):07d}.jpg"
        rows.append(row)
    path.write_text(json.dumps(rows), encoding="utf-8")


def make_tokenizer(folder: Path, vocab: int = 32000):
    """A 32K byte-level BPE trained on generated text (saved once, reloaded after)."""
    from transformers import AutoTokenizer

    from vitune.train.tokenizer import train_tokenizer

    if (folder / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(folder)
    rng = random.Random(1)
    words = [_word(random.Random(k)) for k in range(WORDS)]
    texts = [" ".join(rng.choice(words) for _ in range(200)) for _ in range(20000)]
    texts += [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(400)) for _ in range(20000)
    ]
    tok = train_tokenizer(texts, vocab_size=vocab)
    tok.save_pretrained(folder)
    return tok


def _parts(image_size: int = 336, patch: int = 14):
    from vitune.train.model import Preset, build_image_processor

    # Real input shapes (336 px, patch 14 -> 576 image tokens, 2048 positions), narrow layers.
    preset = Preset(image_size, patch, 32, 1, 2, 64, 2, 2, max_positions=4096)
    return preset, build_image_processor(image_size)


def child_prepare(work: Path, data: Path, images: Path, out: Path) -> dict[str, Any]:
    from vitune.data.ledger import Ledger
    from vitune.data.llava import read_llava_json
    from vitune.train.labels import ImageCache, LabelEncoder
    from vitune.train.prepare import available_cores, prepare

    tok = make_tokenizer(work / "tokenizer")
    preset, proc = _parts()
    t0, c0 = time.perf_counter(), _cpu() + _cpu(resource.RUSAGE_CHILDREN)
    instances = read_llava_json(data, Ledger())
    t_read = time.perf_counter() - t0
    enc = LabelEncoder(tok, preset.image_seq_length, "vicuna_v1", 2048)
    folder = prepare(instances, enc, ImageCache(images, proc), out)
    seconds = time.perf_counter() - t0
    cpu = _cpu() + _cpu(resource.RUSAGE_CHILDREN) - c0
    stats = json.loads((folder / "stats.json").read_text())
    return {
        "samples": len(instances),
        "kept": stats["kept"],
        "read_s": t_read,
        "prepare_s": seconds,
        "samples_per_s": len(instances) / seconds,
        "cpu_s": cpu,
        "samples_per_cpu_s": len(instances) / cpu,
        "processes": min(8, available_cores()),
        "rss_mb": _rss_mb(),
        "workers_rss_mb": _rss_mb(resource.RUSAGE_CHILDREN),
    }


def child_train(
    work: Path, images: Path, prepared: Path, workers: int, loader_batches: int
) -> dict[str, Any]:
    t_start = time.perf_counter()
    from functools import partial

    from vitune.train.labels import ImageCache, collate
    from vitune.train.loop import StepBatches, TrainConfig, make_loader, train
    from vitune.train.model import build_model
    from vitune.train.prepare import PreparedDataset, PreparedPart
    from vitune.train.sampler import ModalityLengthGroupedBatchSampler
    from vitune.train.tokenizer import image_token_id

    tok = make_tokenizer(work / "tokenizer")
    preset, proc = _parts()
    part = PreparedPart.open(prepared)
    ds = PreparedDataset([part], [ImageCache(images, proc)], image_token_id(tok), preset.image_seq_length)
    batch = 4
    plan = ModalityLengthGroupedBatchSampler(ds.lengths(), ds.has_image(), batch, seed=0).batches
    plan(0)
    rss_index = _rss_mb()  # the process with the data opened and the first epoch planned
    model = build_model(preset, tok)
    col = partial(collate, pad_id=tok.pad_token_id)
    first: list[tuple[float, float]] = []
    cfg = TrainConfig(lr=1e-4, max_steps=2, batch_size=batch, num_workers=workers, log_every=1, seed=0)
    train(
        model,
        ds,
        col,
        cfg,
        plan=plan,
        progress=lambda rec: first.append((time.perf_counter() - t_start, _cpu())),
    )
    rss_train = _rss_mb()
    # The loader alone; its rate per worker in CPU time too (the workers' CPU, counted once they
    # have exited), since on a shared machine wall time measures the other jobs as much as this.
    t0, n, cw = time.perf_counter(), 0, _cpu(resource.RUSAGE_CHILDREN)
    loader = make_loader(ds, col, StepBatches(plan, 0, loader_batches, 1, 0, 1), workers, seed=0)
    for b in loader:
        n += b["input_ids"].shape[0]
    wall = time.perf_counter() - t0
    del loader, b
    import gc

    gc.collect()
    cpu_workers = _cpu(resource.RUSAGE_CHILDREN) - cw
    rate = n / wall
    return {
        "first_step_s": first[0][0],
        "rss_index_mb": rss_index,
        "first_step_cpu_s": first[0][1],
        "loader_samples_per_worker_cpu_s": n / cpu_workers if workers and cpu_workers > 0 else None,
        "rss_mb": rss_train,
        "rss_after_loader_mb": _rss_mb(),
        "loader_samples_per_s": rate,
        "per_worker": rate / max(1, workers),
        "workers": workers,
    }


def _child(mode: str, **kw: Any) -> dict[str, Any]:
    args = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--child-args",
        json.dumps({k: str(v) for k, v in kw.items()}),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit(f"{mode} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scale(args: argparse.Namespace) -> None:
    work = Path(args.work)
    images = work / "images"
    t0 = time.perf_counter()
    make_images(images, args.images, (160, 120))
    make_tokenizer(work / "tokenizer")
    print(f"set-up: {args.images} images, tokenizer ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    rows = []
    for n in args.sizes:
        data = work / f"mix_{n}.json"
        if not data.exists():
            make_mix(data, n, args.images)
        prepared = work / f"prepared_{n}"
        if prepared.exists():
            import shutil

            shutil.rmtree(prepared)
        p = _child("prepare", work=work, data=data, images=images, out=prepared)
        t = _child(
            "train",
            work=work,
            images=images,
            prepared=prepared,
            workers=args.workers,
            batches=args.loader_batches,
        )
        rows.append((n, p, t))
        print(f"{n}: prepare {p} / train {t}", file=sys.stderr)
    print(
        f"| samples | prepare samples/s: wall ({rows[0][1]['processes']} processes) / per CPU-second | "
        "prepare peak RSS | training RSS: data index / after 2 steps | first step after the cache: wall / CPU | "
        f"loader samples/s per worker: wall / per CPU-second ({args.workers} workers) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n, p, t in rows:
        per_cpu = t["loader_samples_per_worker_cpu_s"] or 0
        print(
            f"| {n:,} | {p['samples_per_s']:,.0f} / {p['samples_per_cpu_s']:,.0f} | {p['rss_mb']:,.0f} MB | "
            f"{t['rss_index_mb']:,.0f} / {t['rss_mb']:,.0f} MB | {t['first_step_s']:.1f} s / "
            f"{t['first_step_cpu_s']:.1f} s | {t['per_worker']:,.0f} / {per_cpu:,.0f} |"
        )
    print(
        f"\ntraining RSS growth {rows[0][0]:,} -> {rows[-1][0]:,} samples: data index "
        f"{rows[-1][2]['rss_index_mb'] - rows[0][2]['rss_index_mb']:+,.0f} MB, peak "
        f"{rows[-1][2]['rss_mb'] - rows[0][2]['rss_mb']:+,.0f} MB (target < 512 MB)"
    )
    per_worker = min(t["per_worker"] for _, _, t in rows)
    per_worker_cpu = min(t["loader_samples_per_worker_cpu_s"] or 0 for _, _, t in rows)
    print(
        f"loader: {per_worker:,.0f} samples/s per worker wall, {per_worker_cpu:,.0f} per worker CPU-second = "
        f"{per_worker_cpu / LLAVA_RATE:.1f}x what LLaVA-1.5-7B consumes on all 8 GPUs "
        f"({LLAVA_RATE:.1f} samples/s; target >= 100 per worker)"
    )
    slowest = min(p["samples_per_s"] for _, p, _ in rows)
    per_cpu = min(p["samples_per_cpu_s"] for _, p, _ in rows)
    print(
        f"prepare: {slowest:,.0f} samples/s wall, {per_cpu:,.0f} per CPU-second = {2 * per_cpu:,.0f}/s on 2 "
        f"idle cores (target >= 2,000 on 2 cores); load average now {os.getloadavg()[0]:.1f}"
    )


def _one_per_image(n: int) -> list[dict[str, Any]]:
    """One short image conversation per image 0..n-1."""
    rng = random.Random(n)
    words = [_word(random.Random(k)) for k in range(WORDS)]

    def say(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k))

    return [
        {
            "id": str(i),
            "image": f"{i:07d}.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\n" + say(12)},
                {"from": "gpt", "value": say(30)},
            ],
        }
        for i in range(n)
    ]


def done_when(args: argparse.Namespace) -> None:
    work = Path(args.work) / "done_when"
    images = work / "images"
    make_images(images, 4000, (336, 336))
    make_tokenizer(Path(args.work) / "tokenizer")
    rows = []
    for n in (400, 4000):
        data = work / f"one_per_image_{n}.json"
        data.write_text(json.dumps(_one_per_image(n)))
        prepared = work / f"prepared_{n}"
        if prepared.exists():
            import shutil

            shutil.rmtree(prepared)
        t0 = time.perf_counter()
        p = _child("prepare", work=Path(args.work), data=data, images=images, out=prepared)
        t = _child(
            "train", work=Path(args.work), images=images, prepared=prepared, workers=args.workers, batches=20
        )
        wall = time.perf_counter() - t0
        rows.append((n, p, t, wall))
    print(
        "| distinct 336-px images | prepare (s) | first step after prepare (s) | peak RSS prepare / train |"
    )
    print("|---:|---:|---:|---:|")
    for n, p, t, _ in rows:
        print(
            f"| {n:,} | {p['prepare_s']:.1f} | {t['first_step_s']:.1f} | {p['rss_mb']:,.0f} / {t['rss_mb']:,.0f} MB |"
        )
    growth = max(rows[1][1]["rss_mb"], rows[1][2]["rss_mb"]) - max(rows[0][1]["rss_mb"], rows[0][2]["rss_mb"])
    first = rows[1][1]["prepare_s"] + rows[1][2]["first_step_s"]
    print(f"\npeak RSS growth 400 -> 4,000 images: {growth:+,.0f} MB (target <= 400 MB)")
    print(
        f"4,000 images: first step {first:.1f} s after the start, preparation included (target well under 60 s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/vitune-train-input-scale")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--loader-batches", type=int, default=60)
    ap.add_argument("--done-when", action="store_true")
    ap.add_argument("--child", choices=["prepare", "train"])
    ap.add_argument("--child-args")
    args = ap.parse_args()
    if args.child:
        kw = json.loads(args.child_args)
        if args.child == "prepare":
            out = child_prepare(Path(kw["work"]), Path(kw["data"]), Path(kw["images"]), Path(kw["out"]))
        else:
            out = child_train(
                Path(kw["work"]),
                Path(kw["images"]),
                Path(kw["prepared"]),
                int(kw["workers"]),
                int(kw["batches"]),
            )
        print(json.dumps(out))
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    done_when(args) if args.done_when else scale(args)


if __name__ == "__main__":
    main()
