"""Import the public Vision-Flan release (`vision-flan_191-task_1k`) as vitune `Instance`s.

The annotation file (`annotation_191-task_1k.json`; `metadata.json` in later revisions of the
Hugging Face repo — pin a revision, file names changed) is a JSON list of LLaVA-like records:
`{"id", "image", "task_name", "conversations": [{"from": "human", "value": "<image>..."},
{"from": "gpt", "value": target}]}`. Images are flat in one folder, named
`<task_name>_<idx>_<original file name>`; `image` is relative to that folder (`image_subdir` is
prefixed when the records are read against a parent image root).

Decisions:
- `id` is not unique in the release, so instance ids are `{task_name}:{index}` with `index` the
  record's position in the file: deterministic for a pinned file, unique by construction. The
  original id is kept in `meta["original_id"]`, the position in `meta["source_index"]`.
- Conversations are parsed by `vitune.data.llava.llava_to_instance` (same `<image>` handling and
  role rules as any LLaVA import); the task is the record's `task_name`, which is required.
- Every Vision-Flan task is visual: a record without `image` is rejected, as is an unsafe image
  path, and (with `image_root` + `check_images`) an image file that does not exist.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vitune.data.images import check_image
from vitune.data.instance import Instance
from vitune.data.ledger import Ledger
from vitune.data.llava import llava_to_instance
from vitune.data.paths import UnsafePathError, check_rel_path, image_prefix, resolve_image
from vitune.sources.fields import clean_text
from vitune.sources.jsonio import gc_paused, load_json
from vitune.sources.stats import ReadStats, Tally

STAGE = "sources.visionflan"
SOURCE = "vision_flan"


@dataclass(slots=True)
class VisionFlanResult:
    """The imported instances (file order), the file's counts, and instances kept per task."""

    instances: list[Instance] = field(default_factory=list)
    stats: ReadStats | None = None
    tasks: dict[str, int] = field(default_factory=dict)  # task name -> kept instances, sorted by name

    @property
    def reconciles(self) -> bool:
        return self.stats is not None and self.stats.reconciles


@gc_paused
def read_visionflan(
    annotations: str | os.PathLike,
    *,
    ledger: Ledger | None = None,
    image_subdir: str = "",
    image_root: str | os.PathLike | None = None,
    check_images: bool = False,
) -> VisionFlanResult:
    """Read a Vision-Flan annotation file; bad records go to `ledger` with their `[index]`.

    `image_root` (with `check_images`) is the folder `image_subdir`/`image` paths are relative to.
    """
    if check_images and image_root is None:
        raise ValueError("read_visionflan: check_images needs image_root")
    prefix = image_prefix(image_subdir, "Vision-Flan image_subdir")
    ledger = ledger if ledger is not None else Ledger()
    path = Path(annotations)
    data = load_json(path, list, "a JSON list of Vision-Flan records")
    t = Tally(ledger, STAGE, str(path), "records")
    st = t.stats
    out = VisionFlanResult(stats=st)
    per_task: Counter[str] = Counter()
    for i, rec in enumerate(data):
        st.seen += 1
        loc = f"[{i}]"
        if not isinstance(rec, dict):
            t.reject(loc, "record is not an object")
            continue
        task = clean_text(rec.get("task_name"))
        if task is None:
            t.reject(loc, "missing or empty 'task_name'", original_id=rec.get("id"))
            continue
        if rec.get("image") is None:
            t.reject(loc, "missing 'image' (every Vision-Flan task is visual)", task=task)
            continue
        inst, reason = llava_to_instance(rec, index=i, default_task=task)
        if inst is None:
            t.reject(loc, reason, task=task, original_id=rec.get("id"))
            continue
        assert inst.image is not None
        image = prefix + inst.image
        reason = check_rel_path(image) or ""
        if not reason and check_images:
            assert image_root is not None
            try:
                target = resolve_image(image_root, image)
                if not target.is_file():
                    reason = f"image file missing: {image}"
                elif bad := check_image(target):  # the one image check: corrupt, empty, bomb
                    reason = f"{image}: {bad}"
            except UnsafePathError as e:  # a symlink inside the image folder leading out of it
                reason = str(e)
        if reason:
            t.reject(loc, reason, task=task)
            continue
        inst.id = f"{task}:{i}"
        inst.image = image
        inst.task = task
        inst.meta = {"source": SOURCE, "source_index": i, "original_id": rec.get("id")}
        out.instances.append(inst)
        per_task[task] += 1
        st.kept += 1
    out.tasks = dict(sorted(per_task.items()))
    return out
