"""Tasks defined by users: a YAML definition over generic field builders, or a Python plugin.

A user task is a catalog entry (the same keys as `catalog.yaml`: category, instruction, output,
optional input, prompt, paraphrases, options) plus `fields:`, which names a generic field builder
("unit") and how to use it. No package edit is needed::

    - name: shape_color_qa                   # in a tasks file given to `vitune build --tasks-file`
      category: perception
      instruction: Name the colour of the object.
      input: "Object: {name}"
      output: The {name} is {color}.
      fields: {unit: object, require: [color], unique: true}
      cap: 500

Units and the fields each gives its templates (boxes are `[x1, y1, x2, y2]` normalized, 3 decimals):

    image     objects (sorted distinct names, comma-separated), object_count, caption, ocr_text, label
    caption   caption
    object    name, box, color, attributes, count (objects of that name in the image)
    relation  subject, predicate, object
    region    description, box
    qa        question, answer (the majority answer), question_type, answer_type
    ocr       ocr_text
    label     label

`each: true` makes one sample per unit (object, caption, ...), otherwise one per image, drawn
with the seeded RNG; `require: [field, ...]` keeps only units whose fields are non-empty;
`unique: true` (object) keeps objects whose name occurs once in the image, so "the {name}" is
unambiguous. A multiple-choice task (`options:` as in the catalog) names the field holding the right
answer with `answer: FIELD`. As in the catalog, the instruction is one fixed text per task
(Vision-Flan's expert-written instruction); per-sample fields go in `input` and `output`, and every
placeholder there must be a field of the unit (or one the engine fills: options, choice, letter,
answer), checked when the file is read.

Python plugins call `define_task(name, builder_fn, **entry)` with their own builder.
"""

from __future__ import annotations

import random
import string
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vitune.data.records import ImageRecord
from vitune.tasks.helpers import box_text, colors_of, objects_of
from vitune.tasks.spec import (
    BuildContext,
    Sample,
    Task,
    TaskBuilder,
    TaskSpec,
    parse_task_entry,
    register_task,
)

Unit = Callable[[ImageRecord], list[dict[str, Any]]]  # every candidate field dict of one image


def _image(r: ImageRecord) -> list[dict[str, Any]]:
    objs = objects_of(r, "coco")
    return [
        {
            "objects": ", ".join(sorted({o.name for o in objs})),
            "object_count": len(objs),
            "caption": r.captions[0].strip() if r.captions else "",
            "ocr_text": " ".join(r.ocr_tokens),
            "label": r.labels[0] if r.labels else "",
        }
    ]


def _objects(r: ImageRecord) -> list[dict[str, Any]]:
    objs = objects_of(r, "vg")
    counts = Counter(o.name for o in objs)
    out = []
    for o in objs:
        colors = colors_of(o)
        out.append(
            {
                "name": o.name,
                "box": box_text(o.box, r.width, r.height),
                "color": colors[0] if len(colors) == 1 else "",
                "attributes": ", ".join(a for a in o.attributes if not a.startswith("text:")),
                "count": counts[o.name],
            }
        )
    return out


def _relations(r: ImageRecord) -> list[dict[str, Any]]:
    by_id = r.object_by_id()
    return [
        {"subject": by_id[x.subject_id].name, "predicate": x.predicate, "object": by_id[x.object_id].name}
        for x in r.relations
        if x.subject_id in by_id and x.object_id in by_id
    ]


UNITS: dict[str, Unit] = {
    "image": _image,
    "caption": lambda r: [{"caption": c.strip()} for c in r.captions if c.strip()],
    "object": _objects,
    "relation": _relations,
    "region": lambda r: [
        {"description": g.phrase, "box": box_text(g.box, r.width, r.height)} for g in r.regions
    ],
    "qa": lambda r: [
        {
            "question": q.question,
            "answer": q.majority_answer(),
            "question_type": q.question_type,
            "answer_type": q.answer_type,
        }
        for q in r.qas
    ],
    "ocr": lambda r: [{"ocr_text": " ".join(r.ocr_tokens)}] if r.ocr_tokens else [],
    "label": lambda r: [{"label": x} for x in r.labels],
}
UNIT_FIELDS = {
    "image": ("objects", "object_count", "caption", "ocr_text", "label"),
    "caption": ("caption",),
    "object": ("name", "box", "color", "attributes", "count"),
    "relation": ("subject", "predicate", "object"),
    "region": ("description", "box"),
    "qa": ("question", "answer", "question_type", "answer_type"),
    "ocr": ("ocr_text",),
    "label": ("label",),
}
ENGINE_FIELDS = ("options", "choice", "letter", "answer", "instruction", "input")


@dataclass(frozen=True, slots=True)
class GenericBuilder:
    """A builder from a unit: candidates filtered by `require` / `unique`, one (seeded) or each.
    Frozen and module-level, so the build's worker processes receive it pickled."""

    unit: str
    require: tuple[str, ...] = ()
    each: bool = False
    unique: bool = False
    answer: str | None = None  # the field a multiple-choice task's right option comes from

    def __call__(self, record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
        cands = UNITS[self.unit](record)
        if self.unique and self.unit == "object":
            cands = [c for c in cands if c["count"] == 1]
        cands = [c for c in cands if all(c.get(f) not in ("", None) for f in self.require)]
        if not cands:
            return []
        chosen = cands if self.each else [rng.choice(cands)]
        out = []
        for c in chosen:
            fields = dict(c)
            if self.answer is not None:
                fields["answer"] = str(c[self.answer])
            out.append(Sample(fields, meta={"unit": self.unit}))
        return out


def _placeholders(template: str) -> set[str]:
    return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f}


def _parse_fields(raw: Any, where: str) -> GenericBuilder:
    if isinstance(raw, str):
        raw = {"unit": raw}
    if not isinstance(raw, dict) or "unit" not in raw:
        raise ValueError(f"{where}: 'fields' must be a unit name or a mapping with 'unit'")
    unknown = set(raw) - {"unit", "require", "each", "unique", "answer"}
    if unknown:
        raise ValueError(f"{where}: unknown 'fields' keys {sorted(unknown)}")
    unit = raw["unit"]
    if unit not in UNITS:
        raise ValueError(f"{where}: fields.unit must be one of {', '.join(UNITS)}, got {unit!r}")
    require = raw.get("require", [])
    if not isinstance(require, list) or any(r not in UNIT_FIELDS[unit] for r in require):
        raise ValueError(
            f"{where}: fields.require must list fields of unit {unit!r}: {', '.join(UNIT_FIELDS[unit])}"
        )
    answer = raw.get("answer")
    if answer is not None and answer not in UNIT_FIELDS[unit]:
        raise ValueError(
            f"{where}: fields.answer must be a field of unit {unit!r}: {', '.join(UNIT_FIELDS[unit])}"
        )
    for key in ("each", "unique"):
        if not isinstance(raw.get(key, False), bool):
            raise ValueError(f"{where}: fields.{key} must be true or false")
    return GenericBuilder(unit, tuple(require), raw.get("each", False), raw.get("unique", False), answer)


def parse_user_task(entry: Mapping[str, Any], where: str) -> tuple[Task, int | None]:
    """A task from a user definition (`name`, `fields`, optional `cap`, and catalog keys): the task
    and its cap. Errors name `where` and the field."""
    entry = dict(entry)
    name = entry.pop("name", None)
    if not isinstance(name, str) or not name.strip() or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"{where}: 'name' must be a task name (letters, digits, _ and -), got {name!r}")
    where = f"{where} (task {name!r})"
    cap = entry.pop("cap", None)
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValueError(f"{where}: cap must be a positive integer, got {cap!r}")
    if "fields" not in entry:
        raise ValueError(f"{where}: missing 'fields' (which generic field builder fills the templates)")
    fn = _parse_fields(entry.pop("fields"), where)
    entry.setdefault("source", f"user:{fn.unit}")
    spec = parse_task_entry(name, entry, where)
    if spec.options is not None and fn.answer is None:
        raise ValueError(
            f"{where}: a multiple-choice task needs fields.answer (the field holding the right option)"
        )
    if _placeholders(spec.instruction):
        raise ValueError(
            f"{where}: the instruction is one fixed text per task; put {{{sorted(_placeholders(spec.instruction))[0]}}} "
            "in 'input' (shown after the instruction) instead"
        )
    known = set(UNIT_FIELDS[fn.unit]) | set(ENGINE_FIELDS)
    for key in ("output", "input", "prompt"):
        bad = sorted(_placeholders(getattr(spec, key)) - known)
        if bad:
            raise ValueError(
                f"{where}: {key} uses {{{bad[0]}}}, not a field of unit {fn.unit!r} "
                f"({', '.join(UNIT_FIELDS[fn.unit])})"
            )
    return Task(spec, TaskBuilder(spec, fn)), cap


def define_task(name: str, build: Callable[..., list[Sample]], **entry: Any) -> Task:
    """Register a task with a Python builder (for plugins): `entry` holds the catalog keys."""
    spec: TaskSpec = parse_task_entry(name, entry, f"plugin task {name!r}")
    return register_task(Task(spec, TaskBuilder(spec, build)))
