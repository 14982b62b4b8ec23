"""VQAv2 questions + annotations → `QA`s (10 human answers each) on records keyed by `str(image_id)`.

Questions: `{"questions": [{image_id, question, question_id}], ...}`; annotations:
`{"annotations": [{question_id, image_id, question_type, answer_type, multiple_choice_answer,
answers: [{answer, answer_confidence, answer_id}] × 10}], ...}`. The test split ships no
annotations file: its questions become QAs with `answers == []`. When an annotations file is given,
every question needs one (and vice versa) — an unmatched side is a bad record, not a crash.

The records carry only QAs (no size, usually no file name); `merge` joins them with COCO.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path
from vitune.data.records import QA, ImageRecord
from vitune.sources.fields import as_id, clean_text
from vitune.sources.jsonio import gc_paused, load_json, require_list
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.vqav2"
SOURCE = "vqav2"


@gc_paused
def read_vqav2(
    questions: str | os.PathLike,
    annotations: str | os.PathLike | None = None,
    *,
    ledger: Ledger | None = None,
    split: str = "",
    known_images: Collection[str] | None = None,
    file_pattern: str | None = None,
    source: str = SOURCE,
    stage: str = STAGE,
) -> SourceResult:
    """Read VQAv2 questions (and annotations, when the split has them) grouped by image.

    `known_images`: when given, a question about any other image id is rejected ("unknown image id").
    `file_pattern`: e.g. `"val2014/COCO_val2014_{image_id:012d}.jpg"` gives records a file name so
    VQAv2 can be used without COCO files; otherwise `file_name` is "" and COCO supplies it on merge.
    `source` / `stage`: what the QAs and ledger entries are labelled (OK-VQA ships the same layout).
    """
    ledger = ledger if ledger is not None else Ledger()
    known = set(known_images) if known_images is not None else None
    result = SourceResult(source)
    anns: dict[str, tuple[int, dict[str, Any]]] | None = None
    ann_tally: Tally | None = None
    if annotations is not None:
        ann_tally = Tally(ledger, stage, str(annotations), "annotations")
        anns = _read_annotations(Path(annotations), ann_tally)
    qpath = Path(questions)
    data = load_json(qpath, dict, "a VQAv2 object with a 'questions' list")
    t = Tally(ledger, stage, str(qpath), "questions")
    st = t.stats
    records = result.records
    seen_q: set[str] = set()
    for i, q in enumerate(require_list(data, "questions", qpath)):
        st.seen += 1
        loc = f"questions[{i}]"
        if not isinstance(q, dict):
            t.reject(loc, "question is not an object")
            continue
        qid, iid = as_id(q.get("question_id")), as_id(q.get("image_id"))
        # Claim the annotation first, so a rejected question takes its annotation down with it
        # (with the question's reason) instead of leaving it "unmatched".
        found = anns.pop(qid, None) if anns is not None and qid is not None else None
        reason = _question_problem(q, qid, iid, seen_q, known, anns is not None, found)
        if reason:
            t.reject(loc, reason, question_id=qid, image_id=iid)
            if found is not None and ann_tally is not None:
                ann_tally.reject(
                    f"annotations[{found[0]}]", f"its question was rejected: {reason}", question_id=qid
                )
            continue
        assert qid is not None and iid is not None
        seen_q.add(qid)
        qa = QA(qid, clean_text(q.get("question")) or "", [], source=source)
        if found is not None and ann_tally is not None:
            ann = found[1]
            qa.answers = ann["_answers"]
            qa.answer_type = _text(ann.get("answer_type"))
            qa.question_type = _text(ann.get("question_type"))
            qa.multiple_choice_answer = _text(ann.get("multiple_choice_answer"))
            ann_tally.stats.kept += 1
        rec = records.get(iid)
        if rec is None:
            rec = records[iid] = ImageRecord(
                iid, _file_name(file_pattern, iid), 0, 0, split=split, sources=[source]
            )
        rec.qas.append(qa)
        st.kept += 1
    result.stats.append(st)
    if anns is not None and ann_tally is not None:
        for qid, (j, _) in sorted(anns.items(), key=lambda kv: kv[1][0]):  # file order
            ann_tally.reject(f"annotations[{j}]", f"annotation for unknown question {qid}")
        result.stats.insert(0, ann_tally.stats)
    return result


def _question_problem(
    q: dict[str, Any],
    qid: str | None,
    iid: str | None,
    seen_q: set[str],
    known: set[str] | None,
    annotated: bool,
    found: tuple[int, dict[str, Any]] | None,
) -> str:
    """Why question `q` cannot be kept ("" when it can)."""
    if qid is None or iid is None:
        return "missing or invalid 'question_id' or 'image_id'"
    if clean_text(q.get("question")) is None:
        return "missing or empty 'question'"
    if qid in seen_q:
        return f"duplicate question id {qid}"
    if known is not None and iid not in known:
        return f"unknown image id {iid}"
    if annotated:
        if found is None:
            return f"no annotation for question {qid}"
        if as_id(found[1].get("image_id")) != iid:
            return f"question is about image {iid} but its annotation about {found[1].get('image_id')!r}"
    return ""


def _text(v: Any) -> str:
    return v.strip() if isinstance(v, str) else ""


def _file_name(pattern: str | None, iid: str) -> str:
    if pattern is None:
        return ""
    name = pattern.format(image_id=int(iid) if iid.isdigit() else iid)
    reason = check_rel_path(name)
    if reason is not None:  # the pattern is configuration: fail loudly rather than reject every record
        raise ValueError(f"VQAv2 file_pattern {pattern!r}: {reason}")
    return name


def _read_annotations(path: Path, t: Tally) -> dict[str, tuple[int, dict[str, Any]]]:
    """Valid annotations by question id, with their index; `kept` is counted when a question claims one."""
    data = load_json(path, dict, "a VQAv2 object with an 'annotations' list")
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    for j, a in enumerate(require_list(data, "annotations", path)):
        t.stats.seen += 1
        loc = f"annotations[{j}]"
        if not isinstance(a, dict):
            t.reject(loc, "annotation is not an object")
            continue
        qid = as_id(a.get("question_id"))
        if qid is None or as_id(a.get("image_id")) is None:
            t.reject(loc, "missing or invalid 'question_id' or 'image_id'")
            continue
        raw = a.get("answers")
        if not isinstance(raw, list) or not raw:
            t.reject(loc, "missing or empty 'answers' list", question_id=qid)
            continue
        answers = []
        for ans in raw:
            text = clean_text(ans.get("answer")) if isinstance(ans, dict) else None
            if text is None:
                break
            answers.append(text)
        if len(answers) != len(raw):
            t.reject(loc, f"answers[{len(answers)}] has no 'answer' text", question_id=qid)
            continue
        if qid in out:
            t.reject(loc, f"duplicate annotation for question {qid}")
            continue
        a["_answers"] = answers  # the parsed list travels with the (already loaded) dict
        out[qid] = (j, a)
    return out
