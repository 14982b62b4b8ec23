"""The world's VizWiz-VQA: photos "taken" of world images, sometimes too poor to answer the question.

    ROOT/vizwiz/annotations/{split}.json               a list of questions per split
    ROOT/images/vizwiz/{split}/VizWiz_{split}_{idx:08d}.jpg   the photos (image folder `vizwiz`)

About half of the world images get a VizWiz photo: a copy of the image with one question a blind
user might ask (what a sign says, an object's colour, how many objects there are, whether a shape
is there). About a third of the photos are degraded so that the question cannot be answered from
them: too dark (and out of focus; any question), blurred (the sign's text becomes unreadable) or cut off (the framing
leaves out the asked-about object entirely). Those get `answerable` 0, `answer_type`
"unanswerable" and mostly "unanswerable" answers; the others their true answer from most of the ten
annotators. Photo numbers are the image index (real VizWiz numbers each split from 0). The test
file has only `image` and `question`, as the real one.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance, ImageFilter

from vitune.sources.vizwiz import VizWizSource
from vitune.utils.atomic import write_bytes, write_json
from vitune.world.draw import encode_jpeg
from vitune.world.layout import SPLITS, WorldLayout
from vitune.world.scene import GEOMETRIC, Scene, SceneObject
from vitune.world.vf.format import ImageContext, WorldFormat, register

NAME = "vizwiz"
SUBDIR = "vizwiz"  # under the image root
P_PHOTO = 0.5
P_DEGRADED = 0.35
MIN_KEEP = 0.4  # a cut-off photo keeps at least this fraction of the width or height


def annotations_file(layout: WorldLayout, split: str) -> Path:
    return layout.root / "vizwiz" / "annotations" / f"{split}.json"


def photo_name(split: str, idx: int) -> str:
    return f"VizWiz_{split}_{idx:08d}.jpg"


def _questions(scene: Scene, rng: random.Random) -> list[dict[str, Any]]:
    """Askable questions: text, truth, answer type, the object asked about (or None)."""
    objs = scene.objects
    shapes = [o.shape for o in objs]
    out: list[dict[str, Any]] = [
        {"q": "How many objects are in this picture?", "a": str(len(objs)), "type": "number", "obj": None}
    ]
    signs = [o for o in objs if o.text]
    if len(signs) == 1:
        text = str(signs[0].text).lower()
        out.append({"q": "What does this sign say?", "a": text, "type": "other", "obj": signs[0]})
    for o in objs:
        if o.shape != "sign" and shapes.count(o.shape) == 1 and o.alt_color is None:
            out.append({"q": f"What color is the {o.shape}?", "a": o.color, "type": "other", "obj": o})
    shape = rng.choice(GEOMETRIC)
    answer = "yes" if shape in shapes else "no"
    out.append({"q": f"Is there a {shape} in this picture?", "a": answer, "type": "yes/no", "obj": None})
    return out


def _cut_box(scene: Scene, obj: SceneObject) -> tuple[int, int, int, int] | None:
    """The largest strip of the image beside `obj` (not touching its box), if wide enough."""
    w, h = scene.width, scene.height
    x0, y0, x1, y1 = obj.box
    strips = [
        (0, 0, int(x0) - 2, h),
        (int(x1) + 3, 0, w, h),
        (0, 0, w, int(y0) - 2),
        (0, int(y1) + 3, w, h),
    ]
    ok = [s for s in strips if s[2] - s[0] >= MIN_KEEP * w and s[3] - s[1] >= MIN_KEEP * h]
    return max(ok, key=lambda s: (s[2] - s[0]) * (s[3] - s[1])) if ok else None


def _degrade(img: Image.Image, how: str, cut: tuple[int, int, int, int] | None) -> Image.Image:
    blur = ImageFilter.GaussianBlur(radius=max(8, min(img.size) // 20))
    if how == "dark":  # a photo taken in the dark is also out of focus: nothing left to enhance
        return ImageEnhance.Brightness(img.filter(blur)).enhance(0.02)
    if how == "blur":
        return img.filter(blur)
    assert cut is not None
    return img.crop(cut)


def _ways(scene: Scene, q: dict[str, Any]) -> list[tuple[str, tuple[int, int, int, int] | None]]:
    """The degradations that make question `q` unanswerable on this scene."""
    ways: list[tuple[str, tuple[int, int, int, int] | None]] = [("dark", None)]
    if q["obj"] is not None and q["obj"].text:
        ways.append(("blur", None))
    if q["obj"] is not None and (cut := _cut_box(scene, q["obj"])) is not None:
        ways.append(("cut off", cut))
    return ways


def _answers(truth: str, answerable: bool, rng: random.Random) -> list[dict[str, str]]:
    if not answerable:
        main, other = "unanswerable", "unsuitable image"
    else:
        main, other = truth, "unanswerable"
    n = rng.randint(7, 10)
    texts = [main] * n + [other] * (10 - n)
    rng.shuffle(texts)
    return [{"answer": t, "answer_confidence": "yes" if rng.random() < 0.8 else "maybe"} for t in texts]


def make(ctx: ImageContext) -> dict[str, Any] | None:
    rng = ctx.rng(NAME)
    if rng.random() >= P_PHOTO:
        return None
    q = rng.choice(_questions(ctx.scene, rng))
    img = Image.open(io.BytesIO(ctx.jpeg)).convert("RGB")
    how = ""
    if rng.random() < P_DEGRADED:
        how, cut = rng.choice(_ways(ctx.scene, q))
        img = _degrade(img, how, cut)
    name = photo_name(ctx.split, ctx.idx)
    write_bytes(ctx.image_root / SUBDIR / ctx.split / name, encode_jpeg(img), fsync=False)
    answerable = not how
    return {
        "image": name,
        "question": q["q"],
        "answers": _answers(q["a"], answerable, rng),
        "answer_type": q["type"] if answerable else "unanswerable",
        "answerable": int(answerable),
        "degraded": how,  # world-only: not written to the annotation file
    }


def entries(records: list[dict], split: str) -> list[dict]:
    out = []
    for r in sorted(records, key=lambda r: r["idx"]):
        v = r["extras"].get(NAME)
        if r["split"] != split or v is None:
            continue
        keys = (
            ("image", "question")
            if split == "test"
            else ("image", "question", "answers", "answer_type", "answerable")
        )
        out.append({k: v[k] for k in keys})
    return out


def write(layout: WorldLayout, records: list[dict]) -> None:
    for split in SPLITS:
        write_json(annotations_file(layout, split), entries(records, split))


def blocks(layout: WorldLayout, split: str) -> list[VizWizSource]:
    return [VizWizSource(annotations=annotations_file(layout, split), image_subdir=f"{SUBDIR}/{split}")]


FORMAT = register(WorldFormat(NAME, make, write, blocks, image_subdirs=(SUBDIR,), share=0.5))
