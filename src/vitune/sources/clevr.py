"""CLEVR v1.0 (`questions/CLEVR_{split}_questions.json` + `scenes/CLEVR_{split}_scenes.json`) →
one record per rendered scene with its questions, programs and objects.

Official layout (Johnson et al. 2017, `CLEVR_v1.0/`):
- questions: `{"info": {...}, "questions": [{"image_index", "image_filename", "split", "question",
  "answer", "program": [{"function", "inputs": [node indices], "value_inputs": [str]}],
  "question_family_index", "question_index"}]}`; the test split has no `answer` nor `program`.
- scenes (train/val only): `{"info": {...}, "scenes": [{"image_index", "image_filename", "split",
  "objects": [{"color", "size", "shape", "material", "rotation", "3d_coords", "pixel_coords": [x, y,
  depth]}], "relationships": {"left"|"right"|"front"|"behind": [[object indices] per object]},
  "directions": {...}}]}`.
- images: `images/{split}/CLEVR_{split}_{image_index:06d}.png` (480 x 320).

Decisions:
- Records are keyed `clevr:{image_filename stem}` (e.g. `clevr:CLEVR_val_000012`); the image is
  `{image_subdir}/{split}/{image_filename}`, the split folder being the entry's own `split`.
- One `QA` per question: `answers == [answer]` (`[]` on the test split), `question_type` = the
  program's last function (`count`, `exist`, `query_color`, `equal_size`, `greater_than`, ...),
  `answer_type` "number" / "yes/no" / "other" from it, `source == "clevr"`, `meta` = `{program,
  question_family_index, question_index}`. The program must be well formed (every node a function
  with `inputs` pointing to earlier nodes); a bad one rejects the question.
- Scene objects go to `meta["clevr_objects"]` (color, size, shape, material, pixel_coords) and the
  relationships to `meta["clevr_relationships"]`, not to `ImageRecord.objects`: CLEVR has no boxes.
  A scene with no questions read still makes a record (scenes alone carry the attributes).
- Rejected (ledgered as `questions[i]` / `scenes[i]`): entries that are not objects, missing or
  unusable `image_filename`/`image_index`/`question`, a bad program, a duplicate `question_index`,
  an object without one of the four attributes, a duplicate scene, an unsafe image path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path, image_prefix
from vitune.data.records import QA
from vitune.sources.block import SourceBlock
from vitune.sources.fields import as_number, clean_text
from vitune.sources.jsonio import gc_paused, load_json, require_list
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.clevr"
SOURCE = "clevr"
KEY_PREFIX = "clevr:"
ATTRIBUTES = ("size", "color", "material", "shape")
_YES_NO = ("exist", "equal_integer", "less_than", "greater_than")


class CLEVRSource(SourceBlock):
    """`--source clevr=questions/CLEVR_val_questions.json` (+ `clevr.scenes=...`)."""

    KIND: ClassVar[str] = "clevr"
    MAIN: ClassVar[str] = "questions"

    questions: Path  # CLEVR_{split}_questions.json
    scenes: Path | None = None  # CLEVR_{split}_scenes.json (train and val only)
    image_subdir: str = "images"  # images/{split}/CLEVR_{split}_{index:06d}.png below it

    def read(self, *, split: str, ledger: Ledger, known_images: set[str] | None = None) -> SourceResult:
        return read_clevr(
            self.questions, self.scenes, split=split, ledger=ledger, image_subdir=self.image_subdir
        )


def answer_type(function: str) -> str:
    """The answer kind of a program ending in `function` (VQA's answer types)."""
    if function == "count":
        return "number"
    if function in _YES_NO or function.startswith("equal_"):
        return "yes/no"
    return "other"


@gc_paused
def read_clevr(
    questions: str | os.PathLike,
    scenes: str | os.PathLike | None = None,
    *,
    split: str = "",
    ledger: Ledger | None = None,
    image_subdir: str = "images",
) -> SourceResult:
    """Read CLEVR questions (and scenes) into records `clevr:{stem}`; bad entries into `ledger`."""
    prefix = image_prefix(image_subdir, "CLEVR image_subdir")
    ledger = ledger if ledger is not None else Ledger()
    result = SourceResult(SOURCE)
    if scenes is not None:
        spath = Path(scenes)
        sdata = load_json(spath, dict, "a CLEVR object with a 'scenes' list")
        _read_scenes(spath, require_list(sdata, "scenes", spath), prefix, split, result, ledger)
    qpath = Path(questions)
    qdata = load_json(qpath, dict, "a CLEVR object with a 'questions' list")
    _read_questions(qpath, require_list(qdata, "questions", qpath), prefix, split, result, ledger)
    return result


def _image(entry: dict[str, Any], prefix: str, split: str) -> tuple[str, str, str]:
    """(record key, image path, "") of a question or scene entry, or ("", "", why not)."""
    fname = entry.get("image_filename")
    if not isinstance(fname, str) or not fname.strip() or "/" in fname or "\\" in fname:
        return "", "", f"'image_filename' must be a file name, got {fname!r}"
    index = entry.get("image_index")
    if type(index) is not int or index < 0:
        return "", "", f"'image_index' must be a non-negative integer, got {index!r}"
    folder = entry.get("split") if isinstance(entry.get("split"), str) and entry.get("split") else split
    if not folder:
        return "", "", "missing 'split' (it names the image folder)"
    name = f"{prefix}{folder}/{fname}"
    reason = check_rel_path(name)
    if reason is not None:
        return "", "", reason
    return KEY_PREFIX + Path(fname).stem, name, ""


def _read_scenes(
    path: Path, items: list[Any], prefix: str, split: str, result: SourceResult, ledger: Ledger
) -> None:
    t = Tally(ledger, STAGE, str(path), "scenes")
    for i, s in enumerate(items):
        t.stats.seen += 1
        loc = f"scenes[{i}]"
        if not isinstance(s, dict):
            t.reject(loc, "scene is not an object")
            continue
        key, name, reason = _image(s, prefix, split)
        objects, why = _objects(s.get("objects")) if not reason else ([], "")
        if reason or why:
            t.reject(loc, reason or why)
            continue
        if key in result.records:
            t.reject(loc, f"duplicate scene for {key}")
            continue
        rec = result.record(key, name, split)
        rec.meta["clevr_objects"] = objects
        rels = s.get("relationships")
        if isinstance(rels, dict):
            rec.meta["clevr_relationships"] = {k: v for k, v in rels.items() if isinstance(v, list)}
        t.stats.kept += 1
    result.stats.append(t.stats)


def _objects(raw: Any) -> tuple[list[dict[str, Any]], str]:
    """The scene's objects (the four attributes and pixel_coords), or ([], why not)."""
    if not isinstance(raw, list):
        return [], "'objects' must be a list"
    out = []
    for k, o in enumerate(raw):
        if not isinstance(o, dict):
            return [], f"objects[{k}] is not an object"
        attrs = {a: clean_text(o.get(a)) for a in ATTRIBUTES}
        missing = [a for a, v in attrs.items() if v is None]
        if missing:
            return [], f"objects[{k}] lacks {', '.join(missing)}"
        pc = o.get("pixel_coords")
        coords = [as_number(v) for v in pc] if isinstance(pc, list) else []
        if len(coords) < 2 or any(v is None for v in coords):
            return [], f"objects[{k}] 'pixel_coords' must be a list of numbers [x, y, depth]"
        out.append({**attrs, "pixel_coords": coords})
    return out, ""


def _read_questions(
    path: Path, items: list[Any], prefix: str, split: str, result: SourceResult, ledger: Ledger
) -> None:
    t = Tally(ledger, STAGE, str(path), "questions")
    seen_q: set[str] = set()
    for i, q in enumerate(items):
        t.stats.seen += 1
        loc = f"questions[{i}]"
        if not isinstance(q, dict):
            t.reject(loc, "question is not an object")
            continue
        key, name, reason = _image(q, prefix, split)
        qa, why = _qa(q, split or str(q.get("split", ""))) if not reason else (None, "")
        if qa is None:
            t.reject(loc, reason or why)
            continue
        if qa.question_id in seen_q:
            t.reject(loc, f"duplicate question_index {qa.meta['question_index']}")
            continue
        seen_q.add(qa.question_id)
        result.record(key, name, split).qas.append(qa)
        t.stats.kept += 1
    result.stats.append(t.stats)


def _qa(q: dict[str, Any], split: str) -> tuple[QA | None, str]:
    question = clean_text(q.get("question"))
    if question is None:
        return None, "missing or empty 'question'"
    index = q.get("question_index")
    if type(index) is not int or index < 0:
        return None, f"'question_index' must be a non-negative integer, got {index!r}"
    answer = q.get("answer")
    if answer is not None and clean_text(str(answer)) is None:
        return None, "empty 'answer'"
    program, why = _program(q.get("program"))
    if why:
        return None, why
    last = program[-1]["function"] if program else ""
    meta: dict[str, Any] = {"program": program, "question_index": index}
    if type(q.get("question_family_index")) is int:
        meta["question_family_index"] = q["question_family_index"]
    answers = [] if answer is None else [clean_text(str(answer)) or ""]
    qid = f"{split}-{index}" if split else str(index)
    return QA(qid, question, answers, answer_type(last), last, source=SOURCE, meta=meta), ""


def _program(raw: Any) -> tuple[list[dict[str, Any]], str]:
    """The program as `[{function, inputs, value_inputs}]` (absent on test: []), or why it is bad."""
    if raw is None:
        return [], ""
    if not isinstance(raw, list) or not raw:
        return [], "'program' must be a non-empty list of nodes"
    out = []
    for k, node in enumerate(raw):
        fn = node.get("function", node.get("type")) if isinstance(node, dict) else None
        if not isinstance(fn, str) or not fn:
            return [], f"program[{k}] has no 'function'"
        inputs, values = node.get("inputs", []), node.get("value_inputs", [])
        if not isinstance(inputs, list) or not all(type(j) is int and 0 <= j < k for j in inputs):
            return [], f"program[{k}] 'inputs' must index earlier nodes"
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return [], f"program[{k}] 'value_inputs' must be a list of strings"
        out.append({"function": fn, "inputs": list(inputs), "value_inputs": list(values)})
    return out, ""
