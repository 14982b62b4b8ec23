"""Reading facts off an `ImageRecord` the same way in every builder: objects, colours, boxes, words.

Builders and the option pools share these, so "the colours of an object" or "the box text of a
region" mean the same thing in every task. Nothing here holds instruction text (that is
`catalog.yaml`'s job) or randomness.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache

from vitune.data.records import Box, ImageRecord, ObjectAnn
from vitune.utils.text import COLOR_WORDS, plural

# Spellings of one colour: an option list must never offer both as different answers.
COLOR_SYNONYMS = {"gray": frozenset({"gray", "grey"}), "grey": frozenset({"gray", "grey"})}
SIZE_WORDS = ("small", "medium", "large")
# Sources whose object annotations are exhaustive enough to say "no such object" (COCO instances
# cover every object of their categories; the world's VG does too).
DETECTION_SOURCES = frozenset({"coco", "vg"})
# Sources of short-answer VQA questions (VQAv2 and anything read through its reader; "" for QAs
# built by hand). GQA, TextVQA and ScienceQA QAs have tasks of their own.
VQA_SOURCES = frozenset({"vqav2", ""})
REFCOCO_SOURCES = frozenset({"refcoco", "refcoco+", "refcocog"})


def objects_of(record: ImageRecord, prefer: str, *, crowd: bool = False) -> list[ObjectAnn]:
    """Objects from one source (COCO and VG describe the same objects twice after merging).

    COCO crowd regions (`iscrowd=1`) are left out unless `crowd`: a box around "people" is not one
    object to count, detect or ground (COCO's evaluation ignores them too)."""
    chosen = [o for o in record.objects if o.source == prefer] or record.objects
    return chosen if crowd else [o for o in chosen if not o.crowd]


def present_names(record: ImageRecord, prefer: str) -> set[str]:
    """Every category present in the image, crowd regions included: what must never be called absent."""
    return {o.name for o in objects_of(record, prefer, crowd=True)}


def colors_of(obj: ObjectAnn) -> list[str]:
    return [a for a in obj.attributes if a in COLOR_WORDS]


def color_variants(color: str) -> frozenset[str]:
    """`color` and its other spellings ("gray" -> {"gray", "grey"})."""
    return COLOR_SYNONYMS.get(color, frozenset({color}))


def box_text(box: Box, width: int, height: int) -> str:
    """`[x1, y1, x2, y2]` normalized to 0-1, three decimals each (SVIT / Shikra style)."""
    if width <= 0 or height <= 0:
        raise ValueError("image size unknown: a box cannot be normalized")
    return "[" + ", ".join(f"{v:.3f}" for v in box.normalized_xyxy(width, height)) + "]"


def name_counts(objs: list[ObjectAnn]) -> Counter[str]:
    return Counter(o.name for o in objs)


@cache
def _word_re(word: str) -> re.Pattern[str]:
    # The word or its plural as whole words: "circle" matches "circles", not "semicircle".
    forms = sorted({re.escape(word), re.escape(plural(word))}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(forms) + r")\b", re.IGNORECASE)


def mentions(text: str, word: str) -> bool:
    """Whether `text` names `word` (or its plural) as a whole word, case-insensitively."""
    return bool(_word_re(word).search(text))


def mentions_absent(text: str, present: set[str], vocabulary: tuple[str, ...]) -> bool:
    """Whether `text` names a category of `vocabulary` that is not `present`: then it cannot describe
    the image (as far as the exhaustive object annotations tell)."""
    return any(name not in present and mentions(text, name) for name in vocabulary)


def unique_object_phrases(objs: list[ObjectAnn]) -> list[tuple[ObjectAnn, str]]:
    """(object, phrase) for objects a phrase names unambiguously: the name alone when it is unique
    in the image, else "colour name" when exactly one object of that name has that single colour
    (every other object of that name must have a known colour: an unannotated one might share it)."""
    names = name_counts(objs)
    out = []
    for o in objs:
        if names[o.name] == 1:
            out.append((o, o.name))
            continue
        cs = set(colors_of(o))
        if len(cs) != 1:
            continue
        (c,) = cs
        same = [p for p in objs if p is not o and p.name == o.name]
        if all(colors_of(p) and not (set(colors_of(p)) & color_variants(c)) for p in same):
            out.append((o, f"{c} {o.name}"))
    return out
