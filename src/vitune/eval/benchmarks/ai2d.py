"""AI2D (diagram multiple choice) as LLaVA-OneVision's numbers were produced: lmms-eval's `ai2d` task.

Files (either layout, `path` being the folder):
- lmms-eval's dataset (`lmms-lab/ai2d`): `*.parquet` with `question`, `options` (list), `answer`
  (the index of the right option, as a string) and `image` (`{bytes, path}`);
- the official AI2D release: `questions/<image>.json` (`{"imageName", "questions": {question text:
  {"answerTexts": [...], "correctAnswer": i, "questionId": ...}}}`) and `images/`, restricted to the
  test questions when a test list is beside it (`ai2d_test_ids.csv`: one image id per line, or
  Qwen-VL's `test.jsonl` with `question_id`s).

Prompt (lmms-eval `default`, `mcq`): `<question>\\nA. <option>\\nB. <option>...\\nAnswer with the
option's letter from the given choices directly.`

Scoring (lmms-eval `flexible-extract` + `exact_match`): a response matching `^\\s*([A-Z])\\.` becomes
that letter, any other response stays as it is; then it is right when, lowercased and with every
ASCII punctuation mark removed, it equals the right letter lowercased. Nothing is stripped, so
"(B)" and "B." count, " B" and "The answer is B" do not.
"""

from __future__ import annotations

import csv
import os
import re
import string
from collections import defaultdict
from collections.abc import Iterable, Mapping
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
    read_json,
    read_jsonl,
    register_benchmark,
)

_LEADING_LETTER = re.compile(r"^\s*([A-Z])\.")
_NO_PUNCT = str.maketrans("", "", string.punctuation)


def ai2d_filter(response: str) -> str:
    """lmms-eval's MultiChoiceRegexFilter for AI2D: "B. text" -> "B", anything else unchanged."""
    m = _LEADING_LETTER.match(response)
    return m.group(1) if m else response


def ai2d_match(response: str, letter: str) -> bool:
    """exact_match with ignore_case and ignore_punctuation (no stripping), after the filter."""
    return ai2d_filter(response).lower().translate(_NO_PUNCT) == letter.lower().translate(_NO_PUNCT)


def _test_ids(folder: Path) -> tuple[set[str] | None, set[str] | None]:
    """(test image ids, test question ids) from a test list beside the release, else (None, None)."""
    if (folder / "ai2d_test_ids.csv").is_file():
        with open(folder / "ai2d_test_ids.csv", encoding="utf-8", newline="") as fh:
            return {row[0].strip() for row in csv.reader(fh) if row and row[0].strip()}, None
    if (folder / "test.jsonl").is_file():
        return None, {str(r["question_id"]) for r in read_jsonl(folder / "test.jsonl")}
    return None, None


def _release_rows(folder: Path) -> list[dict[str, Any]]:
    images, questions = _test_ids(folder)
    rows = []
    for f in sorted((folder / "questions").glob("*.json")):
        data = read_json(f)
        image = data["imageName"]
        if images is not None and image.split(".")[0] not in images:
            continue
        for text, q in data["questions"].items():
            if questions is not None and str(q.get("questionId")) not in questions:
                continue
            rows.append(
                {
                    "id": str(q.get("questionId") or f"{image}:{text}"),
                    "question": text,
                    "options": list(q["answerTexts"]),
                    "answer": q["correctAnswer"],
                    "image": f"images/{image}",
                }
            )
    return rows


def _parquet_rows(files: list[Path]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows = []
    for f in files:
        for k, r in enumerate(pq.read_table(f).to_pylist()):
            img = r.get("image")
            rows.append(
                {
                    "id": f"{f.stem}:{k}",
                    "question": r["question"],
                    "options": list(r["options"]),
                    "answer": r["answer"],
                    "image": img.get("bytes") if isinstance(img, dict) else img,
                }
            )
    return rows


@register_benchmark
class AI2D(Benchmark):
    name = "ai2d"
    metric = "exact_match"
    prompt_suffix = LETTER_ANSWER

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        folder = Path(path)
        if (folder / "questions").is_dir():
            rows = _release_rows(folder)
        elif files := sorted(folder.rglob("*.parquet")):
            rows = _parquet_rows(files)
        else:
            raise FileNotFoundError(
                f"{folder}: neither questions/ (AI2D release) nor *.parquet (lmms-lab/ai2d)"
            )
        items = []
        for r in rows:
            letters = [chr(65 + i) for i in range(len(r["options"]))]
            try:
                answer = letters[int(r["answer"])]
            except (ValueError, IndexError):
                raise ValueError(
                    f"{path}: AI2D question {r['id']}: answer {r['answer']!r} is no option index"
                ) from None
            options = dict(zip(letters, r["options"], strict=True))
            text = r["question"] + "".join(f"\n{k}. {v}" for k, v in options.items())
            items.append(
                BenchItem(
                    item_id=r["id"],
                    question=self.prompt(text),
                    image=r["image"],
                    answers=[answer],
                    options=options,
                    category=f"{len(options)} options",
                    meta={"raw_question": r["question"]},
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        hits: list[bool] = []
        by_cat: dict[str, list[bool]] = defaultdict(list)
        n_no_letter = 0
        for it, p in pairs:
            ok = p is not None and ai2d_match(p, it.answers[0])
            n_no_letter += p is None or ai2d_filter(p).lower().translate(_NO_PUNCT) not in {
                k.lower() for k in it.options
            }
            hits.append(ok)
            by_cat[it.category].append(ok)
        return self.result(
            overall=pct(sum(hits), len(hits)),
            per_category=group_pct(by_cat),
            n=len(hits),
            n_missing=n_missing,
            n_failed_parse=n_no_letter,
        )
