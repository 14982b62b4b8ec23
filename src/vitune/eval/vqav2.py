"""VQAv2 accuracy, reproducing the official `vqaEval.py` (GT-Vision-Lab/VQA, master a013f00, 2021).

The official rule, per question (REFERENCE.md §6):

1. The prediction and each of the 10 human answers: newlines/tabs -> spaces, then `strip()`.
2. Only when those 10 answers are *not* all identical, the prediction and every answer go through
   punctuation processing and digit/article processing. When they are all identical nothing else
   happens, and matching is exact and case-sensitive: "Yes" or "yes." scores 0 against ten "yes",
   and "two" scores 0 against ten "2".
3. Accuracy = mean over the 10 leave-one-out subsets of min(1, #answers in the other 9 equal to
   the prediction / 3); so 1 match -> 0.3, 2 -> 0.6, 3 -> 0.9, >= 4 -> 1.0.

Quirks kept on purpose (they change scores, and the point is to match the server):

- Punctuation: the "delete vs replace by space" test looks at the *original* text for every mark,
  and a digit,digit pattern anywhere deletes every mark instead of spacing it.
- The period regex is called as `sub("", text, re.UNICODE)`, which passes re.UNICODE (32) as
  `count`: at most 32 periods are removed.
- The official script is Python 2 code compiled without re.UNICODE, so `\\d` is ASCII-only; its
  `unicode.lower()` is the simple (one character to one character) case mapping, so "İ" becomes
  "i" (Python 3 gives "i" + a combining dot) and a final "Σ" becomes "σ" (Python 3: "ς")
  (`py2_lower`; characters added to Unicode after Python 2.7's 5.2 are not emulated); and its
  `round()` rounds an exact tie half away from zero (Python 3: to even), so 12.125 reports as
  12.13 (`py2_round`).
- Matching after normalization is exact (`==`); the digit/article step has already lowercased.
- Leave-one-out removes the answer *dict* (each has a distinct answer_id), so it is always the
  other n-1 answers even when answer strings repeat.

The published numbers were not computed on raw predictions: LLaVA's
`convert_vqav2_for_submission.py` (and lmms-eval, MMF) pass every prediction through the EvalAI
answer processor (`evalai_answer`, m4c's `EvalAIAnswerProcessor`: lowercase, delete "," and "?",
split "'s", then the same punctuation / number / article / contraction steps) before the server runs
this rule. `score_vqa(..., protocol="paper")` does that; `"official"` scores the raw predictions.

Speed: ground-truth processing depends only on the QA, so `prepare_gt` does it once per question,
and prediction normalization is memoized (predictions repeat a lot: "yes", "no", "2").
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Literal

from vitune.data.records import QA

# The official contractions table, reproduced as data (keys with capitals such as "Im" can never
# match after lowercasing; they are kept so the table stays the official one).
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've",
    "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
    "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip

# Number words -> digits; note "none" -> "0" as well (official manualMap).
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})
# Order matters only for readability: each mark is handled independently of the others.
PUNCT = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)

# `(?!<=\d)` is the official (mistyped) lookbehind: as a lookahead before "\." it never fails, so the
# pattern is "a period not followed by a digit". re.ASCII: Python 2 `\d` without re.UNICODE.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)", re.ASCII)
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)", re.ASCII)
_OFFICIAL_PERIOD_COUNT = int(re.UNICODE)  # the flag the official code passes as `count` (32)


def clean_answer(text: str) -> str:
    """Step 1 for both sides: newlines and tabs become spaces, then strip."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """Official punctuation processing (see the module docstring for its quirks)."""
    out = text
    delete_all = _COMMA_STRIP.search(text) is not None
    for p in PUNCT:
        if p not in out:
            continue  # nothing to replace: same result, much faster on short answers
        # The test reads the original `text`, never the partly processed `out`.
        touches_space = (p + " " in text) or (" " + p in text)
        out = out.replace(p, "" if delete_all or touches_space else " ")
    return _PERIOD_STRIP.sub("", out, count=_OFFICIAL_PERIOD_COUNT)


def py2_lower(text: str) -> str:
    """Python 2's `unicode.lower()`: the simple case mapping, one character at a time.

    Python 3 applies the full mapping (U+0130 "İ" -> "i" + U+0307) and the context-dependent final
    sigma; lowering character by character with "İ" -> "i" is exactly the simple mapping.
    """
    if text.isascii():
        return text.lower()
    return "".join("i" if c == "\u0130" else c.lower() for c in text)


def py2_round(x: float, ndigits: int) -> float:
    """Python 2's `round()`: correctly rounded, exact ties (in binary) away from zero.

    `Decimal(x)` is the exact binary value, so ROUND_HALF_UP breaks only true ties, as Python 2 does.
    """
    return float(Decimal(x).quantize(Decimal(1).scaleb(-ndigits), rounding=ROUND_HALF_UP))


def process_digit_article(text: str) -> str:
    """Lowercase (Python 2's), number words -> digits, drop articles, fix contractions word by word."""
    words = [NUMBER_WORDS.get(w, w) for w in py2_lower(text).split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


@lru_cache(maxsize=1 << 18)
def normalize_answer(text: str) -> str:
    """Full normalization of an already cleaned answer (used when the gt answers differ)."""
    return process_digit_article(process_punctuation(text))


# ---- the EvalAI answer processor (m4c `EvalAIAnswerProcessor`, Python 3) ------------------------

# m4c's patterns, compiled without flags as in its Python 3 source (Unicode \d).
_M4C_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_M4C_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")


def _m4c_punctuation(text: str) -> str:
    out = text
    delete_all = _M4C_COMMA_STRIP.search(text) is not None
    for p in PUNCT:
        # As in the official code the "touches a space" test reads the input, not `out`.
        touches_space = p + " " in text or " " + p in text
        out = out.replace(p, "" if delete_all or touches_space else " ")
    # m4c passes re.UNICODE as `count` too: at most 32 periods go.
    return _M4C_PERIOD_STRIP.sub("", out, count=_OFFICIAL_PERIOD_COUNT)


def _m4c_digit_article(text: str) -> str:
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


@lru_cache(maxsize=1 << 16)
def evalai_answer(text: str) -> str:
    """m4c `EvalAIAnswerProcessor.__call__` (LLaVA's VQAv2/VizWiz submission and TextVQA scoring):
    lowercase, delete "," and "?", "'s" -> " 's", strip; newline/tab -> space, strip; punctuation;
    numbers, articles, contractions."""
    t = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    t = t.replace("\n", " ").replace("\t", " ").strip()
    return _m4c_digit_article(_m4c_punctuation(t))


@lru_cache(maxsize=4096)
def _loo_accuracy(flags: tuple[bool, ...]) -> float:
    """Mean of the leave-one-out scores for the given per-answer match flags.

    Summed in answer order exactly as the official loop does, so the floats are bit-identical.
    """
    m = sum(flags)
    total = 0
    for f in flags:
        total += min(1, float(m - f) / 3)
    return float(total) / len(flags)


@dataclass(frozen=True, slots=True)
class PreparedGT:
    """The processed ground-truth answers of one question, computed once and reused."""

    answers: tuple[str, ...]
    normalize_prediction: bool  # True when the gt answers differ (the official `len(set) > 1`)
    answer_set: frozenset[str]


def prepare_gt(gt_answers: Sequence[str]) -> PreparedGT:
    """Clean the gt answers and, when they differ, normalize them (the per-question official steps)."""
    if not gt_answers:
        raise ValueError("a VQA question needs at least one ground-truth answer")
    cleaned = [clean_answer(a) for a in gt_answers]
    differ = len(set(cleaned)) > 1
    answers = tuple(normalize_answer(a) for a in cleaned) if differ else tuple(cleaned)
    return PreparedGT(answers, differ, frozenset(answers))


def accuracy_prepared(pred: str, gt: PreparedGT) -> float:
    """VQA accuracy in [0, 1] of one prediction against prepared gt answers."""
    p = clean_answer(pred)
    if gt.normalize_prediction:
        p = normalize_answer(p)
    if p not in gt.answer_set:
        return 0.0
    return _loo_accuracy(tuple(a == p for a in gt.answers))


@lru_cache(maxsize=1 << 16)
def _prepare_cached(gt_answers: tuple[str, ...]) -> PreparedGT:
    return prepare_gt(gt_answers)


def vqa_accuracy(pred: str, gt_answers: Sequence[str]) -> float:
    """Official VQAv2 accuracy in [0, 1] of `pred` against the (normally 10) human answers."""
    return accuracy_prepared(pred, _prepare_cached(tuple(gt_answers)))


@dataclass(slots=True)
class VQAScores:
    """Scores ×100 rounded to 2 decimals as the official script reports, plus counts and per-question."""

    overall: float
    per_answer_type: dict[str, float]
    per_question_type: dict[str, float]
    n: int
    n_per_answer_type: dict[str, int]
    n_per_question_type: dict[str, int]
    per_question: dict[str, float] = field(default_factory=dict)  # question_id -> accuracy in [0, 1]
    n_missing: int = 0

    def to_dict(self, with_per_question: bool = False) -> dict:
        d = {
            "overall": self.overall,
            "per_answer_type": self.per_answer_type,
            "per_question_type": self.per_question_type,
            "n": self.n,
            "n_per_answer_type": self.n_per_answer_type,
            "n_per_question_type": self.n_per_question_type,
            "n_missing": self.n_missing,
        }
        if with_per_question:
            d["per_question"] = self.per_question
        return d


def _pct(values: list[float], ndigits: int) -> float:
    # Same expression as the official setAccuracy: round(100*float(sum(acc))/len(acc), n), Python 2.
    return py2_round(100 * float(sum(values)) / len(values), ndigits) if values else 0.0


def score_vqa(
    preds: Mapping[str, str],
    qas: Iterable[QA],
    *,
    missing: Literal["error", "skip", "zero"] = "error",
    ndigits: int = 2,
    protocol: Literal["official", "paper"] = "official",
) -> VQAScores:
    """Score predictions (question_id -> answer) on `qas`, overall and per answer/question type.

    `protocol="paper"` first passes every prediction through `evalai_answer` (LLaVA's submission
    pipeline, module docstring); `"official"` scores them raw, as `vqaEval.py` does.

    The official script refuses results that do not cover every question (`missing="error"`);
    `"skip"` scores only the answered questions, `"zero"` counts missing ones as wrong. Predictions
    for questions not in `qas` are ignored.
    """
    if protocol not in ("official", "paper"):
        raise ValueError(f"protocol must be 'official' or 'paper', not {protocol!r}")
    per_q: dict[str, float] = {}
    accs: list[float] = []
    by_at: dict[str, list[float]] = defaultdict(list)
    by_qt: dict[str, list[float]] = defaultdict(list)
    missing_ids: list[str] = []
    for qa in qas:
        qid = str(qa.question_id)
        pred = preds.get(qid)
        if pred is None:
            missing_ids.append(qid)
            if missing == "skip":
                continue
            if missing == "error":
                continue  # collect all, raise once below with a useful message
            acc = 0.0
        else:
            if protocol == "paper":
                pred = evalai_answer(pred)
            acc = accuracy_prepared(pred, prepare_gt(qa.answers))
        per_q[qid] = acc
        accs.append(acc)
        by_at[qa.answer_type].append(acc)
        by_qt[qa.question_type].append(acc)
    if missing == "error" and missing_ids:
        raise ValueError(f"{len(missing_ids)} question(s) have no prediction, e.g. {missing_ids[:5]}")
    return VQAScores(
        overall=_pct(accs, ndigits),
        per_answer_type={k: _pct(v, ndigits) for k, v in by_at.items()},
        per_question_type={k: _pct(v, ndigits) for k, v in by_qt.items()},
        n=len(accs),
        n_per_answer_type={k: len(v) for k, v in by_at.items()},
        n_per_question_type={k: len(v) for k, v in by_qt.items()},
        per_question=per_q,
        n_missing=len(missing_ids),
    )
