"""VizWiz-VQA (`annotations/{train,val,test}.json`) → one record per photo, with its one question.

Official layout: a JSON list per split; each entry is `{"image": "VizWiz_train_00000000.jpg",
"question", "answers": [{"answer", "answer_confidence" ("yes"/"maybe"/"no")}] × 10, "answer_type"
("other", "yes/no", "number" or "unanswerable"), "answerable" (1 or 0)}`. The test split has only
`image` and `question`: those become QAs with `answers == []`. Photos live in `{split}/` next to
`annotations/` (`image_subdir`, default the split name).

Decisions:
- Records are keyed `vizwiz:{image stem}` (VizWiz photos are no COCO images); the question id is the
  image stem too (VizWiz has one question per photo and no question ids). Sizes are unknown (0).
- `image` must be a bare file name: anything with a separator or `..` is rejected, so no entry can
  point outside `{image_subdir}/`.
- `QA.answers` are the ten answers as written (an answerable question may still have a few
  "unanswerable" among them); `answer_type` as given; `meta["answerable"]` (0/1) and
  `meta["answer_confidence"]` (aligned with the answers). An answered entry needs all of answers,
  a known `answer_type` and `answerable` 0/1; `min_answers` (10 in the official files) may be
  relaxed for home-made files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path, image_prefix
from vitune.data.records import QA, ImageRecord
from vitune.sources.block import SourceBlock
from vitune.sources.fields import clean_text
from vitune.sources.jsonio import gc_paused, load_json
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.vizwiz"
SOURCE = "vizwiz"
KEY_PREFIX = "vizwiz:"
ANSWER_TYPES = ("other", "yes/no", "number", "unanswerable")
UNANSWERABLE = "unanswerable"


class VizWizSource(SourceBlock):
    """`vizwiz: {annotations: annotations/val.json, image_subdir: val}`; `--source vizwiz=PATH`."""

    KIND: ClassVar[str] = "vizwiz"
    MAIN: ClassVar[str] = "annotations"

    annotations: Path  # annotations/{split}.json
    image_subdir: str | None = None  # relative to the image root; None: the split name
    min_answers: int = 10

    def read(self, *, split: str, ledger: Ledger, known_images: set[str] | None = None) -> SourceResult:
        subdir = self.image_subdir if self.image_subdir is not None else split
        return read_vizwiz(
            self.annotations, ledger=ledger, split=split, image_subdir=subdir, min_answers=self.min_answers
        )


@gc_paused
def read_vizwiz(
    annotations: str | os.PathLike,
    *,
    ledger: Ledger | None = None,
    split: str = "",
    image_subdir: str = "",
    min_answers: int = 10,
) -> SourceResult:
    """Read one VizWiz-VQA annotation file into records `vizwiz:{stem}`.

    A missing or malformed file raises naming the file; a bad entry goes to `ledger` with its list
    position and the image it names.
    """
    prefix = image_prefix(image_subdir, "VizWiz image_subdir")
    ledger = ledger if ledger is not None else Ledger()
    path = Path(annotations)
    data = load_json(path, list, "a VizWiz list of questions")
    result = SourceResult(SOURCE)
    t = Tally(ledger, STAGE, str(path), "questions")
    for i, q in enumerate(data):
        t.stats.seen += 1
        loc = f"[{i}]"
        if not isinstance(q, dict):
            t.reject(loc, "entry is not an object")
            continue
        image = q.get("image")
        reason = _image_problem(image, prefix)
        if reason:
            t.reject(loc, reason, image=image)
            continue
        stem = Path(image).stem
        key = KEY_PREFIX + stem
        if key in result.records:
            t.reject(loc, f"duplicate image {image}", image=image)
            continue
        qa, reason = _qa(stem, q, min_answers)
        if qa is None:
            t.reject(loc, reason, image=image)
            continue
        result.records[key] = ImageRecord(
            key, prefix + image, 0, 0, split=split, qas=[qa], sources=[SOURCE], meta={"vizwiz_image": image}
        )
        t.stats.kept += 1
    result.stats.append(t.stats)
    return result


def _image_problem(image: Any, prefix: str) -> str:
    if not isinstance(image, str) or not image.strip():
        return "missing or empty 'image'"
    if "/" in image or "\\" in image or image in (".", ".."):
        return f"'image' must be a file name, got {image!r}"
    return check_rel_path(prefix + image) or ""


def _qa(stem: str, q: dict[str, Any], min_answers: int) -> tuple[QA | None, str]:
    """The entry's question as a `QA` (answered or not), or (None, why not)."""
    question = clean_text(q.get("question"))
    if question is None:
        return None, "missing or empty 'question'"
    qa = QA(stem, question, [], source=SOURCE)
    if all(q.get(k) is None for k in ("answers", "answer_type", "answerable")):
        return qa, ""  # the test split
    raw = q.get("answers")
    if not isinstance(raw, list) or len(raw) < min_answers:
        return None, f"'answers' must be a list of at least {min_answers} answers"
    confidence: list[str] = []
    for k, a in enumerate(raw):
        text = clean_text(a.get("answer")) if isinstance(a, dict) else None
        if text is None:
            return None, f"answers[{k}] has no 'answer' text"
        qa.answers.append(text)
        conf = a.get("answer_confidence")
        confidence.append(conf if isinstance(conf, str) else "")
    if q.get("answer_type") not in ANSWER_TYPES:
        return None, f"'answer_type' must be one of {', '.join(ANSWER_TYPES)}, got {q.get('answer_type')!r}"
    answerable = q.get("answerable")
    if type(answerable) is not int or answerable not in (0, 1):
        return None, f"'answerable' must be 0 or 1, got {answerable!r}"
    qa.answer_type = q["answer_type"]
    qa.meta.update(answerable=answerable, answer_confidence=confidence)
    return qa, ""
