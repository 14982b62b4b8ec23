"""Task definitions and the registry: a catalog entry (texts) joined with a builder (code).

A builder reads one `ImageRecord` (plus a `BuildContext` of dataset-wide facts) and returns zero or more `Sample`s: the fields that fill the
task's input and output templates. Texts stay in `catalog.yaml`; code never hard-codes an
instruction, so a reviewer reads every instruction in one file.

To add a task: add an entry to `catalog.yaml` and a function decorated with `@builder("name")`
in `builders.py` (or any imported module).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from vitune.data.records import ImageRecord


@dataclass(slots=True)
class Sample:
    """Template fields extracted from one image for one task, plus metadata kept on the instance.

    A multi-turn sample (LLaVA groups all questions of an image into one conversation) sets `turns`:
    one field dict per user/assistant exchange, each rendered with the same templates.
    """

    fields: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    turns: list[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Dataset-level facts a builder may need, e.g. category names to draw negatives from."""

    object_names: tuple[str, ...] = ()


Builder = Callable[[ImageRecord, random.Random, BuildContext], list[Sample]]
_BUILDERS: dict[str, Builder] = {}


def builder(name: str) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"task builder {name!r} registered twice")
        _BUILDERS[name] = fn
        return fn

    return register


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    category: str
    source: str
    instruction: str
    output: str
    input: str = ""
    prompt: str = "{instruction}\n\n{input}"
    paraphrases: tuple[str, ...] = ()

    def render(
        self, sample: Sample, rng: random.Random | None = None, *, paraphrase: bool = False
    ) -> list[tuple[str, str]]:
        """(user text, target text) per exchange: one for a single-turn sample, several for a dialog."""
        instruction = self.instruction
        if paraphrase and self.paraphrases and rng is not None:
            instruction = rng.choice((self.instruction, *self.paraphrases))
        out = []
        for fields in sample.turns or [sample.fields]:
            text_in = self.input.format(**fields) if self.input else ""
            prompt = self.prompt.format(instruction=instruction, input=text_in).strip()
            out.append((prompt, self.output.format(**fields)))
        return out


@dataclass(frozen=True, slots=True)
class Task:
    spec: TaskSpec
    build: Builder

    @property
    def name(self) -> str:
        return self.spec.name


def _parse_catalog(data: dict[str, Any], origin: str) -> dict[str, TaskSpec]:
    specs: dict[str, TaskSpec] = {}
    required = ("category", "source", "instruction", "output")
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{origin}: task {name!r}: expected a mapping")
        missing = [k for k in required if k not in entry]
        if missing:
            raise ValueError(f"{origin}: task {name!r}: missing {', '.join(missing)}")
        unknown = set(entry) - {*required, "input", "prompt", "paraphrases"}
        if unknown:
            raise ValueError(f"{origin}: task {name!r}: unknown keys {sorted(unknown)}")
        specs[name] = TaskSpec(
            name=name,
            category=str(entry["category"]),
            source=str(entry["source"]),
            instruction=str(entry["instruction"]).strip(),
            output=str(entry["output"]),
            input=str(entry.get("input", "")),
            prompt=str(entry.get("prompt", "{instruction}\n\n{input}")),
            paraphrases=tuple(entry.get("paraphrases", ())),
        )
    return specs


@cache
def registry() -> dict[str, Task]:
    """All tasks that have both a catalog entry and a builder, by name."""
    from vitune.tasks import builders  # noqa: F401  (registers the built-in builders)

    text = resources.files("vitune.tasks").joinpath("catalog.yaml").read_text(encoding="utf-8")
    specs = _parse_catalog(yaml.safe_load(text), "vitune/tasks/catalog.yaml")
    missing = sorted(set(specs) - set(_BUILDERS))
    if missing:
        raise RuntimeError(f"catalog tasks without a builder: {missing}")
    return {name: Task(spec, _BUILDERS[name]) for name, spec in specs.items()}


def get_task(name: str) -> Task:
    tasks = registry()
    if name not in tasks:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(tasks))}")
    return tasks[name]
