"""VSR, Visual Spatial Reasoning (`splits/{random,zeroshot}/{train,dev,test}.jsonl`) → true/false
spatial statements on the COCO records of their images.

Official layout (cambridgeltl/visual-spatial-reasoning, `data/README.md`): JSON Lines, one statement
per line: `{"image": "000000239417.jpg", "image_link": "http://images.cocodataset.org/train2017/...",
"caption": "The bench is at the right side of the train.", "label": 0 | 1, "relation": "at the right
side of", "annotator_id", "vote_true_validator_id", "vote_false_validator_id", ...}`. `image` is a
COCO 2017 file name, i.e. the zero-padded COCO image id; the images live in one flat folder
(`data/images/`, or COCO's own `train2017/`/`val2017/`). The Hugging Face copies also carry `subj`
and `obj` (the two object names); the GitHub files do not (and write the validator lists as strings
such as `"[2, 10, 1]"`): when `subj`/`obj` are absent they are read off the caption
(`The {subj} is {relation} the {obj}.`), and left empty when the caption has another shape.

Decisions:
- Records are keyed `str(COCO image id)`, the key `sources/coco.py` uses, so statements land on the
  COCO record of the same image when COCO is read too (its file name and size win in `merge`).
  The id is the number `image`'s stem ends with, so COCO 2014 names (`COCO_train2014_…`) work too.
  `known_images` (the spec's `restrict_to_coco`) rejects statements about other images.
- One `QA` per statement: `question` = the caption, `answers == ["true"]` or `["false"]`,
  `answer_type == "true/false"`, `question_type` = the relation, `source == "vsr"`,
  `meta` = `{label, relation, subj, obj, image}`; `question_id` is `"{file stem}-{line}"` (VSR has no ids).
- Rejected (ledgered with `line N`): a line that is not a JSON object, a missing or unusable
  `image`, `caption` or `relation`, a `label` other than 0/1, an image path that would leave the
  image root, the same caption twice for one image. Blank lines are skipped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path, image_prefix
from vitune.data.records import QA
from vitune.sources.block import SourceBlock
from vitune.sources.fields import clean_text
from vitune.sources.jsonio import gc_paused, read_text
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.vsr"
SOURCE = "vsr"
_TRAILING_ID = re.compile(r"(\d+)$")


class VSRSource(SourceBlock):
    """`--source vsr=splits/random/train.jsonl` (images at `{image_root}/{image_subdir}/{image}`)."""

    KIND: ClassVar[str] = "vsr"
    MAIN: ClassVar[str] = "statements"

    statements: Path  # one split's JSONL file
    image_subdir: str = "images"

    def read(self, *, split: str, ledger: Ledger, known_images: set[str] | None = None) -> SourceResult:
        return read_vsr(
            self.statements,
            split=split,
            ledger=ledger,
            image_subdir=self.image_subdir,
            known_images=known_images,
        )


def coco_id(image: str) -> str | None:
    """The COCO image id of a VSR `image` (the number its stem ends with, without leading zeros)."""
    m = _TRAILING_ID.search(Path(image).stem)
    return str(int(m.group(1))) if m else None


def parse_caption(caption: str, relation: str) -> tuple[str, str]:
    """`(subj, obj)` of "The {subj} is {relation} the {obj}." ("", "") when it is not of that shape."""
    pattern = rf"the (.+?) (?:is |are )?{re.escape(relation)} the (.+?)\.?"
    m = re.fullmatch(pattern, caption.strip(), re.IGNORECASE)
    return (m.group(1).lower(), m.group(2).lower()) if m else ("", "")


@gc_paused
def read_vsr(
    statements: str | os.PathLike,
    *,
    split: str = "",
    ledger: Ledger | None = None,
    image_subdir: str = "images",
    known_images: Collection[str] | None = None,
) -> SourceResult:
    """Read one VSR JSONL file into records keyed by COCO image id.

    A missing file raises naming it; a bad line goes to `ledger` as `line N` (1-based).
    """
    prefix = image_prefix(image_subdir, "VSR image_subdir")
    ledger = ledger if ledger is not None else Ledger()
    known = set(known_images) if known_images is not None else None
    path = Path(statements)
    text = read_text(path, "a JSONL file")
    result = SourceResult(SOURCE)
    t = Tally(ledger, STAGE, str(path), "statements")
    seen: set[tuple[str, str]] = set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        t.stats.seen += 1
        key, qa, reason = _statement(line, f"{path.stem}-{n}", prefix, known)
        if qa is None:
            t.reject(f"line {n}", reason)
            continue
        if (key, qa.question.lower()) in seen:
            t.reject(f"line {n}", f"duplicate caption for image {key}: {qa.question!r}")
            continue
        seen.add((key, qa.question.lower()))
        result.record(key, prefix + qa.meta["image"], split).qas.append(qa)
        t.stats.kept += 1
    result.stats.append(t.stats)
    return result


def _statement(line: str, qid: str, prefix: str, known: set[str] | None) -> tuple[str, QA | None, str]:
    """(record key, statement as a QA, "") or ("", None, why not)."""
    try:
        d: Any = json.loads(line)
    except json.JSONDecodeError as e:
        return "", None, f"invalid JSON: {e.msg}"
    if not isinstance(d, dict):
        return "", None, "line is not a JSON object"
    image = d.get("image")
    if not isinstance(image, str) or not image.strip():
        return "", None, "missing or empty 'image'"
    image = image.strip()
    reason = check_rel_path(prefix + image)
    if reason is not None:
        return "", None, reason
    key = coco_id(image)
    if key is None:
        return "", None, f"'image' {image!r} does not end with a COCO image id"
    if known is not None and key not in known:
        return "", None, f"unknown image id {key} (not among the COCO images read)"
    caption, relation = clean_text(d.get("caption")), clean_text(d.get("relation"))
    if caption is None or relation is None:
        return "", None, "missing or empty 'caption' or 'relation'"
    label = d.get("label")
    if type(label) is not int or label not in (0, 1):  # bool is not a label
        return "", None, f"'label' must be 0 (false) or 1 (true), got {label!r}"
    subj, obj = clean_text(d.get("subj")), clean_text(d.get("obj"))
    if subj is None or obj is None:
        subj, obj = parse_caption(caption, relation)
    meta = {"label": label, "relation": relation, "subj": subj, "obj": obj, "image": image}
    answer = "true" if label == 1 else "false"
    return key, QA(qid, caption, [answer], "true/false", relation, source=SOURCE, meta=meta), ""
