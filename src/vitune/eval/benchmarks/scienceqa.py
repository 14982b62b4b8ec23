"""ScienceQA (IMG subset by default) from the official problems.json + pid_splits.json.

Prompt (LLaVA-1.5 `llava_test_CQM-A.json` + `model_vqa_science --single-pred-prompt`):
`["Context: <hint>\\n"]<question>\\nA. <choice>\\nB. <choice>...\\nAnswer with the option's letter
from the given choices directly.`; the context line only when the hint is non-empty.
Images: `<pid>/<image>` under the split's image folder (images/test/...), as LLaVA names them.

Letter parsing is LLaVA's `eval_science_qa.py`, options A-E:
1. the whole prediction is one of "A".."E";
2. else it is at least 3 characters, starts with an option letter and then ". " ("B. pear");
3. else `re.findall(r'The answer is ([A-Z]).', pred)` has exactly ONE match -> that letter.
   The "." in that pattern is any character, so "The answer is B" at the very end does NOT match;
4. else FAILED. A letter beyond the problem's number of choices is wrong, FAILED is wrong.
Accuracy (eval_science_qa.py): every problem of the split counts, a missing prediction as FAILED
(wrong); IMG-Accuracy (the published number, `overall` when `img_only`) counts the problems whose
prediction's prompt holds `<image>`, so a MISSING prediction of an image problem leaves the IMG
denominator (its placeholder prompt is "Unknown"). Both are `correct / total * 100`, in that order.
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
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    ratio_pct,
    read_json,
    register_benchmark,
)

OPTIONS = ("A", "B", "C", "D", "E")
_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")


def parse_sqa_letter(pred: str) -> str:
    """The parsed letter, or "FAILED" (LLaVA eval_science_qa.py)."""
    if pred in OPTIONS:
        return pred
    if len(pred) >= 3 and pred[0] in OPTIONS and pred[1:3] == ". ":
        return pred[0]
    found = _ANSWER_IS.findall(pred)
    return found[0] if len(found) == 1 else "FAILED"


@register_benchmark
class ScienceQA(Benchmark):
    name = "scienceqa"
    prompt_suffix = LETTER_ANSWER
    scorer_version = 2  # 2: missing predictions leave IMG-Accuracy; correct / total * 100 order

    def unparsable(self, prediction: str, item: BenchItem) -> bool:
        return parse_sqa_letter(prediction) == "FAILED"

    def __init__(self, split: str = "test", img_only: bool = True) -> None:
        self.split = split
        self.img_only = img_only

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        """`path`: the folder holding problems.json and pid_splits.json."""
        folder = Path(path)
        problems = read_json(folder / "problems.json")
        pids = read_json(folder / "pid_splits.json")[self.split]
        items = []
        for pid in pids:
            prob = problems[pid]
            if self.img_only and not prob.get("image"):
                continue
            choices = list(prob["choices"])
            if len(choices) > len(OPTIONS):
                raise ValueError(f"ScienceQA {pid}: {len(choices)} choices, LLaVA parses at most 5")
            options = dict(zip(OPTIONS, choices, strict=False))
            hint = (prob.get("hint") or "").strip()
            text = (f"Context: {hint}\n" if hint else "") + prob["question"]
            text += "".join(f"\n{k}. {v}" for k, v in options.items())
            items.append(
                BenchItem(
                    item_id=str(pid),
                    question=self.prompt(text),
                    image=f"{pid}/{prob['image']}" if prob.get("image") else None,
                    answers=[OPTIONS[prob["answer"]]],
                    options=options,
                    category=prob.get("subject", ""),
                    subcategory=prob.get("grade", ""),
                    meta={"raw_question": prob["question"], "hint": hint},
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        hits: dict[str, bool] = {}
        img_hits: list[bool] = []
        by_subject: dict[str, list[bool]] = defaultdict(list)
        n_failed = 0
        for it, p in pairs:
            letter = "FAILED" if p is None else parse_sqa_letter(p)
            n_failed += letter == "FAILED"
            # get_pred_idx: a letter past the problem's choices counts as -1, i.e. wrong.
            ok = letter in it.options and letter == it.answers[0]
            hits[it.item_id] = ok
            by_subject[it.category].append(ok)
            if it.image is not None and p is not None:  # a missing one's prompt is "Unknown"
                img_hits.append(ok)
        accuracy = ratio_pct(sum(hits.values()), len(hits))
        img_accuracy = ratio_pct(sum(img_hits), len(img_hits))
        return self.result(
            overall=img_accuracy if self.img_only else accuracy,
            accuracy=accuracy,
            img_accuracy=img_accuracy,
            n_img=len(img_hits),
            per_category={k: ratio_pct(sum(v), len(v)) for k, v in sorted(by_subject.items())},
            n=len(hits),
            n_failed_parse=n_failed,
            n_missing=n_missing,
        )
