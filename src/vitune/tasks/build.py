"""Build instances from merged image records: run task builders, cap per task, seed everything.

The same records, tasks, cap and seed give the same instances in the same order: each (task,
image) pair gets its own RNG derived from the seed, and the per-task cap samples with a RNG
derived from the seed and task name, so adding a task never changes another task's instances.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune.data.instance import Instance, Turn
from vitune.data.ledger import Ledger
from vitune.data.records import ImageRecord
from vitune.tasks.spec import BuildContext, Task, get_task
from vitune.utils.hashing import derive_seed

DEFAULT_CAP = 10_000  # Vision-Flan's per-task cap; 1,000 reproduces the public release


@dataclass
class BuildReport:
    candidates: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    capped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"candidates": self.candidates, "kept": self.kept, "capped": self.capped}


def context_for(records: Iterable[ImageRecord]) -> BuildContext:
    return BuildContext(object_names=tuple(sorted({o.name for r in records for o in r.objects})))


def build_task(task: Task, records: list[ImageRecord], ctx: BuildContext, seed: int, ledger: Ledger) -> list[Instance]:
    out: list[Instance] = []
    for rec in records:
        rng = random.Random(derive_seed(seed, task.name, rec.image_id))
        try:
            samples = task.build(rec, rng, ctx)
        except (KeyError, ValueError, IndexError) as e:
            ledger.reject("tasks.build", "", f"task={task.name} image_id={rec.image_id}", f"builder error: {e}")
            continue
        for k, sample in enumerate(samples):
            try:
                exchanges = task.spec.render(sample, rng)
            except (KeyError, IndexError) as e:
                ledger.reject("tasks.build", "", f"task={task.name} image_id={rec.image_id}", f"template field missing: {e}")
                continue
            meta = {"image_id": rec.image_id, "category": task.spec.category, **sample.meta}
            out.append(
                Instance(
                    id=f"{task.name}:{rec.image_id}:{k}",
                    image=rec.file_name,
                    task=task.name,
                    turns=[t for user, reply in exchanges for t in (Turn("user", user), Turn("assistant", reply))],
                    meta=meta,
                )
            )
    return out


def build_instances(
    records: list[ImageRecord],
    task_names: list[str],
    *,
    cap: int = DEFAULT_CAP,
    seed: int = 0,
    ledger: Ledger | None = None,
    report: BuildReport | None = None,
) -> list[Instance]:
    """Instances of every named task, at most `cap` per task, in task order then image order."""
    ledger = ledger if ledger is not None else Ledger()
    ctx = context_for(records)
    out: list[Instance] = []
    for name in task_names:
        task = get_task(name)
        items = build_task(task, records, ctx, seed, ledger)
        n = len(items)
        if n > cap:
            keep = sorted(random.Random(derive_seed(seed, name, "cap")).sample(range(n), cap))
            items = [items[i] for i in keep]
        if report is not None:
            report.candidates[name] = n
            report.kept[name] = len(items)
            report.capped[name] = n - len(items)
        out.extend(items)
    return out


def build_to_dir(
    records: list[ImageRecord],
    task_names: list[str],
    out: str | os.PathLike,
    *,
    cap: int = DEFAULT_CAP,
    seed: int = 0,
    ledger: Ledger | None = None,
    inputs: Iterable[Path] = (),
) -> dict[str, Any]:
    """Build instances and write them: `instances/` (Parquet + manifest), `llava.json`, `rejected.jsonl`.

    The manifest records per-task and per-category counts, candidates before the cap, the seed and
    the input files with their checksums. Returns the manifest.
    """
    from vitune.data.llava import write_llava_json
    from vitune.data.store import write_instance_set
    from vitune.utils.hashing import file_fingerprint

    out = Path(out)
    ledger = ledger if ledger is not None else Ledger()
    report = BuildReport()
    instances = build_instances(records, task_names, cap=cap, seed=seed, ledger=ledger, report=report)
    per_category = Counter(get_task(i.task).spec.category for i in instances)
    manifest = write_instance_set(
        instances,
        out / "instances",
        extra={
            "seed": seed,
            "cap": cap,
            "tasks": list(task_names),
            "records": len(records),
            "per_category": dict(sorted(per_category.items())),
            "build": report.to_dict(),
            "inputs": [file_fingerprint(p) for p in inputs],
            "rejected": len(ledger),
        },
    )
    write_llava_json(instances, out / "llava.json", with_task=True)
    ledger.write(out / "rejected.jsonl")
    return manifest
