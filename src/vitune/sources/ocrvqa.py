"""OCR-VQA (`dataset.json`) → one record per book cover with its questions, title, author and genre.

Official layout (Mishra et al., ICDAR 2019; the release's `loadDataset.py`): one JSON object keyed by
the book's id (an Amazon ASIN such as `"1588345297"`), each value
`{"imageURL", "questions": [str], "answers": [str] (same length), "title", "authorName", "genre",
"split"}` with `split` 1 = train, 2 = val, 3 = test. `loadDataset.py` downloads every cover to
`images/{id}{ext}` where `ext = os.path.splitext(imageURL)[1]` (normally `.jpg`; a URL without an
extension gives a file without one): the reader derives the same name, under `image_subdir`.

Decisions:
- Which books: those whose `split` is the requested one (`train`/`val`/`test`; `dev` and
  `validation` mean val); others are `filtered`, not seen. `split=""` reads all of them.
- One `QA` per question (`question_id` `"{id}-{k}"`, `answers == [answer]`, `source == "ocrvqa"`);
  title, author and genre go to the record's `meta["ocrvqa"]` (the genre is not a `labels` entry:
  that field belongs to the class-folder tasks). An empty title, author or genre is kept as "" (a
  task that needs it skips the book); a non-string one is a bad record.
- Rejected (ledgered with the id): an entry that is not an object, a bad id (empty, a path), a
  `split` other than 1/2/3, `questions`/`answers` that are not lists of non-empty strings of the same
  length, a missing `imageURL`, an image path that would leave the image root.
Records are keyed `ocrvqa:{id}`; sizes are unknown (0).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path, image_prefix
from vitune.data.records import QA, ImageRecord
from vitune.sources.block import SourceBlock
from vitune.sources.fields import as_id, clean_text
from vitune.sources.jsonio import gc_paused, load_json
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.ocrvqa"
SOURCE = "ocrvqa"
KEY_PREFIX = "ocrvqa:"
SPLIT_CODES = {1: "train", 2: "val", 3: "test"}
_SPLIT_NAMES = {"train": 1, "val": 2, "dev": 2, "validation": 2, "test": 3}


class OCRVQASource(SourceBlock):
    """`--source ocrvqa=dataset.json` (images at `{image_root}/{image_subdir}/{id}{ext}`)."""

    KIND: ClassVar[str] = "ocrvqa"
    MAIN: ClassVar[str] = "dataset"

    dataset: Path  # dataset.json
    image_subdir: str = "images"

    def read(self, *, split: str, ledger: Ledger, known_images: set[str] | None = None) -> SourceResult:
        return read_ocrvqa(self.dataset, split=split, ledger=ledger, image_subdir=self.image_subdir)


def split_code(split: str) -> int | None:
    """The `split` number of a split name (None for "": every book); an unknown name is an error."""
    if not split:
        return None
    if split not in _SPLIT_NAMES:
        raise ValueError(f"OCR-VQA has no split {split!r} (train, val, test)")
    return _SPLIT_NAMES[split]


def image_name(book_id: str, url: str) -> str:
    """`{id}{ext}` as `loadDataset.py` names the download (`ext` = `os.path.splitext(imageURL)[1]`)."""
    return book_id + os.path.splitext(url)[1]


@gc_paused
def read_ocrvqa(
    dataset: str | os.PathLike,
    *,
    split: str = "",
    ledger: Ledger | None = None,
    image_subdir: str = "images",
) -> SourceResult:
    """Read the books of `split` from `dataset.json` into records `ocrvqa:{id}`.

    A missing or malformed file raises naming the file; a bad book goes to `ledger` with its id.
    """
    prefix = image_prefix(image_subdir, "OCR-VQA image_subdir")
    want = split_code(split)
    ledger = ledger if ledger is not None else Ledger()
    path = Path(dataset)
    data = load_json(path, dict, "an OCR-VQA object keyed by book id")
    result = SourceResult(SOURCE)
    t = Tally(ledger, STAGE, str(path), "books")
    st = t.stats
    for raw_id, book in data.items():
        code = book.get("split") if isinstance(book, dict) else None
        if want is not None and isinstance(code, int) and code in SPLIT_CODES and code != want:
            st.filtered += 1  # another split's book: valid, just not part of this read
            continue
        st.seen += 1
        loc = f"id={raw_id}"
        rec, reason = _record(raw_id, book, prefix)
        if rec is None:
            t.reject(loc, reason)
            continue
        result.records[rec.image_id] = rec
        st.kept += 1
    result.stats.append(st)
    return result


def _record(raw_id: str, book: Any, prefix: str) -> tuple[ImageRecord | None, str]:
    """One book as a record, or (None, why not)."""
    if not isinstance(book, dict):
        return None, "entry is not an object"
    book_id = as_id(raw_id)
    if book_id is None or check_rel_path(book_id) is not None or "/" in book_id or "\\" in book_id:
        return None, f"invalid book id {raw_id!r}"
    code = book.get("split")
    if type(code) is not int or code not in SPLIT_CODES:
        return None, f"'split' must be 1 (train), 2 (val) or 3 (test), got {code!r}"
    qas, reason = _qas(book_id, book)
    if qas is None:
        return None, reason
    url = book.get("imageURL")
    if not isinstance(url, str) or not url.strip():
        return None, "missing or empty 'imageURL' (it names the image file)"
    fname = image_name(book_id, url.strip())
    if "\\" in fname or fname in (".", ".."):
        return None, f"image file name {fname!r} is not a plain file name"
    name = prefix + fname
    reason = check_rel_path(name)
    if reason is not None:
        return None, reason
    info: dict[str, str] = {}
    for key, field in (("title", "title"), ("author", "authorName"), ("genre", "genre")):
        value = book.get(field, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            return None, f"{field!r} must be a string, got {type(value).__name__}"
        info[key] = clean_text(value) or ""
    meta = {"ocrvqa": info, "ocrvqa_id": book_id, "image_url": url.strip()}
    return ImageRecord(
        KEY_PREFIX + book_id,
        name,
        0,
        0,
        split=SPLIT_CODES[code],
        qas=qas,
        sources=[SOURCE],
        meta=meta,
    ), ""


def _qas(book_id: str, book: dict[str, Any]) -> tuple[list[QA] | None, str]:
    questions, answers = book.get("questions"), book.get("answers")
    if not isinstance(questions, list) or not isinstance(answers, list):
        return None, "'questions' and 'answers' must be lists"
    if len(questions) != len(answers):
        return None, f"{len(questions)} questions but {len(answers)} answers"
    out: list[QA] = []
    for k, (q, a) in enumerate(zip(questions, answers, strict=True)):
        question, answer = clean_text(q), clean_text(a)
        if question is None:
            return None, f"questions[{k}] is not a non-empty string"
        if answer is None:
            return None, f"answers[{k}] is not a non-empty string"
        out.append(QA(f"{book_id}-{k}", question, [answer], source=SOURCE))
    return out, ""
