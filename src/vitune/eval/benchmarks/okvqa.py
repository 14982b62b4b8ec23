"""OK-VQA (val) from the official VQAv2-layout files, VQA accuracy per knowledge category.

Files: `OpenEnded_mscoco_val2014_questions.json` (`{"questions": [{image_id, question,
question_id}]}`) and `mscoco_val2014_annotations.json` (`{"annotations": [{question_id,
question_type, answer_type, answers: [{answer, raw_answer, ...}] x 10}]}`) in the folder given to
`load`. `question_type` is OK-VQA's knowledge-category code (`one` ... `ten`, `other`): the item's
`category` is the category's name (`vitune.sources.okvqa.KNOWLEDGE_CATEGORIES`), `subcategory`
the code. Images `COCO_val2014_<image_id:012d>.jpg` under the COCO val2014 folder. Prompt: question
+ "\\nAnswer the question using a single word or phrase." (LLaVA-1.5's short-answer suffix, as for
VQAv2; lmms-eval's `ok_vqa` uses the same post-prompt).

Protocols:

- `paper` (default) = lmms-eval's `ok_vqa` task (`lmms_eval/tasks/ok_vqa/utils.py`), the pipeline
  behind the OK-VQA numbers published for LLaVA-style models (LLaVA-NeXT / OneVision era): the
  EvalAI answer processor on the prediction AND on each of the ten answers, always; leave-one-out
  min(1, matches / 3) per question (`statistics.mean`), and 100 x the mean over questions. This is
  not VQAv2's `paper` protocol: there the answers go through `vqaEval.py`'s own normalization, which
  keeps "'s" joined, so "McDonald's" (-> "mcdonald 's") misses "mcdonald's" there and hits here.
- `official` = OK-VQA's evaluation, the VQA API's `vqaEval.py` (`vitune.eval.vqav2`), on the raw
  predictions: normalized only when the ten answers differ, exact and case-sensitive otherwise.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vitune.data.records import QA
from vitune.eval.benchmarks.base import (
    SHORT_ANSWER,
    BenchItem,
    Benchmark,
    BenchmarkDataError,
    Missing,
    find_one,
    pair_predictions,
    read_json,
    register_benchmark,
)
from vitune.eval.vqav2 import evalai_answer, score_vqa
from vitune.sources.okvqa import KNOWLEDGE_CATEGORIES


def okvqa_paper_accuracy(pred: str, gt_answers: list[str]) -> float:
    """lmms-eval `ok_vqa_process_results`: EvalAI processor on both sides, leave-one-out, mean."""
    p = evalai_answer(pred)
    answers = [evalai_answer(a) for a in gt_answers]
    m = sum(a == p for a in answers)
    return statistics.mean([min(1, float(m - (a == p)) / 3) for a in answers]) if answers else 0.0


@register_benchmark
class OKVQA(Benchmark):
    name = "okvqa"
    metric = "vqa_accuracy"
    prompt_suffix = SHORT_ANSWER
    protocols = ("paper", "official")
    scorer_version = 1

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        folder = Path(path)
        qfile = find_one(folder, ("OpenEnded_mscoco_*questions*.json", "*questions*.json"))
        afile = find_one(folder, ("mscoco_*annotations*.json", "*annotations*.json"))
        qdoc, adoc = read_json(qfile), read_json(afile)
        for f, doc, key in ((qfile, qdoc, "questions"), (afile, adoc, "annotations")):
            if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
                raise BenchmarkDataError(f"okvqa: {f} has no {key!r} list (not an OK-VQA file?)")
        anns = {str(a.get("question_id")): a for a in adoc["annotations"] if isinstance(a, dict)}
        subtype = qdoc.get("data_subtype", "val2014")
        items = []
        for i, q in enumerate(qdoc["questions"]):
            try:
                qid, question, image_id = str(q["question_id"]), q["question"], int(q["image_id"])
                ann = anns[qid]
                answers = [a["answer"] for a in ann["answers"]]
            except (KeyError, TypeError, ValueError) as e:
                raise BenchmarkDataError(
                    f"okvqa: {qfile}: question [{i}] is malformed or unannotated ({e})"
                ) from None
            code = str(ann.get("question_type", ""))
            items.append(
                BenchItem(
                    item_id=qid,
                    question=self.prompt(question),
                    image=f"COCO_{subtype}_{image_id:012d}.jpg",
                    answers=answers,
                    category=KNOWLEDGE_CATEGORIES.get(code.lower(), code),
                    subcategory=code,
                    meta={
                        "raw_question": question,
                        "image_id": image_id,
                        "answer_type": ann.get("answer_type", ""),
                    },
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        items = list(items)
        if self.active_protocol == "official":
            qas = [
                QA(it.item_id, it.meta.get("raw_question", ""), it.answers, it.category, it.subcategory)
                for it in items
            ]
            mode = {"error": "error", "wrong": "zero", "skip": "skip"}[missing]
            s = score_vqa(preds, qas, missing=mode, protocol="official")  # type: ignore[arg-type]
            # score_vqa groups by (answer_type, question_type); here answer_type carries the category.
            return self.result(
                overall=s.overall,
                per_category=dict(sorted(s.per_answer_type.items())),
                n_per_category=dict(sorted(s.n_per_answer_type.items())),
                n=s.n,
                n_missing=s.n_missing,
                per_item=s.per_question,
            )
        pairs, n_missing = pair_predictions(preds, items, missing)
        accs: dict[str, float] = {}
        by_cat: dict[str, list[float]] = defaultdict(list)
        for it, p in pairs:
            acc = 0.0 if p is None else okvqa_paper_accuracy(p, it.answers)
            accs[it.item_id] = acc
            by_cat[it.category].append(acc)

        def mean_pct(v: list[float]) -> float:
            return 100 * (sum(v) / len(v)) if v else 0.0  # lmms-eval's mean, then x100

        return self.result(
            overall=mean_pct(list(accs.values())),
            per_category={k: mean_pct(v) for k, v in sorted(by_cat.items())},
            n_per_category={k: len(v) for k, v in sorted(by_cat.items())},
            n=len(accs),
            n_missing=n_missing,
            per_item=accs,
        )
