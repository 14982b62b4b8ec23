"""Tolerant parsers for the generators' reply formats.

Every generator asks for plain ``Question: ... / Answer: ...`` lines (conversations add a header per
conversation, descriptions are free text). Real LLM replies drift: numbering (``1.``, ``Q1:``),
markdown bold (``**Question:**``), ``Q:``/``User:``/``Human:`` variants, bullets, blank lines,
answers spread over several lines, a truncated last pair. The parser accepts all of that and raises
`ParseError` only when nothing usable is left; the caller records that in the ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A label at line start, after optional bullets / numbering / markdown emphasis / heading marks.
_LEAD = r"^\s*(?:[-*•>]\s+)?(?:#{1,6}\s*)?(?:\d{1,3}\s*[.):]\s*)?(?:\*\*|__|\*)?\s*"
_TAIL = r"\s*(?:\d{1,3})?\s*(?:\*\*|__|\*)?\s*[:：.)\-]\s*(?:\*\*|__|\*)?\s*"
Q_RE = re.compile(_LEAD + r"(?:question|q|user|human)" + _TAIL + r"(?P<text>.*)$", re.IGNORECASE)
A_RE = re.compile(_LEAD + r"(?:answer|a|assistant|gpt|ai)" + _TAIL + r"(?P<text>.*)$", re.IGNORECASE)
# Conversation headers: "Conversation 2 (topic: colours)", "### Topic: layout", "---".
HEADER_RE = re.compile(
    r"^\s*(?:#{1,6}\s*)?(?:\*\*|__)?\s*(?:conversation|dialog(?:ue)?|topic)\b(?P<rest>.*)$", re.IGNORECASE
)
RULE_RE = re.compile(r"^\s*(?:-{3,}|={3,}|\*{3,}|_{3,})\s*$")
TOPIC_RE = re.compile(r"topic\s*[:=\-]\s*(?P<t>[^)\n]*)", re.IGNORECASE)
# An inline answer on the question's line: "Q: What is it? A: A dog."
INLINE_A_RE = re.compile(r"\s(?:\*\*)?(?:A|Answer)(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)
_EMPH_RE = re.compile(r"(\*\*|__)")
_DESC_LABEL_RE = re.compile(
    r"^\s*(?:#{1,6}\s*)?(?:\*\*)?\s*(?:detailed\s+)?description\s*(?:\*\*)?\s*:\s*", re.I
)

# Referring objects: <st>name<ed> [x1, y1, x2, y2] (the box may be missing or malformed).
NUM = r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?"
REF_RE = re.compile(r"<st>\s*(?P<name>.*?)\s*<ed>(?:\s*\[(?P<box>[^\]\[]*)\])?", re.IGNORECASE | re.DOTALL)
BOX_RE = re.compile(
    r"\[\s*(" + NUM + r")\s*,\s*(" + NUM + r")\s*,\s*(" + NUM + r")\s*,\s*(" + NUM + r")\s*\]"
)
ANY_BRACKET_RE = re.compile(r"\[[^\]\[]*\]")


class ParseError(ValueError):
    """A reply from which no usable item could be read."""


@dataclass(slots=True)
class QAPair:
    question: str
    answer: str


@dataclass(slots=True)
class Parsed:
    format: str
    groups: list[list[QAPair]] = field(default_factory=list)  # one list per conversation
    topics: list[str] = field(default_factory=list)
    description: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def pairs(self) -> list[QAPair]:
        return [p for g in self.groups for p in g]


def clean(text: str) -> str:
    """Collapse whitespace and drop markdown emphasis markers around the text."""
    text = _EMPH_RE.sub("", text)
    return re.sub(r"[ \t]+", " ", text).strip().strip("*_ ").strip()


def _qa_lines(lines: list[str], warnings: list[str]) -> tuple[list[list[QAPair]], list[str]]:
    groups: list[list[QAPair]] = [[]]
    topics: list[str] = [""]
    q: list[str] | None = None
    a: list[str] | None = None

    def flush() -> None:
        nonlocal q, a
        if q is not None:
            qs, ans = clean(" ".join(q)), clean(" ".join(a or []))
            if qs and ans:
                groups[-1].append(QAPair(qs, ans))
            elif qs:
                warnings.append(f"question without answer: {qs[:60]!r}")
        q, a = None, None

    for raw in lines:
        line = raw.rstrip()
        if not line.strip():
            continue
        if m := Q_RE.match(line):
            flush()
            text = m.group("text")
            inline = INLINE_A_RE.search(text)
            if inline:
                q, a = [text[: inline.start()]], [text[inline.end() :]]
            else:
                q, a = [text], None
            continue
        if (m := A_RE.match(line)) and q is not None and a is None:
            a = [m.group("text")]
            continue
        if HEADER_RE.match(line) or RULE_RE.match(line):
            flush()
            t = TOPIC_RE.search(line)
            topic = (
                clean(t.group("t"))
                if t
                else clean(HEADER_RE.match(line).group("rest") if HEADER_RE.match(line) else "")
            )
            if groups[-1]:
                groups.append([])
                topics.append(topic)
            elif topic:
                topics[-1] = topic
            continue
        # A continuation line of the current question or answer.
        if a is not None:
            a.append(line.strip())
        elif q is not None:
            q.append(line.strip())
    flush()
    keep = [(g, t) for g, t in zip(groups, topics, strict=True) if g]
    return [g for g, _ in keep], [t for _, t in keep]


def parse_reply(text: str, fmt: str, *, n_items: int | None = None, n_groups: int | None = None) -> Parsed:
    """Parse one reply of format `fmt` ("qa", "conversations", "referring", "description", "dialog")."""
    if text is None or not text.strip():
        raise ParseError("empty reply")
    text = text.replace("\r\n", "\n").strip()
    # Drop a code fence some models wrap their output in.
    text = re.sub(r"^```[a-zA-Z]*\n|\n```$", "", text).strip()
    out = Parsed(format=fmt)
    if fmt == "description":
        paras = [clean(_DESC_LABEL_RE.sub("", p)) for p in re.split(r"\n\s*\n", text)]
        out.description = "\n\n".join(p for p in paras if p)
        if not out.description:
            raise ParseError("empty description")
        return out
    groups, topics = _qa_lines(text.split("\n"), out.warnings)
    if not groups:
        raise ParseError("no question/answer pairs found")
    if fmt == "conversations":
        if len(groups) == 1 and n_items and len(groups[0]) > n_items:
            # No headers: split the flat list into conversations of n_items rounds.
            flat = groups[0]
            groups = [flat[i : i + n_items] for i in range(0, len(flat), n_items)]
            topics = [""] * len(groups)
    else:
        groups = [[p for g in groups for p in g]]
        topics = [""]
    out.groups, out.topics = groups, topics
    got = sum(len(g) for g in groups)
    expected = (n_items or 0) * (n_groups or 1) if fmt == "conversations" else n_items
    if expected and got != expected:
        out.warnings.append(f"expected {expected} pairs, got {got}")
    return out


def referring_objects(text: str) -> list[tuple[str, list[float] | None, str]]:
    """Every ``<st>name<ed> [box]`` in `text` as (name, box or None, raw box text)."""
    out = []
    for m in REF_RE.finditer(text):
        raw = m.group("box")
        box = None
        if raw is not None:
            bm = BOX_RE.fullmatch("[" + raw + "]")
            if bm:
                box = [float(v) for v in bm.groups()]
        out.append((m.group("name"), box, raw or ""))
    return out


def boxes_in(text: str) -> list[tuple[str, list[float] | None]]:
    """Every bracketed group that looks like a box attempt, as (raw text, 4 floats or None)."""
    out = []
    for m in ANY_BRACKET_RE.finditer(text):
        raw = m.group(0)
        if not re.search(r"\d", raw):
            continue  # "[sic]" or other bracketed prose
        bm = BOX_RE.fullmatch(raw)
        out.append((raw, [float(v) for v in bm.groups()] if bm else None))
    return out
