"""Which tasks a build runs, and each one's cap: by name, by Vision-Flan category, or from a YAML file.

A selection is the union of `--task NAME`, `--category CAT` and the entries of a tasks file; nothing
selected means every registered task. The result is in task-name order, whatever order the user
spelled it in, so `--category perception` and the same tasks listed by name build the same bytes.

Tasks file (YAML): a list, or a mapping with a `tasks:` list. Each entry is a task name or a
category (a string), or a mapping with exactly one of `task:` / `category:` and an optional `cap:`::

    tasks:
      - coarse-grained captioning        # a category: all its tasks
      - vqa_short_answer                 # a task
      - {task: object_counting, cap: 500}
      - {category: perception, cap: 2000}
      - name: my_task                    # a complete task definition (see tasks/user.py)
        category: perception
        instruction: What colour is the {name}?
        output: "{color}"
        fields: {unit: object, require: [color], unique: true}
        cap: 300

A definition is selected by being there; its name must not be a built-in task's.
Caps: an explicit task entry's cap beats a category entry's, which beats the build's default cap.
Two entries of the same kind giving one task different caps is an error. Unknown names or
categories are errors that list the known ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vitune.tasks.spec import Task, registry


class SelectionError(ValueError):
    """An unknown task or category, or a malformed tasks file."""


@dataclass(frozen=True)
class Selection:
    """The tasks to build (name order) with each task's cap, and how they were asked for."""

    tasks: list[str]
    caps: dict[str, int]
    asked: dict[str, Any] = field(default_factory=dict)
    defined: dict[str, Task] = field(default_factory=dict)  # tasks defined in the tasks file

    def resolved(self) -> list[str | Task]:
        """The selected tasks for `build_instances` / `build_to_dir`: names, or the defined tasks."""
        return [self.defined.get(n, n) for n in self.tasks]


def categories(tasks: Mapping[str, Task] | None = None) -> dict[str, list[str]]:
    """Category -> its task names (both sorted)."""
    tasks = registry() if tasks is None else tasks
    out: dict[str, list[str]] = {}
    for name in sorted(tasks):
        out.setdefault(tasks[name].spec.category, []).append(name)
    return dict(sorted(out.items()))


def _norm(category: str) -> str:
    return " ".join(category.lower().split())


def _unknown(kind: str, plural: str, value: str, known: Iterable[str]) -> SelectionError:
    return SelectionError(f"unknown {kind} {value!r}; known {plural}: {', '.join(known)}")


def _check_cap(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SelectionError(f"{where}: cap must be a positive integer, got {value!r}")
    return value


def load_tasks_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a tasks file as `{"task"|"category"|"name": str, "cap"?: int}` dicts."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SelectionError(f"{path}: tasks file not found") from None
    except yaml.YAMLError as e:
        raise SelectionError(f"{path}: invalid YAML: {e}") from None
    if isinstance(data, dict):
        extra = set(data) - {"tasks"}
        if extra or "tasks" not in data:
            raise SelectionError(f"{path}: expected a list, or a mapping with only a 'tasks' list")
        data = data["tasks"]
    if not isinstance(data, list) or not data:
        raise SelectionError(f"{path}: expected a non-empty list of task names / categories")
    out: list[dict[str, Any]] = []
    for i, entry in enumerate(data):
        where = f"{path}: entry {i}"
        if isinstance(entry, str):
            out.append({"name": entry})
        elif isinstance(entry, dict) and "instruction" in entry:
            from vitune.tasks.user import parse_user_task

            try:
                task, cap = parse_user_task(entry, where)
            except ValueError as e:
                raise SelectionError(str(e)) from None
            out.append({"define": task, **({"cap": cap} if cap is not None else {})})
        elif isinstance(entry, dict):
            kinds = [k for k in ("task", "category") if k in entry]
            extra = set(entry) - {"task", "category", "cap"}
            if len(kinds) != 1 or extra or not isinstance(entry[kinds[0]], str):
                raise SelectionError(
                    f"{where}: expected {{task: NAME}} or {{category: CAT}} with an optional cap, "
                    "or a task definition (name, category, instruction, output, fields)"
                )
            item: dict[str, Any] = {kinds[0]: entry[kinds[0]]}
            if "cap" in entry:
                item["cap"] = _check_cap(entry["cap"], where)
            out.append(item)
        else:
            raise SelectionError(f"{where}: expected a string or a mapping, got {type(entry).__name__}")
    return out


def select_tasks(
    names: Iterable[str] = (),
    cats: Iterable[str] = (),
    tasks_file: str | os.PathLike | None = None,
    *,
    cap: int,
    tasks: Mapping[str, Task] | None = None,
) -> Selection:
    """Resolve a selection against `tasks` (default: the registry); see the module docstring."""
    tasks = registry() if tasks is None else tasks
    entries: list[dict[str, Any]] = [{"task": n} for n in names] + [{"category": c} for c in cats]
    if tasks_file is not None:
        entries += load_tasks_file(tasks_file)
    defined: dict[str, Task] = {}
    for e in entries:
        if "define" in e:
            name = e["define"].name
            if name in tasks or name in defined:
                raise SelectionError(f"{tasks_file}: task {name!r} is defined twice (or is a built-in task)")
            defined[name] = e.pop("define")
            e["task"] = name
    tasks = {**tasks, **defined}
    by_cat = categories(tasks)
    norm_cat = {_norm(c): c for c in by_cat}
    chosen: set[str] = set()
    task_caps: dict[str, int] = {}
    cat_caps: dict[str, int] = {}

    def put(caps: dict[str, int], name: str, value: int | None, what: str) -> None:
        chosen.add(name)
        if value is None:
            return
        if caps.get(name, value) != value:
            raise SelectionError(f"task {name!r}: conflicting caps {caps[name]} and {value} ({what})")
        caps[name] = value

    for e in entries:
        if "name" in e:  # a bare string in a tasks file: a task first, else a category
            key = "task" if e["name"] in tasks else "category"
            if key == "category" and _norm(e["name"]) not in norm_cat:
                raise SelectionError(
                    f"{tasks_file}: {e['name']!r} is neither a task nor a category; "
                    f"known tasks: {', '.join(sorted(tasks))}; known categories: {', '.join(by_cat)}"
                )
            e = {key: e["name"], **({"cap": e["cap"]} if "cap" in e else {})}
        if "task" in e:
            if e["task"] not in tasks:
                raise _unknown("task", "tasks", e["task"], sorted(tasks))
            put(task_caps, e["task"], e.get("cap"), f"task {e['task']}")
        else:
            cat = norm_cat.get(_norm(e["category"]))
            if cat is None:
                raise _unknown("category", "categories", e["category"], by_cat)
            for name in by_cat[cat]:
                put(cat_caps, name, e.get("cap"), f"category {cat}")
    selected = sorted(chosen) if entries else sorted(tasks)
    caps = {n: task_caps.get(n, cat_caps.get(n, cap)) for n in selected}
    asked = {"tasks": list(names), "categories": list(cats)}
    if tasks_file is not None:
        asked["tasks_file"] = str(tasks_file)
    if defined:
        # The full definitions, so a manifest says what a user task was, not only its name.
        asked["defined"] = {
            n: {"spec": asdict(t.spec), "fields": asdict(t.build.fn)} for n, t in sorted(defined.items())
        }
    return Selection(selected, caps, asked, defined)
