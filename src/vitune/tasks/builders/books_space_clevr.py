"""Tasks from OCR-VQA (book covers), VSR (spatial statements) and CLEVR (rendered scenes + programs).

- OCR-VQA: its own questions, reading the title and the author, and the genre (multiple choice over
  the genre vocabulary, open, yes/no): special-domain object classification, as Vision-Flan files
  book-cover genres.
- VSR: is the statement true (image-text matching), which relation holds (reasoning, wrong options
  are relations known to be false for the pair: the opposite of the true one, or the image's own
  false statements), which caption is true (image-text matching, wrong options the image's false
  statements and the true one with its relation flipped).
- CLEVR: its questions (all; counting; existence; attribute and number comparison), and the
  material of an object named by its size, colour and shape (texture classification).

Every builder reads only its own source's QAs (`QA.source`) or meta, so these never mix with VQAv2.
"""

from __future__ import annotations

import random
from typing import Any

from vitune.data.records import QA, ImageRecord
from vitune.tasks.spec import BuildContext, Sample, builder

# VSR relations and a relation that cannot hold at the same time (VSR's vocabulary).
VSR_OPPOSITE = {
    "at the left side of": "at the right side of",
    "at the right side of": "at the left side of",
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "over": "under",
    "on top of": "under",
    "below": "above",
    "under": "on top of",
    "beneath": "above",
    "in front of": "behind",
    "ahead of": "behind",
    "behind": "in front of",
    "at the back of": "in front of",
    "near": "far away from",
    "close to": "far away from",
    "next to": "far away from",
    "beside": "far away from",
    "touching": "far away from",
    "far from": "next to",
    "far away from": "next to",
}
_COMPARE_NUMBER = frozenset({"greater_than", "less_than", "equal_integer"})


def _qas(record: ImageRecord, source: str) -> list[QA]:
    return [qa for qa in record.qas if qa.source == source and qa.answers]


def _meta(qa: QA) -> dict[str, Any]:
    return {"question_id": qa.question_id, "question_type": qa.question_type}


# ---- OCR-VQA ----------------------------------------------------------------------------------------


def _book(record: ImageRecord) -> dict[str, str]:
    info = record.meta.get("ocrvqa")
    return info if isinstance(info, dict) and "ocrvqa" in record.sources else {}


@builder("ocrvqa_question_answering")
def ocrvqa_question_answering(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"question": qa.question, "answer": qa.answers[0]}, _meta(qa)) for qa in _qas(record, "ocrvqa")
    ]


@builder("ocrvqa_title")
def ocrvqa_title(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    title = _book(record).get("title", "")
    return [Sample({"title": title})] if title else []


@builder("ocrvqa_author")
def ocrvqa_author(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    author = _book(record).get("author", "")
    return [Sample({"author": author})] if author else []


@builder("ocrvqa_genre_mc")
def ocrvqa_genre_mc(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    genre = _book(record).get("genre", "")
    return [Sample({"answer": genre}, {"genre": genre})] if genre else []


@builder("ocrvqa_genre_open")
def ocrvqa_genre_open(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    genre = _book(record).get("genre", "")
    return [Sample({"genre": genre})] if genre else []


@builder("ocrvqa_genre_yes_no")
def ocrvqa_genre_yes_no(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """Half the books are asked about their own genre (yes), half about another one (no)."""
    genre = _book(record).get("genre", "")
    if not genre:
        return []
    pool = ctx.pool("book_genres")
    others = [g for g in (pool.vocab if pool else ()) if g != genre]
    if others and rng.random() < 0.5:
        name, answer = rng.choice(others), "No"
    else:
        name, answer = genre, "Yes"
    return [Sample({"genre": name, "answer": answer}, {"genre": genre, "label": answer.lower()})]


# ---- VSR --------------------------------------------------------------------------------------------


@builder("vsr_true_false")
def vsr_true_false(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"caption": qa.question, "answer": qa.answers[0].capitalize()}, _meta(qa))
        for qa in _qas(record, "vsr")
    ]


def _pairs(record: ImageRecord) -> dict[tuple[str, str], tuple[set[str], set[str]]]:
    """(subj, obj) -> (relations stated true, relations stated false) on this image."""
    out: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for qa in _qas(record, "vsr"):
        subj, obj = qa.meta.get("subj", ""), qa.meta.get("obj", "")
        if subj and obj:
            true, false = out.setdefault((subj, obj), (set(), set()))
            (true if qa.meta.get("label") == 1 else false).add(qa.question_type)
    return out


@builder("vsr_relation_selection")
def vsr_relation_selection(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """One true statement; the wrong relations are known false for the same pair."""
    cands = []
    for (subj, obj), (true, false) in sorted(_pairs(record).items()):
        for rel in sorted(true):
            wrong = (false | {VSR_OPPOSITE.get(rel, "")}) - true - {""}
            if wrong:
                cands.append((subj, obj, rel, sorted(wrong)))
    if not cands:
        return []
    subj, obj, rel, wrong = rng.choice(cands)
    fields = {"subj": subj, "obj": obj, "answer": rel}
    return [Sample(fields, {"relation": rel}, choices=[rel, *wrong])]


def _flipped(qa: QA) -> str:
    """The statement with its relation replaced by the opposite one ("" when it has none)."""
    rel = qa.question_type
    opp = VSR_OPPOSITE.get(rel)
    if not opp or qa.question.count(f" {rel} ") != 1:
        return ""
    return qa.question.replace(f" {rel} ", f" {opp} ")


@builder("vsr_caption_selection")
def vsr_caption_selection(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """One true statement among the image's false ones and flipped copies of its true ones."""
    qas = _qas(record, "vsr")
    true = [qa for qa in qas if qa.meta.get("label") == 1]
    if not true:
        return []
    true_texts = {qa.question.lower() for qa in true}
    wrong = [qa.question for qa in qas if qa.meta.get("label") == 0]
    wrong += [f for qa in true if (f := _flipped(qa))]
    wrong = [w for w in dict.fromkeys(wrong) if w.lower() not in true_texts]
    if not wrong:
        return []
    qa = rng.choice(true)
    return [Sample({"answer": qa.question}, _meta(qa), choices=[qa.question, *wrong])]


# ---- CLEVR ------------------------------------------------------------------------------------------


def _clevr(record: ImageRecord, keep: Any) -> list[Sample]:
    return [
        Sample({"question": qa.question, "answer": qa.answers[0]}, _meta(qa))
        for qa in _qas(record, "clevr")
        if keep(qa)
    ]


def _relates(qa: QA) -> bool:
    return any(n.get("function") == "relate" for n in qa.meta.get("program", ()))


@builder("clevr_question_answering")
def clevr_question_answering(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return _clevr(record, lambda qa: True)


@builder("clevr_counting")
def clevr_counting(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return _clevr(record, lambda qa: qa.question_type == "count" and not _relates(qa))


@builder("clevr_existence")
def clevr_existence(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return _clevr(record, lambda qa: qa.question_type == "exist")


@builder("clevr_attribute_comparison")
def clevr_attribute_comparison(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return _clevr(
        record, lambda qa: qa.question_type.startswith("equal_") and qa.question_type != "equal_integer"
    )


@builder("clevr_number_comparison")
def clevr_number_comparison(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return _clevr(record, lambda qa: qa.question_type in _COMPARE_NUMBER)


def clevr_named_objects(record: ImageRecord) -> list[tuple[str, str]]:
    """(“size colour shape”, material) of each scene object that this description names alone."""
    objects = record.meta.get("clevr_objects") or []
    names = [f"{o['size']} {o['color']} {o['shape']}" for o in objects]
    return [(n, o["material"]) for n, o in zip(names, objects, strict=True) if names.count(n) == 1]


@builder("clevr_material")
def clevr_material(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    named = clevr_named_objects(record)
    if not named:
        return []
    name, material = rng.choice(named)
    return [Sample({"object": name, "material": material})]


@builder("clevr_material_mc")
def clevr_material_mc(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    named = clevr_named_objects(record)
    if not named:
        return []
    name, material = rng.choice(named)
    return [Sample({"object": name, "answer": material})]
