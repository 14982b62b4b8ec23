"""MathVista (testmini) from its official files, scored as the official `evaluation/` scripts do.

Files (either layout, `path` being the folder or the file):
- the GitHub release: `testmini.json` (a dict keyed by pid: `question, image` ("images/<pid>.jpg",
  relative to the folder), `choices, unit, precision, answer, question_type, answer_type, metadata`)
  with an optional `query.json` beside it ({pid: query});
- the Hugging Face dataset `AI4Math/MathVista`: `testmini-*.parquet` (same fields, `query` and the
  image bytes in `decoded_image`) anywhere under the folder.

Prompt: the problem's `query` (the official zero-shot prompt: "Hint: ... at the end.\\nQuestion: ...
[(Unit: u)][\\nChoices:\\n(A) ...]"); when a file has none it is built the same way
(`build_query`). `prompt="format"` asks lmms-eval's `format-prompt` variant instead (question,
"A. choice" lines, then a short-answer instruction), which suits terse LLaVA-style models.

Scoring, `extract_answer.py` then `calculate_score.py`:
1. extraction: an empty response -> ""; a multiple-choice response that *is* one of the choices ->
   it; an integer (float) problem whose whole response parses as int (float) -> it; with
   `quick_extract` `The answer is "X".` -> X; else the judge is asked with the official few-shot
   extraction prompt (`demo_prompt` + query + response + "Extracted answer: "), temperature 0, and its
   reply is the extraction. Without a judge (`extract="rules"`) what the rules cannot extract counts as
   unextracted ("", as the official script records a failed judge call) and is reported.
2. normalization: multiple choice -> strip, "(X)" -> X, a letter -> that choice, otherwise the choice
   with the smallest Levenshtein distance (the first of equals; an empty extraction also gets one, as
   the official default does); integer -> `str(int(float(x)))`; float -> `str(round(float(x), precision))`;
   list -> `str(x)`; anything unparsable -> None (wrong).
3. a problem is right when the normalized prediction equals the answer string (`==`, no stripping).
Accuracy overall and per question_type, answer_type, language, source, category, task, context, grade
and skill (a problem counts once for each of its skills).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from vitune.eval.benchmarks.base import (
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    pct,
    read_json,
    register_benchmark,
)
from vitune.eval.judge import Judge, JudgeAttempt, JudgeTask, judge_report, require_judge

# The official few-shot extraction prompt (evaluation/prompts/ext_ans.py), data not code.
DEMO_PROMPT = """Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?\\nChoices:\\n(A) 3/11\\n(B) 8/11\\n(C) 6/11\\n(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B"""

# calculate_score.py's breakdowns (metadata fields plus the two types).
BREAKDOWNS = ("question_type", "answer_type", "language", "source", "category", "task", "context", "grade")
_QUICK = re.compile(r'The answer is "(.*)"\.')
_PAREN_LETTER = re.compile(r"\(([a-zA-Z])\)")

_SOLUTION_HINTS = {
    "multi_choice": "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
    "integer": "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.",
    "float1": "Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.",
    "float2": "Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.",
    "list": "Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}
_FORMAT_HINTS = {
    "multi_choice": "Answer with the option's letter from the given choices directly.",
    "integer": "Answer the question using a single integer number.",
    "float1": "Answer the question using a single floating-point number with one decimal place.",
    "float2": "Answer the question using a single floating-point number with two decimal places.",
    "list": "Answer the question using a Python list.",
}


def _hint_key(problem: Mapping[str, Any]) -> str:
    if problem["question_type"] == "multi_choice":
        return "multi_choice"
    kind = problem["answer_type"]
    if kind == "float":
        return f"float{int(problem.get('precision') or 1)}"
    return kind


def build_query(problem: Mapping[str, Any], style: Literal["query", "format"] = "query") -> str:
    """The zero-shot prompt of a problem: the official `query` ("solution" hint first) or lmms-eval's
    `format-prompt` (question, "A. choice" lines, then a one-line answer instruction)."""
    question = problem["question"]
    if problem.get("unit"):
        question += f" (Unit: {problem['unit']})"
    choices = list(problem.get("choices") or [])
    if style == "format":
        lines = [question, *[f"{chr(65 + i)}. {c}" for i, c in enumerate(choices)]]
        return "\n".join([*lines, _FORMAT_HINTS[_hint_key(problem)]])
    parts = [_SOLUTION_HINTS[_hint_key(problem)], f"Question: {question}"]
    if choices:
        parts.append("\n".join(["Choices:", *[f"({chr(65 + i)}) {c}" for i, c in enumerate(choices)]]))
    return "\n".join(parts)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions each 1), as python-Levenshtein's `distance`."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def rule_extract(response: str, problem: Mapping[str, Any], quick_extract: bool = False) -> str | None:
    """The official extraction's rule path: the extraction, or None when the judge must be asked."""
    if response == "":
        return ""
    if problem["question_type"] == "multi_choice" and response in (problem.get("choices") or []):
        return response
    if problem["answer_type"] == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if problem["answer_type"] == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    if quick_extract and (m := _QUICK.search(response)):
        return m.group(1)
    return None


def normalize_extraction(extraction: Any, problem: Mapping[str, Any]) -> str | None:
    """calculate_score.py's `normalize_extracted_answer` (empty extractions not ignored)."""
    choices = list(problem.get("choices") or [])
    if problem["question_type"] == "multi_choice":
        text = extraction.strip() if isinstance(extraction, str) else str(extraction)
        letters = _PAREN_LETTER.findall(text)
        if letters:
            text = letters[0].upper()
        options = [chr(65 + i) for i in range(len(choices))]
        if text in options:
            return choices[options.index(text)]
        distances = [levenshtein(text, c) for c in choices]
        return choices[distances.index(min(distances))]
    try:
        if problem["answer_type"] == "integer":
            return str(int(float(extraction)))
        if problem["answer_type"] == "float":
            return str(round(float(extraction), int(problem["precision"])))
    except (TypeError, ValueError, OverflowError):
        return None
    return str(extraction)  # list answers compare as their text


def _read_problems(path: Path) -> dict[str, dict[str, Any]]:
    """pid -> problem, from testmini.json (+ query.json) or the Hugging Face parquet files."""
    if path.is_file():
        folder, files = path.parent, [path]
    else:
        folder = path
        files = sorted(path.glob("testmini.json")) or sorted(path.rglob("testmini-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{path}: no testmini.json or testmini-*.parquet (MathVista)")
    if files[0].suffix == ".json":
        problems = {str(k): dict(v) for k, v in read_json(files[0]).items()}
        if (folder / "query.json").is_file():
            for pid, q in read_json(folder / "query.json").items():
                if str(pid) in problems:
                    problems[str(pid)].setdefault("query", q)
        return problems
    import pyarrow.parquet as pq

    problems = {}
    for f in files:
        for row in pq.read_table(f).to_pylist():
            image = row.pop("decoded_image", None)
            if isinstance(image, dict) and image.get("bytes"):
                row["image_bytes"] = image["bytes"]
            problems[str(row["pid"])] = row
    return problems


@register_benchmark
class MathVista(Benchmark):
    name = "mathvista"
    metric = "accuracy"
    needs_judge: ClassVar[bool] = True

    def __init__(
        self,
        *,
        extract: Literal["judge", "rules"] = "judge",
        quick_extract: bool = False,
        prompt: Literal["query", "format"] = "query",
        judge_max_tokens: int = 1024,
    ) -> None:
        if extract not in ("judge", "rules") or prompt not in ("query", "format"):
            raise ValueError(
                f"mathvista: extract must be judge|rules and prompt query|format, got {extract!r}, {prompt!r}"
            )
        self.extract = extract
        self.needs_judge = extract == "judge"  # type: ignore[misc]  # per instance: rules need none
        self.quick_extract = quick_extract
        self.prompt_style = prompt
        self.judge_max_tokens = judge_max_tokens

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        items = []
        for pid, p in _read_problems(Path(path)).items():
            for key in ("question", "answer", "question_type", "answer_type"):
                if p.get(key) is None:
                    raise ValueError(f"{path}: MathVista problem {pid}: no {key!r}")
            if p["question_type"] == "multi_choice" and not p.get("choices"):
                raise ValueError(f"{path}: MathVista problem {pid}: a multi_choice problem without choices")
            query = p.get("query") if self.prompt_style == "query" else None
            meta = dict(p.get("metadata") or {})
            problem = {
                k: p.get(k)
                for k in ("question", "choices", "unit", "precision", "question_type", "answer_type")
            }
            items.append(
                BenchItem(
                    item_id=str(pid),
                    question=query or build_query(problem, self.prompt_style),
                    image=p.get("image_bytes") or p.get("image") or None,
                    answers=[str(p["answer"])],
                    options={chr(65 + i): c for i, c in enumerate(p.get("choices") or [])},
                    category=str(meta.get("category", "")),
                    subcategory=str(meta.get("task", "")),
                    meta={"problem": problem, "metadata": meta, "raw_question": p["question"]},
                )
            )
        return items

    def judge_task(self, item: BenchItem, response: str) -> JudgeTask:
        prompt = f"{DEMO_PROMPT.strip()}\n\n{item.question}\n\n{response}\n\nExtracted answer: "
        params = {"temperature": 0, "max_tokens": self.judge_max_tokens}
        return JudgeTask(item.item_id, [JudgeAttempt([{"role": "user", "content": prompt}], params)], str)

    def extractions(
        self, pairs: list[tuple[BenchItem, str | None]], judge: Judge | None
    ) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
        """(extraction per item, how each was extracted, the judge report)."""
        out: dict[str, str] = {}
        how: dict[str, str] = {}
        ask: list[tuple[BenchItem, str]] = []
        for it, p in pairs:
            if p is None:
                out[it.item_id], how[it.item_id] = "", "missing"
                continue
            got = rule_extract(p, it.meta["problem"], self.quick_extract)
            if got is not None:
                out[it.item_id], how[it.item_id] = got, "rule"
            else:
                ask.append((it, str(p)))
        report: dict[str, Any] = {}
        if ask and self.extract == "judge":
            verdicts = require_judge(judge, self.name).run([self.judge_task(it, p) for it, p in ask])
            for v in verdicts:
                # A failed judge call is an empty extraction, as the official script records it.
                out[v.item_id] = str(v.value).strip() if v.ok else ""
                how[v.item_id] = "judge" if v.ok else "judge_failed"
            report = judge_report(require_judge(judge, self.name), verdicts)
        else:
            for it, _ in ask:
                out[it.item_id], how[it.item_id] = "", "unextracted"
        return out, how, report

    def score(
        self,
        preds: Mapping[str, str],
        items: Iterable[BenchItem],
        *,
        missing: Missing = "error",
        judge: Judge | None = None,
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        extraction, how, report = self.extractions(pairs, judge)
        groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
        hits: list[bool] = []
        item_results = {}
        for it, p in pairs:
            problem, meta = it.meta["problem"], it.meta["metadata"]
            prediction = normalize_extraction(extraction[it.item_id], problem)
            # A missing answer is wrong, even where the nearest-choice rule would pick the right one.
            ok = p is not None and prediction == it.answers[0]
            hits.append(ok)
            item_results[it.item_id] = {
                "extraction": extraction[it.item_id],
                "prediction": prediction,
                "true_false": ok,
            }
            for key in BREAKDOWNS:
                value = problem.get(key) if key in problem else meta.get(key)
                if value is not None:
                    groups[key][str(value)].append(ok)
            for skill in meta.get("skills") or []:
                groups["skills"][str(skill)].append(ok)
        breakdown = {k: {v: pct(sum(h), len(h)) for v, h in sorted(g.items())} for k, g in groups.items()}
        counts = {src: sum(1 for h in how.values() if h == src) for src in sorted(set(how.values()))}
        return self.result(
            overall=pct(sum(hits), len(hits)),
            per_category=breakdown.get("task", {}),
            per_skill=breakdown.get("skills", {}),
            breakdowns=breakdown,
            n=len(hits),
            n_missing=n_missing,
            extraction=self.extract,
            extracted_by=counts,
            n_unextracted=counts.get("unextracted", 0) + counts.get("judge_failed", 0),
            items=item_results,
            **report,
        )
