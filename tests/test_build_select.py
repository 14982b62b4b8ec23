"""Task selection for `vitune build`: names, categories, tasks files, caps, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitune.tasks.select import SelectionError, categories, load_tasks_file, select_tasks
from vitune.tasks.spec import Task, TaskSpec


def _tasks() -> dict[str, Task]:
    def fn(record, rng, ctx):  # never called: selection does not run builders
        return []

    specs = [
        ("caption", "coarse-grained captioning"),
        ("count", "perception"),
        ("color", "perception"),
        ("dialog", "visual dialogue"),
        ("vqa", "perception"),
    ]
    return {n: Task(TaskSpec(n, c, "src", "Do it.", "{x}"), fn) for n, c in specs}


def test_categories_map_sorted() -> None:
    assert categories(_tasks()) == {
        "coarse-grained captioning": ["caption"],
        "perception": ["color", "count", "vqa"],
        "visual dialogue": ["dialog"],
    }


def test_selection_is_in_name_order_and_defaults_to_all() -> None:
    tasks = _tasks()
    assert select_tasks(cap=10, tasks=tasks).tasks == sorted(tasks)
    a = select_tasks(["vqa", "caption"], ["Visual  Dialogue"], cap=10, tasks=tasks)
    b = select_tasks(["caption"], ["visual dialogue"], cap=10, tasks=tasks)
    assert a.tasks == ["caption", "dialog", "vqa"] and b.tasks == ["caption", "dialog"]
    assert a.caps == dict.fromkeys(a.tasks, 10)
    # the same set asked for in another order or spelling selects the same list
    c = select_tasks(["count", "color", "vqa"], cap=10, tasks=tasks)
    assert c.tasks == select_tasks(cats=["perception"], cap=10, tasks=tasks).tasks
    assert c.asked == {"tasks": ["count", "color", "vqa"], "categories": []}


def test_tasks_file_entries_and_cap_precedence(tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text("- {category: perception, cap: 5}\n- {task: vqa, cap: 7}\n- caption\n- visual dialogue\n")
    sel = select_tasks(["count"], tasks_file=f, cap=100, tasks=_tasks())
    assert sel.tasks == ["caption", "color", "count", "dialog", "vqa"]
    # a task entry beats a category entry, which beats the default; a bare --task adds no cap
    assert sel.caps == {"caption": 100, "color": 5, "count": 5, "dialog": 100, "vqa": 7}
    assert sel.asked["tasks_file"] == str(f)
    assert load_tasks_file(f)[0] == {"category": "perception", "cap": 5}
    g = tmp_path / "g.yaml"
    g.write_text("tasks:\n  - count\n")
    assert select_tasks(tasks_file=g, cap=3, tasks=_tasks()).tasks == ["count"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- count\n- astrology\n",
            "'astrology' is neither a task nor a category; known tasks: caption, color",
        ),
        ("- {task: count, cap: 0}\n", "entry 0: cap must be a positive integer, got 0"),
        ("- {task: count, category: perception}\n", "entry 0: expected {task: NAME} or {category: CAT}"),
        ("- [count]\n", "entry 0: expected a string or a mapping, got list"),
        ("tasks: []\n", "expected a non-empty list"),
        ("other: [count]\n", "expected a list, or a mapping with only a 'tasks' list"),
        ("- {task: count, cap: 2}\n- {task: count, cap: 3}\n", "task 'count': conflicting caps 2 and 3"),
        ("- [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_tasks_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(SelectionError, match=None) as e:
        select_tasks(tasks_file=f, cap=10, tasks=_tasks())
    assert message in str(e.value) and (str(f) in str(e.value) or "conflicting" in message)


def test_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(SelectionError) as e:
        select_tasks(["nope"], cap=1, tasks=_tasks())
    assert str(e.value) == "unknown task 'nope'; known tasks: caption, color, count, dialog, vqa"
    with pytest.raises(SelectionError) as e:
        select_tasks(cats=["astrology"], cap=1, tasks=_tasks())
    assert str(e.value) == (
        "unknown category 'astrology'; known categories: coarse-grained captioning, perception, visual dialogue"
    )
    with pytest.raises(SelectionError, match="tasks file not found"):
        select_tasks(tasks_file=tmp_path / "missing.yaml", cap=1, tasks=_tasks())
