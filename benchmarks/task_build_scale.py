"""`vitune build` at Vision-Flan scale: ~1.6M instances over 187 tasks, serial vs parallel, side by side.

The script writes synthetic annotation files in the official formats (COCO `instances_*.json` and
`captions_*.json`, Visual Genome `image_data.json` / `objects.json` / `attributes.json`, VQAv2
questions + annotations) for `--images` images. Images are only referenced, never created: the
build must not open them. It then registers `--tasks` programmatic variants of the built-in tasks
(same builders, each with its own name and instruction; for this benchmark only, the catalog is
untouched) and runs the full build (sources -> instances -> Parquet shards, manifest, ledger,
LLaVA and Vision-Flan exports) once per worker count, each in a fresh process so peak RSS is its
own. Peak RSS is sampled over the whole process tree (parent + pool workers, summed).

    .venv/bin/python benchmarks/task_build_scale.py [--images 8500] [--tasks 187] [--cap 10000]
        [--workers 1 2] [--tmp DIR]

Printed: per run the load and build seconds, instances/s, CPU microseconds per instance (this
process + pool workers: the cost without the contention of a shared machine), peak RSS; then the
ratio of the last run to the first (the baseline) and whether the output folders are byte-identical.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

BASES = (
    "coco_caption_coarse",
    "vqa_short_answer",
    "vqa_dialog",
    "object_counting",
    "object_color",
    "color_inventory",
    "object_inventory",
    "object_existence",
    "object_shape",
)
NAMES = ["circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "ring", "arrow", "heart"]
NAMES += ["moon", "cloud", "leaf", "drop", "bolt", "key", "bell", "flag", "cup", "kite"]
COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray"]
SIZES = ["small", "medium", "large"]


def write_annotations(root: Path, n: int, seed: int) -> dict[str, Path]:
    """Official-format annotation files for `n` images; returns the paths (images do not exist)."""
    rng = random.Random(seed)
    images, anns, caps, vg_img, vg_obj, vg_attr, qs, qanns = [], [], [], [], [], [], [], []
    ann_id = cap_id = obj_id = 0
    for i in range(n):
        iid, vid = 100_000 + 3 * i, i + 1
        w, h = rng.choice([(640, 480), (480, 640), (640, 427), (500, 375)])
        images.append(
            {"license": 1, "file_name": f"COCO_train2014_{iid:012d}.jpg", "height": h, "width": w, "id": iid}
        )
        objs, attr = [], []
        for _ in range(rng.randint(1, 6)):
            name, color = rng.choice(NAMES), rng.choice(COLORS)
            bw, bh = rng.randint(20, w // 3), rng.randint(20, h // 3)
            x, y = rng.randint(0, w - bw - 1), rng.randint(0, h - bh - 1)
            ann_id += 1
            anns.append(
                {"segmentation": [[x, y, x + bw, y, x + bw, y + bh]], "area": bw * bh, "iscrowd": 0,
                 "image_id": iid, "bbox": [x, y, bw, bh], "category_id": NAMES.index(name) + 1, "id": ann_id}
            )  # fmt: skip
            obj_id += 1
            o = {"object_id": obj_id, "x": x, "y": y, "w": bw, "h": bh, "names": [name]}
            objs.append(o)
            attr.append({**o, "attributes": [color, rng.choice(SIZES)]})
            objs_desc = f"a {color} {name}"
        for k in range(5):
            cap_id += 1
            caps.append({"image_id": iid, "id": cap_id, "caption": f"A picture with {objs_desc} ({k})."})
        vg_img.append(
            {"width": w, "height": h, "image_id": vid, "coco_id": iid, "flickr_id": None, "url": ""}
        )
        vg_obj.append({"image_id": vid, "objects": objs})
        vg_attr.append({"image_id": vid, "attributes": attr})
        for k in range(rng.randint(3, 7)):
            qid = iid * 10 + k
            ans = rng.choice([*COLORS, "yes", "no", "2", "3"])
            qs.append({"image_id": iid, "question": f"What is shown in region {k}?", "question_id": qid})
            answers = [{"answer": ans, "answer_confidence": "yes", "answer_id": j + 1} for j in range(10)]
            qanns.append(
                {"question_type": "what is", "multiple_choice_answer": ans, "answers": answers,
                 "image_id": iid, "answer_type": "other", "question_id": qid}
            )  # fmt: skip
    cats = [{"supercategory": "shape", "id": k + 1, "name": nm} for k, nm in enumerate(NAMES)]
    files = {
        "instances": (root / "annotations" / "instances_train2014.json",
                      {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats}),
        "captions": (root / "annotations" / "captions_train2014.json",
                     {"info": {}, "licenses": [], "images": images, "annotations": caps}),
        "image_data": (root / "vg" / "image_data.json", vg_img),
        "objects": (root / "vg" / "objects.json", vg_obj),
        "attributes": (root / "vg" / "attributes.json", vg_attr),
        "questions": (root / "vqa" / "v2_OpenEnded_mscoco_train2014_questions.json",
                      {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {},
                       "data_subtype": "train2014", "questions": qs}),
        "vqa_annotations": (root / "vqa" / "v2_mscoco_train2014_annotations.json",
                            {"info": {}, "license": {}, "data_subtype": "train2014", "data_type": "mscoco",
                             "annotations": qanns}),
    }  # fmt: skip
    for path, data in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data), encoding="utf-8")
    return {k: p for k, (p, _) in files.items()}


def sources_yaml(root: Path) -> Path:
    spec = {
        "image_root": "images",
        "split": "train",
        "coco_instances": "annotations/instances_train2014.json",
        "coco_captions": "annotations/captions_train2014.json",
        "coco_image_subdir": "train2014",
        "vg_dir": "vg",
        "vqa_questions": "vqa/v2_OpenEnded_mscoco_train2014_questions.json",
        "vqa_annotations": "vqa/v2_mscoco_train2014_annotations.json",
        "restrict_to_coco": True,
    }
    path = root / "sources.yaml"
    path.write_text(json.dumps(spec, indent=1), encoding="utf-8")  # JSON is YAML
    return path


def variants(n: int) -> list:
    """`n` tasks: the built-in builders under new names and instructions (benchmark only)."""
    from vitune.tasks import spec as task_spec

    out = []
    for k in range(n):
        base = task_spec.get_task(BASES[k % len(BASES)])
        spec = replace(base.spec, name=f"{base.name}_v{k:03d}", instruction=f"{base.spec.instruction} [v{k}]")
        fn = getattr(base.build, "fn", base.build)  # the registered builder under its engine wrapper
        wrap = getattr(task_spec, "TaskBuilder", None)
        out.append(task_spec.Task(spec, wrap(spec, fn) if wrap is not None else fn))
    return out


class RssSampler:
    """Peak of (this process + all descendants) RSS, sampled every `every` seconds."""

    def __init__(self, every: float = 0.1) -> None:
        import psutil

        self.proc, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def child(args: argparse.Namespace) -> None:
    """One measured build (runs in its own process)."""
    workers = args.workers[0]
    from vitune.data.ledger import Ledger
    from vitune.sources.spec import load_sources, load_spec_file
    from vitune.tasks.build import build_to_dir

    with RssSampler() as rss:
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        ledger = Ledger()
        loaded = load_sources(load_spec_file(Path(args.data) / "sources.yaml"), ledger)
        t1 = time.perf_counter()
        tasks = variants(args.tasks)
        manifest = build_to_dir(
            loaded.records,
            tasks,
            args.out,
            cap=args.cap,
            seed=0,
            ledger=ledger,
            inputs=loaded.inputs,
            workers=workers,
            image_root=loaded.image_root,
            check_images=False,  # the images are only referenced (see above): nothing to decode
            sources={"reconcile": loaded.reconcile()},
        )
        t2 = time.perf_counter()
        cpu = cpu_seconds() - c0
    result = {
        "workers": workers,
        "records": len(loaded.records),
        "instances": manifest["count"],
        "load_s": t1 - t0,
        "build_s": t2 - t1,
        "total_s": t2 - t0,
        "peak_rss_mb": rss.peak / 2**20,
        "cpu_s": cpu,
        "rejected": manifest["rejected"],
    }
    print("RESULT " + json.dumps(result), flush=True)


def digest(root: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            with open(p, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8_500)
    ap.add_argument("--tasks", type=int, default=187)
    ap.add_argument("--cap", type=int, default=10_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="parent folder for the data and outputs")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        files = write_annotations(root / "data", args.images, args.seed)
        sources_yaml(root / "data")
        mb = sum(p.stat().st_size for p in files.values()) / 2**20
        print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}  wrote {len(files)} annotation files "
              f"({mb:.0f} MB, {args.images} images) in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        results, digests = [], []
        for w in args.workers:
            out = root / f"out-w{w}"
            cmd = [sys.executable, __file__, "--child", "--data", str(root / "data"), "--out", str(out),
                   "--workers", str(w), "--tasks", str(args.tasks), "--cap", str(args.cap)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"build with workers={w} failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(line[7:]))
            digests.append(digest(out))
            size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
            r = results[-1]
            print(f"workers={w}: {r['records']} images -> {r['instances']:,} instances in {args.tasks} tasks; "
                  f"load {r['load_s']:.1f} s, build {r['build_s']:.1f} s, total {r['total_s']:.1f} s; "
                  f"{r['instances'] / r['total_s']:,.0f} instances/s; peak RSS {r['peak_rss_mb']:,.0f} MB; "
                  f"output {size:,.0f} MB; load avg {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        print()
        print(f"{'workers':>8}{'instances':>12}{'load s':>8}{'build s':>9}{'total s':>9}{'inst/s':>10}"
              f"{'CPU us/inst':>13}{'peak RSS MB':>13}")  # fmt: skip
        for r in results:
            print(f"{r['workers']:>8}{r['instances']:>12,}{r['load_s']:>8.1f}{r['build_s']:>9.1f}"
                  f"{r['total_s']:>9.1f}{r['instances'] / r['total_s']:>10,.0f}"
                  f"{1e6 * r['cpu_s'] / r['instances']:>13.1f}{r['peak_rss_mb']:>13,.0f}")  # fmt: skip
        base, last = results[0], results[-1]
        print(f"speed-up workers={last['workers']} vs workers={base['workers']}: "
              f"{base['total_s'] / last['total_s']:.2f}x (build step {base['build_s'] / last['build_s']:.2f}x); "
              f"byte-identical outputs: {len(set(digests)) == 1}")  # fmt: skip


if __name__ == "__main__":
    main()
