"""ScienceQA (`problems.json` + `pid_splits.json`) → one record per problem with an image.

`problems.json` is an object keyed by problem id (pid): `{"question", "choices": [str], "answer"
(index into choices), "hint", "image" ("image.png" or null), "task", "grade", "subject", "topic",
"category", "skill", "lecture", "solution", "split"}`. `pid_splits.json` maps split names
(`train`, `val`, `test`, `trainval`, `minitrain`, `minival`, `minitest`) to lists of pids. Images
live at `{image_subdir}/{problem split}/{pid}/{image}` — the problem's own `split` field names the
folder, so `minitest` or `trainval` reads still find them.

Decisions:
- Which problems: with `pid_splits` and `split`, the pids listed under `split` in that order (a
  listed pid missing from `problems.json` is rejected); without `pid_splits`, every problem whose
  own `split` matches `split` (all when `split` is ""), in file order. Problems outside the
  requested split are not part of this read and are not counted.
- Text-only problems (`image` null or empty; about half of ScienceQA) cannot become an
  `ImageRecord`, but they are not defects: they are counted in `ReadStats.filtered` (not `seen`)
  and their pids listed in `result.filtered_ids["text_only"]`, in read order, so a caller can build
  text-only samples from `problems.json` itself.
- One `QA` per record: `answers == [choices[answer]]`, `choices`, `answer_index`, `context` = the
  hint, `rationale` = the solution, `answer_type == "multiple_choice"`, `question_type` = the
  category. Subject/topic/skill/grade/task/lecture go to the record's `meta`.
Records are keyed `scienceqa:{pid}` (every problem has its own image folder); sizes are unknown (0).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path, image_prefix
from vitune.data.records import QA, ImageRecord
from vitune.sources.fields import as_id, clean_text
from vitune.sources.jsonio import gc_paused, load_json
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.scienceqa"
SOURCE = "scienceqa"
KEY_PREFIX = "scienceqa:"
_META_KEYS = ("subject", "topic", "category", "skill", "grade", "task", "lecture")


@gc_paused
def read_scienceqa(
    problems: str | os.PathLike,
    pid_splits: str | os.PathLike | None = None,
    *,
    split: str = "",
    ledger: Ledger | None = None,
    image_subdir: str = "images",
) -> SourceResult:
    """Read the ScienceQA problems of `split` that have an image into records `scienceqa:{pid}`.

    A missing or malformed file raises naming the file; a bad problem goes to `ledger` with its
    pid as locator.
    """
    prefix = image_prefix(image_subdir, "ScienceQA image_subdir")
    ledger = ledger if ledger is not None else Ledger()
    ppath = Path(problems)
    data = load_json(ppath, dict, "a ScienceQA object keyed by problem id")
    if pid_splits is not None:
        if not split:
            raise ValueError("read_scienceqa: pid_splits given without a split to read")
        spath = Path(pid_splits)
        splits = load_json(spath, dict, "a ScienceQA object mapping split names to pid lists")
        if split not in splits:
            raise ValueError(f"{spath}: no split {split!r} (has {', '.join(sorted(splits))})")
        pids = splits[split]
        if not isinstance(pids, list):
            raise ValueError(f"{spath}: split {split!r} must be a list of pids, got {type(pids).__name__}")
        todo: list[tuple[Any, Any]] = [(pid, data.get(str(pid), _MISSING)) for pid in pids]
    else:
        todo = [
            (pid, p)
            for pid, p in data.items()
            if not split or not isinstance(p, dict) or p.get("split") == split
        ]
    result = SourceResult(SOURCE)
    t = Tally(ledger, STAGE, str(ppath), "problems")
    st = t.stats
    text_only: list[str] = []
    seen_pids: set[str] = set()
    for pid_raw, p in todo:
        loc = f"pid={pid_raw}"
        pid = as_id(pid_raw)
        if isinstance(p, dict) and not p.get("image") and pid is not None:
            st.filtered += 1  # text-only: valid data, just not an image record
            text_only.append(pid)
            continue
        st.seen += 1
        if p is _MISSING:
            t.reject(loc, f"pid listed in split {split!r} but not in problems.json")
            continue
        if not isinstance(p, dict):
            t.reject(loc, "problem is not an object")
            continue
        if pid is None or "/" in pid or "\\" in pid:
            t.reject(loc, "invalid problem id")
            continue
        qa, reason = _qa(pid, p)
        if qa is None:
            t.reject(loc, reason)
            continue
        psplit = p.get("split") if isinstance(p.get("split"), str) and p.get("split") else split
        image = p["image"]
        if not psplit:
            t.reject(loc, "missing 'split' (it names the image folder)")
            continue
        if not isinstance(image, str) or "/" in image or "\\" in image:
            t.reject(loc, f"'image' must be a file name, got {image!r}")
            continue
        name = f"{prefix}{psplit}/{pid}/{image}"
        reason = check_rel_path(name)
        if reason is not None:
            t.reject(loc, reason)
            continue
        if pid in seen_pids:
            t.reject(loc, f"duplicate pid {pid} in split {split!r}")
            continue
        seen_pids.add(pid)
        meta: dict[str, Any] = {"scienceqa_pid": pid, "scienceqa_split": psplit}
        for k in _META_KEYS:
            if isinstance(p.get(k), str) and p[k]:
                meta[k] = p[k]
        key = KEY_PREFIX + pid
        result.records[key] = ImageRecord(
            key, name, 0, 0, split=split or psplit, qas=[qa], sources=[SOURCE], meta=meta
        )
        st.kept += 1
    result.stats.append(st)
    result.filtered_ids["text_only"] = text_only
    return result


_MISSING: Any = object()  # a pid listed in pid_splits.json but absent from problems.json


def _qa(pid: str, p: dict[str, Any]) -> tuple[QA | None, str]:
    """The problem as a multiple-choice `QA`, or (None, why not)."""
    question = clean_text(p.get("question"))
    if question is None:
        return None, "missing or empty 'question'"
    choices = p.get("choices")
    if not isinstance(choices, list) or len(choices) < 2:
        return None, "'choices' must be a list of at least 2 options"
    cleaned = [clean_text(c) for c in choices]
    if any(c is None for c in cleaned):
        return None, f"choices[{cleaned.index(None)}] is not a non-empty string"
    answer = p.get("answer")
    if type(answer) is not int or not 0 <= answer < len(choices):  # bool is not an index
        return None, f"'answer' must be an index into the {len(choices)} choices, got {answer!r}"
    opts: list[str] = cleaned  # type: ignore[assignment]
    hint = p.get("hint")
    if hint is not None and not isinstance(hint, str):
        return None, f"'hint' must be a string, got {type(hint).__name__}"
    return (
        QA(
            pid,
            question,
            [opts[answer]],
            answer_type="multiple_choice",
            question_type=clean_text(p.get("category")) or "",
            source=SOURCE,
            choices=opts,
            answer_index=answer,
            context=(hint or "").strip(),
            rationale=(p.get("solution") or "").strip() if isinstance(p.get("solution"), str) else "",
        ),
        "",
    )
