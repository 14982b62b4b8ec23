"""The world's VSR copy: true and false spatial statements about the COCO images, from the geometry.

Per image, pairs of objects that both have an unambiguous name (`facts.referents`) get statements
"The {subj} is {relation} the {obj}." in VSR's vocabulary. True ones come from the relations that
clearly hold (`facts.clear_relations`: left/right, above/below, next to) plus "far away from" for a
clearly distant pair; false ones are the opposite of a clearly holding relation (so they are clearly
false, never borderline). At most two of each per image, drawn from the format's own RNG stream.

Files: `ROOT/vsr/splits/random/{train,dev,test}.jsonl` (the world's val split is VSR's dev), one
statement per line as the GitHub release writes them, plus the Hugging Face copies' `subj`/`obj`.
`image` is the world's COCO file name (its stem ends with the COCO id, as a 2017 name does), so
the reader puts the statements on the COCO records.
"""

from __future__ import annotations

import json
from pathlib import Path

from vitune.sources.vsr import VSRSource
from vitune.utils.atomic import write_text
from vitune.world.facts import clear_relations, mean_height, mean_width, referents
from vitune.world.layout import SPLITS, WorldLayout
from vitune.world.scene import Scene
from vitune.world.vf.format import ImageContext, WorldFormat, register
from vitune.world.writers import URL_ROOT

NAME = "vsr"
# The world's clear relations in VSR's words, and the opposite of each (a clearly false statement).
VSR_WORDS = {
    "left of": "at the left side of",
    "right of": "at the right side of",
    "above": "above",
    "below": "below",
    "next to": "next to",
}
OPPOSITE = {
    "at the left side of": "at the right side of",
    "at the right side of": "at the left side of",
    "above": "below",
    "below": "above",
    "next to": "far away from",
    "far away from": "next to",
}
FAR = 0.3  # a gap above this fraction of the short image side is "far away"
PER_LABEL = 2
_SPLIT_FILE = {"train": "train", "val": "dev", "test": "test"}


def vsr_file(layout: WorldLayout, split: str) -> Path:
    return layout.root / "vsr" / "splits" / "random" / f"{_SPLIT_FILE[split]}.jsonl"


def caption(subj: str, relation: str, obj: str) -> str:
    return f"The {subj} is {relation} the {obj}."


def true_relations(scene: Scene, a: int, b: int) -> list[str]:
    """VSR relations that clearly hold for subject `a` and object `b`."""
    out = [VSR_WORDS[r] for r in clear_relations(scene, a, b) if r in VSR_WORDS]
    oa, ob = scene.objects[a], scene.objects[b]
    (ax, ay), (bx, by) = oa.center, ob.center
    gap = max(abs(ax - bx) - mean_width(oa, ob), abs(ay - by) - mean_height(oa, ob))
    if gap > FAR * min(scene.width, scene.height):
        out.append("far away from")
    return out


def make(ctx: ImageContext) -> list[dict]:
    rng = ctx.rng(NAME)
    scene = ctx.scene
    names = referents(scene)
    true: list[dict] = []
    false: list[dict] = []
    for a, na in enumerate(names):
        for b, nb in enumerate(names):
            if a == b or na is None or nb is None or na == nb:
                continue
            holds = true_relations(scene, a, b)
            for rel in holds:
                true.append({"subj": na, "obj": nb, "relation": rel, "label": 1})
                if OPPOSITE[rel] not in holds:
                    false.append({"subj": na, "obj": nb, "relation": OPPOSITE[rel], "label": 0})
    picked = rng.sample(true, min(PER_LABEL, len(true))) + rng.sample(false, min(PER_LABEL, len(false)))
    rng.shuffle(picked)
    return [{**s, "caption": caption(s["subj"], s["relation"], s["obj"])} for s in picked]


def _line(r: dict, s: dict) -> str:
    votes = [1, 2, 3]
    entry = {
        "image": r["file_name"],
        "image_link": f"{URL_ROOT}/{r['split']}/{r['file_name']}",
        "caption": s["caption"],
        "label": s["label"],
        "relation": s["relation"],
        "annotator_id": 1,
        "vote_true_validator_id": votes if s["label"] else [],
        "vote_false_validator_id": [] if s["label"] else votes,
        "subj": s["subj"],
        "obj": s["obj"],
    }
    return json.dumps(entry)


def write(layout: WorldLayout, records: list[dict]) -> None:
    for split in SPLITS:
        lines = [
            _line(r, s)
            for r in sorted(records, key=lambda r: r["idx"])
            if r["split"] == split
            for s in r["extras"][NAME]
        ]
        write_text(vsr_file(layout, split), "".join(line + "\n" for line in lines))


def blocks(layout: WorldLayout, split: str) -> list[VSRSource]:
    return [VSRSource(statements=vsr_file(layout, split), image_subdir=layout.image_subdir(split))]


FORMAT = register(WorldFormat(NAME, make, write, blocks))
