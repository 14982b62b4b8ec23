"""Ground truth in the real public file formats: COCO, Visual Genome (v1.2/1.4 style) and VQAv2.

Input is the list of per-image records built by `generate.py` (already carrying final ids), output is
one JSON file per format and split, at the paths `WorldLayout` names, written atomically.

Format decisions (the real files are the model; where the world has something they lack):
- COCO `bbox`, `area` and `segmentation` come from the drawn polygon (floats, 2 decimals); `area` is
  the polygon area, as in COCO. URLs point at the reserved `.invalid` domain: no image is online.
- Visual Genome boxes are integer pixels (floor of the corner, ceil of the far edge), as in VG.
  Relationship `subject`/`object` carry `name` (singular), as most of the real relationships.json.
- A sign's text lives in Visual Genome attributes as `"text:<TEXT>"` (original upper case) next to
  its colour and size; its `names` stay `["sign"]`. Region descriptions also quote it.
- Hue-boundary objects carry only their majority colour in VG attributes and COCO-side captions.
- VQAv2 `data_subtype` is the split name ("train"), so `{subtype}/{subtype}_{id:012d}.jpg` is the image
  path exactly as `COCO_{subtype}_{id:012d}.jpg` is in the real data.
"""

from __future__ import annotations

from vitune.utils.atomic import write_json
from vitune.world.layout import SPLITS, WorldLayout
from vitune.world.scene import SHAPES

URL_ROOT = "http://images.vitune.invalid"
LICENSES = [{"url": "https://www.apache.org/licenses/LICENSE-2.0", "id": 1, "name": "Apache License 2.0"}]
SYNSETS = {
    "circle": "circle.n.01",
    "square": "square.n.01",
    "triangle": "triangle.n.01",
    "star": "star.n.05",
    "hexagon": "hexagon.n.01",
    "diamond": "diamond.n.02",
    "sign": "sign.n.02",
}
PREDICATE_SYNSETS = {
    "left of": "left.r.01",
    "right of": "right.r.01",
    "above": "above.r.01",
    "below": "below.r.01",
    "bigger than": "big.a.01",
    "smaller than": "small.a.01",
    "next to": "next.r.01",
}


def _info(what: str, version: str) -> dict:
    return {
        "description": f"vitune miniature world: {what}",
        "url": "https://github.com/vitune/vitune",
        "version": version,
        "year": 2024,
        "contributor": "vitune world generator",
        "date_created": "2024/01/01",
    }


def categories() -> list[dict]:
    return [
        {"supercategory": "text" if s == "sign" else "shape", "id": k + 1, "name": s}
        for k, s in enumerate(SHAPES)
    ]


def coco_image(rec: dict) -> dict:
    return {
        "license": 1,
        "file_name": rec["file_name"],
        "coco_url": f"{URL_ROOT}/{rec['split']}/{rec['file_name']}",
        "height": rec["height"],
        "width": rec["width"],
        "date_captured": rec["date_captured"],
        "flickr_url": f"{URL_ROOT}/flickr/{rec['file_name']}",
        "id": rec["image_id"],
    }


def coco_files(records: list[dict], split: str) -> tuple[dict, dict]:
    images = [coco_image(r) for r in records]
    anns, caps = [], []
    for r in records:
        for o in r["objects"]:
            anns.append(
                {
                    "segmentation": [o["segmentation"]],
                    "area": o["area"],
                    "iscrowd": 0,
                    "image_id": r["image_id"],
                    "bbox": o["bbox"],
                    "category_id": o["category_id"],
                    "id": o["ann_id"],
                }
            )
        caps += [
            {"image_id": r["image_id"], "id": cid, "caption": c}
            for cid, c in zip(r["caption_ids"], r["captions"], strict=True)
        ]
    instances = {
        "info": _info(f"instances {split}", "1.0"),
        "licenses": LICENSES,
        "images": images,
        "annotations": anns,
        "categories": categories(),
    }
    captions = {
        "info": _info(f"captions {split}", "1.0"),
        "licenses": LICENSES,
        "images": images,
        "annotations": caps,
    }
    return instances, captions


def _vg_obj(o: dict) -> dict:
    x, y, w, h = o["vg_box"]
    return {
        "object_id": o["object_id"],
        "x": x,
        "y": y,
        "w": w,
        "h": h,
        "names": [o["shape"]],
        "synsets": [SYNSETS[o["shape"]]],
    }


def vg_files(records: list[dict]) -> dict[str, list]:
    """All five VG files over the whole pool, ordered by VG image id."""
    records = sorted(records, key=lambda r: r["vg_id"])
    image_data, objects, attributes, relationships, regions = [], [], [], [], []
    for r in records:
        vid = r["vg_id"]
        url = f"{URL_ROOT}/VG_100K/{vid}.jpg"
        image_data.append(
            {
                "width": r["width"],
                "url": url,
                "height": r["height"],
                "image_id": vid,
                "coco_id": r["image_id"],
                "flickr_id": None,
            }
        )
        objs = [_vg_obj(o) for o in r["objects"]]
        objects.append({"image_id": vid, "objects": objs, "image_url": url})
        attrs = []
        for o, vo in zip(r["objects"], objs, strict=True):
            a = [o["color"], o["size"]]
            if o["text"]:
                a.append(f"text:{o['text']}")
            attrs.append({**vo, "attributes": a})
        attributes.append({"image_id": vid, "attributes": attrs})
        rels = []
        for rel_id, (i, pred, j) in zip(r["relationship_ids"], r["relations"], strict=True):
            subj, obj = objs[i], objs[j]
            rels.append(
                {
                    "relationship_id": rel_id,
                    "predicate": pred,
                    "synsets": [PREDICATE_SYNSETS[pred]],
                    "subject": {k: subj[k] for k in ("object_id", "x", "y", "w", "h")}
                    | {"name": subj["names"][0], "synsets": subj["synsets"]},
                    "object": {k: obj[k] for k in ("object_id", "x", "y", "w", "h")}
                    | {"name": obj["names"][0], "synsets": obj["synsets"]},
                }
            )
        relationships.append({"image_id": vid, "relationships": rels})
        regs = []
        for rid, (phrase, (x, y, w, h)) in zip(r["region_ids"], r["regions"], strict=True):
            regs.append(
                {"region_id": rid, "width": w, "height": h, "image_id": vid, "phrase": phrase, "y": y, "x": x}
            )
        regions.append({"regions": regs, "id": vid})
    return {
        "image_data": image_data,
        "objects": objects,
        "attributes": attributes,
        "relationships": relationships,
        "region_descriptions": regions,
    }


def vqa_files(records: list[dict], split: str) -> tuple[dict, dict]:
    qs, anns = [], []
    for r in records:
        for q in r["questions"]:
            qs.append({"image_id": r["image_id"], "question": q["question"], "question_id": q["question_id"]})
            anns.append(
                {
                    "question_type": q["question_type"],
                    "multiple_choice_answer": q["multiple_choice_answer"],
                    "answers": q["answers"],
                    "image_id": r["image_id"],
                    "answer_type": q["answer_type"],
                    "question_id": q["question_id"],
                }
            )
    info = _info(f"VQA-style questions {split}", "2.0")
    lic = {"url": LICENSES[0]["url"], "name": LICENSES[0]["name"]}
    questions = {
        "info": info,
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "license": lic,
        "data_subtype": split,
        "questions": qs,
    }
    annotations = {
        "info": info,
        "license": lic,
        "data_subtype": split,
        "data_type": "mscoco",
        "annotations": anns,
    }
    return questions, annotations


def write_all(layout: WorldLayout, records: list[dict]) -> dict:
    """Write every annotation file; returns per-split and VG counts for world.json."""
    counts: dict = {"splits": {}, "vg": {}}
    for split in SPLITS:
        recs = [r for r in records if r["split"] == split]
        instances, captions = coco_files(recs, split)
        questions, annotations = vqa_files(recs, split)
        write_json(layout.coco_instances(split), instances)
        write_json(layout.coco_captions(split), captions)
        write_json(layout.vqa_questions(split), questions)
        write_json(layout.vqa_annotations(split), annotations)
        counts["splits"][split] = {
            "images": len(recs),
            "annotations": len(instances["annotations"]),
            "captions": len(captions["annotations"]),
            "questions": len(questions["questions"]),
        }
    vg = vg_files(records)
    for name, data in vg.items():
        write_json(layout.vg(name), data)
    counts["vg"] = {
        "images": len(vg["image_data"]),
        "objects": sum(len(x["objects"]) for x in vg["objects"]),
        "relationships": sum(len(x["relationships"]) for x in vg["relationships"]),
        "regions": sum(len(x["regions"]) for x in vg["region_descriptions"]),
    }
    return counts
