"""MMBench from the official TSV (base64 images), with CircularEval as VLMEvalKit scores it.

TSV columns: `index, question, hint, A, B, C, D[, E], answer, category, l2-category, split, image`
(base64; in VLMEvalKit's circular TSVs a repeated image may be stored as the index of the row
holding it). Options stop at the first empty/"nan"/"none" one (LLaVA `get_options`).
Prompt (LLaVA `model_vqa_mmbench --single-pred-prompt`): `[<hint>\\n]<question>\\nA. <opt>...\\n
Answer with the option's letter from the given choices directly.`

CircularEval: a question is asked once per option, options rotated. If the TSV already holds the
rotated rows (VLMEvalKit circular TSVs: index + k*1e6) they are used; otherwise the rotations are
made here like LLaVA `--all-rounds` (texts rotate, letters stay A, B, ...; pass k gets index
+ k*1e6). Passes are grouped by `int(index % 1e6)` (VLMEvalKit `mcq_circular_eval`); the group is
right only when every pass is right. Per group, as VLMEvalKit does: first the rule-based extraction
on every pass, and if any extracted letter is wrong the group is wrong with no judge call; then
the judge (if any) for passes with no extraction; the first wrong pass ends the group.

Extraction (VLMEvalKit `can_infer`, commit e8e78f0): replace `.()[],:;!*#{}` by spaces, split;
if exactly one option letter is a token and it sits among the last 4 tokens -> it; a refusal
phrase or a lone "Z" -> "Z" (wrong); "answer is X" (case-insensitive) -> X; else a unique option
text contained in the lowercased answer (only when the answer is at most twice the options'
total length). Else the judge hook `judge(question, options, prediction) -> str | None` is asked
and its reply goes through the same extraction; no judge, or no usable reply, counts as a failed
extraction (`n_failed_extraction`) and wrong. VLMEvalKit instead picks a random letter after 3
judge failures; failures are never scored at random here.

Predictions as the official path sees them: LLaVA's `convert_mmbench_for_submission.py` writes them
to an `.xlsx` that the evaluator reads back with `pandas.read_excel`, which turns a cell holding one
of pandas' NA strings ("None", "NA", "null", "nan", "", ...) into an empty cell (NaN); VLMEvalKit's
`str()` then reads it as "nan". `as_read_back` does the same before extraction, so a model answering
"None" is scored as the official evaluator scores it (no match against an option "None of these").
"""

from __future__ import annotations

import base64
import csv
import os
import re
import string
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from vitune.eval.benchmarks.base import (
    LETTER_ANSWER,
    BenchItem,
    Benchmark,
    Missing,
    group_pct,
    pair_predictions,
    pct,
    register_benchmark,
    scorable,
)

Judge = Callable[[str, dict[str, str], str], "str | None"]
CIRCULAR_STRIDE = 1_000_000
_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_VERBOSE_ANSWER = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


# pandas' default NA strings (`pandas._libs.parsers.STR_NA_VALUES`, pinned by a test): read_excel
# turns a cell equal to one of them into NaN.
EXCEL_NA_STRINGS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})  # fmt: skip


def as_read_back(prediction: str) -> str:
    """The prediction after the official .xlsx round trip (module docstring): NA strings -> "nan"."""
    return "nan" if prediction in EXCEL_NA_STRINGS else prediction


def _is_none(v: str | None) -> bool:
    # LLaVA is_none: missing/NaN, or the strings "nan"/"none" in any case.
    return v is None or v == "" or v.lower() in ("nan", "none")


def infer_option(answer: str, choices: Mapping[str, str]) -> str | None:
    """VLMEvalKit `can_infer_option`: a letter, "Z" (refusal), or None."""
    if "Failed to obtain answer via API" in answer:
        return None
    if any(r in answer for r in _REFUSALS):
        return "Z"
    mod = answer
    for c in ".()[],:;!*#{}":
        mod = mod.replace(c, " ")
    splits = [x.strip() for x in mod.split()]
    count = sum(c in splits for c in choices)
    if count == 1:
        for ch in choices:
            if ch in splits and splits.index(ch) > len(splits) - 5:
                return ch
    elif count == 0 and "Z" in splits:
        return "Z"
    m = _VERBOSE_ANSWER.search(answer)
    if m and m.group(1).upper() in choices:
        return m.group(1).upper()
    return None


def infer_text(answer: str, choices: Mapping[str, str]) -> str | None:
    """VLMEvalKit `can_infer_text`: the one option whose text the answer contains."""
    answer = answer.lower()
    if len(answer) > 2 * sum(len(str(v)) for v in choices.values()):
        return None
    cands = [k for k, v in choices.items() if str(v).lower() in answer]
    return cands[0] if len(cands) == 1 else None


def infer_answer(answer: str, choices: Mapping[str, str]) -> str | None:
    answer = str(answer)
    return infer_option(answer, choices) or infer_text(answer, choices)


def _read_tsv(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)  # base64 images are far longer than csv's 128 KiB default
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@register_benchmark
class MMBench(Benchmark):
    name = "mmbench"
    prompt_suffix = LETTER_ANSWER
    scorer_version = 2  # 2: predictions as read back from the official .xlsx

    def unparsable(self, prediction: str, item: BenchItem) -> bool:
        """No option found by the rules: the official path then needs its LLM judge."""
        return infer_answer(as_read_back(prediction), item.options) is None

    def __init__(self, circular: bool = True, judge: Judge | None = None) -> None:
        self.circular = circular
        self.judge = judge

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        """`path`: the MMBench TSV (e.g. mmbench_dev_20230712.tsv)."""
        rows = _read_tsv(Path(path))
        if not rows:
            return []
        letters = [c for c in string.ascii_uppercase if c in rows[0]]
        by_index = {int(r["index"]): r for r in rows}
        has_passes = any(i >= CIRCULAR_STRIDE for i in by_index)
        items = []
        for r in rows:
            index = int(r["index"])
            options = []
            for c in letters:
                if _is_none(r.get(c)):
                    break
                options.append(r[c])
            img = r.get("image") or ""
            if img.isdigit() and len(img) <= 64:  # a reference to the row holding the image
                img = by_index[int(img)]["image"]
            answer = r.get("answer") or ""
            rounds = len(options) if self.circular and not has_passes else 1
            for k in range(rounds):
                opts = options[k:] + options[:k]
                gold = ""
                if answer and not _is_none(answer):
                    gold = string.ascii_uppercase[(letters.index(answer) - k) % len(options)]
                items.append(self._item(r, index + k * CIRCULAR_STRIDE, opts, gold, img))
        return items

    def _item(self, r: dict[str, str], index: int, opts: list[str], gold: str, img: str) -> BenchItem:
        options = dict(zip(string.ascii_uppercase, opts, strict=False))
        text = r["question"]
        if not _is_none(r.get("hint")):
            text = r["hint"] + "\n" + text
        text += "".join(f"\n{k}. {v}" for k, v in options.items())
        return BenchItem(
            item_id=str(index),
            question=self.prompt(text),
            image=base64.b64decode(img) if img else None,
            answers=[gold] if gold else [],
            options=options,
            category=r.get("category", ""),
            subcategory=r.get("l2-category", ""),
            meta={"raw_question": r["question"], "index": index, "split": r.get("split", "")},
        )

    def group_key(self, item: BenchItem) -> str:
        return str(int(item.meta["index"] % CIRCULAR_STRIDE)) if self.circular else item.item_id

    def _judge(self, it: BenchItem, pred: str) -> str | None:
        if self.judge is None:
            return None
        reply = self.judge(it.meta["raw_question"], dict(it.options), pred)
        return infer_answer(reply, it.options) if reply else None

    def _group_hit(self, passes: list[tuple[BenchItem, str | None]], counts: dict[str, int]) -> bool:
        passes = [(it, None if p is None else as_read_back(p)) for it, p in passes]
        inferred = [None if p is None else infer_answer(p, it.options) for it, p in passes]
        if any(x is not None and x != it.answers[0] for x, (it, _) in zip(inferred, passes, strict=True)):
            return False  # prefetch found a wrong pass: no judge call (as VLMEvalKit)
        for x, (it, p) in zip(inferred, passes, strict=True):
            if x is not None:
                continue
            if p is None:
                return False
            counts["judge_calls"] += self.judge is not None
            x = self._judge(it, p)
            if x is None:
                counts["failed_extraction"] += 1
                return False
            if x != it.answers[0]:
                return False
        return True

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        items = scorable(items, "MMBench items without an answer")
        pairs, n_missing = pair_predictions(preds, items, missing)
        groups: dict[int, list[tuple[BenchItem, str | None]]] = defaultdict(list)
        for it, p in pairs:
            g = int(it.meta["index"] % 1e6) if self.circular else it.meta["index"]
            groups[g].append((it, p))
        counts: dict[str, int] = defaultdict(int)
        hits: dict[str, bool] = {}
        by_cat: dict[str, list[bool]] = defaultdict(list)
        by_l2: dict[str, list[bool]] = defaultdict(list)
        by_split: dict[str, list[bool]] = defaultdict(list)
        for g, passes in sorted(groups.items()):
            passes.sort(key=lambda ip: ip[0].meta["index"])
            main = passes[0][0]
            if main.meta["index"] != g:
                raise ValueError(f"MMBench circular group {g} has no main row (index {g})")
            ok = self._group_hit(passes, counts)
            hits[str(g)] = ok
            by_cat[main.category].append(ok)
            by_l2[main.subcategory].append(ok)
            by_split[main.meta.get("split", "")].append(ok)
        return self.result(
            metric="circular_accuracy" if self.circular else self.metric,
            overall=pct(sum(hits.values()), len(hits)),
            per_category=group_pct(by_cat),
            per_l2_category=group_pct(by_l2),
            per_split=group_pct(by_split),
            n=len(hits),
            n_passes=len(pairs),
            n_failed_extraction=counts["failed_extraction"],
            n_judge_calls=counts["judge_calls"],
            n_missing=n_missing,
            per_question=hits,
        )
