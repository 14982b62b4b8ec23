"""OK-VQA (okvqa.allenai.org): the VQAv2 layout, read by `read_vqav2` as its own source `okvqa`.

Official files: `OpenEnded_mscoco_{split}2014_questions.json` (`{"questions": [{image_id, question,
question_id}], ...}`) and `mscoco_{split}2014_annotations.json` (`{"annotations": [{image_id,
question_id, question_type, answer_type ("other"), confidence, answers: [{answer_id, raw_answer,
answer_confidence ("yes"/"no"), answer}] × 10}], ...}`), for train and val only (OK-VQA's val is
its test set). Images are COCO 2014 (`{split}2014/COCO_{split}2014_{image_id:012d}.jpg`): records
are keyed `str(image_id)` like COCO's, which supplies file names and sizes on merge (or give
`file_pattern`, as for VQAv2).

Quirk: `question_type` is not VQAv2's question prefix but OK-VQA's knowledge category, as a code
`one` … `ten` or `other` (`KNOWLEDGE_CATEGORIES`). The code stays in `QA.question_type`; a known
code's name goes to `QA.meta["knowledge_category"]` (an unknown code keeps the question, without
a category). The QAs carry `source == "okvqa"`, so VQAv2's tasks never mix them in.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import ClassVar

from vitune.data.ledger import Ledger
from vitune.sources.block import SourceBlock
from vitune.sources.stats import SourceResult
from vitune.sources.vqav2 import read_vqav2

STAGE = "sources.okvqa"
SOURCE = "okvqa"

# OK-VQA's `question_type` codes and the knowledge categories they stand for (the OK-VQA paper's ten
# categories plus "Other", as the dataset's own files name them).
KNOWLEDGE_CATEGORIES: dict[str, str] = {
    "one": "Vehicles and Transportation",
    "two": "Brands, Companies and Products",
    "three": "Objects, Material and Clothing",
    "four": "Sports and Recreation",
    "five": "Cooking and Food",
    "six": "Geography, History, Language and Culture",
    "seven": "People and Everyday Life",
    "eight": "Plants and Animals",
    "nine": "Science and Technology",
    "ten": "Weather and Climate",
    "other": "Other",
}


class OKVQASource(SourceBlock):
    """`okvqa: {questions: ..., annotations: ...}`; `--source okvqa=QUESTIONS` plus `okvqa.annotations=`."""

    KIND: ClassVar[str] = "okvqa"
    MAIN: ClassVar[str] = "questions"

    questions: Path  # OpenEnded_mscoco_{split}2014_questions.json
    annotations: Path | None = None  # mscoco_{split}2014_annotations.json
    file_pattern: str | None = None  # e.g. "val2014/COCO_val2014_{image_id:012d}.jpg"

    def read(self, *, split: str, ledger: Ledger, known_images: set[str] | None = None) -> SourceResult:
        return read_okvqa(
            self.questions,
            self.annotations,
            ledger=ledger,
            split=split,
            known_images=known_images,
            file_pattern=self.file_pattern,
        )


def read_okvqa(
    questions: str | os.PathLike,
    annotations: str | os.PathLike | None = None,
    *,
    ledger: Ledger | None = None,
    split: str = "",
    known_images: Collection[str] | None = None,
    file_pattern: str | None = None,
) -> SourceResult:
    """Read OK-VQA questions (+ annotations) with the VQAv2 reader; name each QA's knowledge category."""
    result = read_vqav2(
        questions,
        annotations,
        ledger=ledger,
        split=split,
        known_images=known_images,
        file_pattern=file_pattern,
        source=SOURCE,
        stage=STAGE,
    )
    for rec in result.records.values():
        for qa in rec.qas:
            name = KNOWLEDGE_CATEGORIES.get(qa.question_type.lower())
            if name is not None:
                qa.meta["knowledge_category"] = name
    return result
