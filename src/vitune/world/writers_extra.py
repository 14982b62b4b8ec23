"""Ground truth in further public formats: GQA, TextVQA + Rosetta OCR, RefCOCO refs, ScienceQA.

Input is the list of per-image records of `generate.py` (final COCO/VG ids assigned) whose
`extras` entry `extras.py` filled; output is one file per format (and split where the real data
has one), at the paths `WorldLayout` names, written atomically. Ids of these formats are counted
in image-index order here, so they do not depend on the number of workers.

Format decisions (the real files are the model):
- GQA: `imageId` is the Visual Genome id (string), as in GQA; programs name objects by their VG
  object id. Only balanced files are written and every question is balanced; `annotations` are
  left empty (GQA fills them for a subset of words only).
- TextVQA: `image_id` is the image's file stem, so TextVQA's `{image_subdir}/{image_id}.jpg`
  convention (with the split folder as `image_subdir`) is the world's image file; real ids are
  Open Images hex ids. Sizes and Flickr URLs are filled as in the real file (URLs invalid).
- RefCOCO: the refs as the JSON the refer toolkit's pickle converts to (one list for all splits,
  `split` per ref, UMD-style split names); boxes come from the COCO instances file of the split.
- ScienceQA: one problem per chosen image; the image is a JPEG copy named `image.jpg` (real
  problems have `image.png`). `pid_splits.json` has train/val/test and trainval.
"""

from __future__ import annotations

from pathlib import Path

from vitune.utils.atomic import write_json
from vitune.world.layout import SPLITS, WorldLayout
from vitune.world.scene import SHAPES
from vitune.world.vf import FORMATS
from vitune.world.writers import URL_ROOT

_OCR_ANGLES = {"rotation": 0.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0}


def assign_extra_ids(records: list[dict]) -> None:
    """Question, ref and sentence ids of the extra formats, in image-index order."""
    tq = ref = sent = 1
    for r in sorted(records, key=lambda r: r["idx"]):
        ex = r["extras"]
        for k, q in enumerate(ex["gqa"]):
            q["question_id"] = f"{r['vg_id'] * 100 + k:08d}"  # GQA ids are digit strings
        if ex["textvqa"] is not None:
            for q in ex["textvqa"]["questions"]:
                q["question_id"] = tq
                tq += 1
        for rf in ex["refs"]:
            rf["ref_id"] = ref
            ref += 1
            rf["sent_ids"] = list(range(sent, sent + len(rf["sentences"])))
            sent += len(rf["sentences"])


def _argument(arg: str, obj: int | None, objects: list[dict]) -> str:
    return f"{arg} ({objects[obj]['object_id']})" if obj is not None else arg


def gqa_file(records: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for r in records:
        for q in r["extras"]["gqa"]:
            semantic = [
                {"operation": op, "dependencies": deps, "argument": _argument(arg, obj, r["objects"])}
                for op, deps, arg, obj in q["program"]
            ]
            semantic_str = "->".join(
                f"{s['operation']}: {s['argument']}" + (f" {s['dependencies']}" if s["dependencies"] else "")
                for s in semantic
            )
            qid = q["question_id"]
            out[qid] = {
                "semantic": semantic,
                "entailed": [],
                "equivalent": [qid],
                "question": q["question"],
                "imageId": str(r["vg_id"]),
                "isBalanced": True,
                "groups": {
                    "global": q["answer"] if q["types"]["structural"] == "query" else None,
                    "local": f"{q['types']['detailed']}_{q['answer']}",
                },
                "answer": q["answer"],
                "semanticStr": semantic_str,
                "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
                "types": q["types"],
                "fullAnswer": q["fullAnswer"],
            }
    return out


def _stem(r: dict) -> str:
    return Path(r["file_name"]).stem


def textvqa_files(records: list[dict], split: str) -> tuple[dict, dict]:
    data, ocr = [], []
    for r in records:
        tv = r["extras"]["textvqa"]
        if tv is None:
            continue
        iid = _stem(r)
        url = f"{URL_ROOT}/openimages/{iid}.jpg"
        for q in tv["questions"]:
            data.append(
                {
                    "question": q["question"],
                    "image_id": iid,
                    "image_classes": ["Sign"],
                    "flickr_original_url": url,
                    "flickr_300k_url": url,
                    "image_width": r["width"],
                    "image_height": r["height"],
                    "answers": q["answers"],
                    "question_tokens": q["question"].rstrip("?").split(),
                    "question_id": q["question_id"],
                    "set_name": split,
                }
            )
        info = [
            {
                "word": t["word"],
                "bounding_box": {
                    "top_left_x": t["box"][0],
                    "top_left_y": t["box"][1],
                    "width": t["box"][2],
                    "height": t["box"][3],
                    **_OCR_ANGLES,
                },
            }
            for t in tv["ocr"]
        ]
        ocr.append(
            {
                "image_id": iid,
                "ocr_tokens": [t["word"] for t in tv["ocr"]],
                "ocr_info": info,
                "set_name": split,
            }
        )
    head = {"dataset_type": split, "dataset_name": "textvqa"}
    return {**head, "dataset_version": "0.5.1", "data": data}, {**head, "dataset_version": "0.2", "data": ocr}


def refs_file(records: list[dict]) -> list[dict]:
    out = []
    for r in sorted(records, key=lambda r: r["idx"]):
        for rf in r["extras"]["refs"]:
            o = r["objects"][rf["object"]]
            sentences = [
                {"tokens": s.split(), "raw": s[0].upper() + s[1:], "sent_id": sid, "sent": s}
                for s, sid in zip(rf["sentences"], rf["sent_ids"], strict=True)
            ]
            out.append(
                {
                    "sent_ids": rf["sent_ids"],
                    "file_name": f"{_stem(r)}_{o['ann_id']}.jpg",
                    "ann_id": o["ann_id"],
                    "ref_id": rf["ref_id"],
                    "image_id": r["image_id"],
                    "split": r["split"],
                    "sentences": sentences,
                    "category_id": SHAPES.index(o["shape"]) + 1,
                }
            )
    return out


def scienceqa_files(records: list[dict]) -> tuple[dict, dict]:
    problems: dict[str, dict] = {}
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    for r in sorted(records, key=lambda r: r["idx"]):
        p = r["extras"]["scienceqa"]
        if p is None:
            continue
        pid = p["pid"]
        problems[pid] = {k: v for k, v in p.items() if k != "pid"} | {"split": r["split"]}
        splits[r["split"]].append(pid)
    splits["trainval"] = splits["train"] + splits["val"]
    return problems, splits


def write_extras(layout: WorldLayout, records: list[dict]) -> None:
    """Write every extra annotation file (the crops and ScienceQA images are already written)."""
    assign_extra_ids(records)
    for split in SPLITS:
        recs = [r for r in records if r["split"] == split]
        write_json(layout.gqa_questions(split), gqa_file(recs))
        questions, ocr = textvqa_files(recs, split)
        write_json(layout.textvqa_questions(split), questions)
        write_json(layout.textvqa_ocr(split), ocr)
    write_json(layout.refcoco_refs, refs_file(records))
    problems, pid_splits = scienceqa_files(records)
    write_json(layout.scienceqa_problems, problems)
    write_json(layout.scienceqa_pid_splits, pid_splits)
    for fmt in FORMATS.values():
        fmt.write(layout, records)
