"""Task definitions and the registry: a catalog entry (texts) joined with a builder (code).

A builder reads one `ImageRecord` (plus a `BuildContext` of dataset-wide facts) and returns zero or
more `Sample`s: the fields that fill the task's input and output templates. Texts stay in
`catalog.yaml`; code never hard-codes an instruction, so a reviewer reads every instruction in one
file. A catalog entry may also declare multiple-choice `options` (how many, where the wrong ones
come from) and instruction `paraphrases`; `options.py` applies both to the builder's samples.

To add a task: add an entry to `catalog.yaml` and a function decorated with `@builder("name")` in
a module of `tasks/builders/` (imported by that package's `__init__`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from vitune.data.records import ImageRecord
from vitune.tasks.options import NEGATIVE_SOURCES, finish
from vitune.tasks.pools import POOLS, Pool, build_pools


@dataclass(slots=True)
class Sample:
    """Template fields extracted from one image for one task, plus metadata kept on the instance.

    A multi-turn sample (LLaVA groups all questions of an image into one conversation) sets `turns`:
    one field dict per user/assistant exchange, each rendered with the same templates.

    For a multiple-choice task `fields["answer"]` is the correct option; `exclude` lists values
    that must never be offered as wrong options (e.g. every category present in the image),
    `accept` (when set) must hold for every wrong option drawn, `choices` are the options a source
    gives (ScienceQA; catalog `negatives: given`), `group` selects a pool group (VQAv2's question
    type). `instruction` is set by the engine when paraphrases are on.
    """

    fields: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    turns: list[dict[str, Any]] | None = None
    exclude: frozenset[str] = frozenset()
    accept: Callable[[str], bool] | None = None
    choices: list[str] | None = None
    group: str = ""
    instruction: str | None = None


@dataclass(frozen=True, eq=False)
class BuildContext:
    """Dataset-level facts a builder may need: category names, and pools to draw negatives from.

    `records` are all the records of the build (pools are computed from them on first use and
    cached); `paraphrase` turns on the catalog's instruction paraphrases.
    """

    object_names: tuple[str, ...] = ()
    records: tuple[ImageRecord, ...] = ()
    paraphrase: bool = False
    _pools: dict[str, dict[str, Pool]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_records(cls, records: Iterable[ImageRecord], *, paraphrase: bool = False) -> BuildContext:
        recs = tuple(records)
        names = tuple(sorted({o.name for r in recs for o in r.objects}))
        return cls(object_names=names, records=recs, paraphrase=paraphrase)

    def pool(self, name: str, group: str = "") -> Pool | None:
        """The pool `name` (a key of `pools.POOLS`) restricted to `group`; None when it is empty."""
        if name not in self._pools:
            self._pools[name] = build_pools(name, self.records)
        return self._pools[name].get(group)


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
class OptionSpec:
    """A multiple-choice task's options, as declared under `options:` in the catalog.

    `count`: options shown, the answer included (for `given`, at most this many; all when None).
    `negatives`: `other_images` (values of other images, drawn from `pool`), `other_classes` (any
    other value of `pool`'s vocabulary or of `classes`), `given` (the source's own choices).
    `shuffle`: seeded option order (`given` may keep the source's order).
    """

    negatives: str
    count: int | None = None
    pool: str = ""
    classes: tuple[str, ...] = ()
    shuffle: bool = True


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
    options: OptionSpec | None = None

    def render(
        self, sample: Sample, rng: random.Random | None = None, *, paraphrase: bool = False
    ) -> list[tuple[str, str]]:
        """(user text, target text) per exchange: one for a single-turn sample, several for a dialog."""
        instruction = sample.instruction or self.instruction
        if paraphrase and self.paraphrases and rng is not None and sample.instruction is None:
            instruction = rng.choice((self.instruction, *self.paraphrases))
        out = []
        for fields in sample.turns or [sample.fields]:
            text_in = self.input.format(**fields) if self.input else ""
            prompt = self.prompt.format(instruction=instruction, input=text_in).strip()
            out.append((prompt, self.output.format(**fields)))
        return out


@dataclass(frozen=True, slots=True)
class TaskBuilder:
    """A builder finished by the engine (options, paraphrases); a picklable callable, like a builder."""

    spec: TaskSpec
    fn: Builder

    def __call__(self, record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
        samples = self.fn(record, rng, ctx)
        if self.spec.options is None and not (ctx.paraphrase and self.spec.paraphrases):
            return samples
        return finish(self.spec, samples, record, rng, ctx)


@dataclass(frozen=True, slots=True)
class Task:
    spec: TaskSpec
    build: Builder

    @property
    def name(self) -> str:
        return self.spec.name


_KEYS = ("category", "source", "instruction", "output", "input", "prompt", "paraphrases", "options")
_OPTION_KEYS = ("count", "negatives", "pool", "classes", "shuffle")


def _parse_options(raw: Any, where: str) -> OptionSpec:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: 'options' must be a mapping")
    unknown = set(raw) - set(_OPTION_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown option keys {sorted(unknown)}")
    negatives = raw.get("negatives")
    if negatives not in NEGATIVE_SOURCES:
        raise ValueError(
            f"{where}: options.negatives must be one of {', '.join(NEGATIVE_SOURCES)}, got {negatives!r}"
        )
    count = raw.get("count")
    if count is not None and (type(count) is not int or count < 2):
        raise ValueError(f"{where}: options.count must be an integer of at least 2, got {count!r}")
    classes = raw.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
        raise ValueError(f"{where}: options.classes must be a list of strings")
    pool = str(raw.get("pool", ""))
    if negatives != "given":
        if count is None:
            raise ValueError(f"{where}: options.count is required for negatives {negatives}")
        if pool not in POOLS and not (negatives == "other_classes" and classes):
            raise ValueError(f"{where}: options.pool must be one of {', '.join(sorted(POOLS))}, got {pool!r}")
        if classes and negatives != "other_classes":
            raise ValueError(f"{where}: options.classes only apply to negatives other_classes")
    shuffle = raw.get("shuffle", True)
    if not isinstance(shuffle, bool):
        raise ValueError(f"{where}: options.shuffle must be true or false")
    return OptionSpec(negatives, count, pool, tuple(classes), shuffle)


def parse_task_entry(name: str, entry: Any, where: str) -> TaskSpec:
    """One task definition (a catalog entry, or a user's task file entry without its builder keys),
    validated with errors naming `where` and the field."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping")
    missing = [k for k in ("category", "source", "instruction", "output") if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    unknown = set(entry) - set(_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    paraphrases = entry.get("paraphrases", [])
    if not isinstance(paraphrases, list) or not all(isinstance(p, str) and p.strip() for p in paraphrases):
        raise ValueError(f"{where}: 'paraphrases' must be a list of non-empty strings")
    for key in ("category", "source", "instruction", "output", "input", "prompt"):
        if key in entry and not isinstance(entry[key], str):
            raise ValueError(f"{where}: {key!r} must be a string, got {type(entry[key]).__name__}")
    spec = TaskSpec(
        name=name,
        category=str(entry["category"]),
        source=str(entry["source"]),
        instruction=str(entry["instruction"]).strip(),
        output=str(entry["output"]),
        input=str(entry.get("input", "")),
        prompt=str(entry.get("prompt", "{instruction}\n\n{input}")),
        paraphrases=tuple(p.strip() for p in paraphrases),
        options=_parse_options(entry["options"], where) if "options" in entry else None,
    )
    if not spec.instruction:
        raise ValueError(f"{where}: 'instruction' is empty")
    if spec.instruction in spec.paraphrases:
        raise ValueError(f"{where}: a paraphrase repeats the instruction")
    if spec.options is not None:
        # The option list must reach the user and the answer must name an option.
        if "{options}" not in spec.input + spec.prompt:
            raise ValueError(f"{where}: a multiple-choice task must place {{options}} in its input or prompt")
        if "{choice}" not in spec.output and "{letter}" not in spec.output:
            raise ValueError(f"{where}: a multiple-choice output must use {{choice}} or {{letter}}")
    return spec


def _parse_catalog(data: dict[str, Any], origin: str) -> dict[str, TaskSpec]:
    return {name: parse_task_entry(name, entry, f"{origin}: task {name!r}") for name, entry in data.items()}


_USER_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task defined outside the package (a plugin, a user's tasks file) to `registry()`."""
    if task.name in _builtin_registry():
        raise ValueError(f"task {task.name!r} is a built-in task; choose another name")
    other = _USER_TASKS.get(task.name)
    if other is not None and other.spec != task.spec:
        raise ValueError(f"task {task.name!r} is already registered with another definition")
    _USER_TASKS[task.name] = task
    return task


def registry() -> dict[str, Task]:
    """All tasks by name: the built-in catalog's (each with its builder) and the registered ones."""
    from vitune.tasks.plugins import load_entry_point_plugins

    load_entry_point_plugins()
    return {**_builtin_registry(), **_USER_TASKS}


@cache
def _builtin_registry() -> dict[str, Task]:
    from vitune.tasks import builders  # noqa: F401  (registers the built-in builders)

    text = resources.files("vitune.tasks").joinpath("catalog.yaml").read_text(encoding="utf-8")
    specs = _parse_catalog(yaml.safe_load(text), "vitune/tasks/catalog.yaml")
    missing = sorted(set(specs) - set(_BUILDERS))
    if missing:
        raise RuntimeError(f"catalog tasks without a builder: {missing}")
    return {name: Task(spec, TaskBuilder(spec, _BUILDERS[name])) for name, spec in specs.items()}


def get_task(name: str) -> Task:
    tasks = registry()
    if name not in tasks:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(tasks))}")
    return tasks[name]
