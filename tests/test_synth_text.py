"""synth: context serialization, prompt registry, reply parsing and the SVIT box transform."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_record
from vitune.data.records import Box, ImageRecord, ObjectAnn, Region
from vitune.synth.context import ContextConfig, approx_tokens, build_context
from vitune.synth.export import SynthItem, item_instances, pad_square_box, to_padded_text
from vitune.synth.parse import ParseError, QAPair, parse_reply, referring_objects
from vitune.synth.prompts import build_messages, generator_names, get_generator, load_generator_file


def _rec() -> ImageRecord:
    r = make_record("7")
    r.regions = [Region("vg:9", "red circle in the corner", Box(10, 10, 50, 50))]
    return r


def test_context_blocks_and_determinism() -> None:
    r = _rec()
    text = build_context(r, ContextConfig(attributes=True))
    assert text == build_context(r, ContextConfig(attributes=True))
    assert text.startswith("Captions:\nA red circle and a blue square (7).\n\nObjects:\n")
    # 320x240 image: circle at (10,10)-(60,60) -> [0.031, 0.042, 0.188, 0.250]
    assert "circle: [0.031, 0.042, 0.188, 0.250]" in text
    assert "Regions:\nred circle in the corner: [0.031, 0.042, 0.188, 0.250]" in text
    assert "Attributes:\ncircle [0.031, 0.042, 0.188, 0.250]: red, small" in text
    no_box = build_context(r, ContextConfig(region_boxes=False))
    assert "Regions:\nred circle in the corner\n" in no_box + "\n"


def test_context_budget_trims_duplicates_then_regions() -> None:
    r = _rec()
    full = build_context(r)
    assert full.count("circle: [0.031") == 2  # COCO and VG copies of the same object
    budget = approx_tokens(full) - 5
    trimmed = build_context(r, ContextConfig(max_tokens=budget))
    assert approx_tokens(trimmed) <= budget
    objects = trimmed.split("Objects:\n")[1].split("\n\n")[0].splitlines()
    assert len(objects) == 5 and "Regions:" in trimmed  # one duplicate went first, regions stay
    dedup = build_context(r, ContextConfig(max_tokens=approx_tokens(full) - 20))
    assert dedup.count("circle: [0.031") == 1 and "Regions:" in dedup  # all three duplicates gone
    tight = build_context(r, ContextConfig(max_tokens=40))
    assert approx_tokens(tight) <= 40 and "Regions:" not in tight and "Captions:" in tight


def test_registry_and_override(tmp_path: Path) -> None:
    assert {"conversation", "complex_reasoning", "referring_qa", "detail_description", "dialog"} <= set(
        generator_names()
    )
    spec = get_generator("detail_description")
    assert len(spec.instructions) >= 30
    msgs = build_messages(get_generator("referring_qa"), _rec())
    assert (
        msgs[0]["role"] == "system"
        and "<st>" in msgs[0]["content"]
        and "10 question-answer" in msgs[0]["content"]
    )
    assert "Objects:" in msgs[1]["content"]
    f = tmp_path / "my_gen.yaml"
    f.write_text(
        "name: yesno\nformat: qa\nn_items: 4\nsystem: 'Ask {n_items} yes/no questions.'\nuser: '{context}'\n"
    )
    new = load_generator_file(f)
    assert get_generator("yesno") is new and new.n_items == 4
    over = tmp_path / "over.yaml"
    over.write_text("name: complex_reasoning\nn_items: 3\n")
    base_system = get_generator("complex_reasoning").system
    try:
        s = load_generator_file(over)
        assert s.n_items == 3 and s.system == base_system  # unchanged keys kept
    finally:
        from vitune.synth import prompts

        prompts._REGISTRY.pop("complex_reasoning")
        prompts._loaded = False
    assert get_generator("complex_reasoning").n_items == 15


MESSY = """Sure, here you go:

1. **Question:** What color is the circle?
**Answer:** The circle is red.

Q2: How many squares
are there?
A2: There are two squares,
one blue and one green.

- Q: Is there a dog? A: No, there is no dog.
### Question 4: Where is the blue square?
Answer 4 - It is in the middle.
Question: a truncated question without answer"""


def test_parse_tolerates_messy_qa() -> None:
    p = parse_reply(MESSY, "qa", n_items=4)
    assert [x.question for x in p.pairs] == [
        "What color is the circle?",
        "How many squares are there?",
        "Is there a dog?",
        "Where is the blue square?",
    ]
    assert p.pairs[1].answer == "There are two squares, one blue and one green."
    assert p.pairs[2].answer == "No, there is no dog."
    assert p.pairs[3].answer == "It is in the middle."
    assert any("without answer" in w for w in p.warnings)


def test_parse_conversations_and_description() -> None:
    text = "\n".join(
        f"**Conversation {c} (Topic: t{c})**\n" + "\n".join(f"Q: q{c}{i}?\nA: a{c}{i}." for i in range(5))
        for c in (1, 2, 3)
    )
    p = parse_reply(text, "conversations", n_items=5, n_groups=3)
    assert [len(g) for g in p.groups] == [5, 5, 5] and p.topics == ["t1", "t2", "t3"]
    flat = "\n".join(f"Question: q{i}\nAnswer: a{i}" for i in range(15))
    assert [len(g) for g in parse_reply(flat, "conversations", n_items=5).groups] == [5, 5, 5]
    d = parse_reply("**Description:** A red circle.\n\n  Two squares.  ", "description")
    assert d.description == "A red circle.\n\nTwo squares."
    for bad in ("", "   ", "Sure! No structure here."):
        with pytest.raises(ParseError):
            parse_reply(bad, "qa")


def test_referring_objects() -> None:
    t = "Where is <st>red circle<ed> [0.031, 0.042, 0.188, 0.250] and <st>dog<ed> [0.1, 0.2]?"
    objs = referring_objects(t)
    assert objs[0][:2] == ("red circle", [0.031, 0.042, 0.188, 0.25])
    assert objs[1][0] == "dog" and objs[1][1] is None


def test_pad_square_box_hand_computed() -> None:
    # 640x480: pixels [64, 96, 320, 336]; shift y by (640-480)//2 = 80 -> [64, 176, 320, 416] / 640
    assert pad_square_box([0.1, 0.2, 0.5, 0.7], 640, 480) == [0.1, 0.275, 0.5, 0.65]
    # 333x500 (tall): x pixels round(166.5)=166, 333; shift x by (500-333)//2 = 83 -> 249, 416; / 500
    assert pad_square_box([0.5, 0.5, 1.0, 1.0], 333, 500) == [0.498, 0.5, 0.832, 1.0]
    # square images are unchanged apart from pixel rounding
    assert pad_square_box([0.1234, 0.5, 0.9, 0.95], 100, 100) == [0.12, 0.5, 0.9, 0.95]


def test_referring_export_strips_tags_and_pads() -> None:
    q = "What color is <st>circle<ed> [0.1, 0.2, 0.5, 0.7]?"
    assert to_padded_text(q, 640, 480) == "What color is circle [0.100, 0.275, 0.500, 0.650]?"
    item = SynthItem(
        "referring_qa", "referring", "7", "train/7.jpg", 640, 480,
        groups=[[QAPair(q, "<st>circle<ed> [0.1, 0.2, 0.5, 0.7] is red."), QAPair("And the square?", "Blue.")]],
    )  # fmt: skip
    (inst,) = item_instances(item, seed=0)
    assert inst.task == "referring_qa" and inst.image == "train/7.jpg"
    first = inst.turns[0].text
    assert first.startswith("What color is circle [0.100, 0.275, 0.500, 0.650]? ")
    assert "bounding box" in first.lower() and "<st>" not in first
    assert inst.turns[1].text == "Circle [0.100, 0.275, 0.500, 0.650] is red."
    assert inst.turns[2].text == "And the square?"  # the instruction only in the first turn


def test_description_export_instruction_is_seeded() -> None:
    spec = get_generator("detail_description")
    rec = ImageRecord("9", "x.jpg", 10, 10, objects=[ObjectAnn("1", "circle", Box(1, 1, 2, 2))])
    del rec
    item = SynthItem("detail_description", "description", "9", "x.jpg", 10, 10, description="A circle.")
    item.instruction = spec.instructions[3]
    (inst,) = item_instances(item)
    assert [t.role for t in inst.turns] == ["user", "assistant"] and inst.turns[0].text == spec.instructions[
        3
    ]
