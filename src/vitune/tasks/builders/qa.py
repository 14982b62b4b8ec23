"""Question-answering tasks from VQAv2 (multiple choice, counting), GQA, TextVQA + OCR, ScienceQA.

Each reads only the QAs of its own source (`QA.source`), so merging several sources onto one image
never mixes their conventions: GQA answers are single words with a sentence `full_answer`, TextVQA
has ten answers and OCR tokens, ScienceQA brings its own choices (`negatives: given` in the catalog)
and a worked solution.
"""

from __future__ import annotations

import random

from vitune.data.records import QA, ImageRecord
from vitune.tasks.builders.core import vqa_qas
from vitune.tasks.spec import BuildContext, Sample, builder

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NUMBERS = {w: str(i) for i, w in enumerate(_NUMBER_WORDS)}


def _norm(answer: str) -> str:
    """A light normalization (case, trailing period, number words, grey) to spot equal answers."""
    a = answer.strip().lower().rstrip(".")
    return "gray" if a == "grey" else _NUMBERS.get(a, a)


def textvqa_answer(qa: QA) -> str:
    """The most frequent answer ignoring case (the official TextVQA scorer lower-cases), ties to the
    first written: "tm" x5 and "TM" x5 are one answer, "tm"."""
    counts: dict[str, int] = {}
    for a in qa.answers:
        counts[a.lower()] = counts.get(a.lower(), 0) + 1
    return max(counts, key=lambda a: counts[a])


def qas_of(record: ImageRecord, source: str) -> list[QA]:
    return [qa for qa in record.qas if qa.source == source and qa.answers]


def _qa_meta(qa: QA) -> dict:
    return {"question_id": qa.question_id, "question_type": qa.question_type}


@builder("vqa_multiple_choice")
def vqa_multiple_choice(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """One open VQAv2 question per image; wrong options are answers to same-type questions elsewhere,
    never one any of the ten annotators gave (after light normalization)."""
    qas = [qa for qa in vqa_qas(record) if qa.answer_type != "yes/no"]
    if not qas:
        return []
    qa = rng.choice(qas)
    given = {_norm(a) for a in qa.answers}
    return [
        Sample(
            {"question": qa.question.strip(), "answer": qa.majority_answer()},
            _qa_meta(qa),
            accept=lambda v: _norm(v) not in given,
            group=qa.question_type,
        )
    ]


@builder("vqa_counting")
def vqa_counting(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"question": qa.question.strip(), "answer": qa.majority_answer()}, _qa_meta(qa))
        for qa in vqa_qas(record)
        if qa.answer_type == "number"
    ]


@builder("gqa_short_answer")
def gqa_short_answer(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"question": qa.question.strip(), "answer": qa.answers[0]}, _qa_meta(qa))
        for qa in qas_of(record, "gqa")
    ]


@builder("gqa_full_answer")
def gqa_full_answer(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"question": qa.question.strip(), "full_answer": qa.full_answer}, _qa_meta(qa))
        for qa in qas_of(record, "gqa")
        if qa.full_answer
    ]


@builder("gqa_dialog")
def gqa_dialog(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """All GQA questions of an image as one conversation, in a seeded order (at least two turns)."""
    qas = qas_of(record, "gqa")
    if len(qas) < 2:
        return []
    rng.shuffle(qas)
    turns = [{"question": qa.question.strip(), "answer": qa.answers[0]} for qa in qas]
    return [Sample({}, {"question_ids": [qa.question_id for qa in qas]}, turns=turns)]


@builder("textvqa_short_answer")
def textvqa_short_answer(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    return [
        Sample({"question": qa.question.strip(), "answer": textvqa_answer(qa)}, _qa_meta(qa))
        for qa in qas_of(record, "textvqa")
    ]


@builder("textvqa_ocr_reference")
def textvqa_ocr_reference(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """TextVQA with the OCR tokens in the prompt (LLaVA-1.5's TextVQA evaluation prompt)."""
    if not record.ocr_tokens:
        return []
    ocr = ", ".join(record.ocr_tokens)
    return [
        Sample({"question": qa.question.strip(), "ocr": ocr, "answer": textvqa_answer(qa)}, _qa_meta(qa))
        for qa in qas_of(record, "textvqa")
    ]


@builder("ocr_read")
def ocr_read(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    tokens = [t for t in record.ocr_tokens if t.strip()]
    return [Sample({"text": " ".join(tokens)}, {"tokens": len(tokens)})] if tokens else []


@builder("ocr_token_selection")
def ocr_token_selection(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """One word of the image; wrong options are OCR words of other images not written in this one."""
    tokens = sorted({t for t in record.ocr_tokens if t.strip()})
    if not tokens:
        return []
    own = {t.lower() for t in tokens}
    return [
        Sample(
            {"answer": rng.choice(tokens)}, exclude=frozenset(tokens), accept=lambda v: v.lower() not in own
        )
    ]


def _scienceqa(record: ImageRecord) -> list[QA]:
    return [
        qa for qa in record.qas if qa.source == "scienceqa" and qa.choices and qa.answer_index is not None
    ]


def _problem(qa: QA) -> Sample:
    assert qa.answer_index is not None  # filtered by _scienceqa
    fields = {
        "question": qa.question.strip(),
        "context": qa.context.strip() or "N/A",  # LLaVA's ScienceQA conversion writes N/A
        "answer": qa.choices[qa.answer_index],
        "solution": qa.rationale.strip(),
    }
    return Sample(fields, _qa_meta(qa), choices=list(qa.choices))


@builder("scienceqa_mc")
def scienceqa_mc(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    qas = _scienceqa(record)
    return [_problem(rng.choice(qas))] if qas else []


@builder("scienceqa_rationale")
def scienceqa_rationale(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    qas = [qa for qa in _scienceqa(record) if qa.rationale.strip()]
    return [_problem(rng.choice(qas))] if qas else []
