"""MME from the official release folder (or LLaVA's `llava_mme.jsonl`), scored as MME's calculation.py.

Layout of `MME_Benchmark_release_version/<subtask>/`: either `images/` + `questions_answers_YN/`,
or images and `.txt` files side by side. Each `<image stem>.txt` holds the image's two questions,
one per line: `question<TAB>answer` (Yes/No). Lines of the eval-tool template form
`image<TAB>question<TAB>answer` are accepted too. `llava_mme.jsonl` rows (`question_id` = image path
`<subtask>/...`, `text` = prompt) are matched to those answers the way LLaVA's
`convert_answer_to_mme.py` does, so the release folder must sit next to the jsonl.
Prompt: question (it already ends in "Please answer yes or no.") + "\\nAnswer the question using a
single word or phrase." (LLaVA-1.5).

Scoring (MME eval_tool/calculation.py): prediction lowercased; exactly "yes"/"no" stands, else
"yes" in its first 4 characters -> yes, else "no" in them -> no, else "other" (wrong). So
"Yes, it is" -> yes, "yesterday" -> yes (the rule only looks at "yest"), "not sure" -> no,
"I think yes" -> other. Per subtask: acc = right/questions, acc+ = images with BOTH questions
right / images; score = (acc + acc+) × 100, at most 200. Perception = sum of 10 subtasks (max
2000), cognition = sum of 4 (max 800); `overall` is the perception total (the number LLaVA
reports as "MME"), each total summed in calculation.py's subtask order (PERCEPTION / COGNITION
below; float addition is not associative, so another order can change the last digit), each subtask
score as `0 + acc * 100 + acc_plus * 100`. The official tool pairs consecutive lines of its results file; here questions
are grouped by image explicitly, which is the same thing for well-formed files.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vitune.eval.benchmarks.base import (
    SHORT_ANSWER,
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    read_jsonl,
    register_benchmark,
)

PERCEPTION = (
    "existence", "count", "position", "color", "posters",
    "celebrity", "scene", "landmark", "artwork", "OCR",
)  # fmt: skip
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
_IMAGE_EXTS = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG")
_YN_SUFFIX = " Please answer yes or no."


def mme_parse(pred: str) -> str:
    p = pred.lower()
    if p in ("yes", "no"):
        return p
    head = p[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def _subtask_dirs(root: Path) -> list[tuple[str, Path, Path]]:
    """(subtask, image dir, qa dir) for every subtask folder (either official layout)."""
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if (d / "images").is_dir():
            out.append((d.name, d / "images", d / "questions_answers_YN"))
        else:
            out.append((d.name, d, d))
    return out


def _image_for(img_dir: Path, stem: str) -> str:
    for ext in _IMAGE_EXTS:
        if (img_dir / (stem + ext)).exists():
            return stem + ext
    raise FileNotFoundError(f"MME: no image for {img_dir / stem}.*")


def _read_release(root: Path) -> list[tuple[str, str, str, str, str]]:
    """(subtask, image path relative to root, txt name, question, answer) in file order."""
    rows = []
    for subtask, img_dir, qa_dir in _subtask_dirs(root):
        for txt in sorted(qa_dir.glob("*.txt")):
            for n, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.strip().split("\t")
                if len(parts) == 2:
                    (q, a), image = parts, _image_for(img_dir, txt.stem)
                elif len(parts) == 3:
                    image, q, a = parts
                else:
                    raise ValueError(f"{txt}:{n}: expected question<TAB>answer, got {line!r}")
                if a.strip().lower() not in ("yes", "no"):
                    raise ValueError(f"{txt}:{n}: answer {a!r} is not Yes/No")
                rel = (img_dir / image).relative_to(root).as_posix()
                rows.append((subtask, rel, txt.name, q, a.strip().lower()))
    return rows


def _official_total(per: Mapping[str, Mapping[str, float]], order: tuple[str, ...]) -> float:
    """Subtask scores summed in calculation.py's order (`scores += task_score`), present ones only."""
    total = 0.0
    for task in order:
        if task in per:
            total += per[task]["score"]
    return total


@register_benchmark
class MME(Benchmark):
    name = "mme"
    metric = "mme_score"
    prompt_suffix = SHORT_ANSWER
    scorer_version = 2  # 2: totals summed in calculation.py's subtask order

    def unparsable(self, prediction: str, item: BenchItem) -> bool:
        return mme_parse(prediction) == "other"

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        """`path`: the release folder, or `llava_mme.jsonl` next to `MME_Benchmark_release_version/`."""
        p = Path(path)
        if p.is_dir():
            rows = _read_release(p)
            return [self._item(s, img, q, a, k, img) for k, (s, img, _, q, a) in self._numbered(rows)]
        release = p.parent / "MME_Benchmark_release_version"
        gt = {(s, txt, q): (img, a) for s, img, txt, q, a in _read_release(release)}
        items, seen = [], defaultdict(int)
        for row in read_jsonl(p):
            qid = row["question_id"]
            subtask = qid.split("/")[0]
            txt = qid.split("/")[-1].split(".")[0] + ".txt"
            q = row["text"].replace(SHORT_ANSWER, "").strip()
            # convert_answer_to_mme.py: re-add the yes/no suffix, with its double-space variant.
            if _YN_SUFFIX.strip() not in q:
                q = q + _YN_SUFFIX if (subtask, txt, q + _YN_SUFFIX) in gt else q + " " + _YN_SUFFIX
            img, a = gt[(subtask, txt, q)]
            k = seen[img]
            seen[img] += 1
            items.append(self._item(subtask, row.get("image", img), q, a, k, img))
        return items

    @staticmethod
    def _numbered(rows):
        seen: dict[str, int] = defaultdict(int)
        for s, img, txt, q, a in rows:
            yield seen[img], (s, img, txt, q, a)
            seen[img] += 1

    def _item(self, subtask: str, image: str, q: str, a: str, k: int, img_key: str) -> BenchItem:
        kind = "perception" if subtask in PERCEPTION else "cognition" if subtask in COGNITION else ""
        return BenchItem(
            item_id=f"{img_key}#{k}",
            question=self.prompt(q),
            image=image,
            answers=[a],
            category=subtask,
            subcategory=kind,
            meta={"raw_question": q, "image_key": img_key},
        )

    def group_key(self, item: BenchItem) -> str:
        return item.meta["image_key"]  # acc+ needs both questions of an image

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        # subtask -> image -> [right?]
        by_task: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
        other: dict[str, int] = defaultdict(int)
        for it, p in pairs:
            label = "other" if p is None else mme_parse(p)
            other[it.category] += label == "other"
            by_task[it.category][it.meta["image_key"]].append(label == it.answers[0])
        per: dict[str, dict[str, float]] = {}
        for task, images in sorted(by_task.items()):
            flags = [f for v in images.values() for f in v]
            acc = sum(flags) / len(flags)
            acc_plus = sum(all(v) for v in images.values()) / len(images)
            per[task] = {
                "score": 0 + acc * 100 + acc_plus * 100,  # calculation.py's task_score accumulation
                "acc": 100 * acc,
                "acc_plus": 100 * acc_plus,
                "n_questions": len(flags),
                "n_images": len(images),
                "n_other": other[task],
            }
        perception = _official_total(per, PERCEPTION)
        cognition = _official_total(per, COGNITION)
        return self.result(
            overall=perception,
            perception=perception,
            cognition=cognition,
            per_category=per,
            n=sum(v["n_questions"] for v in per.values()),
            n_missing=n_missing,
        )
