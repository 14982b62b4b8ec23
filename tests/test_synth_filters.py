"""synth: filters drop refusals, source leaks, bad boxes, hallucinated objects and colours, with reasons."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import make_record
from vitune.data.ledger import Ledger
from vitune.data.records import QA, Box, ObjectAnn
from vitune.synth.backends import ChatResult, TemplateBackend
from vitune.synth.filters import FilterConfig, ReplyFilter, hallucinated_objects, summarize_kept
from vitune.synth.grounding import annotated_colors, color_claims
from vitune.synth.run import synth

REC = make_record("3")  # a red circle, a blue square and a green square on a 320x240 canvas

CASES = [
    # (answer, question, expected reason or "" for kept)
    ("The circle is red.", "What color is the circle?", ""),
    ("No, there is no dog in the picture.", "Is there a dog?", ""),  # negated: not a hallucination
    ("There are two squares, both large.", "How many squares are there?", ""),
    ("Your message is empty. Please provide the image information.", "What is shown?", "refusal"),
    ("I'm sorry, but I cannot see images.", "What color is the circle?", "refusal"),
    ("According to the captions, the circle is red.", "What color is the circle?", "leak"),
    ("The bounding box of the square starts near the middle.", "Where is the square?", "leak"),
    ("The description mentions a blue square.", "What is blue?", "leak"),
    ("A dog is sitting next to the red circle.", "What is next to the circle?", "hallucination"),
    ("Two people are looking at the squares.", "Who is there?", "hallucination"),
    ("It is <st>circle<ed> [0.031, 0.042, 1.188, 0.250].", "Where is the circle?", "bad_box"),
    ("It is <st>circle<ed> [0.5, 0.042, 0.2, 0.250].", "Where is the circle?", "bad_box"),
    ("It is <st>circle<ed> [0.031, 0.042].", "Where is the circle?", "bad_box"),
    ("It is <st>circle<ed> [0.031, 0.042, 0.188, 0.250].", "Where is the circle?", ""),
]


def test_filter_cases() -> None:
    f = ReplyFilter()
    got = [f.check(REC, a, q, referring=True).reason for a, q, _ in CASES]
    assert got == [r for _, _, r in CASES]


def test_hallucination_vocab_synonyms_and_policy() -> None:
    allowed = {"circle", "square"}
    assert hallucinated_objects("A man rides a bike past two cars.", allowed) == ["person", "bicycle", "car"]
    assert (
        hallucinated_objects("An orange square on a light background.", allowed) == []
    )  # colours, not fruit
    assert hallucinated_objects("There isn't any cat, only circles.", allowed) == []
    flag = ReplyFilter(FilterConfig(hallucination="flag"))
    v = flag.check(REC, "A dog is sitting next to the red circle.")
    assert v.keep and v.flags == ["hallucination:dog"]
    assert ReplyFilter(FilterConfig(hallucination="off")).check(REC, "A dog.").keep


def test_summarize_kept() -> None:
    s = summarize_kept(["Yes, it is.", "No.", "yes", "The circle is red."])
    assert s["yes"] == 2 and s["no"] == 1 and s["yes_ratio"] == round(2 / 3, 4)
    assert s["words_min"] == 1 and s["words_max"] == 4


class _Canned(TemplateBackend):
    """Returns a fixed reply regardless of the request (real-looking LLM mistakes)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    async def complete(self, req):  # type: ignore[override]
        return ChatResult(text=self.text)


def test_synth_drops_with_reasons_in_ledger(tmp_path: Path) -> None:
    reply = "\n".join(f"Question: {q}\nAnswer: {a}" for a, q, _ in CASES[:10])
    ledger = Ledger()
    s = synth([REC], ["complex_reasoning"], _Canned(reply), tmp_path, ledger=ledger)
    c = s["per_generator"]["complex_reasoning"]
    assert c["pairs"] == 10 and c["pairs_kept"] == 3
    assert c["dropped_refusal"] == 2 and c["dropped_leak"] == 3 and c["dropped_hallucination"] == 2
    reasons = sorted(r.reason for r in ledger.items)
    assert reasons == ["hallucination"] * 2 + ["leak"] * 3 + ["refusal"] * 2
    (inst,) = json.loads((tmp_path / "llava" / "complex_reasoning.json").read_text())
    assert len(inst["conversations"]) == 6 and inst["conversations"][0]["value"].startswith("<image>\n")
    assert sum("<image>" in t["value"] for t in inst["conversations"]) == 1
    assert s["kept"]["all"]["answers"] == 3 and s["kept"]["all"]["no"] == 1
    assert len(Ledger.read(tmp_path / "ledger.jsonl")) == 7


# A street scene annotated like COCO + Visual Genome + VQAv2 (1 bus, 1 stop sign, 1 man, a shirt).
STREET = make_record(
    "s1",
    captions=["A white bus parked next to a red stop sign.", "A man waits at the bus stop."],
    objects=[
        ObjectAnn("coco:1", "bus", Box(20, 40, 200, 120), [], "coco"),
        ObjectAnn("coco:2", "stop sign", Box(250, 30, 40, 40), [], "coco"),
        ObjectAnn("coco:3", "person", Box(230, 90, 30, 100), [], "coco"),
        ObjectAnn("vg:1", "shirt", Box(232, 110, 26, 30), ["blue", "short sleeved"], "vg"),
        ObjectAnn("vg:2", "sky", Box(0, 0, 320, 40), [], "vg"),
    ],
    qas=[
        QA(
            "s1001",
            "What color is the bus?",
            ["white"] * 9 + ["white and blue"],
            "other",
            "what color is the",
        )
    ],
)

COLOR_CASES = [
    # (answer, expected reason or "" for kept) -- the kind of colour slips LLM replies make
    ("The red bus is parked next to the stop sign.", "color_hallucination"),
    ("The bus is yellow, like a school bus.", "color_hallucination"),
    ("A man wearing a green shirt is standing near the bus.", "color_hallucination"),
    ("The stop sign on the corner is blue.", "color_hallucination"),
    ("The bus is white and the stop sign is red.", ""),
    ("The man in the blue shirt appears to be waiting for the bus.", ""),
    ("His navy shirt matches the trim of the white bus.", ""),  # navy is a blue; "blue" from VQA
    ("No, the bus is not red; it is white.", ""),  # negated claims are not claims
    ("There is no red bus in this picture.", ""),
    ("The sky above the bus is a clear blue.", ""),  # no colour annotated for the sky: no check
    ("A white man is waiting at the stop.", ""),  # people are never colour-checked
]


def test_color_hallucination_real_examples() -> None:
    assert annotated_colors(STREET) == {
        "bus": {"white", "blue"},  # caption + the VQA answers ("white and blue")
        "stop sign": {"red"},
        "sign": {"red"},
        "shirt": {"blue"},  # VG attribute
    }
    f = ReplyFilter()
    got = [(a, f.check(STREET, a).reason) for a, _ in COLOR_CASES]
    assert got == COLOR_CASES
    v = f.check(STREET, "The red bus is parked next to the stop sign.")
    assert v.detail == "red bus (annotated: blue, white)"


def test_color_hallucination_world_record_and_policy() -> None:
    # REC: a red circle, a blue square and a green square (VG attributes and the caption)
    f = ReplyFilter()
    assert f.check(REC, "The circle is blue.").reason == "color_hallucination"
    assert f.check(REC, "It is <st>blue circle<ed> [0.031, 0.042, 0.188, 0.250].", referring=True).reason == (
        "color_hallucination"
    )
    assert f.check(REC, "A red circle next to a green square.").keep
    assert f.check(REC, "The circle next to the squares is red.").keep  # red is the circle's, not theirs
    assert f.check(REC, "The square to the left of the circle is purple.").reason == "color_hallucination"
    assert color_claims("A light-blue and white bus, a red stop sign.") == [
        ("bus", "blue"), ("bus", "white"), ("stop sign", "red"),
    ]  # fmt: skip
    flag = ReplyFilter(FilterConfig(color_hallucination="flag"))
    v = flag.check(REC, "The circle is blue.")
    assert v.keep and v.flags == ["color_hallucination:blue circle (annotated: red)"]
    assert ReplyFilter(FilterConfig(color_hallucination="off")).check(REC, "The circle is blue.").keep


def test_synth_records_color_hallucinations_in_ledger(tmp_path: Path) -> None:
    reply = "\n".join(f"Question: What do you see?\nAnswer: {a}" for a, _ in COLOR_CASES)
    ledger = Ledger()
    s = synth([STREET], ["complex_reasoning"], _Canned(reply), tmp_path, ledger=ledger)
    assert s["pair_counts"] == {
        "in": 11, "kept": 7, "dropped": 4, "dropped_by_reason": {"color_hallucination": 4},
    }  # fmt: skip
    assert [r.detail["answer"] for r in ledger.items] == [a for a, r in COLOR_CASES if r]
    flagged = synth([STREET], ["complex_reasoning"], _Canned(reply), tmp_path / "f",
                    filters=FilterConfig(color_hallucination="flag"))  # fmt: skip
    (item,) = flagged["items"]
    assert len(item.flags) == 4 and flagged["pair_counts"]["kept"] == 11
    raw = json.loads((tmp_path / "f" / "raw" / "complex_reasoning.json").read_text())
    assert raw[0]["flags"]["0.0"] == ["color_hallucination:red bus (annotated: blue, white)"]
