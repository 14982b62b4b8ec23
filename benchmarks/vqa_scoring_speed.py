"""Speed of VQAv2 scoring: `score_vqa` on 200K synthetic predictions vs a naive per-call scorer.

The naive scorer is the official algorithm done the obvious way: every call re-cleans and
re-normalizes the 10 gt answers and the prediction, and counts matches for each of the 10
leave-one-out subsets. Both must agree exactly; the script checks that before timing matters.

    .venv/bin/python benchmarks/vqa_scoring_speed.py [--n 200000]
"""

from __future__ import annotations

import argparse
import random
import time

from vitune.data.records import QA
from vitune.eval import vqav2
from vitune.eval.vqav2 import clean_answer, process_digit_article, process_punctuation, score_vqa

ANSWERS = ["yes", "no", "2", "two", "3", "red", "blue", "white", "the dog", "dog", "a cat", "1,000", "1000",
           "tennis", "frisbee", "Yes.", "don't know", "dont know", "kitchen", "left", "right", "pizza"]  # fmt: skip
TYPES = [("yes/no", "is the"), ("number", "how many"), ("other", "what color"), ("other", "what is the")]


def synthetic(n: int, seed: int = 0) -> tuple[list[QA], dict[str, str]]:
    rng = random.Random(seed)
    qas, preds = [], {}
    for i in range(n):
        at, qt = rng.choice(TYPES)
        if rng.random() < 0.4:  # about as often as in VQAv2 val, all ten annotators agree
            answers = [rng.choice(ANSWERS)] * 10
        else:
            pool = rng.sample(ANSWERS, 3)
            answers = [rng.choice(pool) for _ in range(10)]
        qid = str(i)
        qas.append(QA(qid, "?", answers, answer_type=at, question_type=qt))
        preds[qid] = rng.choice(answers) if rng.random() < 0.6 else rng.choice(ANSWERS)
    return qas, preds


def naive_accuracy(pred: str, gt_answers: list[str]) -> float:
    gts = [clean_answer(a) for a in gt_answers]
    p = clean_answer(pred)
    if len(set(gts)) > 1:
        gts = [process_digit_article(process_punctuation(a)) for a in gts]
        p = process_digit_article(process_punctuation(p))
    accs = [min(1, sum(1 for j, g in enumerate(gts) if j != i and g == p) / 3) for i in range(len(gts))]
    return sum(accs) / len(accs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    args = ap.parse_args()
    qas, preds = synthetic(args.n)

    vqav2.normalize_answer.cache_clear()  # start cold: no answer normalized yet
    t0 = time.perf_counter()
    fast = score_vqa(preds, qas)
    t_fast = time.perf_counter() - t0

    t0 = time.perf_counter()
    naive = {qa.question_id: naive_accuracy(preds[qa.question_id], qa.answers) for qa in qas}
    t_naive = time.perf_counter() - t0

    mismatches = sum(1 for k, v in naive.items() if abs(v - fast.per_question[k]) > 1e-12)
    print(
        f"predictions: {args.n:,}   overall accuracy {fast.overall:.2f}   mismatches vs naive: {mismatches}"
    )
    print(
        f"score_vqa (cached gt, memoized normalization): {t_fast:7.2f} s  {args.n / t_fast:12,.0f} predictions/s"
    )
    print(
        f"naive (re-normalize gt every call):           {t_naive:7.2f} s  {args.n / t_naive:12,.0f} predictions/s"
    )
    print(f"speed-up: {t_naive / t_fast:.1f}x")
    if mismatches:
        raise SystemExit("fast and naive scores disagree")


if __name__ == "__main__":
    main()
