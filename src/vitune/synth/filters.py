"""Quality filters for generated QAs and descriptions, each drop with a reason.

Checks (in this order, first failure wins):
- ``empty`` / ``refusal``: empty answers, generation errors ("your message is empty") and refusals
  ("I'm sorry", "As an AI") - SVIT's first post-filter;
- ``leak``: answers revealing the text source ("according to the captions", "bounding box",
  "the description mentions") - SVIT's second post-filter;
- ``bad_box``: a box that is malformed, outside [0, 1] or with x2 <= x1 / y2 <= y1;
- ``hallucination``: object nouns in the answer that none of the image's annotations contain
  (a vocabulary of object nouns with a small synonym/plural table; negated mentions such as
  "there is no dog" are allowed). Policy ``drop`` removes the pair, ``flag`` keeps it with a flag.

`summarize_kept` reports the yes/no ratio and length statistics of what was kept.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Literal

from vitune.data.records import ImageRecord
from vitune.synth.parse import boxes_in, referring_objects

# --- object vocabulary ----------------------------------------------------------------------

# COCO's 80 categories, minus words that are mostly colours/verbs/adjectives in answers
# ("orange", "tie", "remote", "sink", "book") and would flag innocent text.
COCO_MULTIWORD = (
    "traffic light fire_hydrant stop_sign parking_meter sports_ball baseball_bat baseball_glove "
    "tennis_racket wine_glass hot_dog potted_plant dining_table cell_phone teddy_bear hair_drier"
).replace("traffic light", "traffic_light")
COCO_WORDS = (
    "person bicycle car motorcycle airplane bus train truck boat bench bird cat dog horse sheep cow "
    "elephant bear zebra giraffe backpack umbrella handbag suitcase frisbee skis snowboard kite "
    "skateboard surfboard bottle cup fork knife spoon bowl banana apple sandwich broccoli carrot pizza "
    "donut cake chair couch bed toilet tv laptop mouse keyboard microwave oven toaster refrigerator "
    "clock vase scissors toothbrush"
)
WORLD_SHAPES = "circle square triangle star hexagon diamond sign pentagon oval heart"
# Frequent concrete Visual Genome object names that COCO lacks (again no light/wave/watch/ring...).
VG_NOUNS = (
    "tree building window sky cloud grass wall road street sidewalk fence pole shirt hat helmet jacket "
    "shoe plate table door wheel lamp mirror pillow curtain shelf box bag flower plant "
    "rock mountain beach sand snow hill house roof tower bridge ball boy girl man woman "
    "child kid lady guy baby dress pants shorts glove basket screen sticker "
    "bucket ladder rope cone balloon candle necklace bracelet camera phone computer monitor "
    "desk cabinet stove faucet towel rug carpet blanket jar tray napkin"
)
# Variant -> canonical. Plurals not covered by the rules in `singular` are listed too.
SYNONYMS: dict[str, str] = {
    "people": "person",
    "persons": "person",
    "man": "person",
    "men": "person",
    "woman": "person",
    "women": "person",
    "boy": "person",
    "girl": "person",
    "child": "person",
    "children": "person",
    "kid": "person",
    "guy": "person",
    "lady": "person",
    "baby": "person",
    "bike": "bicycle",
    "motorbike": "motorcycle",
    "plane": "airplane",
    "aeroplane": "airplane",
    "jet": "airplane",
    "sofa": "couch",
    "television": "tv",
    "cellphone": "cell phone",
    "phone": "cell phone",
    "mug": "cup",
    "doughnut": "donut",
    "fridge": "refrigerator",
    "table": "dining table",
    "ball": "sports ball",
    "hydrant": "fire hydrant",
    "racket": "tennis racket",
    "teddy": "teddy bear",
    "rectangle": "square",  # the world's squares are sometimes called rectangles by annotators
    "computer": "laptop",
    "monitor": "tv",
    "screen": "tv",
}
_IRREGULAR = {"mice": "mouse", "knives": "knife", "feet": "foot", "teeth": "tooth"}
_NEGATIONS = {
    "no",
    "not",
    "without",
    "neither",
    "nor",
    "never",
    "none",
    "isn't",
    "aren't",
    "don't",
    "doesn't",
}
_NEG_WINDOW = 4


def singular(word: str) -> str:
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("ches", "shes", "xes", "sses")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def canonical(phrase: str) -> str:
    words = [singular(w) for w in phrase.lower().split()]
    p = " ".join(words)
    return SYNONYMS.get(p, p)


def _vocab() -> frozenset[str]:
    terms = [t.replace("_", " ") for t in COCO_MULTIWORD.split()]
    terms += COCO_WORDS.split() + WORLD_SHAPES.split() + VG_NOUNS.split()
    return frozenset(canonical(t) for t in terms)


OBJECT_VOCAB: frozenset[str] = _vocab()
_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _mentions(text: str, vocab: frozenset[str]) -> list[tuple[str, int]]:
    """(canonical object, word index) for each object noun in `text`; bigrams win over words."""
    words = _WORD_RE.findall(text.lower())
    out, i = [], 0
    while i < len(words):
        if i + 1 < len(words):
            bi = canonical(words[i] + " " + words[i + 1])
            if bi in vocab:
                out.append((bi, i))
                i += 2
                continue
        c = canonical(words[i])
        if c in vocab:
            out.append((c, i))
        i += 1
    return out


def annotated_objects(rec: ImageRecord) -> set[str]:
    """Canonical object nouns the record's annotations contain (names, captions, regions, QAs)."""
    texts = [o.name for o in rec.objects] + list(rec.captions) + [r.phrase for r in rec.regions]
    texts += [q.question + " " + " ".join(q.answers) for q in rec.qas] + list(rec.labels)
    allowed: set[str] = set()
    for t in texts:
        for c, _ in _mentions(t, OBJECT_VOCAB):
            allowed.add(c)
    for o in rec.objects:
        allowed.add(canonical(o.name))
        # "stop sign" annotated: "sign" alone is fine too.
        allowed.update(canonical(w) for w in o.name.split())
    return allowed


def hallucinated_objects(text: str, allowed: set[str], vocab: frozenset[str] = OBJECT_VOCAB) -> list[str]:
    """Object nouns in `text` outside `allowed`, ignoring negated mentions ("no dog", "not a cat")."""
    words = _WORD_RE.findall(text.lower())
    bad = []
    for c, i in _mentions(text, vocab):
        if c in allowed or any(p in allowed for p in c.split()):
            continue
        window = words[max(0, i - _NEG_WINDOW) : i]
        if any(w in _NEGATIONS or w.endswith("n't") for w in window):
            continue
        if c not in bad:
            bad.append(c)
    return bad


# --- reply-level checks ---------------------------------------------------------------------

REFUSAL_PATTERNS = (
    r"your message is empty",
    r"^\s*i'?m sorry",
    r"^\s*i am sorry",
    r"^\s*sorry,",
    r"^\s*as an ai\b",
    r"\bi (?:can ?not|can't|am unable to|am not able to) (?:see|view|determine|provide|answer|help)",
    r"\bi do not have (?:access|the ability)",
    r"^\s*error\b",
)
LEAK_PATTERNS = (
    r"\baccording to the (?:captions?|descriptions?|annotations?|data|text|information|objects? list)",
    r"\b(?:the|these|those) (?:given |provided )?(?:captions?|annotations?)\b",
    r"\bbounding box(?:es)?\b",
    r"\bthe (?:image )?descriptions? (?:mentions?|says?|states?|indicates?|suggests?)",
    r"\b(?:based on|from) the (?:given |provided )?(?:information|descriptions?|captions?|annotations?|coordinates|text)",
    r"\bcoordinates?\b",
    r"\b(?:is|are|was|were) (?:not )?(?:mentioned|described|listed|annotated)\b",
    r"\bnormali[sz]ed\b",
)
_REFUSAL_RE = [re.compile(p, re.IGNORECASE) for p in REFUSAL_PATTERNS]
_LEAK_RE = [re.compile(p, re.IGNORECASE) for p in LEAK_PATTERNS]

Policy = Literal["drop", "flag", "off"]


@dataclass(frozen=True, slots=True)
class FilterConfig:
    hallucination: Policy = "drop"
    leak: Policy = "drop"
    check_questions_for_leaks: bool = True  # a question may say "caption" too ("What does the caption...")
    min_answer_chars: int = 1
    extra_leak_patterns: tuple[str, ...] = ()
    extra_refusal_patterns: tuple[str, ...] = ()
    extra_vocab: tuple[str, ...] = ()  # more object nouns to police


@dataclass(slots=True)
class Verdict:
    keep: bool
    reason: str = ""  # the drop reason, or "" when kept
    flags: list[str] = field(default_factory=list)
    detail: str = ""


class ReplyFilter:
    """Checks one (question, answer) pair or description against one record's annotations."""

    def __init__(self, cfg: FilterConfig = FilterConfig()) -> None:
        self.cfg = cfg
        self.refusal = _REFUSAL_RE + [re.compile(p, re.I) for p in cfg.extra_refusal_patterns]
        self.leak = _LEAK_RE + [re.compile(p, re.I) for p in cfg.extra_leak_patterns]
        self.vocab = OBJECT_VOCAB | frozenset(canonical(w) for w in cfg.extra_vocab)
        self._allowed: dict[str, set[str]] = {}

    def allowed(self, rec: ImageRecord) -> set[str]:
        if rec.image_id not in self._allowed:
            self._allowed[rec.image_id] = annotated_objects(rec)
        return self._allowed[rec.image_id]

    def check(self, rec: ImageRecord, answer: str, question: str = "", *, referring: bool = False) -> Verdict:
        a = answer.strip()
        if len(a) < self.cfg.min_answer_chars:
            return Verdict(False, "empty")
        for r in self.refusal:
            if r.search(a) or (question and r.search(question)):
                return Verdict(False, "refusal", detail=r.pattern)
        flags: list[str] = []
        if self.cfg.leak != "off":
            # Referring QA legitimately carries boxes; the words around them still must not leak.
            texts = [a] + ([question] if question and self.cfg.check_questions_for_leaks else [])
            for t in texts:
                hit = next((r for r in self.leak if r.search(t)), None)
                if hit is not None:
                    if self.cfg.leak == "drop":
                        return Verdict(False, "leak", detail=hit.pattern)
                    flags.append("leak")
                    break
        bad = self._bad_box(question + "\n" + a, referring)
        if bad:
            return Verdict(False, "bad_box", detail=bad)
        if self.cfg.hallucination != "off":
            # Object names inside <st>..<ed> are checked like any other word.
            plain = re.sub(r"</?(?:st|ed)>", " ", a)
            hall = hallucinated_objects(plain, self.allowed(rec), self.vocab)
            if hall:
                if self.cfg.hallucination == "drop":
                    return Verdict(False, "hallucination", detail=", ".join(hall))
                flags.append("hallucination:" + ",".join(hall))
        return Verdict(True, flags=flags)

    @staticmethod
    def _bad_box(text: str, referring: bool) -> str:
        if referring:
            for name, box, raw in referring_objects(text):
                if box is None:
                    return f"<st>{name}<ed> without a readable box ({raw!r})"
        for raw, box in boxes_in(text):
            if box is None:
                return f"malformed box {raw}"
            x1, y1, x2, y2 = box
            if not all(0.0 <= v <= 1.0 for v in box):
                return f"box outside [0, 1] {raw}"
            if x2 <= x1 or y2 <= y1:
                return f"empty box {raw}"
        return ""


# --- statistics of what was kept ------------------------------------------------------------

_YES_RE = re.compile(r"^\W*yes\b", re.I)
_NO_RE = re.compile(r"^\W*no\b", re.I)


def summarize_kept(answers: list[str]) -> dict[str, float | int | None]:
    """Yes/no ratio and answer length statistics (words) of the kept answers."""
    yes = sum(1 for a in answers if _YES_RE.match(a))
    no = sum(1 for a in answers if _NO_RE.match(a))
    lengths = [len(a.split()) for a in answers]
    return {
        "answers": len(answers),
        "yes": yes,
        "no": no,
        "yes_ratio": round(yes / (yes + no), 4) if yes + no else None,
        "words_mean": round(statistics.fmean(lengths), 2) if lengths else None,
        "words_median": statistics.median(lengths) if lengths else None,
        "words_min": min(lengths) if lengths else None,
        "words_max": max(lengths) if lengths else None,
    }
