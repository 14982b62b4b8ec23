"""Build instances from merged image records: run task builders, cap per task, seed everything.

The same records, tasks, caps and seed give the same instances in the same order: each (task,
image) pair gets its own RNG derived from the seed, and the per-task cap samples with a RNG
derived from the seed and task name, so adding a task never changes another task's instances.

`build_to_dir` writes a whole build::

    OUT/instances/manifest.json              counts per task and category, caps, seed, inputs with
                                             sha256, sources and their reconciliation, exports
    OUT/instances/data/shard-TTTTT-KKK.parquet   task T's instances (at most `shard_size` per shard)
    OUT/llava.json, OUT/visionflan.json      exports (`tasks/export.py`)
    OUT/images/<task>_<idx>_<file>           with `flatten_images`
    OUT/rejected.jsonl                       every refused record with stage, locator and reason

Tasks run in a process pool (`workers`): a worker builds one task at a time, writes its shards and
flat images, and returns its export text and ledger entries; the parent appends them in task
order. Every task's output depends only on (records, task, cap, seed), so the bytes are the same
with any number of workers. Records reach the workers by `fork` (no copy, no pickling) where the
platform has it. The manifest is written last and the previous one removed first, so a folder
with a manifest always holds a finished build.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune import __version__
from vitune.data.images import check_many
from vitune.data.instance import Instance, Turn
from vitune.data.ledger import Ledger, Rejection
from vitune.data.paths import UnsafePathError, resolve_image
from vitune.data.records import ImageRecord
from vitune.data.store import MANIFEST, write_shard
from vitune.tasks.export import (
    EXPORT_FILES,
    EXPORTS,
    IMAGES_DIR,
    JsonListWriter,
    Placed,
    check_exports,
    flat_name,
    format_task,
)
from vitune.tasks.spec import BuildContext, Task, get_task
from vitune.utils.atomic import staged_dir, write_json
from vitune.utils.hashing import derive_seed, file_fingerprint

DEFAULT_CAP = 10_000  # Vision-Flan's per-task cap; 1,000 reproduces the public release
SHARD_SIZE = 50_000
STAGE = "tasks.build"
IMAGE_STAGE = "build.images"


@dataclass
class BuildReport:
    candidates: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    capped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"candidates": self.candidates, "kept": self.kept, "capped": self.capped}


@dataclass(slots=True)
class TaskCounts:
    """One task's counts: in (samples + failed images) = kept + rejected + capped."""

    samples: int = 0  # samples the builder returned
    builder_errors: int = 0  # images whose builder raised (one ledger entry each)
    render_errors: int = 0  # samples whose template could not be filled (one ledger entry each)
    candidates: int = 0  # rendered samples, before the cap
    kept: int = 0

    @property
    def rejected(self) -> int:
        return self.builder_errors + self.render_errors

    @property
    def capped(self) -> int:
        return self.candidates - self.kept

    def reconcile(self) -> dict[str, int]:
        return {
            "in": self.samples + self.builder_errors,
            "kept": self.kept,
            "rejected": self.rejected,
            "capped": self.capped,
        }


def context_for(records: Iterable[ImageRecord], *, paraphrase: bool = False) -> BuildContext:
    # The context keeps the records: multiple-choice tasks draw wrong options from other images.
    return BuildContext.from_records(records, paraphrase=paraphrase)


Candidate = tuple[ImageRecord, int, list[Turn], dict[str, Any]]


def _candidates(
    task: Task, records: list[ImageRecord], ctx: BuildContext, seed: int, ledger: Ledger, counts: TaskCounts
) -> list[Candidate]:
    """Every rendered sample of `task` over `records` (before the cap), in image order."""
    out: list[Candidate] = []
    spec, name, category = task.spec, task.name, task.spec.category
    for rec in records:
        rng = random.Random(derive_seed(seed, name, rec.image_id))
        try:
            samples = task.build(rec, rng, ctx)
        except (KeyError, ValueError, IndexError) as e:
            counts.builder_errors += 1
            ledger.reject(STAGE, "", f"task={name} image_id={rec.image_id}", f"builder error: {e}")
            continue
        counts.samples += len(samples)
        for k, sample in enumerate(samples):
            try:
                exchanges = spec.render(sample, rng)
            except (KeyError, IndexError) as e:
                counts.render_errors += 1
                ledger.reject(
                    STAGE, "", f"task={name} image_id={rec.image_id}", f"template field missing: {e}"
                )
                continue
            turns = [t for user, reply in exchanges for t in (Turn("user", user), Turn("assistant", reply))]
            out.append((rec, k, turns, {"image_id": rec.image_id, "category": category, **sample.meta}))
    counts.candidates = len(out)
    return out


def _instance(task: str, c: Candidate) -> Instance:
    rec, k, turns, meta = c
    return Instance(id=f"{task}:{rec.image_id}:{k}", image=rec.file_name, task=task, turns=turns, meta=meta)


def build_task(
    task: Task, records: list[ImageRecord], ctx: BuildContext, seed: int, ledger: Ledger
) -> list[Instance]:
    """Every instance of `task` over `records`, uncapped."""
    return [_instance(task.name, c) for c in _candidates(task, records, ctx, seed, ledger, TaskCounts())]


def cap_indices(n: int, cap: int, seed: int, task: str) -> list[int] | None:
    """The sorted positions a cap keeps among `n` candidates (None: keep all)."""
    if n <= cap:
        return None
    return sorted(random.Random(derive_seed(seed, task, "cap")).sample(range(n), cap))


def task_instances(
    task: Task,
    records: list[ImageRecord],
    ctx: BuildContext,
    seed: int,
    cap: int,
    ledger: Ledger,
    counts: TaskCounts | None = None,
) -> list[Instance]:
    """At most `cap` instances of `task`, a seeded sample of its candidates kept in image order."""
    counts = counts if counts is not None else TaskCounts()
    cands = _candidates(task, records, ctx, seed, ledger, counts)
    keep = cap_indices(len(cands), cap, seed, task.name)
    if keep is not None:
        cands = [cands[i] for i in keep]
    counts.kept = len(cands)
    return [_instance(task.name, c) for c in cands]


def resolve_tasks(tasks: Sequence[str | Task]) -> list[Task]:
    out = [t if isinstance(t, Task) else get_task(t) for t in tasks]
    dup = [n for n, c in Counter(t.name for t in out).items() if c > 1]
    if dup:
        raise ValueError(f"task {dup[0]!r} selected twice")
    return out


def build_instances(
    records: list[ImageRecord],
    task_names: Sequence[str | Task],
    *,
    cap: int = DEFAULT_CAP,
    caps: Mapping[str, int] | None = None,
    seed: int = 0,
    ledger: Ledger | None = None,
    report: BuildReport | None = None,
    paraphrase: bool = False,
) -> list[Instance]:
    """Instances of every named task, at most `cap` (or `caps[task]`) per task, in task then image order."""
    ledger = ledger if ledger is not None else Ledger()
    ctx = context_for(records, paraphrase=paraphrase)
    out: list[Instance] = []
    for task in resolve_tasks(task_names):
        counts = TaskCounts()
        items = task_instances(task, records, ctx, seed, (caps or {}).get(task.name, cap), ledger, counts)
        if report is not None:
            report.candidates[task.name] = counts.candidates
            report.kept[task.name] = counts.kept
            report.capped[task.name] = counts.capped
        out.extend(items)
    return out


# ---- the parallel build to a folder ---------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    out: Path
    seed: int
    exports: tuple[str, ...]
    flatten: bool
    image_root: Path | None
    shard_size: int


@dataclass
class TaskResult:
    """What a worker hands back for one task (instances themselves stay in the shards it wrote)."""

    index: int
    name: str
    category: str
    counts: TaskCounts
    shards: list[str]
    text: dict[str, str]
    rejections: list[Rejection]
    placed: Placed


_STATE: dict[str, Any] = {}


def _init(records: list[ImageRecord], ctx: BuildContext, opts: _Options) -> None:
    _STATE.update(records=records, ctx=ctx, opts=opts)


def _run(job: tuple[int, Task, int]) -> TaskResult:
    index, task, cap = job
    records, ctx, opts = _STATE["records"], _STATE["ctx"], _STATE["opts"]
    ledger, counts = Ledger(), TaskCounts()
    insts = task_instances(task, records, ctx, opts.seed, cap, ledger, counts)
    shards = []
    for k in range(0, len(insts), opts.shard_size):
        rel = f"data/shard-{index:05d}-{k // opts.shard_size:03d}.parquet"
        write_shard(insts[k : k + opts.shard_size], opts.out / "instances" / rel)
        shards.append(rel)
    text, placed = format_task(
        insts,
        opts.exports,
        flatten_to=opts.out / IMAGES_DIR if opts.flatten else None,
        image_root=opts.image_root,
    )
    return TaskResult(index, task.name, task.spec.category, counts, shards, text, ledger.items, placed)


def _results(
    jobs: list[tuple[int, Task, int]],
    records: list[ImageRecord],
    ctx: BuildContext,
    opts: _Options,
    workers: int,
    started: Callable[[], None],
) -> Iterator[TaskResult]:
    """Task results in job order, from a process pool or (one worker) in this process."""
    if workers <= 1 or len(jobs) <= 1:
        _init(records, ctx, opts)
        started()
        try:
            yield from map(_run, jobs)
        finally:
            _STATE.clear()
        return
    methods = mp.get_all_start_methods()
    mpctx = mp.get_context("fork" if "fork" in methods else "spawn")
    with mpctx.Pool(min(workers, len(jobs)), initializer=_init, initargs=(records, ctx, opts)) as pool:
        started()  # after the fork: no thread of ours is running while workers are created
        yield from pool.imap(_run, jobs, chunksize=1)


def _with_images(
    records: list[ImageRecord], image_root: Path, ledger: Ledger, *, decode: bool = True, workers: int = 1
) -> list[ImageRecord]:
    """Records whose image is usable under `image_root`; the others are ledgered with the reason.

    Usable: inside the root (the one path rule), present, and (with `decode`) passing the one image
    check (`data.images.check_many`, on `workers` processes): not empty, corrupt, truncated or a bomb.
    """
    reasons: list[str] = []
    paths: list[Path | None] = []
    for rec in records:
        try:
            path: Path | None = resolve_image(image_root, rec.file_name)
            missing = not path.is_file()  # type: ignore[union-attr]
            reasons.append(
                f"image file missing: {rec.file_name} (image root {image_root})" if missing else ""
            )
        except UnsafePathError as e:
            path = None
            reasons.append(str(e))
        paths.append(path)
    if decode:
        todo = [k for k, r in enumerate(reasons) if not r]
        checked = check_many([paths[k] for k in todo], workers=workers)  # type: ignore[misc]
        for k, bad in zip(todo, checked, strict=True):
            if bad:
                reasons[k] = f"bad image {records[k].file_name}: {bad}"
    out = []
    for rec, reason in zip(records, reasons, strict=True):
        if reason:
            ledger.reject(IMAGE_STAGE, "", f"image_id={rec.image_id}", reason)
        else:
            out.append(rec)
    return out


def _clear(out: Path) -> None:
    """Remove a previous build's manifest first (the folder is then visibly incomplete), then its shards."""
    inst = out / "instances"
    (inst / MANIFEST).unlink(missing_ok=True)
    if (inst / "data").is_dir():
        for old in (inst / "data").glob("shard-*.parquet"):
            old.unlink()


def build_to_dir(
    records: list[ImageRecord], task_names: Sequence[str | Task], out: str | os.PathLike, **kwargs: Any
) -> dict[str, Any]:
    """Build into a staging folder and swap it in when complete (see `_build_to` for the options): a
    failed or killed rebuild leaves the previous build in `out` intact, never a mix of both."""
    with staged_dir(out, last=("instances",)) as stage:
        return _build_to(records, task_names, stage, **kwargs)


def _build_to(
    records: list[ImageRecord],
    task_names: Sequence[str | Task],
    out: str | os.PathLike,
    *,
    cap: int = DEFAULT_CAP,
    caps: Mapping[str, int] | None = None,
    seed: int = 0,
    ledger: Ledger | None = None,
    inputs: Iterable[Path] = (),
    workers: int = 1,
    exports: Sequence[str] = EXPORTS,
    flatten_images: bool = False,
    image_root: str | os.PathLike | None = None,
    sources: Mapping[str, Any] | None = None,
    selection: Mapping[str, Any] | None = None,
    shard_size: int = SHARD_SIZE,
    paraphrase: bool = False,
    check_images: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Build the tasks and write the folder described in the module docstring; returns the manifest
    (plus `placed_images`, how flat images were linked or copied: not written, it depends on the disk).

    `caps[task]` overrides `cap`; `paraphrase` draws each instance's instruction from the catalog's
    paraphrases (seeded per task and image). `inputs`: annotation files to fingerprint (sha256).
    `sources`: how the records were read (spec, and under `reconcile` the per-file and merge
    counts), kept in the manifest. `selection`: how the tasks were asked for. `image_root`: where
    image paths resolve (needed by `flatten_images`, which first drops records whose image file is
    missing, into the ledger). `check_images` (default on, with `image_root`) first drops records whose
    image fails the one image check (missing, empty, corrupt, truncated, a bomb) into the ledger,
    checked on `workers` processes. `progress(task, kept)` is called as each task is written. The ledger
    (`ledger`, which may already hold source rejections) is written to `rejected.jsonl`.
    """
    out = Path(out)
    ledger = ledger if ledger is not None else Ledger()
    tasks = resolve_tasks(task_names)
    export_kinds = check_exports(list(exports))
    root = Path(image_root) if image_root is not None else None
    images_in = len(records)
    if flatten_images:
        if root is None:
            raise ValueError("flatten_images needs image_root (the folder image paths are relative to)")
        for t in tasks:
            flat_name(t.name, 0, "x.jpg")  # refuse an unusable task name before any work
    if root is not None and (flatten_images or check_images):
        records = _with_images(records, root, ledger, decode=check_images, workers=workers)
    caps = {t.name: (caps or {}).get(t.name, cap) for t in tasks}
    _clear(out)
    opts = _Options(out, seed, export_kinds, flatten_images, root, shard_size)
    jobs = [(i, t, caps[t.name]) for i, t in enumerate(tasks)]
    checks = cf.ThreadPoolExecutor(1)
    fingerprints: list[cf.Future] = []

    def start_checksums() -> None:
        fingerprints.extend(checks.submit(file_fingerprint, Path(p)) for p in inputs)

    report = BuildReport()
    per_task: dict[str, int] = {}
    per_category: Counter[str] = Counter()
    reconcile_tasks: dict[str, dict[str, int]] = {}
    shards: list[str] = []
    placed = Placed()
    with ExitStack() as stack:
        stack.callback(checks.shutdown)
        writers = {k: stack.enter_context(JsonListWriter(out / EXPORT_FILES[k])) for k in export_kinds}
        ctx = context_for(records, paraphrase=paraphrase)
        for res in _results(jobs, records, ctx, opts, workers, start_checksums):
            c = res.counts
            for k, w in writers.items():
                w.add(res.text[k], c.kept)
            ledger.items.extend(res.rejections)
            shards.extend(res.shards)
            report.candidates[res.name], report.kept[res.name] = c.candidates, c.kept
            report.capped[res.name] = c.capped
            per_task[res.name] = c.kept
            per_category[res.category] += c.kept
            reconcile_tasks[res.name] = c.reconcile()
            placed.add(res.placed)
            if progress is not None:
                progress(res.name, c.kept)
        if not fingerprints:
            start_checksums()
        input_prints = [f.result() for f in fingerprints]
    count = sum(per_task.values())
    export_info: dict[str, Any] = {
        k: {"file": w.path.name, "count": w.count, "sha256": w.sha256} for k, w in writers.items()
    }
    if flatten_images:
        export_info["images"] = {"dir": IMAGES_DIR, "count": count}
    elif root is not None:
        export_info["image_root"] = str(root)
    reconcile: dict[str, Any] = dict((sources or {}).get("reconcile", {}))
    if len(records) != images_in or flatten_images or check_images:
        reconcile["images"] = {"in": images_in, "kept": len(records), "rejected": images_in - len(records)}
    reconcile["tasks"] = reconcile_tasks
    ledger.write(out / "rejected.jsonl")
    by_stage = Counter(r.stage for r in ledger.items)
    manifest: dict[str, Any] = {
        "format": "vitune.instances/1",
        "vitune_version": __version__,
        "count": count,
        "shards": shards,
        "per_task": dict(sorted(per_task.items())),
        "per_category": dict(sorted(per_category.items())),
        "seed": seed,
        "cap": cap,
        "caps": caps,
        "paraphrase": paraphrase,
        "tasks": [t.name for t in tasks],
        "task_categories": {t.name: t.spec.category for t in tasks},
        "selection": dict(selection or {}),
        "records": len(records),
        "build": report.to_dict(),
        "sources": {k: v for k, v in (sources or {}).items() if k != "reconcile"},
        "inputs": input_prints,
        "reconcile": reconcile,
        "rejected": len(ledger),
        "rejected_by_stage": dict(sorted(by_stage.items())),
        "exports": export_info,
    }
    write_json(out / "instances" / MANIFEST, manifest, indent=2)
    manifest["placed_images"] = {"linked": placed.linked, "copied": placed.copied, "present": placed.present}
    return manifest
