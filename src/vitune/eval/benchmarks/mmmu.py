"""MMMU (validation/dev) rows, prompted as MMMU's llava1.5 config and scored by its official rules.

Rows (HF parquet, JSON list or JSONL; a folder is read as all its parquet/json[l] files):
`{id, question, options: "['x', 'y']" (a list as a string), answer, question_type:
"multiple-choice"|"open", image_1..image_7}`; images are `{"bytes", "path"}` dicts (parquet),
bytes, or paths. As in the official `process_single_sample` only `image_1` is given to the model.
Prompt (MMMU `configs/llava1.5.yaml` + `construct_prompt`): multiple choice
`<question>\\n\\n(A) x\\n(B) y\\n\\n\\nAnswer with the option's letter from the given choices
directly.` (the options block ends in "\\n", hence three newlines); open
`<question>\\n\\nAnswer the question using a single word or phrase.`

Scoring (MMMU `mmmu/utils/eval_utils.py`):
- multiple choice (`parse_multi_choice_response`): strip , . ! ? ; : ' from both ends, pad with
  spaces; candidates "(A)"...; if none, " A "...; if none and the response has more than 5 words,
  options whose text it contains. None -> a random letter from a `random.Random(seed)` stream
  (official: the global `random` seeded 42, consumed in item order); several -> the one whose
  LAST occurrence is latest. Right when equal to the gold letter.
- open (`parse_open_response` + `eval_open`): key sub-responses after "could be", "so", "is",
  "thus", "therefore", "final", "answer", "result" (and "=" in the last sentence), plus every number
  in them; numbers become floats rounded to 2 decimals, strings are lowercased. Right when a gold
  number equals a predicted number, or a gold string is contained in a predicted string.
`overall` is the instance-level accuracy; also per subject (from the id) and per discipline.
"""

from __future__ import annotations

import ast
import os
import random
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
    Missing,
    group_pct,
    pair_predictions,
    pct,
    read_json,
    read_jsonl,
    register_benchmark,
)

DOMAINS = {
    "Art and Design": ["Art", "Art_Theory", "Design", "Music"],
    "Business": ["Accounting", "Economics", "Finance", "Manage", "Marketing"],
    "Science": ["Biology", "Chemistry", "Geography", "Math", "Physics"],
    "Health and Medicine": [
        "Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
        "Pharmacy", "Public_Health",
    ],
    "Humanities and Social Science": ["History", "Literature", "Sociology", "Psychology"],
    "Tech and Engineering": [
        "Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
        "Energy_and_Power", "Materials", "Mechanical_Engineering",
    ],
}  # fmt: skip
SUBJECT_DOMAIN = {s: d for d, subs in DOMAINS.items() for s in subs}


# ---- multiple choice ---------------------------------------------------------------------------


def parse_multi_choice(response: str, index2ans: Mapping[str, str], rng: random.Random) -> tuple[str, bool]:
    """(letter, chosen at random?) exactly as `parse_multi_choice_response`."""
    all_choices = list(index2ans)
    for ch in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(ch)
    response = " " + response + " "  # so " A " also matches at either end
    candidates = [c for c in all_choices if f"({c})" in response]
    bracketed = bool(candidates)
    by_text = False
    if not candidates:
        candidates = [c for c in all_choices if f" {c} " in response]
    if not candidates and len(response.split()) > 5:
        candidates = [k for k, a in index2ans.items() if a.lower() in response.lower()]
        by_text = bool(candidates)
    if not candidates:
        return rng.choice(all_choices), True
    if len(candidates) == 1:
        return candidates[0], False
    if by_text:
        starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    elif bracketed:
        starts = [response.rfind(f"({c})") for c in candidates]
    else:
        starts = [response.rfind(f" {c} ") for c in candidates]
    return candidates[starts.index(max(starts))], False  # np.argmax: first of equal maxima


# ---- open questions ----------------------------------------------------------------------------

_NUM_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUM_SCI = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUM_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")
_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")


def _is_number(s: str) -> bool:
    try:
        float(s.replace(",", ""))  # Python float(): "1e3", "nan", "1_000" count too, as officially
        return True
    except ValueError:
        return False


def normalize_open(s: str) -> list[str | float]:
    """`normalize_str`: a float rounded to 2 decimals, or the lowercased string (1 char: padded)."""
    s = s.strip()
    if _is_number(s):
        return [round(float(s.replace(",", "")), 2)]
    s = s.lower()
    return [" " + s, s + " "] if len(s) == 1 else [s]


def extract_numbers(s: str) -> list[str]:
    return _NUM_COMMAS.findall(s) + _NUM_SCI.findall(s) + _NUM_SIMPLE.findall(s)


def _key_subresponses(response: str) -> list[str]:
    response = response.strip().strip(".").lower()
    subs = re.split(r"\.\s(?=[A-Z])|\n", response)
    keys = []
    for i, resp in enumerate(subs):
        indicators = _INDICATORS + (("=",) if i == len(subs) - 1 else ())
        shortest = None
        for ind in indicators:
            if ind in resp:
                tail = resp.split(ind)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in (":", ",", ".", "!", "?", ";", "'"):
            keys.append(shortest)
    return keys or [response]


def parse_open(response: str) -> list[str | float]:
    keys = _key_subresponses(response)
    preds: list[str] = list(keys)
    for k in keys:
        preds.extend(extract_numbers(k))
    out: list[str | float] = []
    for p in preds:
        out.extend(normalize_open(p))
    return list(dict.fromkeys(out))  # the official set(): order never changes the verdict


def eval_open(gold: str | list[str], preds: list[str | float]) -> bool:
    golds = [n for g in (gold if isinstance(gold, list) else [gold]) for n in normalize_open(str(g))]
    for p in preds:
        if isinstance(p, str):
            if any(isinstance(g, str) and g in p for g in golds):
                return True
        elif p in golds:
            return True
    return False


def _gold(answer: Any) -> str | list[str]:
    # Some open answers are stored as a list literal ("['1.5', '1.50']"); the official eval gets
    # them as lists and accepts any.
    if isinstance(answer, list):
        return [str(a) for a in answer]
    s = str(answer)
    if s.startswith("["):
        try:
            v = ast.literal_eval(s)
            if isinstance(v, list):
                return [str(a) for a in v]
        except (ValueError, SyntaxError):
            pass
    return s


def _image(v: Any) -> str | bytes | None:
    if isinstance(v, dict):
        return v.get("bytes") or v.get("path")
    return v if isinstance(v, str | bytes) and v else None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    files = (
        sorted(f for f in path.iterdir() if f.suffix in (".parquet", ".json", ".jsonl"))
        if path.is_dir()
        else [path]
    )
    rows: list[dict[str, Any]] = []
    for f in files:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows.extend(pq.read_table(f).to_pylist())
        elif f.suffix == ".jsonl":
            rows.extend(read_jsonl(f))
        else:
            rows.extend(read_json(f))
    return rows


@register_benchmark
class MMMU(Benchmark):
    name = "mmmu"

    def __init__(self, seed: int = 42) -> None:
        self.seed = seed

    def unparsable(self, prediction: str, item: BenchItem) -> bool:
        """A multiple-choice answer with no letter or option text: the official rule picks at random."""
        if item.meta.get("question_type") != "multiple-choice":
            return False
        return parse_multi_choice(prediction, item.options, random.Random(0))[1]

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        items = []
        for row in _read_rows(Path(path)):
            rid = str(row["id"])
            subject = "_".join(rid.split("_")[1:-1])  # validation_Art_Theory_12 -> Art_Theory
            options_list = (
                ast.literal_eval(row["options"]) if isinstance(row["options"], str) else row["options"]
            )
            options = {chr(ord("A") + i): str(o) for i, o in enumerate(options_list or [])}
            mc = row["question_type"] == "multiple-choice"
            if mc:
                block = "".join(f"({k}) {v}\n" for k, v in options.items())
                text = f"{row['question']}\n\n{block}\n\n{LETTER_ANSWER}"
            else:
                text = f"{row['question']}\n\n{SHORT_ANSWER}"
            gold = _gold(row["answer"])
            items.append(
                BenchItem(
                    item_id=rid,
                    question=text,
                    image=_image(row.get("image_1")),
                    answers=gold if isinstance(gold, list) else [gold],
                    options=options if mc else {},
                    category=subject,
                    subcategory=SUBJECT_DOMAIN.get(subject, ""),
                    meta={
                        "raw_question": row["question"],
                        "question_type": row["question_type"],
                        "answer_is_list": isinstance(gold, list),
                        "n_images": sum(bool(row.get(f"image_{k}")) for k in range(1, 8)),
                    },
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        rng = random.Random(self.seed)  # one stream in item order, like the official global seed
        by_subject: dict[str, list[bool]] = defaultdict(list)
        by_domain: dict[str, list[bool]] = defaultdict(list)
        hits: dict[str, bool] = {}
        parsed: dict[str, Any] = {}
        n_random = 0
        for it, p in pairs:
            if p is None:
                ok = False
            elif it.meta["question_type"] == "multiple-choice":
                letter, was_random = parse_multi_choice(p, it.options, rng)
                n_random += was_random
                parsed[it.item_id] = letter
                ok = letter in it.answers
            else:
                plist = parse_open(p)
                parsed[it.item_id] = plist
                gold = it.answers if it.meta.get("answer_is_list") else it.answers[0]
                ok = eval_open(gold, plist)
            hits[it.item_id] = ok
            by_subject[it.category].append(ok)
            by_domain[it.subcategory].append(ok)
        return self.result(
            overall=pct(sum(hits.values()), len(hits)),
            per_category=group_pct(by_subject),
            per_domain=group_pct(by_domain),
            n=len(hits),
            n_random_choice=n_random,
            n_missing=n_missing,
            parsed=parsed,
        )
