"""The world's OK-VQA: knowledge questions on the COCO images, in the VQAv2 layout (train and val).

    ROOT/okvqa/OpenEnded_mscoco_{split}_questions.json   questions (split train or val)
    ROOT/okvqa/mscoco_{split}_annotations.json           ten answers each, with the category code

File names follow the world's VQAv2 copy (the split name without OK-VQA's `2014`). OK-VQA has no
test split, so the world's test images get none. About 75% of images with an askable fact
(`knowledge.py`) get one question, drawn from this format's own RNG stream (so usually another
fact than A-OKVQA's). Annotations have the official keys: `question_type` is the knowledge
category code (`one` … `ten`, `other`), `answer_type` "other", and each of the ten answers has
`answer_id`, `raw_answer`, `answer_confidence` ("yes") and `answer`. Question ids are
`image_id * 10 + 5`, as most of OK-VQA's are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitune.sources.okvqa import OKVQASource
from vitune.utils.atomic import write_json
from vitune.world.layout import WorldLayout
from vitune.world.vf.format import ImageContext, WorldFormat, register
from vitune.world.vf.knowledge import annotator_answers, knowledge_question
from vitune.world.writers import LICENSES

NAME = "okvqa"
SPLITS = ("train", "val")  # OK-VQA's val is its test set
P_ASK = 0.75


def questions_file(layout: WorldLayout, split: str) -> Path:
    return layout.root / "okvqa" / f"OpenEnded_mscoco_{split}_questions.json"


def annotations_file(layout: WorldLayout, split: str) -> Path:
    return layout.root / "okvqa" / f"mscoco_{split}_annotations.json"


def make(ctx: ImageContext) -> dict[str, Any] | None:
    rng = ctx.rng(NAME)
    if ctx.split not in SPLITS or rng.random() >= P_ASK:
        return None
    asked = knowledge_question(ctx.scene, rng)
    if asked is None:
        return None
    return {
        "question": asked.question,
        "question_type": asked.fact.code,
        "answers": annotator_answers(asked.fact, rng),
    }


def _head(split: str) -> dict[str, Any]:
    info = {"description": "vitune miniature world: OK-VQA", "version": "1.0", "year": 2024}
    return {"info": info, "license": LICENSES[0], "data_subtype": split, "data_type": "mscoco"}


def files_content(records: list[dict], split: str) -> tuple[dict, dict]:
    """(questions, annotations) of one split, in image-index order."""
    questions, annotations = [], []
    for r in sorted(records, key=lambda r: r["idx"]):
        q = r["extras"].get(NAME)
        if r["split"] != split or q is None:
            continue
        qid = r["image_id"] * 10 + 5
        questions.append({"image_id": r["image_id"], "question": q["question"], "question_id": qid})
        answers = [
            {"answer_id": k + 1, "raw_answer": a, "answer_confidence": "yes", "answer": a}
            for k, a in enumerate(q["answers"])
        ]
        annotations.append(
            {
                "image_id": r["image_id"],
                "answer_type": "other",
                "question_type": q["question_type"],
                "question_id": qid,
                "confidence": 3,
                "answers": answers,
            }
        )
    head = _head(split)
    return {**head, "task_type": "Open-Ended", "questions": questions}, {**head, "annotations": annotations}


def write(layout: WorldLayout, records: list[dict]) -> None:
    for split in SPLITS:
        questions, annotations = files_content(records, split)
        write_json(questions_file(layout, split), questions)
        write_json(annotations_file(layout, split), annotations)


def blocks(layout: WorldLayout, split: str) -> list[OKVQASource]:
    if split not in SPLITS:
        return []
    return [OKVQASource(questions=questions_file(layout, split), annotations=annotations_file(layout, split))]


FORMAT = register(WorldFormat(NAME, make, write, blocks))
