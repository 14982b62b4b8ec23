"""Quality filters for generated QAs and descriptions, each drop with a reason.

Checks (in this order, first failure wins):
- ``empty`` / ``refusal``: empty answers, generation errors ("your message is empty") and refusals
  ("I'm sorry", "As an AI") - SVIT's first post-filter;
- ``leak``: answers revealing the text source ("according to the captions", "bounding box",
  "the description mentions") - SVIT's second post-filter;
- ``bad_box``: a box that is malformed, outside [0, 1] or with x2 <= x1 / y2 <= y1;
- ``hallucination``: object nouns in the answer that none of the image's annotations contain
  (a vocabulary of object nouns with a small synonym/plural table; negated mentions such as
  "there is no dog" are allowed);
- ``color_hallucination``: a colour the answer gives an object ("a red circle", "the circle is
  red") when the annotations give that object only other colours (`vitune.synth.grounding`).

The last two have a policy each: ``drop`` removes the pair, ``flag`` keeps it with a flag, ``off``.

`summarize_kept` reports the yes/no ratio and length statistics of what was kept.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Literal

from vitune.data.records import ImageRecord
from vitune.synth.grounding import (
    OBJECT_VOCAB,
    annotated_colors,
    annotated_objects,
    canonical,
    contradicted_colors,
    hallucinated_objects,
)
from vitune.synth.parse import boxes_in, referring_objects

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
    color_hallucination: Policy = "drop"
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
        self._colors: dict[str, dict[str, set[str]]] = {}

    def allowed(self, rec: ImageRecord) -> set[str]:
        if rec.image_id not in self._allowed:
            self._allowed[rec.image_id] = annotated_objects(rec)
        return self._allowed[rec.image_id]

    def colors(self, rec: ImageRecord) -> dict[str, set[str]]:
        if rec.image_id not in self._colors:
            self._colors[rec.image_id] = annotated_colors(rec, self.vocab)
        return self._colors[rec.image_id]

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
        # Object names inside <st>..<ed> are checked like any other word.
        plain = re.sub(r"</?(?:st|ed)>", " ", a)
        if self.cfg.hallucination != "off":
            hall = hallucinated_objects(plain, self.allowed(rec), self.vocab)
            if hall:
                if self.cfg.hallucination == "drop":
                    return Verdict(False, "hallucination", detail=", ".join(hall))
                flags.append("hallucination:" + ",".join(hall))
        if self.cfg.color_hallucination != "off":
            wrong = contradicted_colors(plain, self.colors(rec), self.vocab)
            if wrong:
                if self.cfg.color_hallucination == "drop":
                    return Verdict(False, "color_hallucination", detail="; ".join(wrong))
                flags.append("color_hallucination:" + "; ".join(wrong))
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
