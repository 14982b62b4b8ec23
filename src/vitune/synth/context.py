"""Serialize an `ImageRecord` into the labelled text blocks a text-only LLM reads (SVIT's context).

Blocks, in order: ``Captions:`` (one per line), ``Objects:`` as ``name: [x1, y1, x2, y2]`` with
coordinates normalized to 0-1 and 3 decimals, ``Regions:`` (phrase, optionally with its box), and
optionally ``Attributes:`` and ``Relations:``. The output is a pure function of the record and the
config, so the same record always gives the same prompt and therefore the same cache key.

A token budget (approximate, no tokenizer needed) trims the least useful lines first: near-duplicate
object boxes (COCO and Visual Genome annotate the same object twice), then regions, relations,
attributes, objects and, last of all, captions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vitune.data.records import Box, ImageRecord, ObjectAnn


@dataclass(frozen=True, slots=True)
class ContextConfig:
    captions: bool = True
    objects: bool = True
    regions: bool = True
    region_boxes: bool = True  # SVIT's public example shows region boxes; its paper text omits them
    attributes: bool = False
    relations: bool = False
    ndigits: int = 3
    max_tokens: int | None = None  # approximate-token budget for the whole context; None = no limit
    chars_per_token: float = 4.0
    dup_iou: float = 0.85  # same-name boxes at least this overlapping count as one object
    max_regions: int | None = None  # keep at most this many regions (first ones, in record order)


def approx_tokens(text: str, chars_per_token: float = 4.0) -> int:
    """A tokenizer-free estimate: the larger of the word count and characters / `chars_per_token`.

    BPE tokenizers give roughly one token per 4 English characters; numbers and punctuation
    (boxes!) tokenize worse, which the word count floor partly covers.
    """
    if not text:
        return 0
    return max(len(text.split()), math.ceil(len(text) / chars_per_token))


def format_box(box: Box, width: int, height: int, ndigits: int = 3) -> str:
    vals = box.normalized_xyxy(width, height, ndigits)
    return "[" + ", ".join(f"{v:.{ndigits}f}" for v in vals) + "]"


def duplicate_flags(objects: list[ObjectAnn], dup_iou: float) -> list[bool]:
    """True for an object that repeats an earlier same-name object with a near-identical box.

    Of a duplicate pair the first stays; a Visual Genome copy usually carries the attributes, which
    the Attributes block reports separately, so nothing is lost by dropping its box line.
    """
    flags: list[bool] = []
    for i, o in enumerate(objects):
        dup = any(
            p.name.lower() == o.name.lower() and p.box.iou(o.box) >= dup_iou
            for p in objects[:i]
            if p is not o
        )
        flags.append(dup)
    return flags


def _attribute_text(attrs: list[str]) -> str:
    out = []
    for a in attrs:
        if a.startswith("text:"):
            out.append(f'text "{a[5:]}"')  # the world encodes sign text as "text:JG"
        else:
            out.append(a)
    return ", ".join(out)


# Lines are trimmed by ascending priority; within one priority the last line goes first.
_PRIO_DUP, _PRIO_REGION, _PRIO_REL, _PRIO_ATTR, _PRIO_OBJ, _PRIO_CAP = range(6)
_BLOCKS = ("Captions", "Objects", "Regions", "Attributes", "Relations")


def context_lines(rec: ImageRecord, cfg: ContextConfig = ContextConfig()) -> list[tuple[str, str, int]]:
    """Every candidate line as (block, text, trim priority), in output order."""
    lines: list[tuple[str, str, int]] = []
    if cfg.captions:
        lines += [("Captions", c.strip(), _PRIO_CAP) for c in rec.captions if c.strip()]
    if cfg.objects:
        dups = duplicate_flags(rec.objects, cfg.dup_iou)
        for o, dup in zip(rec.objects, dups, strict=True):
            text = f"{o.name}: {format_box(o.box, rec.width, rec.height, cfg.ndigits)}"
            lines.append(("Objects", text, _PRIO_DUP if dup else _PRIO_OBJ))
    if cfg.regions:
        regions = rec.regions if cfg.max_regions is None else rec.regions[: cfg.max_regions]
        for r in regions:
            text = r.phrase.strip()
            if cfg.region_boxes:
                text += f": {format_box(r.box, rec.width, rec.height, cfg.ndigits)}"
            lines.append(("Regions", text, _PRIO_REGION))
    if cfg.attributes:
        for o in rec.objects:
            if o.attributes:
                text = f"{o.name} {format_box(o.box, rec.width, rec.height, cfg.ndigits)}: {_attribute_text(o.attributes)}"
                lines.append(("Attributes", text, _PRIO_ATTR))
    if cfg.relations:
        by_id = rec.object_by_id()
        for rel in rec.relations:
            s, o = by_id.get(rel.subject_id), by_id.get(rel.object_id)
            if s is None or o is None:
                continue  # a relation to an object this record lacks cannot be stated
            lines.append(("Relations", f"{s.name} {rel.predicate} {o.name}", _PRIO_REL))
    return lines


def _render(lines: list[tuple[str, str, int]], keep: list[bool]) -> str:
    parts = []
    for block in _BLOCKS:
        body = [t for (b, t, _), k in zip(lines, keep, strict=True) if k and b == block]
        if body:
            parts.append(f"{block}:\n" + "\n".join(body))
    return "\n\n".join(parts)


def build_context(rec: ImageRecord, cfg: ContextConfig = ContextConfig()) -> str:
    """The labelled context text of one record, trimmed to `cfg.max_tokens` if set."""
    lines = context_lines(rec, cfg)
    keep = [True] * len(lines)
    text = _render(lines, keep)
    if cfg.max_tokens is None or approx_tokens(text, cfg.chars_per_token) <= cfg.max_tokens:
        return text
    # Trim order: lowest priority first, and within a priority from the end (earlier lines of a block
    # are usually the more salient annotations: bigger objects, first captions).
    order = sorted(range(len(lines)), key=lambda i: (lines[i][2], -i))
    # Per-line estimates avoid re-rendering the whole context for every removed line.
    total = approx_tokens(text, cfg.chars_per_token)
    for i in order:
        if total <= cfg.max_tokens:
            break
        keep[i] = False
        total -= approx_tokens(lines[i][1], cfg.chars_per_token)
    text = _render(lines, keep)
    # The estimate above is per line; finish exactly on the rendered text.
    for i in order:
        if approx_tokens(text, cfg.chars_per_token) <= cfg.max_tokens:
            break
        if keep[i]:
            keep[i] = False
            text = _render(lines, keep)
    return text
