"""The quickstart's VQA evaluation: a model vs the majority-answer baseline, scored as VQAv2.

Each question is asked as LLaVA asks VQAv2 (`question + "\\nAnswer the question using a single word
or phrase."`), answers are scored by `vqav2.score_vqa`, and the same scorer rates a baseline that
always answers the most common training answer of the question's type. A model that cannot beat
that baseline has learned the answer prior, not the images.

Resumable per item: predictions are appended (and flushed) to a JSONL file after every chunk; a
rerun reads what is there and asks only the rest. A side file records the settings the predictions
were made with, so a rerun with another model or other settings never mixes answers silently.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitune.data.paths import resolve_image
from vitune.data.records import QA, ImageRecord
from vitune.eval.generate import Generator, GenItem
from vitune.eval.vqav2 import score_vqa
from vitune.utils.atomic import write_json
from vitune.utils.hashing import dir_fingerprint

log = logging.getLogger(__name__)

VQA_PROMPT_SUFFIX = "\nAnswer the question using a single word or phrase."
PREDICTIONS_FILE = "vqa_predictions.jsonl"
SETTINGS_FILE = "vqa_predictions.settings.json"
RESULTS_FILE = "vqa_results.json"
TABLE_COLUMNS = ("category", "n", "model", "baseline", "delta")

# Anything that answers GenItems in order (a `Generator`, or a stub in tests).
AnswerFn = Callable[[Sequence[GenItem]], list[str]]


def vqa_prompt(question: str) -> str:
    return f"{question}{VQA_PROMPT_SUFFIX}"


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


class PredictionStore:
    """Append-only JSONL of `{"question_id", "prediction"}`, safe to reread after a kill."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        self._drop_partial_tail()
        preds: dict[str, str] = {}
        with self.path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    preds[str(row["question_id"])] = str(row["prediction"])
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise ValueError(f"{self.path}:{n}: bad prediction row ({e})") from e
        return preds

    def _drop_partial_tail(self) -> None:
        # A kill during a write can leave a last line without its newline; appending after it
        # would glue two rows together, so cut the file back to its last complete row.
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping a partial last row (%d bytes)", self.path, len(data) - keep)
            with self.path.open("r+b") as fh:
                fh.truncate(keep)

    def append(self, rows: Iterable[tuple[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for qid, pred in rows:
                fh.write(json.dumps({"question_id": qid, "prediction": pred}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _check_settings(out_dir: Path, settings: dict[str, Any], has_predictions: bool) -> None:
    path = out_dir / SETTINGS_FILE
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != settings:
            raise ValueError(
                f"{out_dir / PREDICTIONS_FILE} was made with other settings ({old} != {settings}); "
                "use another output folder or delete the predictions"
            )
    elif has_predictions:
        raise ValueError(
            f"{out_dir / PREDICTIONS_FILE} exists without {SETTINGS_FILE}; cannot tell how it was made"
        )
    else:
        write_json(path, settings, indent=2)


def run_vqa_eval(
    records: Sequence[ImageRecord],
    image_root: str | os.PathLike,
    train_qas: Iterable[QA],
    out_dir: str | os.PathLike,
    *,
    model_dir: str | os.PathLike | None = None,
    answer_fn: AnswerFn | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 16,
    chunk_size: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Answer every QA of `records`, score model and baseline, write the results JSON; return it.

    Give `model_dir` (loaded with plain transformers) or `answer_fn` (anything answering GenItems).
    Predictions are appended every `chunk_size` questions (default 8 batches), so a killed run
    loses at most one chunk and a rerun asks only the unanswered questions.
    """
    if (model_dir is None) == (answer_fn is None):
        raise ValueError("give exactly one of model_dir and answer_fn")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "model_dir": str(Path(model_dir).resolve()) if model_dir is not None else "<answer_fn>",
        # A model retrained in place keeps its path; its answers must not be mixed with the old ones.
        "model_fingerprint": dir_fingerprint(Path(model_dir)) if model_dir is not None else None,
        "prompt_suffix": VQA_PROMPT_SUFFIX,
        "template": "vicuna_v1",
        "max_new_tokens": max_new_tokens,
        "decoding": "greedy",
    }
    store = PredictionStore(out / PREDICTIONS_FILE)
    preds = store.load()
    _check_settings(out, settings, bool(preds))

    items = [(qa, rec) for rec in records for qa in rec.qas]
    qas = [qa for qa, _ in items]
    if len({qa.question_id for qa in qas}) != len(qas):
        raise ValueError("duplicate question_id among the evaluation QAs")
    todo = [(qa, rec) for qa, rec in items if str(qa.question_id) not in preds]
    log.info(
        "VQA eval: %d questions, %d already answered, %d to ask",
        len(items),
        len(items) - len(todo),
        len(todo),
    )

    if todo:
        if answer_fn is None:
            answer_fn = Generator.from_dir(
                model_dir, device=device, batch_size=batch_size, max_new_tokens=max_new_tokens
            )  # type: ignore[arg-type]
        step = chunk_size or batch_size * 8
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            gen_items = [
                GenItem(vqa_prompt(qa.question), resolve_image(image_root, rec.file_name))
                for qa, rec in chunk
            ]
            answers = answer_fn(gen_items)
            if len(answers) != len(chunk):
                raise RuntimeError(f"answer_fn returned {len(answers)} answers for {len(chunk)} questions")
            rows = [(str(qa.question_id), a) for (qa, _), a in zip(chunk, answers, strict=True)]
            store.append(rows)
            preds.update(rows)

    baseline = majority_baseline(train_qas)
    base_preds = {str(qa.question_id): baseline.predict(qa) for qa in qas}
    model_scores = score_vqa(preds, qas)
    base_scores = score_vqa(base_preds, qas)
    results = {
        "metric": "vqav2_accuracy",
        "settings": settings,
        "n_images": len(records),
        "n_questions": len(qas),
        "model": model_scores.to_dict(),
        "baseline": {**base_scores.to_dict(), "answers_by_question_type": baseline.by_question_type},
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
