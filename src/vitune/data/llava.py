"""Exact LLaVA-1.5 JSON export and import.

LLaVA's training file is a JSON list of ``{"id", "image"?, "conversations": [{"from", "value"}]}``.
Import normalizes the way LLaVA's loader does: `<image>` is moved to the start of the first human
turn (`"<image>\\n" + text`), a leading `gpt` turn is dropped, samples without `image` are
text-only. Records that cannot be read, or would train on garbage (a null reply, an empty turn, a
conversation ending on a human turn, `<image>` in a reply, an image path outside its root, a repeated
id), go to the ledger with a reason instead of failing the run. SVIT's released layout (records keyed
by `image_id`, turns grouped under topics) is read too: one sample per topic, image `{image_id}.jpg`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vitune.data.instance import IMAGE_TOKEN, Instance, Turn
from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path
from vitune.errors import InputError
from vitune.utils.atomic import atomic_open

ROLE_TO_LLAVA = {"user": "human", "assistant": "gpt"}
LLAVA_TO_ROLE = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def instance_to_llava(inst: Instance, *, with_task: bool = False) -> dict[str, Any]:
    convs = []
    for i, t in enumerate(inst.turns):
        value = f"{IMAGE_TOKEN}\n{t.text}" if (i == 0 and inst.image is not None) else t.text
        convs.append({"from": ROLE_TO_LLAVA[t.role], "value": value})
    rec: dict[str, Any] = {"id": inst.id}
    if inst.image is not None:
        rec["image"] = inst.image
    if with_task:
        rec["task_name"] = inst.task
    rec["conversations"] = convs
    return rec


def write_llava_json(
    instances: Iterable[Instance], path: str | os.PathLike, *, with_task: bool = False
) -> int:
    """Stream instances to a LLaVA JSON list (atomic); returns the number written."""
    n = 0
    with atomic_open(Path(path), "w") as fh:
        fh.write("[")
        for inst in instances:
            fh.write(",\n" if n else "\n")
            fh.write(json.dumps(instance_to_llava(inst, with_task=with_task), ensure_ascii=False))
            n += 1
        fh.write("\n]\n" if n else "]\n")
    return n


def _strip_image_token(text: str) -> str:
    return text.replace(IMAGE_TOKEN, "").strip()


def _read_turns(convs: list) -> tuple[list[Turn] | None, str]:
    """The conversation's turns, or (None, reason) for a value that would train on garbage."""
    turns: list[Turn] = []
    for j, c in enumerate(convs):
        if not isinstance(c, dict) or "from" not in c or "value" not in c:
            return None, f"conversations[{j}] lacks 'from' or 'value'"
        role = LLAVA_TO_ROLE.get(str(c["from"]).lower())
        if role is None:
            return None, f"conversations[{j}] has unknown role {c['from']!r}"
        value = c["value"]
        # str(None) / str(dict) would silently become training text ("None", "{'text': 'A'}").
        if not isinstance(value, str):
            return None, f"conversations[{j}] value is not a string ({type(value).__name__})"
        turns.append(Turn(role, value))
    return turns, ""


def _check_turns(turns: list[Turn]) -> str:
    """Why these (leading-gpt-dropped) turns are no trainable conversation, or ""."""
    if not turns:
        return "no turns after dropping a leading assistant turn"
    for j, t in enumerate(turns):
        if t.role != ("user" if j % 2 == 0 else "assistant"):
            return f"turn {j} breaks user/assistant alternation"
        if not _strip_image_token(t.text):
            return f"turn {j} ({t.role}) is empty"
        if t.role == "assistant" and IMAGE_TOKEN in t.text:
            return f"turn {j}: {IMAGE_TOKEN} in an assistant reply"
    if turns[-1].role != "assistant":
        return "conversation ends on a human turn (nothing to learn)"
    n_tokens = sum(t.text.count(IMAGE_TOKEN) for t in turns)
    if n_tokens > 1:
        return f"{n_tokens} {IMAGE_TOKEN} tokens (one image per sample)"
    return ""


def _read_image(rec: dict, allow_absolute: bool) -> tuple[str | None, str]:
    """The record's image path (or None for text-only), or (None, reason) when it is unusable."""
    image = rec.get("image")
    if isinstance(image, list):
        if len(image) != 1:
            return None, f"{len(image)} images in one sample (one is supported)"
        image = image[0]
    if image is None:
        return None, ""
    if not isinstance(image, str):
        return None, "'image' is not a string"
    if allow_absolute and os.path.isabs(image):
        return image, ""
    reason = check_rel_path(image)  # the one path rule: no absolute paths, no `..` escapes
    return (None, reason) if reason else (image, "")


def llava_to_instance(
    rec: Any, *, index: int, default_task: str = "llava", allow_absolute: bool = False
) -> tuple[Instance | None, str]:
    """Convert one LLaVA record; returns (instance, "") or (None, reason).

    Refused with a reason: non-string or empty turn values, broken alternation, a conversation
    ending on a human turn, `<image>` in a reply or more than once, an image path that is absolute
    (unless `allow_absolute`) or escapes its root.
    """
    if not isinstance(rec, dict):
        return None, "record is not an object"
    convs = rec.get("conversations")
    if not isinstance(convs, list) or not convs:
        return None, "missing or empty 'conversations'"
    turns, reason = _read_turns(convs)
    if turns is None:
        return None, reason
    if turns and turns[0].role == "assistant":
        turns = turns[1:]  # LLaVA drops a leading gpt turn
    reason = _check_turns(turns)
    if reason:
        return None, reason
    image, reason = _read_image(rec, allow_absolute)
    if reason:
        return None, reason
    has_token = any(IMAGE_TOKEN in t.text for t in turns)
    if image is None and has_token:
        return None, "<image> token without an 'image' field"
    turns = [Turn(t.role, _strip_image_token(t.text)) if IMAGE_TOKEN in t.text else t for t in turns]
    rid = rec.get("id")
    if rid is not None and not isinstance(rid, (str, int)):
        return None, f"'id' is not a string or integer ({type(rid).__name__})"
    inst_id = str(rid) if rid is not None else f"llava-{index}"
    task = str(rec.get("task_name") or default_task)
    meta = {"source_index": index}
    return Instance(id=inst_id, image=image, task=task, turns=turns, meta=meta), ""


def read_llava_json(
    path: str | os.PathLike,
    ledger: Ledger | None = None,
    *,
    default_task: str = "llava",
    allow_absolute: bool = False,
) -> list[Instance]:
    """Read a LLaVA JSON (list) or JSONL file into instances; bad records (see `llava_to_instance`)
    and repeated ids go to `ledger` with their reason, so seen = kept + rejected."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as e:
        raise InputError(path, f"not UTF-8 text (byte {e.start}: {e.reason})") from e
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot read ({e.strerror})") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if path.suffix == ".jsonl":
            data = []
            for ln, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        data.append(json.loads(line))
                    except json.JSONDecodeError as e2:
                        raise ValueError(f"{path}: line {ln}: invalid JSON ({e2.msg})") from e2
        else:
            raise ValueError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of samples, got {type(data).__name__}")
    ledger = ledger if ledger is not None else Ledger()
    out: list[Instance] = []
    seen: set[str] = set()
    for i, rec in enumerate(data):
        for loc, unit, why in _units(rec, i):
            inst, reason = (
                (None, why)
                if unit is None
                else llava_to_instance(
                    unit, index=i, default_task=default_task, allow_absolute=allow_absolute
                )
            )
            if inst is not None and inst.id in seen:
                inst, reason = None, f"duplicate id {inst.id!r}"
            if inst is None:
                ledger.reject("sources.llava", path, loc, reason)
            else:
                seen.add(inst.id)
                out.append(inst)
    return out


# SVIT's release (`conversation.json`, `complex_reasoning.json`, `referring_qa.json`,
# `detail_description.json`) keys records by Visual Genome `image_id`, not `image`, and groups a
# conversation's turns under topics: `{"image_id", "conversations": [{"topic"?, "content": [{"from":
# "user"|"gpt", "value"}]}]}` (detail descriptions: the turns directly). Images are VG's files.
SVIT_IMAGE = "{image_id}.jpg"


def _is_svit(rec: Any) -> bool:
    return isinstance(rec, dict) and "image_id" in rec and "image" not in rec and "conversations" in rec


def _units(rec: Any, i: int) -> list[tuple[str, Any, str]]:
    """(locator, LLaVA record or None, reason) for each sample in record `i`: the record itself, or
    one per topic of an SVIT record (the same checks then apply to each)."""
    if not _is_svit(rec):
        return [(f"[{i}]", rec, "")]
    iid = rec["image_id"]
    if isinstance(iid, bool) or not isinstance(iid, (int, str)) or not str(iid).strip():
        return [(f"[{i}]", None, f"SVIT record: invalid 'image_id' {iid!r}")]
    image = SVIT_IMAGE.format(image_id=str(iid).strip())
    convs = rec["conversations"]
    if isinstance(convs, list) and convs and all(isinstance(c, dict) and "content" in c for c in convs):
        return [
            (
                f"[{i}].conversations[{k}]",
                {"id": f"svit-{iid}-{k}", "image": image, "conversations": c["content"]},
                "",
            )
            for k, c in enumerate(convs)
        ]
    return [(f"[{i}]", {"id": f"svit-{iid}", "image": image, "conversations": convs}, "")]
