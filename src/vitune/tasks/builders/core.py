"""The first built-in tasks (captions, VQAv2 short answers, counting, colours, inventories, existence).

The quickstart trains on these; their output for COCO/VG/VQAv2 records is fixed (the same records
and seed give the same bytes as before the catalog grew). Records of other sources (GQA, TextVQA,
ScienceQA questions; class-folder images without object annotations) give them nothing: VQA tasks
read VQAv2-format QAs only, and existence needs a source that annotates objects exhaustively.

Every builder is deterministic given its `rng` (seeded per task and image by `build.py`), and only
emits samples whose answer is unambiguous from the annotations.
"""

from __future__ import annotations

import random
from collections import Counter

from vitune.data.records import QA, ImageRecord, ObjectAnn
from vitune.tasks.helpers import DETECTION_SOURCES, VQA_SOURCES, colors_of, objects_of, present_names
from vitune.tasks.spec import BuildContext, Sample, builder
from vitune.utils.text import plural


def vqa_qas(record: ImageRecord) -> list[QA]:
    """Answered VQAv2-format questions of the record, in file order."""
    return [qa for qa in record.qas if qa.source in VQA_SOURCES and qa.answers]


@builder("coco_caption_coarse")
def caption_coarse(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    if not record.captions:
        return []
    return [Sample({"caption": rng.choice(record.captions).strip()})]


@builder("vqa_short_answer")
def vqa_short_answer(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    out = []
    for qa in vqa_qas(record):  # test-split questions carry no answers
        out.append(
            Sample(
                {"question": qa.question.strip(), "answer": qa.majority_answer()},
                {
                    "question_id": qa.question_id,
                    "question_type": qa.question_type,
                    "answer_type": qa.answer_type,
                },
            )
        )
    return out


@builder("vqa_dialog")
def vqa_dialog(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """All answered questions of an image as one multi-turn conversation, in a seeded order."""
    qas = vqa_qas(record)
    if not qas:
        return []
    rng.shuffle(qas)
    turns = [{"question": qa.question.strip(), "answer": qa.majority_answer()} for qa in qas]
    return [Sample({}, {"question_ids": [qa.question_id for qa in qas]}, turns=turns)]


@builder("object_counting")
def object_counting(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    counts = Counter(o.name for o in objects_of(record, "coco"))
    if not counts:
        return []
    name = rng.choice(sorted(counts))
    return [Sample({"name": name, "plural": plural(name), "count": counts[name]})]


def _unique_colored(record: ImageRecord) -> list[tuple[ObjectAnn, str]]:
    """(object, colour) for objects that have exactly one colour and a name unique in the image."""
    objs = objects_of(record, "vg")
    names = Counter(o.name for o in objs)
    out = []
    for o in objs:
        cs = colors_of(o)
        if names[o.name] == 1 and len(set(cs)) == 1:
            out.append((o, cs[0]))
    return out


@builder("object_color")
def object_color(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    cands = _unique_colored(record)
    if not cands:
        return []
    obj, color = rng.choice(cands)
    return [Sample({"name": obj.name, "color": color})]


@builder("object_shape")
def object_shape(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    objs = objects_of(record, "vg")
    by_color = Counter(c for o in objs for c in set(colors_of(o)))
    cands = [(o, c) for o, c in _unique_colored(record) if by_color[c] == 1]
    if not cands:
        return []
    obj, color = rng.choice(cands)
    return [Sample({"name": obj.name, "color": color})]


def _inventory(words: list[str]) -> str:
    return ", ".join(sorted(set(words)))


@builder("color_inventory")
def color_inventory(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    colors = [c for o in objects_of(record, "vg") for c in colors_of(o)]
    return [Sample({"colors": _inventory(colors)})] if colors else []


@builder("object_inventory")
def object_inventory(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    names = [o.name for o in objects_of(record, "coco")]
    return [Sample({"names": _inventory(names)})] if names else []


@builder("object_existence")
def object_existence(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    present = sorted({o.name for o in objects_of(record, "coco")})
    if not present and not DETECTION_SOURCES & set(record.sources):
        return []  # no source annotated this image's objects: "No" would be a guess
    seen = present_names(record, "coco")  # a crowd of people still means people are there
    absent = [n for n in ctx.object_names if n not in seen]
    # Balanced by construction: a fair coin picks a positive or a negative question.
    if present and (not absent or rng.random() < 0.5):
        return [Sample({"name": rng.choice(present), "answer": "Yes"}, {"label": "yes"})]
    if absent:
        return [Sample({"name": rng.choice(absent), "answer": "No"}, {"label": "no"})]
    return []
