"""Rule filters: each check looks at one instance and returns a reason when it must go, else None.

Checks (names used in recipes):

- `empty_reply`: an assistant turn that is empty or whitespace, or a missing final reply.
- `long_reply`: an assistant turn longer than `max_reply_words` words (tokenizer-independent).
- `generation_error`: replies that are LLM failure messages ("your message is empty", "as an AI
  language model"); SVIT dropped these.
- `source_mention`: replies that reveal the text the data was generated from ("according to the
  captions", "the bounding box", "the given coordinates"...); SVIT's prompts forbid this and its
  post-filter removed them. Only assistant turns are checked: a user may ask for a bounding box.
- `answer_leak`: a short answer that appears verbatim in its own question ("What is the man holding
  in this photo of a man holding a kite?" -> "kite"). Yes/no answers, multiple-choice questions
  (options inline) and either/or questions are exempt because there the answer is meant to be in
  the question.
- `invalid_box`: a `[x1, y1, x2, y2]` in any turn with a value outside [0, 1] or x2 < x1 / y2 < y1
  (LLaVA-1.5 and SVIT boxes are normalized to 0-1).
- `missing_image`: the instance names an image that is missing under its image root, resolves
  outside it, or fails the one image check (`vitune.data.images.check_image`: empty, corrupt,
  truncated, a decompression bomb, too large or too elongated).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vitune.curate.pool import EscapedPath
from vitune.data.images import check_image
from vitune.data.instance import Instance

DEFAULT_SOURCE_PATTERNS = [
    r"\baccording to the (?:given |provided |image )?(?:captions?|descriptions?|annotations?|text|context)\b",
    r"\b(?:based on|from) the (?:given |provided )(?:captions?|descriptions?|annotations?|information|text|context)\b",
    r"\b(?:as )?(?:mentioned|described|stated|noted) in the (?:given |provided |image )?(?:captions?|descriptions?|annotations?)\b",
    r"\bthe (?:captions?|descriptions?) (?:say|says|mention|mentions|state|states|indicate|indicates)\b",
    r"\bbounding box(?:es)?\b",
    r"\bthe (?:given |provided )coordinates\b",
]
DEFAULT_ERROR_PATTERNS = [
    r"\byour message is empty\b",
    r"\bas an ai language model\b",
]
ALL_CHECKS = (
    "empty_reply",
    "long_reply",
    "generation_error",
    "source_mention",
    "answer_leak",
    "invalid_box",
    "missing_image",
)

_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_BOX = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")
_OPTIONS = re.compile(r"(?:\boptions?\s*:|\([a-hA-H]\)\s*\S|(?:^|\n)\s*[A-H][.)]\s+\S)", re.IGNORECASE)
_WORDS = re.compile(r"[a-z0-9]+")
_YESNO = {"yes", "no", "true", "false"}
_ARTICLES = {"a", "an", "the"}


def _image_problem(path: str) -> str | None:
    """ "missing image file" or the one image check's reason (the ledger's label), or None."""
    if not os.path.isfile(path):
        return "missing image file"
    reason = check_image(path)
    return None if reason is None else f"bad image: {reason}"


def _norm_words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


@dataclass
class FilterConfig:
    checks: Sequence[str] = ALL_CHECKS
    max_reply_words: int = 1024
    leak_min_chars: int = 3
    source_patterns: Sequence[str] = field(default_factory=lambda: list(DEFAULT_SOURCE_PATTERNS))
    error_patterns: Sequence[str] = field(default_factory=lambda: list(DEFAULT_ERROR_PATTERNS))


def check_empty_reply(inst: Instance) -> str | None:
    if len(inst.turns) < 2:
        return "no assistant reply"
    for k, t in enumerate(inst.turns):
        if t.role == "assistant" and not t.text.strip():
            return f"empty reply (turn {k})"
    return None


def check_long_reply(inst: Instance, max_words: int) -> str | None:
    for k, t in enumerate(inst.turns):
        if t.role == "assistant":
            n = len(t.text.split())
            if n > max_words:
                return f"over-long reply (turn {k}: {n} words > {max_words})"
    return None


def _pattern_check(inst: Instance, patterns: Sequence[re.Pattern], label: str) -> str | None:
    for k, t in enumerate(inst.turns):
        if t.role != "assistant":
            continue
        for p in patterns:
            m = p.search(t.text)
            if m:
                return f"{label} (turn {k}: {m.group(0).lower()!r})"
    return None


def check_answer_leak(inst: Instance, min_chars: int = 3) -> str | None:
    for k, (q, a) in enumerate(inst.pairs()):
        words = _norm_words(a)
        while words and words[0] in _ARTICLES:
            words = words[1:]
        phrase = " ".join(words)
        if len(phrase) < min_chars or phrase in _YESNO or (words and words[0] in _YESNO):
            continue
        if _OPTIONS.search(q):
            continue  # multiple choice: the options are supposed to contain the answer
        qn = " " + " ".join(_norm_words(q)) + " "
        if f" {phrase} " not in qn:
            continue
        if " or " in qn:
            continue  # "is it a cat or a dog?": the alternatives are in the question by design
        return f"answer leaked in the question (turn {2 * k + 1}: {phrase!r})"
    return None


def check_invalid_box(inst: Instance) -> str | None:
    for k, t in enumerate(inst.turns):
        for m in _BOX.finditer(t.text):
            x1, y1, x2, y2 = (float(v) for v in m.groups())
            if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)):
                return f"invalid box (turn {k}: {m.group(0)} outside [0, 1])"
            if x2 < x1 or y2 < y1:
                return f"invalid box (turn {k}: {m.group(0)} has x2 < x1 or y2 < y1)"
    return None


class Filters:
    """Compiled filter set; `__call__(inst, image_path)` returns the first failing reason or None."""

    def __init__(
        self, cfg: FilterConfig | None = None, check: Callable[[str], str | None] | None = None
    ) -> None:
        self.cfg = cfg or FilterConfig()
        unknown = sorted(set(self.cfg.checks) - set(ALL_CHECKS))
        if unknown:
            raise ValueError(f"unknown filter check(s) {unknown}; known: {list(ALL_CHECKS)}")
        self.source = [re.compile(p, re.IGNORECASE) for p in self.cfg.source_patterns]
        self.errors = [re.compile(p, re.IGNORECASE) for p in self.cfg.error_patterns]
        # Many instances share an image; one check per file (an index of paths, reasons short).
        self._memo: dict[str, str] = {}
        self._check = check or _image_problem

    def image_problem(self, path: str) -> str | None:
        """Why the image file `path` is unusable, or None."""
        if isinstance(path, EscapedPath):
            return f"unsafe image path: {path}"
        hit = self._memo.get(path)
        if hit is None:
            hit = self._memo[path] = self._check(path) or ""
        return hit or None

    def __call__(self, inst: Instance, image_path: str | None = None) -> str | None:
        c = self.cfg
        for name in c.checks:
            if name == "empty_reply":
                r = check_empty_reply(inst)
            elif name == "long_reply":
                r = check_long_reply(inst, c.max_reply_words)
            elif name == "generation_error":
                r = _pattern_check(inst, self.errors, "generation error")
            elif name == "source_mention":
                r = _pattern_check(inst, self.source, "reply mentions its text source")
            elif name == "answer_leak":
                r = check_answer_leak(inst, c.leak_min_chars)
            elif name == "invalid_box":
                r = check_invalid_box(inst)
            else:  # missing_image
                r = None
                if inst.image is not None and image_path is not None:
                    problem = self.image_problem(image_path)
                    if problem:
                        label, _, why = problem.partition(": ")
                        r = f"{label} ({inst.image}: {why})" if why else f"{label} ({inst.image})"
            if r:
                return r
        return None


def apply_filters(
    instances: Sequence[Instance],
    cfg: FilterConfig | None = None,
    image_paths: Sequence[str | None] | None = None,
) -> tuple[list[int], list[tuple[int, str, dict]]]:
    """(kept indices, removals) for a filter config; `image_paths[i]` is the resolved image file."""
    f = Filters(cfg)
    kept: list[int] = []
    removed: list[tuple[int, str, dict]] = []
    for n, inst in enumerate(instances):
        reason = f(inst, image_paths[n] if image_paths is not None else None)
        if reason is None:
            kept.append(n)
        else:
            # "label (specifics)": the label groups the ledger summary, specifics go to the detail
            label, _, rest = reason.partition(" (")
            removed.append((n, label, {"detail": rest[:-1]} if rest else {}))
    return kept, removed
