"""LLaVA-Bench (in the wild) from its official files, judged by an LLM the way LLaVA's review scripts do.

Files in the folder given to `load` (the release layout): `questions.jsonl` (`{question_id, image,
text, category}`, category conv / detail / complex), `context.jsonl` (`{id, image, caption}`, the
textual stand-in for the image the judge cannot see), `answers_gpt4.jsonl` (`{question_id, text,
...}`, the reference answers) and `images/`. `BenchItem.image` is `images/<image>`, i.e. relative
to that same folder. Prompt: the question as is (LLaVA-1.5 asks LLaVA-Bench without a suffix).

Review (structure of `llava/eval/eval_gpt_review_bench.py`): the judge gets a system message and one
user message made of `[Context]` (the captions, one per line), `[Question]`, `[Assistant 1]` (the
reference answer) ... `[End of Assistant 1]`, `[Assistant 2]` (the model's answer) ... `[End of
Assistant 2]` and `[System]` (the rating instruction, written here in our own words; pass
`rule_file=` the official `rule.json` to use its `llava_bench_<category>` prompts verbatim), sampled
at temperature 0.2 with at most 1024 new tokens. The first line of the reply holds the two scores.

Summary (`summarize_gpt_review.py`): per category and over all items, the mean of each score rounded
to 3 decimals, and relative score = round(mean(model) / mean(reference) × 100, 1); `overall` is the
relative score over all items. The absolute means are reported too.

Deliberate differences, all in the direction of never scoring silently:
- the official parser keeps `[-1, -1]` for a malformed first line and the summary averages it in;
  here a malformed reply is asked again (same request, up to `max_attempts`, a fresh sample at 0.2)
  and an item that never parses is excluded and counted (`n_judge_failed`, `judge_failed_ids`);
- the official parser splits the first line on single spaces after turning commas into spaces, so
  "8, 9" (two tokens plus an empty one) is malformed there; here any whitespace separates;
- answers are matched to questions by `question_id`, not by line order;
- a `caption` given as one string is used as is (the official `'\\n'.join` would put each character
  on its own line); a list of captions is joined with newlines as officially.

`missing="wrong"` has the judge rate an empty answer, as it would rate an empty generation.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from vitune.eval.benchmarks.base import (
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    read_json,
    read_jsonl,
    register_benchmark,
)
from vitune.eval.judge import Judge, JudgeAttempt, JudgeTask, judge_report, require_judge

CATEGORIES = ("conv", "detail", "complex")
ROLE = "Assistant"
SYSTEM = "You are a careful, precise assistant who rates the quality of answers."
RULE = (
    "We would like your assessment of how well two AI assistants answered the user question shown "
    "above. The user asked the question while looking at an image; since you cannot see it, the image "
    "is described for you by a few sentences.\n"
    "Rate each response for helpfulness, relevance, accuracy and level of detail, giving each "
    "assistant one overall score from 1 to 10, where a higher score means a better response.\n"
    "First output a single line containing only the two scores, for Assistant 1 and Assistant 2 in "
    "that order, separated by a space.\n"
    "Then, from the next line on, explain your evaluation in full, staying unbiased and making sure "
    "the order in which the responses were presented does not affect your judgment."
)


def parse_review(text: str) -> tuple[float, float]:
    """The two scores on the first line of a review ("8 9", "8, 9", "8.5 7"); ValueError otherwise."""
    first = text.split("\n")[0].replace(",", " ").split()
    if len(first) != 2:
        raise ValueError(f"first line does not hold exactly two scores: {text.split(chr(10))[0]!r}")
    try:
        a, b = float(first[0]), float(first[1])
    except ValueError:
        raise ValueError(f"scores are not numbers: {first!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"scores are not finite: {first!r}")
    return a, b


def _caption(ctx: dict[str, Any]) -> str:
    cap = ctx.get("caption", "")
    return cap if isinstance(cap, str) else "\n".join(str(c) for c in cap)


def summarize_reviews(pairs_by_category: Mapping[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """`summarize_gpt_review.py` on (reference, model) score pairs: per category and `all`."""
    groups = {k: list(v) for k, v in sorted(pairs_by_category.items())}
    groups["all"] = [p for k in sorted(pairs_by_category) for p in pairs_by_category[k]]
    out: dict[str, dict[str, Any]] = {}
    for k, pairs in groups.items():
        if not pairs:
            continue
        ref = round(sum(p[0] for p in pairs) / len(pairs), 3)
        mod = round(sum(p[1] for p in pairs) / len(pairs), 3)
        # A judge that scores the reference 0 everywhere would make the official script divide by 0.
        rel = round(mod / ref * 100, 1) if ref else 0.0
        out[k] = {"relative": rel, "reference": ref, "model": mod, "n": len(pairs)}
    return out


@register_benchmark
class LlavaBench(Benchmark):
    name = "llava_bench"
    metric = "relative_score"
    needs_judge: ClassVar[bool] = True

    def __init__(
        self,
        rule_file: str | os.PathLike | None = None,
        *,
        temperature: float = 0.2,
        max_tokens: int = 1024,
        max_attempts: int = 5,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.rules: dict[str, dict[str, str]] = read_json(rule_file) if rule_file is not None else {}
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_attempts = max_attempts

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        folder = Path(path)
        questions = read_jsonl(folder / "questions.jsonl")
        contexts = {c["image"]: c for c in read_jsonl(folder / "context.jsonl")}
        refs = {str(a["question_id"]): a for a in read_jsonl(folder / "answers_gpt4.jsonl")}
        items = []
        for q in questions:
            qid = str(q["question_id"])
            if q["image"] not in contexts:
                raise ValueError(f"{folder}: question {qid}: image {q['image']!r} has no context.jsonl row")
            if qid not in refs:
                raise ValueError(f"{folder}: question {qid} has no reference answer in answers_gpt4.jsonl")
            if q.get("category") not in CATEGORIES:
                raise ValueError(f"{folder}: question {qid}: unknown category {q.get('category')!r}")
            items.append(
                BenchItem(
                    item_id=qid,
                    question=q["text"],
                    image=f"images/{q['image']}",
                    answers=[refs[qid]["text"]],
                    category=q["category"],
                    meta={"raw_question": q["text"], "context": _caption(contexts[q["image"]])},
                )
            )
        return items

    def _rule(self, category: str) -> tuple[str, str]:
        r = self.rules.get(f"llava_bench_{category}")
        if self.rules and r is None:
            raise ValueError(f"rule file has no 'llava_bench_{category}' entry")
        return (r["role"], r["prompt"]) if r else (ROLE, RULE)

    def review_messages(self, item: BenchItem, prediction: str) -> list[dict[str, str]]:
        role, rule = self._rule(item.category)
        content = (
            f"[Context]\n{item.meta.get('context', '')}\n\n"
            f"[Question]\n{item.meta.get('raw_question', item.question)}\n\n"
            f"[{role} 1]\n{item.answers[0]}\n\n[End of {role} 1]\n\n"
            f"[{role} 2]\n{prediction}\n\n[End of {role} 2]\n\n"
            f"[System]\n{rule}\n\n"
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]

    def judge_task(self, item: BenchItem, prediction: str) -> JudgeTask:
        att = JudgeAttempt(
            self.review_messages(item, prediction),
            {"temperature": self.temperature, "max_tokens": self.max_tokens},
        )
        # The same request again: at temperature 0.2 a re-ask usually fixes the first line.
        return JudgeTask(item.item_id, [att] * self.max_attempts, parse_review)

    def score(
        self,
        preds: Mapping[str, str],
        items: Iterable[BenchItem],
        *,
        missing: Missing = "error",
        judge: Judge | None = None,
    ) -> dict[str, Any]:
        judge = require_judge(judge, self.name)
        pairs, n_missing = pair_predictions(preds, items, missing)
        # missing="wrong": the judge rates an empty answer, as it would an empty generation.
        verdicts = judge.run([self.judge_task(it, p or "") for it, p in pairs])
        by_cat: dict[str, list[tuple[float, float]]] = defaultdict(list)
        reviews: dict[str, list[float]] = {}
        for (it, _), v in zip(pairs, verdicts, strict=True):
            if v.ok:
                by_cat[it.category].append(v.value)
                reviews[it.item_id] = list(v.value)
        summary = summarize_reviews(by_cat)
        return self.result(
            overall=summary.get("all", {}).get("relative", 0.0),
            per_category={k: s["relative"] for k, s in summary.items() if k != "all"},
            absolute=summary,
            n=len(reviews),
            n_missing=n_missing,
            **judge_report(judge, verdicts),
            reviews=reviews,
        )
