"""The world's A-OKVQA: knowledge questions on the COCO images, in `aokvqa_v1p0_{split}.json`.

    ROOT/aokvqa/aokvqa_v1p0_{split}.json     a list of questions per split (train, val, test)

About 85% of images with an askable fact (`knowledge.py`) get one question, as A-OKVQA asks about
one question per COCO 2017 image. Each entry has the official keys: `question_id` (22 letters and
digits), `choices` (the answer and three certainly-wrong options, shuffled), `correct_choice_idx`,
ten `direct_answers` (the answer at least six times, else alternates), `difficult_direct_answer`
(true when fewer than seven annotators agree) and three `rationales` citing what is seen plus
the fact. The test file, as the real one, keeps only `split`, `image_id`, `question_id`,
`question`, `choices` and `difficult_direct_answer`. The block reads with `file_pattern=None`:
the COCO record of the same image id supplies the file name, as A-OKVQA rides on COCO.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from vitune.sources.aokvqa import AOKVQASource
from vitune.utils.atomic import write_json
from vitune.world.layout import SPLITS, WorldLayout
from vitune.world.vf.format import ImageContext, WorldFormat, register
from vitune.world.vf.knowledge import annotator_answers, knowledge_question

NAME = "aokvqa"
P_ASK = 0.85
_ID_CHARS = string.ascii_letters + string.digits
_ANSWER_KEYS = ("correct_choice_idx", "direct_answers", "rationales")


def aokvqa_file(layout: WorldLayout, split: str) -> Path:
    return layout.root / "aokvqa" / f"aokvqa_v1p0_{split}.json"


def make(ctx: ImageContext) -> dict[str, Any] | None:
    rng = ctx.rng(NAME)
    if rng.random() >= P_ASK:
        return None
    asked = knowledge_question(ctx.scene, rng)
    if asked is None:
        return None
    fact = asked.fact
    choices = [fact.answer, *rng.sample(fact.distractors, 3)]
    rng.shuffle(choices)
    direct = annotator_answers(fact, rng)
    return {
        "question_id": "".join(rng.choice(_ID_CHARS) for _ in range(22)),
        "question": asked.question,
        "choices": choices,
        "correct_choice_idx": choices.index(fact.answer),
        "direct_answers": direct,
        "difficult_direct_answer": direct.count(fact.answer) < 7,
        "rationales": asked.rationales,
    }


def entries(records: list[dict], split: str) -> list[dict]:
    """The split's file content, in image-index order (test: without the answer keys)."""
    out = []
    for r in sorted(records, key=lambda r: r["idx"]):
        q = r["extras"].get(NAME)
        if r["split"] != split or q is None:
            continue
        entry = {"split": split, "image_id": r["image_id"], **q}
        if split == "test":
            entry = {k: v for k, v in entry.items() if k not in _ANSWER_KEYS}
        out.append(entry)
    return out


def write(layout: WorldLayout, records: list[dict]) -> None:
    for split in SPLITS:
        write_json(aokvqa_file(layout, split), entries(records, split))


def blocks(layout: WorldLayout, split: str) -> list[AOKVQASource]:
    return [AOKVQASource(questions=aokvqa_file(layout, split), file_pattern=None)]


FORMAT = register(WorldFormat(NAME, make, write, blocks))
