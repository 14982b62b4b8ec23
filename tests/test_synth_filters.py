"""synth: filters drop refusals, source leaks, bad boxes and hallucinated objects, with reasons."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import make_record
from vitune.data.ledger import Ledger
from vitune.synth.backends import ChatResult, TemplateBackend
from vitune.synth.filters import FilterConfig, ReplyFilter, hallucinated_objects, summarize_kept
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
