"""Tasks from Visual Genome attributes, relationships and regions, and RefCOCO referring expressions.

Visual Genome is not exhaustive (an unannotated red car may exist), so a "no" or a wrong option is
only used where the annotations contradict it outright: a colour none of the same-named objects
has while all of them have a known colour; a spatial predicate the two boxes rule out (the subject
clearly on the other side, or clearly smaller for "bigger than"). Objects are named by a phrase
that fits only them (`helpers.unique_object_phrases`). RefCOCO expressions were written to single
out their object, so they are used as they are.
"""

from __future__ import annotations

import random

from vitune.data.records import Box, ImageRecord, ObjectAnn, Region, Relation
from vitune.tasks.helpers import (
    REFCOCO_SOURCES,
    SIZE_WORDS,
    box_text,
    color_variants,
    colors_of,
    mentions,
    name_counts,
    objects_of,
    unique_object_phrases,
)
from vitune.tasks.spec import BuildContext, Sample, builder

# Spatial predicates the boxes can refute, and how they read in a question.
PREDICATE_TEXT = {
    "left of": "to the left of",
    "right of": "to the right of",
    "above": "above",
    "below": "below",
    "bigger than": "bigger than",
    "smaller than": "smaller than",
    "next to": "next to",  # never refuted by boxes: an answer, never a wrong option
}
OFFSET = 0.2  # of the mean box side: a centre this far on the other side refutes left/right/above/below
AREA_RATIO = 2.5  # box areas hide up to ~2.2x differences in drawn area; beyond this "bigger" is refuted


def vg_objects(record: ImageRecord) -> list[ObjectAnn]:
    return [o for o in record.objects if o.source == "vg"] or objects_of(record, "vg")


def refuted(pred: str, s: Box, o: Box) -> bool:
    """Whether boxes `s` (subject) and `o` (object) rule out `subject pred object`."""
    sx, sy = s.x + s.w / 2, s.y + s.h / 2
    ox, oy = o.x + o.w / 2, o.y + o.h / 2
    mw, mh = (s.w + o.w) / 2, (s.h + o.h) / 2
    return {
        "left of": sx - ox > OFFSET * mw,
        "right of": ox - sx > OFFSET * mw,
        "above": sy - oy > OFFSET * mh,
        "below": oy - sy > OFFSET * mh,
        "bigger than": o.area > AREA_RATIO * s.area,
        "smaller than": s.area > AREA_RATIO * o.area,
    }.get(pred, False)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


@builder("attribute_color_mc")
def attribute_color_mc(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    objs = vg_objects(record)
    names = name_counts(objs)
    cands = [(o, cs) for o in objs if names[o.name] == 1 and len(cs := set(colors_of(o))) == 1]
    if not cands:
        return []
    o, cs = rng.choice(cands)
    (color,) = cs
    return [
        Sample({"name": o.name, "answer": color}, {"object_id": o.object_id}, exclude=color_variants(color))
    ]


@builder("attribute_size")
def attribute_size(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    cands = []
    for o, phrase in unique_object_phrases(vg_objects(record)):
        sizes = {a for a in o.attributes if a in SIZE_WORDS}
        if len(sizes) == 1:
            cands.append((o, phrase, sizes.pop()))
    if not cands:
        return []
    o, phrase, size = rng.choice(cands)
    return [Sample({"phrase": phrase, "answer": size}, {"object_id": o.object_id})]


@builder("attribute_existence")
def attribute_existence(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """ "Is there a {colour} {name}?": yes from an annotated object, no only where refuted (see module)."""
    objs = vg_objects(record)
    pos = sorted({(c, o.name) for o in objs for c in colors_of(o)})
    neg = []
    palette = ctx.pool("colors")
    for name in sorted({o.name for o in objs}):
        same = [o for o in objs if o.name == name]
        if not all(colors_of(o) for o in same):
            continue
        seen = {v for o in same for c in colors_of(o) for v in color_variants(c)}
        neg += [(c, name) for c in (palette.vocab if palette else ()) if c not in seen]
    if pos and (not neg or rng.random() < 0.5):
        (color, name), answer = rng.choice(pos), "Yes"
    elif neg:
        (color, name), answer = rng.choice(neg), "No"
    else:
        return []
    return [
        Sample(
            {"article": _article(color), "color": color, "name": name, "answer": answer},
            {"label": answer.lower()},
        )
    ]


def _spatial(record: ImageRecord) -> list[tuple[Relation, str, str, Box, Box]]:
    """Annotated relations between two uniquely named objects: (relation, subject, object, boxes)."""
    phrase = {o.object_id: p for o, p in unique_object_phrases(vg_objects(record))}
    by_id = record.object_by_id()
    out = []
    for rel in record.relations:
        if rel.source != "vg" or rel.predicate not in PREDICATE_TEXT:
            continue
        s, o = phrase.get(rel.subject_id), phrase.get(rel.object_id)
        if s and o and s != o:
            out.append((rel, s, o, by_id[rel.subject_id].box, by_id[rel.object_id].box))
    return out


def _annotated(record: ImageRecord, rel: Relation) -> set[str]:
    return {
        r.predicate
        for r in record.relations
        if (r.subject_id, r.object_id) == (rel.subject_id, rel.object_id)
    }


@builder("relation_predicate_mc")
def relation_predicate_mc(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """Fill in the predicate; wrong options are predicates the boxes refute (at least two of them)."""
    cands = []
    for rel, s, o, sb, ob in _spatial(record):
        wrong = [p for p in PREDICATE_TEXT if refuted(p, sb, ob) and p not in _annotated(record, rel)]
        if len(wrong) >= 2:
            cands.append((rel, s, o, wrong))
    if not cands:
        return []
    rel, s, o, wrong = rng.choice(cands)
    return [Sample({"subject": s, "object": o, "answer": rel.predicate}, choices=[rel.predicate, *wrong])]


@builder("relation_verify")
def relation_verify(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    rels = _spatial(record)
    if not rels:
        return []
    rel, s, o, sb, ob = rng.choice(rels)
    wrong = [p for p in PREDICATE_TEXT if refuted(p, sb, ob)]
    if wrong and rng.random() < 0.5:
        pred, answer = rng.choice(wrong), "No"
    else:
        pred, answer = rel.predicate, "Yes"
    fields = {"subject": s, "object": o, "relation": PREDICATE_TEXT[pred], "answer": answer}
    return [Sample(fields, {"label": answer.lower(), "predicate": pred})]


@builder("region_caption")
def region_caption(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    regions = [r for r in record.regions if r.source == "vg"]
    if not regions or record.width <= 0:
        return []
    r = rng.choice(regions)
    return [
        Sample(
            {"box": box_text(r.box, record.width, record.height), "phrase": r.phrase},
            {"region_id": r.region_id},
        )
    ]


@builder("vg_phrase_grounding")
def vg_phrase_grounding(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """Phrase -> box, for phrases that occur once and name only objects unique in the image."""
    if record.width <= 0:
        return []
    regions = [r for r in record.regions if r.source == "vg"]
    counts = name_counts(vg_objects(record))
    seen: dict[str, int] = {}
    for r in regions:
        seen[r.phrase.lower()] = seen.get(r.phrase.lower(), 0) + 1
    cands = []
    for r in regions:
        named = [n for n in counts if mentions(r.phrase, n)]
        if seen[r.phrase.lower()] == 1 and named and all(counts[n] == 1 for n in named):
            cands.append(r)
    if not cands:
        return []
    r = rng.choice(cands)
    return [
        Sample(
            {"phrase": r.phrase, "box": box_text(r.box, record.width, record.height)},
            {"region_id": r.region_id},
        )
    ]


def _pick_ref(record: ImageRecord, rng: random.Random) -> tuple[Region, str, dict] | None:
    """One RefCOCO-family region of the image, its box as text and the sample meta (None: none)."""
    regions = [r for r in record.regions if r.source in REFCOCO_SOURCES] if record.width > 0 else []
    if not regions:
        return None
    r = rng.choice(regions)
    meta = {"region_id": r.region_id, "object_id": record.meta.get("region_objects", {}).get(r.region_id)}
    return r, box_text(r.box, record.width, record.height), meta


@builder("refcoco_grounding")
def refcoco_grounding(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    if (ref := _pick_ref(record, rng)) is None:
        return []
    r, box, meta = ref
    return [Sample({"phrase": r.phrase, "box": box}, meta)]


@builder("refcoco_region_caption")
def refcoco_region_caption(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    if (ref := _pick_ref(record, rng)) is None:
        return []
    r, box, meta = ref
    return [Sample({"box": box, "phrase": r.phrase}, meta)]


@builder("refcoco_selection")
def refcoco_selection(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """Pick the referred object's box among the boxes of other objects of the same image."""
    if (ref := _pick_ref(record, rng)) is None:
        return []
    r, box, meta = ref
    # Every COCO object's box is a candidate; an identical box (the referred object) is the answer.
    boxes = [box_text(o.box, record.width, record.height) for o in objects_of(record, "coco")]
    choices = list(dict.fromkeys([box, *boxes]))
    if len(choices) < 2:
        return []
    return [Sample({"phrase": r.phrase, "answer": box}, meta, choices=choices)]
