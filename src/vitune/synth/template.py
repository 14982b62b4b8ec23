"""Offline, annotation-grounded writers of every synthesis data type (no LLM needed).

Each writer turns an `ImageRecord` into reply text in exactly the format the LLM prompts ask for,
so the template backend and an OpenAI-compatible backend feed the same parsers, filters and
exporters. Every statement is derived from the annotations: counts from objects, colours/sizes/text
from attributes, positions from box centres, spatial facts from relations. Near-duplicate objects
(COCO and Visual Genome boxes of the same thing) are merged into one entity first, so counts are
right. Choices (which absent object to ask about, ...) are seeded by the image id.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from vitune.data.records import Box, ImageRecord
from vitune.utils.hashing import derive_seed
from vitune.utils.text import COLOR_WORDS, plural

SIZE_WORDS = {"tiny", "small", "medium", "large", "big", "huge"}
PROBE_NAMES = ("circle", "square", "triangle", "star", "hexagon", "diamond", "sign", "dog", "car", "cup")
CORNERS = {"triangle": 3, "square": 4, "diamond": 4, "sign": 4, "hexagon": 6, "star": 10, "circle": 0}
NUM_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]
OPPOSITE = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
    "smaller than": "larger than",
    "larger than": "smaller than",
    "bigger than": "smaller than",
}


@dataclass(slots=True)
class Entity:
    name: str
    box: Box
    color: str = ""
    size: str = ""
    text: str = ""
    ids: set[str] = field(default_factory=set)


def num(n: int) -> str:
    return NUM_WORDS[n] if 0 <= n < len(NUM_WORDS) else str(n)


def count_phrase(n: int, name: str) -> str:
    return f"{num(n)} {plural(name, n)}"


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def entities(rec: ImageRecord, dup_iou: float = 0.7) -> list[Entity]:
    """Objects merged across sources: same name and overlapping boxes are one entity."""
    out: list[Entity] = []
    for o in rec.objects:
        if o.box.w <= 0 or o.box.h <= 0 or o.crowd:  # a COCO crowd box is a group, not one entity
            continue
        name = o.name.strip().lower()
        match = next((e for e in out if e.name == name and e.box.iou(o.box) >= dup_iou), None)
        if match is None:
            match = Entity(name, o.box)
            out.append(match)
        match.ids.add(o.object_id)
        for a in o.attributes:
            a_low = a.lower()
            if a_low.startswith("text:") and not match.text:
                match.text = a[5:]
            elif a_low in COLOR_WORDS and not match.color:
                match.color = a_low
            elif a_low in SIZE_WORDS and not match.size:
                match.size = a_low
    return out


def where(e: Entity, rec: ImageRecord) -> str:
    cx = (e.box.x + e.box.w / 2) / rec.width
    cy = (e.box.y + e.box.h / 2) / rec.height
    h = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "center"
    v = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    if v == "middle" and h == "center":
        return "in the center of the image"
    if v == "middle":
        return f"on the {h} side of the image"
    if h == "center":
        return f"at the {v} of the image"
    return f"in the {v} {h} of the image"


def label(e: Entity) -> str:
    return f"{e.color} {e.name}" if e.color else e.name


def the(e: Entity) -> str:
    return "the " + label(e)


def nbox(b: Box, rec: ImageRecord) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in b.normalized_xyxy(rec.width, rec.height)) + "]"


def ref(e: Entity, rec: ImageRecord) -> str:
    # The box, not the colour, tells same-name objects apart (and "<st>red square<ed> is red" says nothing).
    return f"<st>{e.name}<ed> {nbox(e.box, rec)}"


def _cx(e: Entity) -> float:
    return e.box.x + e.box.w / 2


def _cy(e: Entity) -> float:
    return e.box.y + e.box.h / 2


class Facts:
    """What the writers need, computed once per record."""

    def __init__(self, rec: ImageRecord, seed: int = 0) -> None:
        self.rec = rec
        self.ents = entities(rec)
        self.rng = random.Random(derive_seed(seed, "synth.template", rec.image_id))
        self.counts = Counter(e.name for e in self.ents)
        present = set(self.counts)
        self.absent = [n for n in PROBE_NAMES if n not in present]
        self.rng.shuffle(self.absent)
        by_id = {i: e for e in self.ents for i in e.ids}
        self.relations: list[tuple[Entity, str, Entity]] = []
        seen = set()
        for r in rec.relations:
            s, o = by_id.get(r.subject_id), by_id.get(r.object_id)
            if s is None or o is None or s is o or (id(s), r.predicate, id(o)) in seen:
                continue
            seen.add((id(s), r.predicate, id(o)))
            self.relations.append((s, r.predicate.strip().lower(), o))
        # A label is unambiguous when no other entity shares it; questions use only those.
        lab = Counter(label(e) for e in self.ents)
        self.unique = [e for e in self.ents if lab[label(e)] == 1]

    def inventory(self) -> str:
        parts = [
            count_phrase(n, name) for name, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        if not parts:
            return "nothing that stands out"
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

    def absent_name(self, k: int) -> str:
        return self.absent[k % len(self.absent)] if self.absent else "unicorn"

    def wrong_color(self, e: Entity) -> str:
        others = [
            c for c in ("red", "blue", "green", "yellow", "purple", "orange", "black", "gray") if c != e.color
        ]
        return others[self.rng.randrange(len(others))]


def _qa(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"Question: {q}\nAnswer: {a}" for q, a in pairs)


def _take(cands: list[tuple[str, str]], n: int, fill: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out, seen = [], set()
    for q, a in cands + fill:
        if q not in seen:
            seen.add(q)
            out.append((q, a))
        if len(out) == n:
            break
    return out


def _filler(f: Facts, start: int = 0) -> list[tuple[str, str]]:
    """Always-true fallbacks: totals and absent-object probes (the "no" half of yes/no balance)."""
    total = len(f.ents)
    out = [
        (
            "How many objects are there in total?",
            f"There {'is' if total == 1 else 'are'} {num(total)} in total.",
        )
    ]
    for k in range(start, start + 6):
        a = f.absent_name(k)
        out.append((f"Is there {article(a)} {a} in the image?", f"No, there is no {a} in the image."))
    return out


def _existence_yes(f: Facts, e: Entity) -> tuple[str, str]:
    return (
        f"Is there {article(e.name)} {e.name} in the image?",
        f"Yes, there is {article(label(e))} {label(e)} {where(e, f.rec)}.",
    )


def _colour_qas(f: Facts) -> list[tuple[str, str]]:
    out = []
    for e in f.unique:
        if not e.color:
            continue
        name = e.name if f.counts[e.name] == 1 else f"{e.name} {where(e, f.rec)}"
        out.append((f"What color is the {name}?", f"The {name} is {e.color}."))
        w = f.wrong_color(e)
        out.append((f"Is the {name} {w}?", f"No, the {name} is {e.color}, not {w}."))
        out.append((f"Is the {name} {e.color}?", f"Yes, the {name} is {e.color}."))
    return out


def _relation_qas(f: Facts) -> list[tuple[str, str]]:
    out = []
    for s, p, o in f.relations:
        out.append((f"Is {the(s)} {p} {the(o)}?", f"Yes, {the(s)} is {p} {the(o)}."))
        if p in OPPOSITE:
            out.append((f"Is {the(s)} {OPPOSITE[p]} {the(o)}?", f"No, {the(s)} is {p} {the(o)}."))
        out.append((f"What is {p} {the(o)}?", f"{the(s)[0].upper() + the(s)[1:]} is {p} {the(o)}."))
    return out


def write_conversations(rec: ImageRecord, seed: int = 0, n_items: int = 5) -> str:
    f = Facts(rec, seed)
    ents = sorted(f.ents, key=lambda e: -e.box.area)
    t1 = [("What objects can you see in this image?", f"I can see {f.inventory()}.")]
    for name, n in sorted(f.counts.items()):
        t1.append(
            (
                f"How many {plural(name)} are there?",
                f"There {'is' if n == 1 else 'are'} {count_phrase(n, name)}.",
            )
        )
    t1.append(
        (
            f"Is there {article(f.absent_name(0))} {f.absent_name(0)} in the image?",
            f"No, there is no {f.absent_name(0)} in the image.",
        )
    )
    t1 += [_existence_yes(f, e) for e in f.unique[:2]]
    if len(ents) > 1:
        t1.append(
            (
                "Which object is the largest?",
                f"{the(ents[0]).capitalize()} is the largest object, {where(ents[0], f.rec)}.",
            )
        )
    t2 = _colour_qas(f)
    for e in f.ents:
        if e.text:
            t2.insert(0, (f"What does the {e.name} say?", f'The {e.name} says "{e.text}".'))
    colours = sorted({e.color for e in f.ents if e.color})
    if len(colours) > 1:
        t2.append(
            (
                "Are all the objects the same color?",
                f"No, the objects are {', '.join(colours[:-1])} and {colours[-1]}.",
            )
        )
    t3 = [(f"Where is the {label(e)}?", f"The {label(e)} is {where(e, f.rec)}.") for e in f.unique[:2]]
    t3 += _relation_qas(f)
    if len(ents) > 1:
        top = min(f.ents, key=_cy)
        t3.append(
            ("Which object is closest to the top of the image?", f"{the(top).capitalize()} is the highest.")
        )
    groups = [
        ("what the image contains", _take(t1, n_items, _filler(f, 1))),
        ("colors and appearance", _take(t2, n_items, _filler(f, 2))),
        ("where things are", _take(t3, n_items, _filler(f, 3))),
    ]
    return "\n".join(f"Conversation {i} (topic: {t})\n{_qa(p)}" for i, (t, p) in enumerate(groups, 1))


def write_complex_reasoning(rec: ImageRecord, seed: int = 0, n_items: int = 15) -> str:
    f = Facts(rec, seed)
    ents, total = f.ents, len(f.ents)
    out: list[tuple[str, str]] = []
    for name, n in sorted(f.counts.items()):
        out.append(
            (
                f"If every {name} were taken away, how many objects would be left?",
                f"I count {num(total)} objects in total, and {count_phrase(n, name)} among them. "
                f"Taking {'it' if n == 1 else 'them'} away leaves {num(total - n)}.",
            )
        )
    colours = Counter(e.color for e in ents if e.color)
    if colours:
        listing = ", ".join(f"{the(e)}" for e in ents if e.color)
        out.append(
            (
                "How many different colors do the objects have?",
                f"Going through the objects: {listing}. That makes {num(len(colours))} "
                f"distinct color{'s' if len(colours) != 1 else ''}: {', '.join(sorted(colours))}.",
            )
        )
    if ents:
        left, top = min(ents, key=_cx), min(ents, key=_cy)
        out.append(
            (
                "Reading the picture from left to right, which object comes first?",
                f"Scanning from the left edge, the first thing I reach is {the(left)}, {where(left, rec)}. So it comes first.",
            )
        )
        out.append(
            (
                "Scanning from top to bottom, which object would you notice first?",
                f"The object highest up is {the(top)}, {where(top, rec)}, so it would be noticed first.",
            )
        )
    poly = [e for e in ents if e.name in CORNERS]
    if poly:
        steps = "; ".join(f"{the(e)} has {num(CORNERS[e.name])}" for e in poly)
        out.append(
            (
                "How many corners do the shapes have altogether?",
                f"Counting corners shape by shape: {steps}. In total that is {sum(CORNERS[e.name] for e in poly)}.",
            )
        )
    lhs = sum(1 for e in ents if (e.box.x + e.box.w / 2) < rec.width / 2)
    if ents:
        side = "left" if lhs > total - lhs else "right" if lhs < total - lhs else ""
        ans = (
            f"The left half holds {num(lhs)} and the right half {num(total - lhs)}, so the {side} half has more."
            if side
            else f"Both halves hold {num(lhs)} objects, so neither has more."
        )
        out.append(("If the image were cut down the middle, which half would contain more objects?", ans))
    for a in ents:
        for b in ents:
            if a is b or label(a) == label(b) or a not in f.unique or b not in f.unique:
                continue
            fits = a.box.w < b.box.w and a.box.h < b.box.h
            out.append(
                (
                    f"Could {the(a)} fit inside {the(b)}?",
                    f"{the(a).capitalize()} is {'narrower and shorter' if fits else 'not smaller in both width and height'} "
                    f"than {the(b)}, so {'yes, it could fit inside' if fits else 'no, it would not fit inside'}.",
                )
            )
    for e in f.unique:
        top_half = _cy(e) < rec.height / 2
        out.append(
            (
                f"If the top half of the picture were covered, would {the(e)} still be visible?",
                f"{the(e).capitalize()} is {where(e, rec)}, {'in the top half' if top_half else 'in the bottom half'}, "
                f"so {'no, it would be hidden' if top_half else 'yes, it would still be visible'}.",
            )
        )
        if e.text:
            out.append(
                (
                    f"How many characters are written on the {e.name}?",
                    f'The {e.name} reads "{e.text}", which is {num(len(e.text))} characters long.',
                )
            )
    return _qa(_take(out, n_items, _filler(f, 4)))


def write_referring(rec: ImageRecord, seed: int = 0, n_items: int = 10) -> str:
    f = Facts(rec, seed)
    out: list[tuple[str, str]] = []
    for e in f.unique:
        if e.color:
            out.append((f"What color is {ref(e, rec)}?", f"The {e.name} {nbox(e.box, rec)} is {e.color}."))
        out.append((f"Where is the {label(e)} in the image?", f"It is {ref(e, rec)}, {where(e, rec)}."))
        if e.text:
            out.append((f"What is written on {ref(e, rec)}?", f'It says "{e.text}".'))
    for s, p, o in f.relations:
        if s in f.unique and o in f.unique:
            out.append((f"Which object is {p} {ref(o, rec)}?", f"The {label(s)}, {ref(s, rec)}, is {p} it."))
    for r in rec.regions:
        out.append(
            (
                f"Can you point out the {r.phrase.strip()}?",
                f"Yes, <st>{r.phrase.strip()}<ed> {nbox(r.box, rec)}.",
            )
        )
    fill = [
        (
            f"Is there {article(f.absent_name(k))} {f.absent_name(k)} in the image?",
            f"No, there is no {f.absent_name(k)}.",
        )
        for k in range(10)
    ]
    return _qa(_take(out, n_items, fill))


def write_description(rec: ImageRecord, seed: int = 0) -> str:
    f = Facts(rec, seed)
    if not f.ents:
        return (
            rec.captions[0] if rec.captions else "The image shows a plain scene with nothing that stands out."
        )
    s = [f"The image shows {f.inventory()}."]
    for e in f.ents:
        bits = " ".join(b for b in (e.size, e.color) if b)
        desc = (
            f"{article(bits or e.name).capitalize()} {bits + ' ' if bits else ''}{e.name} is {where(e, rec)}"
        )
        if e.text:
            desc += f', with the text "{e.text}" on it'
        s.append(desc + ".")
    rels = [
        f"{the(a)} is {p} {the(b)}"
        for a, p, b in f.relations
        if p in ("left of", "above", "larger than", "bigger than")
    ]
    if rels:
        s.append("Looking at how they are arranged, " + "; ".join(rels[:3]) + ".")
    return " ".join(s)


def write_dialog(rec: ImageRecord, seed: int = 0, n_items: int = 8) -> str:
    f = Facts(rec, seed)
    total = len(f.ents)
    out = [
        ("How many objects are in the image? Answer the question with a number.", str(total)),
        ("Describe the image in one paragraph.", write_description(rec, seed)),
    ]
    for e in f.unique[:1]:
        if e.color:
            out.append((f"What color is the {e.name}? Answer the question with a short phrase.", e.color))
    out.append((f"Is there {article(f.absent_name(0))} {f.absent_name(0)}? Please answer yes or no.", "No"))
    if f.ents:
        left = min(f.ents, key=_cx)
        out.append(
            (
                "Which object is furthest to the left? Answer with a short phrase and provide explanation for your answer.",
                f"{the(left).capitalize()}. It is {where(left, rec)}, and every other object lies further right.",
            )
        )
        e = f.unique[0] if f.unique else f.ents[0]
        out.append((f"Is there {article(e.name)} {e.name}? Please answer yes or no.", "Yes"))
        out.append(
            (
                "Describe where each object is placed in the image.",
                " ".join(f"{the(x).capitalize()} is {where(x, rec)}." for x in f.ents),
            )
        )
    if rec.captions:
        out.append(("Describe the content of this image in 20 words.", rec.captions[0].strip()))
    return _qa(_take(out, n_items, _filler(f, 5)))


WRITERS = {
    "conversations": lambda rec, seed, spec: write_conversations(rec, seed, spec.n_items),
    "qa": lambda rec, seed, spec: write_complex_reasoning(rec, seed, spec.n_items),
    "referring": lambda rec, seed, spec: write_referring(rec, seed, spec.n_items),
    "description": lambda rec, seed, spec: write_description(rec, seed),
    "dialog": lambda rec, seed, spec: write_dialog(rec, seed, spec.n_items),
}
