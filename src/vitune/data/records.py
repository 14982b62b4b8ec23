"""The merged per-image annotation record that every source reader produces (the COCO-IFT idea).

One `ImageRecord` holds every annotation of one image, whichever files it came from: COCO captions
and instances, Visual Genome objects/attributes/relationships/regions, VQAv2 questions. Task
builders and synthesis read only this type, so a new source needs only a reader.

Boxes are kept in pixels as `[x, y, w, h]` (the COCO and Visual Genome convention); conversions to
normalized `[x1, y1, x2, y2]` live here so every consumer rounds the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Box:
    """A pixel box `[x, y, w, h]` with the origin at the image's top-left corner."""

    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return self.w * self.h

    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.w, self.y + self.h)

    def iou(self, other: Box) -> float:
        """Intersection over union with `other` (0 when both are empty)."""
        ax1, ay1, ax2, ay2 = self.xyxy()
        bx1, by1, bx2, by2 = other.xyxy()
        inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def normalized_xyxy(self, width: int, height: int, ndigits: int = 3) -> list[float]:
        """`[x1, y1, x2, y2]` divided by the image size, clipped to [0, 1], rounded (SVIT/Vision-Flan)."""
        x1, y1, x2, y2 = self.xyxy()
        vals = [x1 / width, y1 / height, x2 / width, y2 / height]
        return [round(min(1.0, max(0.0, v)), ndigits) for v in vals]

    def inside(self, width: int, height: int, tol: float = 1.0) -> bool:
        """True when the box has positive size and lies within the image (with `tol` pixels of slack)."""
        return (
            self.w > 0
            and self.h > 0
            and self.x >= -tol
            and self.y >= -tol
            and self.x + self.w <= width + tol
            and self.y + self.h <= height + tol
        )

    def to_list(self) -> list[float]:
        return [self.x, self.y, self.w, self.h]


@dataclass(slots=True)
class ObjectAnn:
    """One annotated object: a category/name, a box and its attributes (colour, size, text, ...)."""

    object_id: str
    name: str
    box: Box
    attributes: list[str] = field(default_factory=list)
    source: str = ""
    # A COCO `iscrowd=1` region: a group ("people"), not one object. Kept (its name is present in the
    # image) but never counted, detected or grounded, as COCO's own evaluation ignores crowd boxes.
    crowd: bool = False


@dataclass(slots=True)
class Relation:
    """`subject predicate object`, both ends referring to `ObjectAnn.object_id` of the same image."""

    subject_id: str
    predicate: str
    object_id: str
    source: str = ""


@dataclass(slots=True)
class Region:
    """A region description (Visual Genome): a phrase about a boxed part of the image."""

    region_id: str
    phrase: str
    box: Box
    source: str = ""


@dataclass(slots=True)
class QA:
    """A question with its human answers (VQAv2 and TextVQA keep 10, GQA one).

    The optional fields after `source` are filled only by formats that have them: `choices` and
    `answer_index` (ScienceQA multiple choice; `answers` then holds the correct choice's text),
    `context` (ScienceQA's hint), `rationale` (ScienceQA's solution), `full_answer` (GQA's
    sentence answer "Yes, the sky is blue."), `meta` (format-specific extras, e.g. GQA's types).
    New fields are appended with defaults so positional construction keeps working.
    """

    question_id: str
    question: str
    answers: list[str]
    answer_type: str = ""
    question_type: str = ""
    multiple_choice_answer: str = ""
    source: str = ""
    choices: list[str] = field(default_factory=list)
    answer_index: int | None = None
    context: str = ""
    rationale: str = ""
    full_answer: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def majority_answer(self) -> str:
        """The most frequent answer (ties broken by first occurrence), as VQAv2's own field does."""
        if self.multiple_choice_answer:
            return self.multiple_choice_answer
        counts: dict[str, int] = {}
        for a in self.answers:
            counts[a] = counts.get(a, 0) + 1
        return max(counts, key=lambda a: counts[a]) if counts else ""


@dataclass(slots=True)
class ImageRecord:
    """Everything known about one image, merged across sources."""

    image_id: str
    file_name: str  # relative to the image root; resolved safely by `data.paths`
    width: int
    height: int
    split: str = ""
    captions: list[str] = field(default_factory=list)
    objects: list[ObjectAnn] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    qas: list[QA] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)  # image-level class labels (image folders)
    ocr_tokens: list[str] = field(default_factory=list)  # OCR words in reading order (TextVQA Rosetta)

    def object_by_id(self) -> dict[str, ObjectAnn]:
        return {o.object_id: o for o in self.objects}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageRecord:
        return cls(
            image_id=d["image_id"],
            file_name=d["file_name"],
            width=d["width"],
            height=d["height"],
            split=d.get("split", ""),
            captions=list(d.get("captions", [])),
            objects=[
                ObjectAnn(
                    o["object_id"],
                    o["name"],
                    Box(**o["box"]),
                    list(o.get("attributes", [])),
                    o.get("source", ""),
                    bool(o.get("crowd", False)),
                )
                for o in d.get("objects", [])
            ],
            relations=[Relation(**r) for r in d.get("relations", [])],
            regions=[
                Region(r["region_id"], r["phrase"], Box(**r["box"]), r.get("source", ""))
                for r in d.get("regions", [])
            ],
            qas=[_qa_from_dict(q) for q in d.get("qas", [])],
            sources=list(d.get("sources", [])),
            meta=dict(d.get("meta", {})),
            labels=list(d.get("labels", [])),
            ocr_tokens=list(d.get("ocr_tokens", [])),
        )


_QA_FIELDS = frozenset(QA.__dataclass_fields__)


def _qa_from_dict(q: dict[str, Any]) -> QA:
    """A `QA` from its dict; keys this version does not know (a newer writer's) are ignored."""
    kw = {k: v for k, v in q.items() if k in _QA_FIELDS}
    for k in ("answers", "choices"):
        if k in kw:
            kw[k] = list(kw[k])
    if "meta" in kw:
        kw["meta"] = dict(kw["meta"])
    return QA(**kw)
