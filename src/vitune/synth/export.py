"""Export kept synthesis items to LLaVA training format the way SVIT did, plus raw per-type JSON.

- `<image>` only in the first human turn (`vitune.data.llava.instance_to_llava` places it).
- Referring QA: ``<st>``/``<ed>`` stripped, one of several "provide bounding boxes" instructions
  appended to the first question, and every box moved into the frame of the image padded to a
  square (LLaVA-1.5's ``image_aspect_ratio pad``): pixels = round(v x W), round(v x H); the short
  axis shifted by (long - short) // 2; divided by the long side; 3 decimals.
- Detail descriptions get their user instruction from the generator's pool (seeded per image).
- Conversations: one instance per conversation (topic); other formats: one instance per reply.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune.data.instance import Instance, Turn
from vitune.data.llava import write_llava_json
from vitune.synth.parse import BOX_RE, QAPair
from vitune.synth.prompts import bbox_instructions, pick_instruction
from vitune.utils.atomic import write_json


@dataclass(slots=True)
class SynthItem:
    """The kept content of one reply (after parsing and filtering)."""

    generator: str
    format: str
    image_id: str
    image: str  # image path relative to the image root
    width: int
    height: int
    groups: list[list[QAPair]] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    description: str = ""
    instruction: str = ""  # for descriptions: the user turn
    flags: dict[str, list[str]] = field(default_factory=dict)  # "g.i" -> flags of a kept pair
    key: str = ""  # the cache key of the reply it came from

    def to_raw(self) -> dict[str, Any]:
        d: dict[str, Any] = {"image_id": self.image_id, "image": self.image, "generator": self.generator}
        if self.format == "description":
            d["instruction"] = self.instruction
            d["description"] = self.description
        else:
            d["conversations"] = [
                {"topic": t, "qas": [{"question": p.question, "answer": p.answer} for p in g]}
                for g, t in zip(self.groups, self.topics or [""] * len(self.groups), strict=False)
            ]
        if self.flags:
            d["flags"] = self.flags
        d["key"] = self.key
        return d


def pad_square_box(box: list[float], width: int, height: int, ndigits: int = 3) -> list[float]:
    """A normalized [x1, y1, x2, y2] of the original image, in the frame of its pad-to-square copy."""
    x1, y1, x2, y2 = box
    px = [round(x1 * width), round(y1 * height), round(x2 * width), round(y2 * height)]
    long_side = max(width, height)
    shift = (long_side - min(width, height)) // 2
    if width > height:  # padding above and below: y moves down
        px[1] += shift
        px[3] += shift
    elif height > width:
        px[0] += shift
        px[2] += shift
    return [round(v / long_side, ndigits) for v in px]


def _fmt(box: list[float], ndigits: int = 3) -> str:
    return "[" + ", ".join(f"{v:.{ndigits}f}" for v in box) + "]"


def to_padded_text(text: str, width: int, height: int) -> str:
    """Strip ``<st>``/``<ed>`` and move every box into the padded-square frame."""
    text = re.sub(r"\s*<st>\s*", " ", text)
    text = re.sub(r"\s*<ed>\s*", " ", text)
    text = BOX_RE.sub(lambda m: _fmt(pad_square_box([float(v) for v in m.groups()], width, height)), text)
    text = re.sub(r"[ \t]+", " ", text).strip()
    text = re.sub(r" ([?.!,;:])", r"\1", text)
    return text[:1].upper() + text[1:]


def item_instances(
    item: SynthItem, *, seed: int = 0, bbox_pool: list[str] | None = None, pad_boxes: bool = True
) -> list[Instance]:
    meta_base = {"image_id": item.image_id, "generator": item.generator, "source": "synth", "key": item.key}
    if item.format == "description":
        turns = [Turn("user", item.instruction), Turn("assistant", item.description)]
        return [
            Instance(f"{item.generator}-{item.image_id}", item.image, item.generator, turns, dict(meta_base))
        ]
    out = []
    for gi, group in enumerate(item.groups):
        if not group:
            continue
        turns: list[Turn] = []
        for p in group:
            q, a = p.question, p.answer
            if item.format == "referring":
                if pad_boxes:
                    q, a = (
                        to_padded_text(q, item.width, item.height),
                        to_padded_text(a, item.width, item.height),
                    )
                else:
                    q, a = (re.sub(r"\s*</?(?:st|ed)>\s*", " ", s).strip() for s in (q, a))
            turns += [Turn("user", q), Turn("assistant", a)]
        if item.format == "referring":
            pool = bbox_pool or bbox_instructions()
            turns[0] = Turn(
                "user", turns[0].text + " " + pick_instruction(pool, seed, "bbox", item.image_id, gi)
            )
        meta = dict(meta_base)
        if item.topics and gi < len(item.topics) and item.topics[gi]:
            meta["topic"] = item.topics[gi]
        iid = f"{item.generator}-{item.image_id}" + (f"-{gi}" if len(item.groups) > 1 else "")
        out.append(Instance(iid, item.image, item.generator, turns, meta))
    return out


def export_items(
    items: Iterable[SynthItem], out_dir: str | os.PathLike, *, seed: int = 0, pad_boxes: bool = True
) -> dict[str, Any]:
    """Write ``llava/<type>.json``, ``synth_llava.json`` (all types) and ``raw/<type>.json``."""
    out_dir = Path(out_dir)
    by_gen: dict[str, list[SynthItem]] = {}
    for it in items:
        by_gen.setdefault(it.generator, []).append(it)
    pool = bbox_instructions()
    counts: dict[str, int] = {}
    all_instances: list[Instance] = []
    for gen, its in sorted(by_gen.items()):
        insts = [i for it in its for i in item_instances(it, seed=seed, bbox_pool=pool, pad_boxes=pad_boxes)]
        counts[gen] = write_llava_json(insts, out_dir / "llava" / f"{gen}.json")
        write_json(out_dir / "raw" / f"{gen}.json", [it.to_raw() for it in its], indent=1)
        all_instances += insts
    n = write_llava_json(all_instances, out_dir / "synth_llava.json", with_task=True)
    return {"instances": counts, "total_instances": n}
