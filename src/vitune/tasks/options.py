"""The multiple-choice and paraphrase engine: finishes a builder's samples as the catalog declares.

Multiple choice (Vision-Flan's format): the builder names the correct `answer` (and what may never
be offered as a wrong option: `exclude`, `accept`); the engine draws the wrong options as the
task's `options:` entry in `catalog.yaml` says, puts them in a seeded order, and fills the fields

    options  "Options: (a) circle (b) star (c) square"   (the templates place it, usually after the input)
    choice   "(b) star"                                   (letter plus text: Vision-Flan's target)
    letter   "b"

plus `meta["options"]` (the texts in order) and `meta["answer"]` (the letter). Too few acceptable
wrong options is a `ValueError` naming the task and pool, which the build records in the ledger
for that image (a builder therefore emits at most one multiple-choice sample per image).

Paraphrases (MultiInstruct's several instructions per task) are off unless the build context asks
for them; then each sample's instruction is a seeded choice among the catalog's instruction and its
`paraphrases`, picked after all option draws so turning paraphrases on changes no option or answer.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from vitune.data.records import ImageRecord
from vitune.tasks.pools import other_classes

if TYPE_CHECKING:
    from vitune.tasks.spec import BuildContext, Sample, TaskSpec

LETTERS = "abcdefghijklmnopqrstuvwxyz"
NEGATIVE_SOURCES = ("other_images", "other_classes", "given")


def format_options(options: list[str]) -> str:
    return "Options: " + " ".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))


def add_options(
    spec: TaskSpec, sample: Sample, record: ImageRecord, rng: random.Random, ctx: BuildContext
) -> None:
    """Draw, order and format the options of one sample (in place)."""
    opt = spec.options
    assert opt is not None  # only called for multiple-choice tasks
    if sample.turns is not None:
        raise ValueError(f"task {spec.name}: multiple choice needs a single-turn sample")
    if "answer" not in sample.fields:
        raise ValueError(f"task {spec.name}: multiple-choice sample without an 'answer' field")
    answer = str(sample.fields["answer"])
    banned = {answer, *sample.exclude}

    def reject(v: str) -> bool:
        return v in banned or (sample.accept is not None and not sample.accept(v))

    if opt.negatives == "given":
        choices = list(dict.fromkeys(sample.choices or ()))
        if answer not in choices:
            raise ValueError(f"task {spec.name}: answer {answer!r} is not among the given choices")
        negs = [c for c in choices if not reject(c)]
        want = len(negs) if opt.count is None else min(len(negs), opt.count - 1)
        if want < 1:
            raise ValueError(f"task {spec.name}: no wrong option among the given choices")
        keep = set(rng.sample(negs, want)) if want < len(negs) else set(negs)
        options = [c for c in choices if c == answer or c in keep]  # the source's order
    else:
        k = int(opt.count or 0) - 1
        if opt.negatives == "other_classes" and opt.classes:
            negs = other_classes(rng, k, opt.classes, reject)  # the catalog's own class list
        else:
            pool = ctx.pool(opt.pool, sample.group)
            if pool is None:
                negs = []
            elif opt.negatives == "other_images":
                negs = pool.other_images(rng, k, image_id=record.image_id, reject=reject)
            else:
                negs = other_classes(rng, k, pool.vocab, reject)
        if len(negs) < k:
            where = f"pool {opt.pool!r}" + (f" group {sample.group!r}" if sample.group else "")
            raise ValueError(
                f"task {spec.name}: only {len(negs)} of {k} wrong options for {answer!r} in {where}"
            )
        options = [answer, *negs]
    if opt.shuffle:
        rng.shuffle(options)
    i = options.index(answer)
    sample.fields.update(
        options=format_options(options), choice=f"({LETTERS[i]}) {answer}", letter=LETTERS[i]
    )
    sample.meta.update(options=options, answer=LETTERS[i])


def finish(
    spec: TaskSpec, samples: list[Sample], record: ImageRecord, rng: random.Random, ctx: BuildContext
) -> list[Sample]:
    """Options for a multiple-choice task, then (when the context asks) a paraphrased instruction."""
    if spec.options is not None:
        for s in samples:
            add_options(spec, s, record, rng, ctx)
    if ctx.paraphrase and spec.paraphrases:
        for s in samples:
            s.instruction = rng.choice((spec.instruction, *spec.paraphrases))
    return samples
