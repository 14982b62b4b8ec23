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

Score line (`parsing="official"`, the default, as `eval_gpt_review_bench.py`'s `parse_score`): the
first line, commas turned into spaces, split on SINGLE spaces; exactly two parts that are numbers
-> the pair, anything else -> `[-1, -1]`, which the summary averages in like any other pair (so "8, 9"
-> "8  9" -> three parts -> `[-1, -1]`). Each item is asked once. `parsing="strict"` is the explicit
stricter option: any whitespace separates, a malformed reply is asked again (same request, up to
`max_attempts`, a fresh sample at 0.2) and an item that never parses is excluded and counted
(`n_judge_failed`, `judge_failed_ids`). `n_malformed` counts the `[-1, -1]` pairs of the official
parse. A request that fails (the server, not the reply) is excluded and counted under both.

Summary (`summarize_gpt_review.py`): per category and over all items (in question order), numpy's
mean of each score rounded to 3 decimals, and relative score = round(mean(model) / mean(reference)
× 100, 1); `overall` is the relative score over all items. The absolute means are reported too.

Repeated runs (`runs=N`, `vitune eval --judge-runs N`): LLaVA's published LLaVA-Bench numbers are
means over 3 GPT-4 review runs. Every item is reviewed once per run (run r's requests have their own
cache keys, `eval/judge.py`); each run is summarized on its own and `overall` / `per_category` are
the means of the runs' relative scores (rounded to 1 decimal), with population std
(`overall_std`, `per_category_std`) and every run's summary in `runs`.

Other deliberate differences, all in the direction of never scoring silently:
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
from typing import Any, ClassVar, Literal

import numpy as np

from vitune.eval.benchmarks.base import (
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    read_json,
    read_jsonl,
    register_benchmark,
)
from vitune.eval.judge import (
    Judge,
    JudgeAttempt,
    JudgeTask,
    Verdict,
    judge_report,
    mean_std,
    require_judge,
)

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


MALFORMED = (-1.0, -1.0)


def parse_review_official(text: str) -> tuple[float, float]:
    """`parse_score` of eval_gpt_review_bench.py: the pair, or (-1, -1) for a malformed first line."""
    parts = text.split("\n")[0].replace(",", " ").split(" ")
    if len(parts) != 2:
        return MALFORMED
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return MALFORMED


def parse_review(text: str) -> tuple[float, float]:
    """Strict: the two scores on the first line ("8 9", "8, 9", "8.5 7"); ValueError otherwise."""
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


def summarize_reviews(
    pairs_by_category: Mapping[str, list[tuple[float, float]]],
    all_pairs: list[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """`summarize_gpt_review.py` on (reference, model) score pairs: per category and `all`
    (`all_pairs` in question order; default: the categories' pairs in category order)."""
    groups = {k: list(v) for k, v in sorted(pairs_by_category.items())}
    if all_pairs is None:
        all_pairs = [p for k in sorted(pairs_by_category) for p in pairs_by_category[k]]
    groups["all"] = list(all_pairs)
    out: dict[str, dict[str, Any]] = {}
    for k, pairs in groups.items():
        if not pairs:
            continue
        ref, mod = (round(float(x), 3) for x in np.asarray(pairs, dtype=np.float64).mean(0))
        # A judge that scores the reference 0 everywhere would make the official script divide by 0.
        rel = round(mod / ref * 100, 1) if ref else 0.0
        out[k] = {"relative": rel, "reference": ref, "model": mod, "n": len(pairs)}
    return out


@register_benchmark
class LlavaBench(Benchmark):
    name = "llava_bench"
    metric = "relative_score"
    needs_judge: ClassVar[bool] = True
    supports_judge_runs: ClassVar[bool] = True
    scorer_version = 2  # 2: the official score-line parse (strict is an option); judge runs

    def __init__(
        self,
        rule_file: str | os.PathLike | None = None,
        *,
        temperature: float = 0.2,
        max_tokens: int = 1024,
        max_attempts: int = 5,
        parsing: Literal["official", "strict"] = "official",
        runs: int = 1,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if parsing not in ("official", "strict"):
            raise ValueError(f"llava_bench: parsing must be 'official' or 'strict', not {parsing!r}")
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise ValueError(f"llava_bench: runs must be a whole number >= 1, got {runs!r}")
        self.parsing = parsing
        self.runs = runs
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

    def judge_task(self, item: BenchItem, prediction: str, run: int = 0) -> JudgeTask:
        att = JudgeAttempt(
            self.review_messages(item, prediction),
            {"temperature": self.temperature, "max_tokens": self.max_tokens},
        )
        if self.parsing == "official":  # asked once; a malformed line is (-1, -1), never re-asked
            return JudgeTask(item.item_id, [att], parse_review_official, run=run)
        # The same request again: at temperature 0.2 a re-ask usually fixes the first line.
        return JudgeTask(item.item_id, [att] * self.max_attempts, parse_review, run=run)

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
        verdicts: list[Verdict] = []
        runs = []
        for r in range(self.runs):  # one run after the other, as MM-Vet's (eval/judge.py)
            # missing="wrong": the judge rates an empty answer, as it would an empty generation.
            run_verdicts = judge.run([self.judge_task(it, p or "", run=r) for it, p in pairs])
            verdicts += run_verdicts
            runs.append(self._summarize_run(pairs, run_verdicts))
        report = judge_report(judge, verdicts)
        if self.runs == 1:
            run = runs[0]
            return self.result(
                overall=run["overall"],
                per_category=run["per_category"],
                absolute=run["absolute"],
                n=run["n"],
                n_missing=n_missing,
                n_malformed=run["n_malformed"],
                **report,
                reviews=run["reviews"],
            )
        return self.result(**self._combine(runs), n_missing=n_missing, **report, runs=runs)

    @staticmethod
    def _summarize_run(pairs: list[tuple[BenchItem, str | None]], verdicts: list[Verdict]) -> dict[str, Any]:
        by_cat: dict[str, list[tuple[float, float]]] = defaultdict(list)
        in_order: list[tuple[float, float]] = []
        reviews: dict[str, list[float]] = {}
        for (it, _), v in zip(pairs, verdicts, strict=True):
            if v.ok:
                by_cat[it.category].append(v.value)
                in_order.append(v.value)
                reviews[it.item_id] = list(v.value)
        summary = summarize_reviews(by_cat, in_order)
        return {
            "overall": summary.get("all", {}).get("relative", 0.0),
            "per_category": {k: s["relative"] for k, s in summary.items() if k != "all"},
            "absolute": summary,
            "n": len(reviews),
            "n_malformed": sum(tuple(v) == MALFORMED for v in reviews.values()),
            "reviews": reviews,
        }

    @staticmethod
    def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
        """Mean and population std of the runs' relative scores (LLaVA reports the mean of 3)."""
        overall, overall_std = mean_std([r["overall"] for r in runs])
        cats = sorted({c for r in runs for c in r["per_category"]})
        per, per_std = {}, {}
        for c in cats:
            m, sd = mean_std([r["per_category"][c] for r in runs if c in r["per_category"]])
            per[c], per_std[c] = round(m, 1), round(sd, 1)
        return {
            "overall": round(overall, 1),
            "overall_std": round(overall_std, 1),
            "per_category": per,
            "per_category_std": per_std,
            "judge_runs": len(runs),
            "overall_per_run": [r["overall"] for r in runs],
            "n": min(r["n"] for r in runs),
            "n_malformed": sum(r["n_malformed"] for r in runs),
        }
