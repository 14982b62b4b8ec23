"""A small hand-written dataset in the official formats for the `vitune build` tests.

30 COCO images (real 16x12 JPEGs under `images/train2014/`), COCO instances + captions, Visual
Genome image_data / objects / attributes, VQAv2 questions + annotations, and a sources YAML with
paths relative to it. Planted defects, each with a known fate:

- COCO instances: an annotation on an unknown image, one with an unknown category (rejected);
- COCO captions: an empty caption (rejected);
- VQAv2: a question about image 4242, which no COCO/VG file lists (read, then rejected by the merge:
  no source gives an image file);
- image 30's file is absent on disk (only `--flatten-images` notices: `build.images`).
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

N = 30
NAMES = ["cat", "dog", "car"]
COLORS = ["red", "blue", "green", "white", "black"]


def _file(i: int) -> str:
    return f"COCO_train2014_{i:012d}.jpg"


def write_dataset(root: Path) -> dict[str, Path]:
    """Write the dataset under `root`; returns its paths (`yaml`, `image_root`, annotation files)."""
    images = [
        {"license": 1, "file_name": _file(i), "height": 48, "width": 64, "id": i} for i in range(1, N + 1)
    ]
    anns, caps, vg_img, vg_obj, vg_attr, qs, qa = [], [], [], [], [], [], []
    aid = oid = 0
    for i in range(1, N + 1):
        objs, attrs = [], []
        for k in range(1 + i % 3):
            name, color = NAMES[(i + k) % 3], COLORS[(i * 3 + k) % 5]
            x, y = 2 + 10 * k, 3 + 5 * k
            aid += 1
            anns.append({"segmentation": [[x, y, x + 8, y, x + 8, y + 8]], "area": 64.0, "iscrowd": 0,
                         "image_id": i, "bbox": [x, y, 8, 8], "category_id": NAMES.index(name) + 1, "id": aid})  # fmt: skip
            oid += 1
            o = {"object_id": oid, "x": x, "y": y, "w": 8, "h": 8, "names": [name]}
            objs.append(o)
            attrs.append({**o, "attributes": [color]})
        caps += [{"image_id": i, "id": 2 * i + j, "caption": f"A photo {j} of image {i} with a {NAMES[i % 3]}."}
                 for j in range(2)]  # fmt: skip
        vg_img.append({"width": 64, "height": 48, "image_id": 1000 + i, "coco_id": i, "flickr_id": None})
        vg_obj.append({"image_id": 1000 + i, "objects": objs})
        vg_attr.append({"image_id": 1000 + i, "attributes": attrs})
        for j in range(2):
            qid = 10 * i + j
            ans = ["yes", "2"][j]
            qs.append({"image_id": i, "question": f"Question {j} about image {i}?", "question_id": qid})
            qa.append({"question_type": "is there", "multiple_choice_answer": ans, "image_id": i,
                       "answers": [{"answer": ans, "answer_confidence": "yes", "answer_id": n + 1} for n in range(10)],
                       "answer_type": "other", "question_id": qid})  # fmt: skip
    anns.append(
        {"image_id": 999, "bbox": [1, 1, 2, 2], "category_id": 1, "id": 9001, "area": 4, "iscrowd": 0}
    )
    anns.append({"image_id": 1, "bbox": [1, 1, 2, 2], "category_id": 77, "id": 9002, "area": 4, "iscrowd": 0})
    caps.append({"image_id": 2, "id": 9003, "caption": "   "})
    qs.append({"image_id": 4242, "question": "Where is this image?", "question_id": 42420})
    qa.append({"question_type": "where", "multiple_choice_answer": "nowhere", "image_id": 4242, "answer_type": "other",
               "answers": [{"answer": "nowhere", "answer_confidence": "yes", "answer_id": n + 1} for n in range(10)],
               "question_id": 42420})  # fmt: skip
    cats = [{"supercategory": "thing", "id": k + 1, "name": n} for k, n in enumerate(NAMES)]
    files = {
        "instances": ("annotations/instances_train2014.json",
                      {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats}),
        "captions": ("annotations/captions_train2014.json",
                     {"info": {}, "licenses": [], "images": images, "annotations": caps}),
        "image_data": ("vg/image_data.json", vg_img),
        "objects": ("vg/objects.json", vg_obj),
        "attributes": ("vg/attributes.json", vg_attr),
        "questions": ("vqa/v2_OpenEnded_mscoco_train2014_questions.json",
                      {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "train2014",
                       "license": {}, "questions": qs}),
        "vqa_annotations": ("vqa/v2_mscoco_train2014_annotations.json",
                            {"info": {}, "license": {}, "data_type": "mscoco", "data_subtype": "train2014",
                             "annotations": qa}),
    }  # fmt: skip
    out: dict[str, Path] = {}
    for key, (rel, data) in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(data), encoding="utf-8")
        out[key] = p
    img_dir = root / "images" / "train2014"
    img_dir.mkdir(parents=True)
    for i in range(1, N):  # image N is missing on disk
        Image.new("RGB", (64, 48), (i * 8, 100, 200)).save(img_dir / _file(i), quality=80)
    (root / "sources.yaml").write_text(
        "image_root: images\n"
        "split: train\n"
        "coco_instances: annotations/instances_train2014.json\n"
        "coco_captions: annotations/captions_train2014.json\n"
        "coco_image_subdir: train2014\n"
        "vg_dir: vg\n"
        "vqa_questions: vqa/v2_OpenEnded_mscoco_train2014_questions.json\n"
        "vqa_annotations: vqa/v2_mscoco_train2014_annotations.json\n",
        encoding="utf-8",
    )
    out["yaml"] = root / "sources.yaml"
    out["image_root"] = root / "images"
    return out


def source_pairs(paths: dict[str, Path]) -> list[str]:
    """The same sources as the YAML, as `vitune build --source KIND=PATH` options."""
    pairs = [
        f"coco_instances={paths['instances']}",
        f"coco_captions={paths['captions']}",
        "coco_image_subdir=train2014",
        f"vg={paths['image_data'].parent}",
        f"vqa_questions={paths['questions']}",
        f"vqa_annotations={paths['vqa_annotations']}",
    ]
    return [x for p in pairs for x in ("--source", p)]


def all_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path (for byte-identity checks)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
