"""Outside-knowledge and photo-quality tasks: A-OKVQA, OK-VQA and VizWiz.

Each reads only the QAs of its own source (`QA.source` `aokvqa`, `okvqa`, `vizwiz`) and skips
questions without answers (the test splits):

- A-OKVQA: the file's own four choices (`negatives: given`, kept in the file's order), the
  direct answer (the most frequent of the ten; questions the authors flag
  `difficult_direct_answer` are left out, their direct answers disagree), and three rationale
  tasks: answer plus explanation (multiple choice or short answer) and explaining a given answer.
  A rationale task picks one of the (usually three) rationales with the build's seeded RNG.
- OK-VQA: short answer and sentence answer (the majority of the ten answers), multiple choice with
  wrong options from other images' OK-VQA answers (never one of this question's answers), and the
  knowledge category a question needs (from the `question_type` code).
- VizWiz: the majority answer, case ignored (it may be "unanswerable"), whether the photo can answer the
  question (`answerable`, the dataset's own label), and the answer type.
"""

from __future__ import annotations

import random

from vitune.data.records import QA, ImageRecord
from vitune.tasks.builders.qa import qas_of, textvqa_answer
from vitune.tasks.spec import BuildContext, Sample, builder


def _meta(qa: QA) -> dict:
    return {"question_id": qa.question_id, "question_type": qa.question_type}


def _same(answer: str) -> str:
    return answer.strip().lower().rstrip(".")


# ---- A-OKVQA ----------------------------------------------------------------------------------------


def _aokvqa(record: ImageRecord) -> list[QA]:
    """Answered A-OKVQA questions (choices with the correct index)."""
    return [
        qa
        for qa in record.qas
        if qa.source == "aokvqa" and qa.answers and qa.choices and qa.answer_index is not None
    ]


def _correct(qa: QA) -> str:
    assert qa.answer_index is not None  # filtered by _aokvqa
    return qa.choices[qa.answer_index]


def _rationale(qa: QA, rng: random.Random) -> str:
    rationales = [r for r in qa.meta.get("rationales", []) if r.strip()] or [qa.rationale]
    return rng.choice(rationales).strip()


@builder("aokvqa_mc")
def aokvqa_mc(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    qas = _aokvqa(record)
    if not qas:
        return []
    qa = rng.choice(qas)
    fields = {"question": qa.question.strip(), "answer": _correct(qa)}
    return [Sample(fields, _meta(qa), choices=list(qa.choices))]


@builder("aokvqa_direct_answer")
def aokvqa_direct_answer(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"question": qa.question.strip(), "answer": qa.majority_answer()}, _meta(qa))
        for qa in _aokvqa(record)
        if not qa.meta.get("difficult_direct_answer")
    ]


@builder("aokvqa_mc_rationale")
def aokvqa_mc_rationale(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    qas = [qa for qa in _aokvqa(record) if qa.rationale.strip()]
    if not qas:
        return []
    qa = rng.choice(qas)
    fields = {"question": qa.question.strip(), "answer": _correct(qa), "rationale": _rationale(qa, rng)}
    return [Sample(fields, _meta(qa), choices=list(qa.choices))]


# Both tasks read the same fields (question, answer, one of the rationales); their catalog entries
# differ in what the model is given (the answer too, for "explain") and what it writes.
@builder("aokvqa_explain_answer")
@builder("aokvqa_answer_rationale")
def aokvqa_with_rationale(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample(
            {"question": qa.question.strip(), "answer": _correct(qa), "rationale": _rationale(qa, rng)},
            _meta(qa),
        )
        for qa in _aokvqa(record)
        if qa.rationale.strip()
    ]


# ---- OK-VQA -----------------------------------------------------------------------------------------


@builder("okvqa_short_answer")
def okvqa_short_answer(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"question": qa.question.strip(), "answer": qa.majority_answer()}, _meta(qa))
        for qa in qas_of(record, "okvqa")
    ]


@builder("okvqa_sentence_answer")
def okvqa_sentence_answer(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"question": qa.question.strip(), "answer": qa.majority_answer()}, _meta(qa))
        for qa in qas_of(record, "okvqa")
    ]


@builder("okvqa_mc")
def okvqa_mc(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """One question per image; wrong options are other images' OK-VQA answers, never one of the ten
    answers given to this question (case and a trailing period ignored)."""
    qas = qas_of(record, "okvqa")
    if not qas:
        return []
    qa = rng.choice(qas)
    given = {_same(a) for a in qa.answers}
    return [
        Sample(
            {"question": qa.question.strip(), "answer": qa.majority_answer()},
            _meta(qa),
            accept=lambda v: _same(v) not in given,
        )
    ]


@builder("okvqa_knowledge_category")
def okvqa_knowledge_category(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"question": qa.question.strip(), "answer": qa.meta["knowledge_category"]}, _meta(qa))
        for qa in qas_of(record, "okvqa")
        if qa.meta.get("knowledge_category")
    ]


# ---- VizWiz -----------------------------------------------------------------------------------------


def _vizwiz(record: ImageRecord) -> list[QA]:
    return [qa for qa in qas_of(record, "vizwiz") if qa.meta.get("answerable") in (0, 1)]


@builder("vizwiz_answer")
def vizwiz_answer(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """The most frequent answer ignoring case (VizWiz's scorer lower-cases), ties to the first written."""
    return [
        Sample({"question": qa.question.strip(), "answer": textvqa_answer(qa)}, _meta(qa))
        for qa in _vizwiz(record)
    ]


@builder("vizwiz_answerable")
def vizwiz_answerable(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample(
            {"question": qa.question.strip(), "answer": "yes" if qa.meta["answerable"] else "no"}, _meta(qa)
        )
        for qa in _vizwiz(record)
    ]


@builder("vizwiz_answer_type")
def vizwiz_answer_type(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"question": qa.question.strip(), "answer": qa.answer_type}, _meta(qa))
        for qa in _vizwiz(record)
        if qa.answer_type
    ]
