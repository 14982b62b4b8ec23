"""Tasks from COCO captions: a paragraph of all captions, and image-text matching with negatives.

A caption of another image is a safe negative only if it cannot describe this one: it must name a
category the image's (exhaustive) object annotations say is absent ("a dog" for an image without
dogs). Generic captions ("simple shapes on a plain background") are never used as negatives, and
images whose objects are not annotated get no matching task (nothing to check a negative against).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from vitune.data.records import ImageRecord
from vitune.tasks.helpers import mentions_absent, present_names
from vitune.tasks.spec import BuildContext, Sample, builder


def _sentence(caption: str) -> str:
    c = caption.strip()
    c = c[0].upper() + c[1:]
    return c if c.endswith((".", "!", "?")) else c + "."


@builder("coco_caption_paragraph")
def coco_caption_paragraph(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """The image's distinct captions as one paragraph, in file order (fine-grained description)."""
    caps = list(dict.fromkeys(_sentence(c) for c in record.captions if c.strip()))
    if len(caps) < 2:
        return []
    return [Sample({"paragraph": " ".join(caps)}, {"sentences": len(caps)})]


def _negative_check(record: ImageRecord, ctx: BuildContext) -> Callable[[str], bool] | None:
    present = present_names(record, "coco")
    if not present:
        return None
    own = {c.strip() for c in record.captions}
    vocab = ctx.object_names
    return lambda c: c not in own and mentions_absent(c, present, vocab)


@builder("caption_selection")
def caption_selection(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    caps = [c.strip() for c in record.captions if c.strip()]
    accept = _negative_check(record, ctx)
    if not caps or accept is None:
        return []
    return [Sample({"answer": rng.choice(caps)}, exclude=frozenset(caps), accept=accept)]


@builder("caption_match")
def caption_match(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """Yes for one of the image's captions, no for another image's caption that contradicts it."""
    caps = [c.strip() for c in record.captions if c.strip()]
    accept = _negative_check(record, ctx)
    if not caps or accept is None:
        return []
    if rng.random() < 0.5:
        return [Sample({"caption": rng.choice(caps), "answer": "Yes"}, {"label": "yes"})]
    pool = ctx.pool("captions")
    neg = pool.other_images(rng, 1, image_id=record.image_id, reject=lambda c: not accept(c)) if pool else []
    if not neg:
        return []
    return [Sample({"caption": neg[0], "answer": "No"}, {"label": "no"})]
