"""synth: the offline template backend on the embedded world writes every type, grounded in truth."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from vitune.data.llava import read_llava_json
from vitune.sources.merge import load_world
from vitune.synth import BUILTIN, TemplateBackend, synth
from vitune.synth.template import entities
from vitune.world.generate import generate_world


@pytest.fixture(scope="module")
def world_records(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("world")
    generate_world(root, 10, seed=5, workers=1)
    return load_world(root, "train")


def test_template_all_types(world_records, tmp_path: Path) -> None:
    s = synth(world_records, BUILTIN, TemplateBackend(), tmp_path, seed=1)
    n = len(world_records)
    per = s["per_generator"]
    for gen in BUILTIN:
        assert per[gen]["items_kept"] == n, (gen, per[gen])
        assert per[gen].get("parse_failed", 0) == 0
    assert per["conversation"]["pairs"] == 15 * n
    assert per["complex_reasoning"]["pairs"] == 15 * n
    assert per["referring_qa"]["pairs"] == 10 * n
    assert per["dialog"]["pairs"] == 8 * n
    # grounded text should pass the filters nearly untouched
    dropped = sum(v for c in per.values() for k, v in c.items() if k.startswith("dropped_"))
    assert dropped <= 0.02 * sum(c["pairs"] for c in per.values()), s["ledger"]
    assert 0.3 <= s["kept"]["all"]["yes_ratio"] <= 0.7
    insts = read_llava_json(tmp_path / "synth_llava.json")
    assert Counter(i.task for i in insts) == {
        "conversation": 3 * n, "complex_reasoning": n, "referring_qa": n, "detail_description": n, "dialog": n,
    }  # fmt: skip
    raw = json.loads((tmp_path / "synth_llava.json").read_text())
    for rec in raw:
        vals = [c["value"] for c in rec["conversations"]]
        assert vals[0].startswith("<image>\n") and sum("<image>" in v for v in vals) == 1
        assert not any("<st>" in v or "<ed>" in v for v in vals)
    assert (tmp_path / "raw" / "referring_qa.json").exists() and (tmp_path / "summary.json").exists()


def test_template_facts_are_true(world_records, tmp_path: Path) -> None:
    s = synth(world_records, ["conversation"], TemplateBackend(), tmp_path)
    by_id = {r.image_id: r for r in world_records}
    checked = 0
    for item in s["items"]:
        ents = entities(by_id[item.image_id])
        counts = Counter(e.name for e in ents)
        colors = {e.name: e.color for e in ents}
        for p in (p for g in item.groups for p in g):
            if m := re.fullmatch(r"How many (\w+?)e?s are there\?", p.question):
                name = m.group(1)
                n = counts[name] or counts[name + "e"]
                assert str(n) in p.answer or ["zero", "one", "two", "three", "four", "five"][n] in p.answer
                checked += 1
            if (m := re.fullmatch(r"What color is the (\w+)\?", p.question)) and counts[m.group(1)] == 1:
                assert p.answer == f"The {m.group(1)} is {colors[m.group(1)]}."
                checked += 1
    assert checked >= len(world_records)


def test_an_invalid_generator_file_is_a_value_error_naming_it(tmp_path):
    from vitune.synth.prompts import load_generator_file

    bad = tmp_path / "gen.yaml"
    bad.write_text("name: [\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"gen\.yaml: invalid YAML"):
        load_generator_file(bad, register=False)
    with pytest.raises(ValueError, match=r"missing\.yaml: cannot read"):
        load_generator_file(tmp_path / "missing.yaml", register=False)
