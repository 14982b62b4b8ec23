"""A-OKVQA (`aokvqa_v1p0_{split}.json`, allenai/aokvqa) → knowledge QAs on the COCO 2017 image records.

Official layout: one JSON list per split; each entry is `{"split", "image_id", "question_id"
(a 22-character string), "question", "choices" (4 strings), "correct_choice_idx",
"direct_answers" (10 strings), "difficult_direct_answer" (bool), "rationales" (3 sentences)}`.
The test split has no answers: its entries carry only `split`, `image_id`, `question_id`,
`question`, `choices` (and `difficult_direct_answer`), and become QAs with `answers == []` and no
`answer_index`. An entry with only part of the answer fields (choice index without direct answers,
or the reverse) is malformed. Images are COCO 2017: `{split}2017/{image_id:012d}.jpg`
(`load_aokvqa.get_coco_path`), the default `file_pattern`.

Records are keyed `str(image_id)`, the key `sources/coco.py` gives the same COCO image, so `merge`
puts A-OKVQA's questions on the COCO record (which then supplies size and file name). Each QA:
`answers` = the ten direct answers (`majority_answer()` is their most frequent), `choices` and
`answer_index` = the multiple-choice question, `rationale` = the first rationale,
`meta["rationales"]` = all of them and `meta["difficult_direct_answer"]` the flag (set by the
authors where the direct answers are hard to agree on; the direct-answer task leaves those out).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path
from vitune.data.records import QA
from vitune.sources.block import SourceBlock
from vitune.sources.fields import as_id, clean_text
from vitune.sources.jsonio import gc_paused, load_json
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.aokvqa"
SOURCE = "aokvqa"
COCO2017_PATTERN = "{split}2017/{image_id:012d}.jpg"


class AOKVQASource(SourceBlock):
    """`aokvqa: {questions: aokvqa_v1p0_val.json}`; `--source aokvqa=PATH`."""

    KIND: ClassVar[str] = "aokvqa"
    MAIN: ClassVar[str] = "questions"

    questions: Path  # aokvqa_v1p0_{split}.json
    # Relative to the image root; `{split}` is the entry's own split. None: COCO supplies file names.
    file_pattern: str | None = COCO2017_PATTERN

    def read(self, *, split: str, ledger: Ledger, known_images: set[str] | None = None) -> SourceResult:
        return read_aokvqa(
            self.questions,
            ledger=ledger,
            split=split,
            known_images=known_images,
            file_pattern=self.file_pattern,
        )


@gc_paused
def read_aokvqa(
    questions: str | os.PathLike,
    *,
    ledger: Ledger | None = None,
    split: str = "",
    known_images: Collection[str] | None = None,
    file_pattern: str | None = COCO2017_PATTERN,
) -> SourceResult:
    """Read one A-OKVQA split file into records keyed by COCO image id.

    A missing or malformed file raises naming the file; a bad entry goes to `ledger` with its
    list position. `known_images` (the COCO ids read): a question about another image is rejected.
    """
    ledger = ledger if ledger is not None else Ledger()
    known = set(known_images) if known_images is not None else None
    path = Path(questions)
    data = load_json(path, list, "an A-OKVQA list of questions")
    result = SourceResult(SOURCE)
    t = Tally(ledger, STAGE, str(path), "questions")
    seen_q: set[str] = set()
    for i, q in enumerate(data):
        t.stats.seen += 1
        loc = f"[{i}]"
        if not isinstance(q, dict):
            t.reject(loc, "entry is not an object")
            continue
        qa, iid, reason = _entry(q, seen_q, known)
        if qa is None or iid is None:
            t.reject(loc, reason, question_id=q.get("question_id"))
            continue
        name, reason = _file_name(file_pattern, q, iid, split)
        if reason:
            t.reject(loc, reason, question_id=qa.question_id)
            continue
        seen_q.add(qa.question_id)
        result.record(iid, name, split).qas.append(qa)
        t.stats.kept += 1
    result.stats.append(t.stats)
    return result


def _entry(q: dict[str, Any], seen_q: set[str], known: set[str] | None) -> tuple[QA | None, str | None, str]:
    """The entry as a `QA` with its image id, or (None, None, why not)."""
    qid, iid = as_id(q.get("question_id")), as_id(q.get("image_id"))
    if qid is None or iid is None:
        return None, None, "missing or invalid 'question_id' or 'image_id'"
    if not iid.isdigit():
        return None, None, f"'image_id' must be a COCO image number, got {iid!r}"
    question = clean_text(q.get("question"))
    if question is None:
        return None, None, "missing or empty 'question'"
    if qid in seen_q:
        return None, None, f"duplicate question id {qid}"
    if known is not None and iid not in known:
        return None, None, f"unknown image id {iid}"
    choices, reason = _strings(q.get("choices"), "choices", 2)
    if choices is None:
        return None, None, reason
    answered = [k for k in ("correct_choice_idx", "direct_answers") if q.get(k) is not None]
    if len(answered) == 1:
        missing = "direct_answers" if answered[0] == "correct_choice_idx" else "correct_choice_idx"
        return None, None, f"'{answered[0]}' without '{missing}' (only the test split has no answers)"
    qa = QA(qid, question, [], answer_type="multiple_choice", source=SOURCE, choices=choices)
    qa.meta["difficult_direct_answer"] = q.get("difficult_direct_answer") is True
    if answered:
        reason = _answers(q, qa)
        if reason:
            return None, None, reason
    return qa, iid, ""


def _answers(q: dict[str, Any], qa: QA) -> str:
    """Fill the answer fields of `qa` from an answered entry; the reason they are malformed, or ""."""
    idx = q["correct_choice_idx"]
    if type(idx) is not int or not 0 <= idx < len(qa.choices):  # bool is not an index
        return f"'correct_choice_idx' must be an index into the {len(qa.choices)} choices, got {idx!r}"
    direct, reason = _strings(q["direct_answers"], "direct_answers", 1)
    if direct is None:
        return reason
    rationales, reason = _strings(q.get("rationales", []), "rationales", 0)
    if rationales is None:
        return reason
    qa.answer_index, qa.answers = idx, direct
    qa.rationale = rationales[0] if rationales else ""
    qa.meta["rationales"] = rationales
    return ""


def _strings(value: Any, key: str, at_least: int) -> tuple[list[str] | None, str]:
    if not isinstance(value, list) or len(value) < at_least:
        return None, f"'{key}' must be a list of at least {at_least} strings"
    out = [clean_text(v) for v in value]
    for k, v in enumerate(out):
        if v is None:
            return None, f"{key}[{k}] is not a non-empty string"
    return out, ""  # type: ignore[return-value]


def _file_name(pattern: str | None, q: dict[str, Any], iid: str, split: str) -> tuple[str, str]:
    """The image path from `pattern` (the entry's own split, else the read's), or ("", why not)."""
    if pattern is None:
        return "", ""
    own = q.get("split") if isinstance(q.get("split"), str) and q.get("split") else split
    if not own:
        return "", "no 'split' to name the COCO image folder"
    try:
        name = pattern.format(split=own, image_id=int(iid))
    except (ValueError, KeyError, IndexError) as e:
        raise ValueError(f"A-OKVQA file_pattern {pattern!r}: {e}") from None
    reason = check_rel_path(name)
    return (name, "") if reason is None else ("", reason)
