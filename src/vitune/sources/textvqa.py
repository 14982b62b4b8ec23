"""TextVQA (`TextVQA_0.5.1_{split}.json`) + optional Rosetta OCR → records with QAs and OCR tokens.

Questions: `{"dataset_type", "dataset_name", "dataset_version", "data": [{"question", "image_id",
"image_classes", "flickr_original_url", "flickr_300k_url", "image_width", "image_height",
"answers" (10 strings), "question_tokens", "question_id", "set_name"}]}`. The test split has no
`answers`: its questions become QAs with `answers == []`. When answers are present there must be
exactly 10 (the official scorer's leave-one-out needs them); `min_answers` relaxes that for
home-made files.

OCR (`TextVQA_Rosetta_OCR_v0.2_{split}.json`): `{"data": [{"image_id", "ocr_tokens": [str],
"ocr_info": [{"word", "bounding_box": {"top_left_x", "top_left_y", "width", "height", "rotation",
...}}], "set_name"}]}` (some releases spell the box keys `topLeftX` / `topLeftY`: both are read). Tokens go to `ImageRecord.ocr_tokens`; the boxes (normalized to 0–1, as in
the file) to `meta["ocr_boxes"]` as `[x, y, w, h]` aligned with `meta["ocr_words"]`. OCR entries for
images none of whose questions were kept are `filtered`, not errors (one OCR file serves a split).

Records are keyed `openimages:{image_id}`: TextVQA ids are Open Images ids (hex strings, a few of
which are all digits and would otherwise collide with COCO ids in `merge`), shared by TextCaps.
Images are `{image_subdir}/{image_id}.jpg` (train and val both live in `train_images/`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path, image_prefix
from vitune.data.records import QA, ImageRecord
from vitune.sources.fields import as_id, as_number, as_size, clean_text
from vitune.sources.jsonio import gc_paused, load_json, require_list
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.textvqa"
SOURCE = "textvqa"
KEY_PREFIX = "openimages:"


@gc_paused
def read_textvqa(
    questions: str | os.PathLike,
    ocr: str | os.PathLike | None = None,
    *,
    ledger: Ledger | None = None,
    split: str = "",
    image_subdir: str = "train_images",
    min_answers: int = 10,
) -> SourceResult:
    """Read a TextVQA questions file (and its Rosetta OCR file) into records keyed by image.

    A missing or malformed file raises naming the file; bad entries go to `ledger` with their
    `data[i]` position.
    """
    prefix = image_prefix(image_subdir, "TextVQA image_subdir")
    ledger = ledger if ledger is not None else Ledger()
    result = SourceResult(SOURCE)
    qpath = Path(questions)
    data = load_json(qpath, dict, "a TextVQA object with a 'data' list")
    _read_questions(qpath, require_list(data, "data", qpath), prefix, split, min_answers, result, ledger)
    del data
    if ocr is not None:
        opath = Path(ocr)
        odata = load_json(opath, dict, "a Rosetta OCR object with a 'data' list")
        _read_ocr(opath, require_list(odata, "data", opath), result, ledger)
    return result


def _read_questions(
    path: Path,
    items: list[Any],
    prefix: str,
    split: str,
    min_answers: int,
    result: SourceResult,
    ledger: Ledger,
) -> None:
    t = Tally(ledger, STAGE, str(path), "questions")
    st = t.stats
    records = result.records
    seen_q: set[str] = set()
    for i, q in enumerate(items):
        st.seen += 1
        loc = f"data[{i}]"
        if not isinstance(q, dict):
            t.reject(loc, "entry is not an object")
            continue
        qid, iid = as_id(q.get("question_id")), as_id(q.get("image_id"))
        if qid is None or iid is None:
            t.reject(loc, "missing or invalid 'question_id' or 'image_id'")
            continue
        question = clean_text(q.get("question"))
        if question is None:
            t.reject(loc, "missing or empty 'question'", question_id=qid)
            continue
        answers, reason = _answers(q, min_answers)
        if answers is None:
            t.reject(loc, reason, question_id=qid)
            continue
        name = f"{prefix}{iid}.jpg"
        reason = check_rel_path(name)
        if reason is not None:
            t.reject(loc, reason, question_id=qid)
            continue
        if qid in seen_q:
            t.reject(loc, f"duplicate question id {qid}")
            continue
        key = KEY_PREFIX + iid
        w, h = as_size(q.get("image_width")) or 0, as_size(q.get("image_height")) or 0
        rec = records.get(key)
        if rec is not None and rec.width and w and (rec.width, rec.height) != (w, h):
            # Two questions disagreeing on the image size: one of them describes another image.
            t.reject(
                loc,
                f"image size {w}x{h} differs from {rec.width}x{rec.height} given earlier",
                question_id=qid,
            )
            continue
        seen_q.add(qid)
        if rec is None:
            rec = records[key] = ImageRecord(
                key, name, w, h, split=split, sources=[SOURCE], meta=_image_meta(q, iid)
            )
        elif not rec.width and w:
            rec.width, rec.height = w, h
        rec.qas.append(QA(qid, question, answers, source=SOURCE))
        st.kept += 1
    result.stats.append(st)


def _answers(q: dict[str, Any], min_answers: int) -> tuple[list[str] | None, str]:
    if "answers" not in q or q["answers"] is None:
        return [], ""  # the test split
    raw = q["answers"]
    if not isinstance(raw, list):
        return None, f"'answers' must be a list, got {type(raw).__name__}"
    answers = []
    for k, a in enumerate(raw):
        text = clean_text(a)
        if text is None:
            return None, f"answers[{k}] is not a non-empty string"
        answers.append(text)
    if len(answers) < min_answers:
        return None, f"{len(answers)} answers, expected at least {min_answers}"
    return answers, ""


def _image_meta(q: dict[str, Any], iid: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"openimages_id": iid}
    classes = q.get("image_classes")
    if isinstance(classes, list):
        meta["image_classes"] = [c for c in classes if isinstance(c, str)]
    for k in ("flickr_original_url", "set_name"):
        if isinstance(q.get(k), str):
            meta[k] = q[k]
    return meta


def _read_ocr(path: Path, items: list[Any], result: SourceResult, ledger: Ledger) -> None:
    t = Tally(ledger, STAGE, str(path), "ocr")
    st = t.stats
    records = result.records
    done: set[str] = set()
    for i, o in enumerate(items):
        loc = f"data[{i}]"
        if not isinstance(o, dict):
            st.seen += 1
            t.reject(loc, "entry is not an object")
            continue
        iid = as_id(o.get("image_id"))
        rec = records.get(KEY_PREFIX + iid) if iid is not None else None
        if iid is not None and rec is None:
            st.filtered += 1  # an image without kept questions: nothing to attach the OCR to
            continue
        st.seen += 1
        if rec is None:
            t.reject(loc, "missing or invalid 'image_id'")
            continue
        tokens = o.get("ocr_tokens")
        if not isinstance(tokens, list) or not all(isinstance(x, str) for x in tokens):
            t.reject(loc, "'ocr_tokens' must be a list of strings", image_id=iid)
            continue
        words, boxes, reason = _ocr_info(o.get("ocr_info", []))
        if reason:
            t.reject(loc, reason, image_id=iid)
            continue
        if iid in done:
            t.reject(loc, f"duplicate OCR entry for image {iid}", image_id=iid)
            continue
        done.add(iid)
        # Tokens are kept as Rosetta wrote them (no cleaning, no dropping): a token's position
        # must keep matching its box in `ocr_info`, and models and scorers see the same strings.
        rec.ocr_tokens = list(tokens)
        if words:
            rec.meta["ocr_words"] = words
            rec.meta["ocr_boxes"] = boxes
        st.kept += 1
    result.stats.append(st)


# Rosetta OCR releases spell the box keys both ways (`top_left_x` and `topLeftX`); read either.
_CAMEL = {"top_left_x": "topLeftX", "top_left_y": "topLeftY", "width": "width", "height": "height"}


def _box_field(bb: dict, name: str) -> Any:
    value = bb.get(name)
    return bb.get(_CAMEL[name]) if value is None else value


def _ocr_info(info: Any) -> tuple[list[str], list[list[float]], str]:
    """Words and normalized `[x, y, w, h]` boxes of `ocr_info`, or a reason it is malformed."""
    if not isinstance(info, list):
        return [], [], f"'ocr_info' must be a list, got {type(info).__name__}"
    words: list[str] = []
    boxes: list[list[float]] = []
    for k, item in enumerate(info):
        bb = item.get("bounding_box") if isinstance(item, dict) else None
        word = item.get("word") if isinstance(item, dict) else None
        if not isinstance(word, str) or not isinstance(bb, dict):
            return [], [], f"ocr_info[{k}] lacks a 'word' string or a 'bounding_box' object"
        vals = [as_number(_box_field(bb, f)) for f in ("top_left_x", "top_left_y", "width", "height")]
        if any(v is None for v in vals):
            return [], [], f"ocr_info[{k}] bounding_box is not numeric"
        words.append(word)
        boxes.append([float(v) for v in vals])  # type: ignore[arg-type]
    return words, boxes, ""
