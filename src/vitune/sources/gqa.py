"""GQA questions (`{split}_{balanced,all}_questions.json`) → `QA`s on records keyed per image.

A questions file is one JSON object keyed by question id:
`{"02930152": {"question", "answer", "fullAnswer", "imageId", "isBalanced", "types": {"structural",
"semantic", "detailed"}, "semantic", "semanticStr", "annotations", "entailed", "equivalent",
"groups"}, ...}`. The test/challenge files have no `answer`/`fullAnswer`: their questions become QAs
with `answers == []` (as VQAv2 test). The train "all" questions ship as several files
(`train_all_questions_0.json` ...), so `questions` may be a list of files; ids must be unique
across them.

Each QA has `answers == [answer]`, `full_answer` (the sentence answer), `question_type` =
`types.detailed` (falling back to `types.semantic`), and `meta["types"]` holding all three.
`balanced_only` drops questions with `isBalanced` false: they are counted as `filtered` (a choice,
not a defect) and never `seen`. Images are `{image_subdir}/{imageId}.jpg`; sizes are not in the
file (0 = unknown, merge adopts Visual Genome's).

Keys: GQA image ids are Visual Genome ids (test images are `n…`), but Visual Genome records are
keyed by COCO id when they have one. Records are therefore keyed `gqa:{imageId}` unless
`image_keys` maps an image id to another key; `vg_image_keys` builds that map from a Visual Genome
read so GQA questions merge onto the VG records.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path, image_prefix
from vitune.data.records import QA, ImageRecord
from vitune.sources.fields import as_id, clean_text
from vitune.sources.jsonio import gc_paused, load_json
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.gqa"
SOURCE = "gqa"
_SHAPE = "a GQA object keyed by question id"


@gc_paused
def read_gqa(
    questions: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    ledger: Ledger | None = None,
    split: str = "",
    image_subdir: str = "images",
    balanced_only: bool = False,
    image_keys: Mapping[str, str] | None = None,
) -> SourceResult:
    """Read one or more GQA questions files into records keyed by `gqa:{imageId}` (or `image_keys`).

    A missing or malformed file raises naming the file; a bad question goes to `ledger` with its
    question id as locator.
    """
    files = [Path(questions)] if isinstance(questions, (str, os.PathLike)) else [Path(q) for q in questions]
    if not files:
        raise ValueError("read_gqa: no questions file given")
    prefix = image_prefix(image_subdir, "GQA image_subdir")
    ledger = ledger if ledger is not None else Ledger()
    result = SourceResult(SOURCE)
    seen_q: set[str] = set()  # question ids across all files: a repeat would double-count a question
    for path in files:
        data = load_json(path, dict, _SHAPE)
        _read_file(path, data, prefix, split, balanced_only, image_keys, seen_q, result, ledger)
        del data  # the train files are ~1 GB each: drop one before parsing the next
    return result


def vg_image_keys(vg: SourceResult | Mapping[str, ImageRecord]) -> dict[str, str]:
    """`{vg image id: record key}` from a Visual Genome read, for `read_gqa(image_keys=...)`."""
    recs = vg.records if isinstance(vg, SourceResult) else vg
    out: dict[str, str] = {}
    for key, rec in recs.items():
        vid = rec.meta.get("vg_image_id")
        if vid is not None:
            out[str(vid)] = key
    return out


def _read_file(
    path: Path,
    data: dict[str, Any],
    prefix: str,
    split: str,
    balanced_only: bool,
    image_keys: Mapping[str, str] | None,
    seen_q: set[str],
    result: SourceResult,
    ledger: Ledger,
) -> None:
    t = Tally(ledger, STAGE, str(path), "questions")
    st = t.stats
    records = result.records
    for qid_raw, q in data.items():
        if balanced_only and isinstance(q, dict) and q.get("isBalanced") is False:
            st.filtered += 1
            continue
        st.seen += 1
        loc = f"question_id={qid_raw}"
        if not isinstance(q, dict):
            t.reject(loc, "question is not an object")
            continue
        qid = as_id(qid_raw)
        iid = as_id(q.get("imageId"))
        question = clean_text(q.get("question"))
        if qid is None or iid is None:
            t.reject(loc, "missing or invalid question id or 'imageId'")
            continue
        if question is None:
            t.reject(loc, "missing or empty 'question'", image_id=iid)
            continue
        reason = _answer_problem(q)
        if reason:
            t.reject(loc, reason, image_id=iid)
            continue
        if balanced_only and q.get("isBalanced") is not True:
            # Only an explicit `false` is filtered above; anything else is not a balance flag.
            t.reject(loc, f"'isBalanced' is {q.get('isBalanced')!r}, expected true or false", image_id=iid)
            continue
        name = f"{prefix}{iid}.jpg"
        reason = check_rel_path(name)  # imageId "../x" would otherwise leave the image folder
        if reason is not None:
            t.reject(loc, reason, image_id=iid)
            continue
        if qid in seen_q:
            t.reject(loc, f"duplicate question id {qid}", image_id=iid)
            continue
        seen_q.add(qid)
        answer = clean_text(q.get("answer"))
        types = q.get("types") if isinstance(q.get("types"), dict) else {}
        kinds = {k: v for k in ("structural", "semantic", "detailed") if isinstance(v := types.get(k), str)}
        meta: dict[str, Any] = {"types": kinds}
        if isinstance(q.get("isBalanced"), bool):
            meta["is_balanced"] = q["isBalanced"]
        qa = QA(
            qid,
            question,
            [answer] if answer is not None else [],
            question_type=kinds.get("detailed") or kinds.get("semantic", ""),
            source=SOURCE,
            full_answer=clean_text(q.get("fullAnswer")) or "",
            meta=meta,
        )
        key = image_keys.get(iid, f"gqa:{iid}") if image_keys is not None else f"gqa:{iid}"
        rec = records.get(key)
        if rec is None:
            rec = records[key] = ImageRecord(
                key, name, 0, 0, split=split, sources=[SOURCE], meta={"gqa_image_id": iid}
            )
        rec.qas.append(qa)
        st.kept += 1
    result.stats.append(st)


def _answer_problem(q: dict[str, Any]) -> str:
    """Why the answer fields are unusable ("" when fine); absent answers are the test split's norm."""
    if "answer" in q and clean_text(q["answer"]) is None:
        return f"'answer' must be a non-empty string, got {q['answer']!r}"
    if "fullAnswer" in q and q["fullAnswer"] is not None and not isinstance(q["fullAnswer"], str):
        return f"'fullAnswer' must be a string, got {type(q['fullAnswer']).__name__}"
    return ""
