"""A-OKVQA (val) from the official `aokvqa_v1p0_val.json`: two benchmarks, `aokvqa_mc` and `aokvqa_da`.

A-OKVQA defines two tasks on the same questions, each with its own prompt, its own question set and
its own metric (allenai/aokvqa `evaluation/eval_predictions.py`, commit 42e8c44), so vitune
registers them as two benchmarks (one prompt per item, one `overall` per benchmark), both here:

- `aokvqa_mc` (multiple choice), every question. Prompt (LLaVA-1.5's A-OKVQA format): question +
  "\\nA. <choice>\\nB. ...\\nD. <choice>" + "\\nAnswer with the option's letter from the given
  choices directly.". The official rule compares the predicted choice TEXT with
  `choices[correct_choice_idx]`; the letter answer is mapped to its choice first
  (`parse_aokvqa_letter`: the answer is a letter, or "B." / "B)" / "(B)" / "B. <text>", or exactly
  one choice's text, case and a final period ignored; else unparsable, wrong). One protocol.
- `aokvqa_da` (direct answer), the questions NOT marked `difficult_direct_answer` (the official
  script leaves those out of DA only). Prompt: question + "\\nAnswer the question using a single
  word or phrase.". The official rule is NOT VQAv2's: `min(1, #direct_answers equal to the
  prediction / 3)` with no leave-one-out (3 matches already give 1.0, 1 match 0.333...), exact string
  equality, no normalization at all; `sum(acc) / len(acc) * 100`. Protocols: `official` (default)
  scores the raw prediction ("Yes" never equals "yes"); `paper` runs the EvalAI answer processor on
  the prediction first, the convention of LLaVA's and lmms-eval's VQA pipelines (no A-OKVQA-specific
  published LLaVA pipeline was found: a convention, not a reproduced script, hence not the default).

Images: COCO 2017 `{split}2017/{image_id:012d}.jpg` under the COCO root (`load_aokvqa.get_coco_path`).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vitune.eval.benchmarks.base import (
    LETTER_ANSWER,
    SHORT_ANSWER,
    BenchItem,
    Benchmark,
    BenchmarkDataError,
    Missing,
    pair_predictions,
    read_json,
    register_benchmark,
    scorable,
)
from vitune.eval.vqav2 import evalai_answer

LETTERS = ("A", "B", "C", "D", "E", "F")
_LETTER = re.compile(r"^\(?([A-F])(?:[.):](?:\s.*)?)?$", re.S)


def parse_aokvqa_letter(pred: str, options: Mapping[str, str]) -> str | None:
    """The option letter a prediction names, or None (module docstring)."""
    t = pred.strip()
    m = _LETTER.match(t)
    if m and m.group(1) in options:
        return m.group(1)
    text = t.rstrip(".").strip().lower()
    hits = [k for k, v in options.items() if v.strip().lower() == text]
    return hits[0] if len(hits) == 1 else None


def aokvqa_da_accuracy(pred: str, direct_answers: list[str]) -> float:
    """Official DA accuracy in [0, 1]: min(1, exact matches / 3), no leave-one-out."""
    return min(1.0, sum(pred == da for da in direct_answers) / 3.0)


def load_aokvqa_file(path: str | os.PathLike, bench: str) -> tuple[Path, list[dict[str, Any]]]:
    """The official split file (given directly, or the one `aokvqa_v1p0_*.json` in a folder)."""
    p = Path(path)
    if p.is_dir():
        hits = sorted(p.glob("aokvqa_v1p0_*.json"))
        if len(hits) != 1:
            raise BenchmarkDataError(
                f"{bench}: {p} must hold exactly one aokvqa_v1p0_<split>.json, found {len(hits)}"
            )
        p = hits[0]
    doc = read_json(p)
    if not isinstance(doc, list):
        raise BenchmarkDataError(f"{bench}: {p} is not an A-OKVQA list of questions")
    return p, doc


class _AOKVQA(Benchmark):
    def _entries(self, path: str | os.PathLike) -> list[tuple[dict[str, Any], str]]:
        p, doc = load_aokvqa_file(path, self.name)
        out = []
        for i, q in enumerate(doc):
            try:
                choices, split = q["choices"], q.get("split", "val")
                image = f"{split}2017/{int(q['image_id']):012d}.jpg"
                if not isinstance(q["question"], str) or q["question_id"] is None:
                    raise TypeError("'question' must be a string and 'question_id' set")
                if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS):
                    raise ValueError(f"'choices' must be a list of 2 to {len(LETTERS)} strings")
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise BenchmarkDataError(f"{self.name}: {p}: entry [{i}] is malformed ({e})") from None
            out.append((q, image))
        return out


@register_benchmark
class AOKVQAMultipleChoice(_AOKVQA):
    name = "aokvqa_mc"
    prompt_suffix = LETTER_ANSWER

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        items = []
        for q, image in self._entries(path):
            options = dict(zip(LETTERS, q["choices"], strict=False))
            idx = q.get("correct_choice_idx")
            text = q["question"] + "".join(f"\n{k}. {v}" for k, v in options.items())
            items.append(
                BenchItem(
                    item_id=str(q["question_id"]),
                    question=self.prompt(text),
                    image=image,
                    answers=[LETTERS[idx]] if isinstance(idx, int) and 0 <= idx < len(options) else [],
                    options=options,
                    category="difficult" if q.get("difficult_direct_answer") else "regular",
                    meta={"raw_question": q["question"], "image_id": q["image_id"]},
                )
            )
        return items

    def unparsable(self, prediction: str, item: BenchItem) -> bool:
        return parse_aokvqa_letter(prediction, item.options) is None

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        items = scorable(items, "A-OKVQA items without correct_choice_idx")
        pairs, n_missing = pair_predictions(preds, items, missing)
        hits: dict[str, float] = {}
        by_cat: dict[str, list[float]] = defaultdict(list)
        n_failed = 0
        for it, p in pairs:
            letter = None if p is None else parse_aokvqa_letter(p, it.options)
            n_failed += p is not None and letter is None
            # Official: float(pred == choices[correct_choice_idx]) on the choice texts.
            ok = float(letter is not None and it.options[letter] == it.options[it.answers[0]])
            hits[it.item_id] = ok
            by_cat[it.category].append(ok)
        return self.result(
            overall=sum(hits.values()) / len(hits) * 100 if hits else 0.0,
            per_category={k: sum(v) / len(v) * 100 for k, v in sorted(by_cat.items())},
            n=len(hits),
            n_failed_parse=n_failed,
            n_missing=n_missing,
            per_item=hits,
        )


@register_benchmark
class AOKVQADirectAnswer(_AOKVQA):
    name = "aokvqa_da"
    metric = "vqa_accuracy"
    prompt_suffix = SHORT_ANSWER
    # `official` first (the default): no published LLaVA-style A-OKVQA DA pipeline was found, so the
    # official script is what published numbers can be compared with; `paper` here is the EvalAI
    # processor convention of LLaVA's and lmms-eval's VQA pipelines, offered, not reproduced.
    protocols = ("official", "paper")

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        items = []
        for q, image in self._entries(path):
            if q.get("difficult_direct_answer") is not False:
                continue  # eval_predictions.py: DA keeps `difficult_direct_answer is False` only
            items.append(
                BenchItem(
                    item_id=str(q["question_id"]),
                    question=self.prompt(q["question"]),
                    image=image,
                    answers=list(q.get("direct_answers") or []),
                    meta={"raw_question": q["question"], "image_id": q["image_id"]},
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        items = scorable(items, "A-OKVQA items without direct_answers")
        pairs, n_missing = pair_predictions(preds, items, missing)
        paper = self.active_protocol == "paper"
        accs = {
            it.item_id: 0.0 if p is None else aokvqa_da_accuracy(evalai_answer(p) if paper else p, it.answers)
            for it, p in pairs
        }
        return self.result(
            overall=sum(accs.values()) / len(accs) * 100 if accs else 0.0,
            per_category={},
            n=len(accs),
            n_missing=n_missing,
            per_item=accs,
        )
