"""The quickstart's VQA evaluation: a model vs the majority-answer baseline, through the one runner.

The held-out questions are written as official VQAv2 files (`world_bench.write_vqav2`) and asked
through `eval.runner.run_benchmarks` with the registered `vqav2` benchmark: its prompt (LLaVA's
short-answer suffix), its scorer and protocol, the runner's response cache (a rerun asks only what
is missing; another model or other settings never reuse answers). The baseline is an answer
function of the same runner, so it is scored by the very same code: it always answers the most
common training answer of the question's type. A model that cannot beat it has learned the answer
prior, not the images.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitune.data.records import QA, ImageRecord
from vitune.models.base import AnswerFn
from vitune.utils.atomic import write_json

RESULTS_FILE = "vqa_results.json"
TABLE_COLUMNS = ("category", "n", "model", "baseline", "delta")


@dataclass(frozen=True, slots=True)
class MajorityBaseline:
    """Per question type, the most common training answer; the global one for unseen types."""

    by_question_type: dict[str, str]
    global_answer: str

    def predict(self, qa: QA) -> str:
        return self.by_question_type.get(qa.question_type, self.global_answer)


def _most_common(counts: Counter[str]) -> str:
    # Ties go to the alphabetically first answer, so the baseline does not depend on input order.
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def majority_baseline(train_qas: Iterable[QA]) -> MajorityBaseline:
    """Build the baseline from the train split's `multiple_choice_answer`s (VQAv2's majority field)."""
    by_type: dict[str, Counter[str]] = defaultdict(Counter)
    overall: Counter[str] = Counter()
    for qa in train_qas:
        ans = qa.majority_answer()
        if not ans:
            continue
        by_type[qa.question_type][ans] += 1
        overall[ans] += 1
    if not overall:
        raise ValueError("majority baseline: no training answers")
    return MajorityBaseline({t: _most_common(c) for t, c in by_type.items()}, _most_common(overall))


def _write_questions(records: Sequence[ImageRecord], image_root: str | os.PathLike, out: Path) -> Path:
    """The records' QAs as official VQAv2 files (with their images), replaced only when complete."""
    from vitune.eval.world_bench import write_vqav2
    from vitune.eval.world_facts import fresh_dir, image_facts

    with_qas = [r for r in records if r.qas]
    qids = [qa.question_id for r in with_qas for qa in r.qas]
    if len(set(qids)) != len(qids):
        raise ValueError("duplicate question_id among the evaluation QAs")
    split = with_qas[0].split if with_qas and with_qas[0].split else "val"
    with fresh_dir(out) as tmp:
        write_vqav2(tmp, [image_facts(r, Path(image_root)) for r in with_qas], split)
    return out


def _scores(folder: Path, n_per_question_type: dict[str, int]) -> dict[str, Any]:
    """The `vqav2` scores of one run, in the shape the quickstart's table reads."""
    s = json.loads((folder / "vqav2" / "scores.json").read_text(encoding="utf-8"))
    return {
        "overall": s["overall"],
        "n": s["n"],
        "per_answer_type": s["per_category"],
        "n_per_answer_type": s["n_per_category"],
        "per_question_type": s["per_question_type"],
        "n_per_question_type": n_per_question_type,
    }


def run_vqa_eval(
    records: Sequence[ImageRecord],
    image_root: str | os.PathLike,
    train_qas: Iterable[QA],
    out_dir: str | os.PathLike,
    *,
    model_dir: str | os.PathLike | None = None,
    answer_fn: AnswerFn | None = None,
    model_id: str = "answer-fn",
    batch_size: int = 8,
    max_new_tokens: int = 16,
    chunk_size: int | None = None,
    device: str = "cpu",
    protocol: str | None = None,
) -> dict[str, Any]:
    """Ask every QA of `records` (through the runner), score model and baseline, write the results.

    Give `model_dir` (a saved model) or `answer_fn` with the `model_id` its cached answers go under.
    """
    from vitune.eval.benchmarks import get_benchmark
    from vitune.eval.runner import BenchSpec, run_benchmarks

    if (model_dir is None) == (answer_fn is None):
        raise ValueError("give exactly one of model_dir and answer_fn")
    out = Path(out_dir)
    spec = BenchSpec("vqav2", _write_questions(records, image_root, out / "questions"))
    common = {"batch_size": batch_size, "max_new_tokens": max_new_tokens, "chunk_size": chunk_size,
              "device": device, "protocol": protocol, "show_progress": False}  # fmt: skip
    if model_dir is not None:
        ran = run_benchmarks([spec], out / "model", model_dir=model_dir, **common)
    else:
        ran = run_benchmarks([spec], out / "model", answer_fn=answer_fn, model_id=model_id, **common)
    items = get_benchmark("vqav2").load(spec.path)
    baseline = majority_baseline(train_qas)
    by_prompt = {
        it.question: baseline.by_question_type.get(it.subcategory, baseline.global_answer) for it in items
    }
    answers = json.dumps(sorted(by_prompt.items())).encode()
    run_benchmarks([spec], out / "baseline", answer_fn=lambda its: [by_prompt[it.text] for it in its],
                   model_id="majority-baseline:" + hashlib.sha256(answers).hexdigest()[:16], **common)  # fmt: skip
    n_qt = dict(Counter(it.subcategory for it in items))
    results = {
        "metric": "vqav2_accuracy",
        "protocol": ran["benchmarks"]["vqav2"].get("protocol"),
        "n_images": len({it.image for it in items}),
        "n_questions": len(items),
        "model": _scores(out / "model", n_qt),
        "baseline": {
            **_scores(out / "baseline", n_qt),
            "answers_by_question_type": baseline.by_question_type,
        },
    }
    write_json(out / RESULTS_FILE, results, indent=2)
    return results


def vqa_table_rows(results: dict[str, Any], max_question_types: int | None = None) -> list[tuple[str, ...]]:
    """Rows `category | n | model | baseline | delta` (strings, ready for `rich.table.Table.add_row`).

    Overall first, then answer types, then question types (most frequent first).
    """
    m, b = results["model"], results["baseline"]

    def row(name: str, n: int, ms: float, bs: float) -> tuple[str, ...]:
        return (name, str(n), f"{ms:.2f}", f"{bs:.2f}", f"{ms - bs:+.2f}")

    rows = [row("overall", m["n"], m["overall"], b["overall"])]
    for at in sorted(m["per_answer_type"]):
        rows.append(
            row(
                f"answer: {at}",
                m["n_per_answer_type"][at],
                m["per_answer_type"][at],
                b["per_answer_type"][at],
            )
        )
    qts = sorted(m["per_question_type"], key=lambda t: (-m["n_per_question_type"][t], t))
    for qt in qts[:max_question_types]:
        rows.append(
            row(
                f"type: {qt}",
                m["n_per_question_type"][qt],
                m["per_question_type"][qt],
                b["per_question_type"][qt],
            )
        )
    return rows
