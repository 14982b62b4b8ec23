"""Mixture recipes: YAML files validated by pydantic, with errors that name the file and the field.

A recipe says where the data comes from (`inputs`), how much of each source/task to take (`caps`),
what to do to it (`steps`, in order), and how to mix what is left (`mixture`). String values may
use `${name}` variables: defaults come from the recipe's `variables:` block, the caller (CLI) can
override them; relative paths written in a recipe file are resolved against its folder, `--var`
values (and a bundled recipe's paths) against the working directory.

    name: my-mix
    seed: 0
    variables: {data: ./data}
    inputs:
      - name: vflan                 # the source name used in counts, caps and weights
        kind: vision_flan           # instances | llava | vision_flan (LLaVA JSON + task_name)
        path: ${data}/annotation_191-task_1k.json
        image_root: ${data}/images  # optional; needed by missing_image / image dedup / image hashes
        allow_absolute_images: false  # absolute / `..` image paths are refused (ledgered) unless true
        task: null                  # llava: task name for records without task_name
        category: null              # category for counts when an instance has none in meta
        cap: null                   # per-source cap (random sample)
    caps: {per_task: 10000, tasks: {some_task: 500}}
    steps:
      - {type: filter, checks: [empty_reply, source_mention]}
      - {type: dedup_exact}
      - {type: dedup_minhash, threshold: 0.7, num_perm: 128, shingle: 5}
      - {type: dedup_image, max_distance: 4}
      - {type: decontaminate, benchmarks: ["pope=${bench}/pope", "${more_benchmarks}"], phash_distance: 4}
      - {type: balance_yes_no, yes_ratio: 0.5}
      - {type: select, method: random, size: 1000}
    mixture: {by: source, temperature: 2.0, target_size: 100000}   # or weights: {vflan: 1.0}
    output: {llava_json: true, with_task: true, shuffle: false}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vitune.utils.config import ConfigError, fill_variables, read_yaml, validate


class RecipeError(ConfigError):
    """A recipe that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["instances", "llava", "vision_flan"]
    path: str
    image_root: str | None = None
    # The one path rule refuses absolute image paths; a source that really has them opts in here.
    allow_absolute_images: bool = False
    task: str | None = None
    category: str | None = None
    cap: int | None = Field(default=None, ge=0)


class Caps(_Strict):
    per_task: int | None = Field(default=None, ge=0)
    per_source: int | None = Field(default=None, ge=0)
    tasks: dict[str, int] = Field(default_factory=dict)


class FilterStep(_Strict):
    type: Literal["filter"]
    name: str | None = None
    checks: list[
        Literal[
            "empty_reply",
            "long_reply",
            "generation_error",
            "source_mention",
            "answer_leak",
            "invalid_box",
            "missing_image",
        ]
    ] = Field(
        default_factory=lambda: [
            "empty_reply",
            "long_reply",
            "generation_error",
            "source_mention",
            "invalid_box",
        ]
    )
    max_reply_words: int = Field(default=1024, gt=0)
    leak_min_chars: int = Field(default=3, ge=1)
    source_patterns: list[str] | None = None
    error_patterns: list[str] | None = None

    @field_validator("source_patterns", "error_patterns")
    @classmethod
    def _regex(cls, v: list[str] | None) -> list[str] | None:
        for p in v or []:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"invalid regular expression {p!r}: {e}") from e
        return v


class DedupExactStep(_Strict):
    type: Literal["dedup_exact"]
    name: str | None = None
    use_image: bool = True
    keep: Literal["first", "longest"] = "first"


class DedupMinhashStep(_Strict):
    type: Literal["dedup_minhash"]
    name: str | None = None
    threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    num_perm: int = Field(default=128, ge=16, le=1024)
    shingle: int = Field(default=5, ge=1, le=32)
    fields: Literal["all", "user", "assistant"] = "all"
    scope: Literal["image", "global"] = "image"
    keep: Literal["first", "longest"] = "first"
    workers: int = Field(default=2, ge=1)


class DedupImageStep(_Strict):
    type: Literal["dedup_image"]
    name: str | None = None
    max_distance: int = Field(default=4, ge=0, le=20)
    hash_size: int = Field(default=8, ge=4, le=8)
    per: Literal["image", "image_task", "image_text"] = "image_text"
    keep: Literal["first", "longest"] = "first"


class DecontaminateStep(_Strict):
    """Remove samples on benchmark images (or, `match: question`, asking benchmark questions on
    them); `benchmarks` are `NAME=PATH` as for `vitune eval --bench`, comma-separated allowed, empty
    entries (an unset variable) ignored. See curate/decontam.py."""

    type: Literal["decontaminate"]
    name: str | None = None
    benchmarks: list[str] = Field(default_factory=list)
    match: Literal["image", "question"] = "image"
    phash_distance: int | None = Field(default=4, ge=0, le=20)
    overlap: float = Field(default=0.8, gt=0.0, le=1.0)
    ngram: int = Field(default=3, ge=1, le=8)


class BalanceYesNoStep(_Strict):
    type: Literal["balance_yes_no"]
    name: str | None = None
    yes_ratio: float = Field(default=0.5, gt=0.0, lt=1.0)
    by_task: bool = False


class SelectStep(_Strict):
    type: Literal["select"]
    name: str | None = None
    method: Literal["random", "informative", "diversity"] = "random"
    size: int | None = Field(default=None, ge=0)
    fraction: float | None = Field(default=None, gt=0.0, le=1.0)
    # informative
    vocabulary: list[str] = Field(default_factory=list)
    vocabulary_files: list[str] = Field(default_factory=list)
    vocabulary_min_count: int = Field(default=1, ge=1)
    vocabulary_max_size: int | None = Field(default=None, ge=1)
    # diversity
    algorithm: Literal["cluster", "kcenter"] = "cluster"
    clusters: int | None = Field(default=None, ge=1)
    embedding_model: str | None = None
    embedding_dim: int = Field(default=128, ge=8, le=4096)

    @model_validator(mode="after")
    def _size(self) -> SelectStep:
        if (self.size is None) == (self.fraction is None):
            raise ValueError("give exactly one of 'size' or 'fraction'")
        if self.method == "informative" and not (self.vocabulary or self.vocabulary_files):
            raise ValueError("method 'informative' needs 'vocabulary' or 'vocabulary_files'")
        return self


class MixStep(_Strict):
    """Caps and mixture inside the step list (the top-level `caps`/`mixture` are the usual places)."""

    type: Literal["mix"]
    name: str | None = None
    by: Literal["source", "task", "category"] = "source"
    cap: int | None = Field(default=None, ge=0)
    weights: dict[str, float] | None = None
    temperature: float | None = Field(default=None, gt=0.0)
    target_size: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> MixStep:
        if self.weights is not None and self.temperature is not None:
            raise ValueError("give 'weights' or 'temperature', not both")
        for k, w in (self.weights or {}).items():
            if w < 0:
                raise ValueError(f"weight of {k!r} is negative")
        return self


Step = Annotated[
    FilterStep
    | DedupExactStep
    | DedupMinhashStep
    | DedupImageStep
    | DecontaminateStep
    | BalanceYesNoStep
    | SelectStep
    | MixStep,
    Field(discriminator="type"),
]


class Mixture(_Strict):
    by: Literal["source", "task", "category"] = "source"
    weights: dict[str, float] | None = None
    temperature: float | None = Field(default=None, gt=0.0)
    target_size: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> Mixture:
        if self.weights is not None and self.temperature is not None:
            raise ValueError("give 'weights' or 'temperature', not both")
        if self.weights is None and self.temperature is None and self.target_size is None:
            raise ValueError("give 'weights', 'temperature' or 'target_size'")
        return self


class Output(_Strict):
    llava_json: bool = True
    with_task: bool = True
    shuffle: bool = False
    shard_size: int = Field(default=50_000, ge=1)


class Recipe(_Strict):
    name: str
    description: str = ""
    seed: int = 0
    variables: dict[str, str | None] = Field(default_factory=dict)
    inputs: list[InputSpec] = Field(min_length=1)
    caps: Caps = Field(default_factory=Caps)
    steps: list[Step] = Field(default_factory=list)
    mixture: Mixture | None = None
    output: Output = Field(default_factory=Output)

    @model_validator(mode="after")
    def _names(self) -> Recipe:
        names = [i.name for i in self.inputs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"input names must be unique, repeated: {dup}")
        if self.mixture and self.mixture.by == "source" and self.mixture.weights:
            unknown = sorted(set(self.mixture.weights) - set(names))
            if unknown:
                raise ValueError(f"mixture.weights names unknown sources {unknown}; inputs are {names}")
        return self

    def step_names(self) -> list[str]:
        return [s.name or f"{k + 1:02d}-{s.type}" for k, s in enumerate(self.steps)]


def parse_recipe(
    data: Any, source: str = "<recipe>", variables: dict[str, str] | None = None, base_dir: Path | None = None
) -> Recipe:
    """Validate a recipe mapping; `${var}` filled from `variables` over the recipe's defaults."""
    filled = fill_variables(data, source, variables, RecipeError)
    recipe = validate(Recipe, filled, source, "recipe", RecipeError)
    if base_dir is not None:
        for inp in recipe.inputs:
            inp.path = str(base_dir / inp.path) if not Path(inp.path).is_absolute() else inp.path
            if inp.image_root is not None and not Path(inp.image_root).is_absolute():
                inp.image_root = str(base_dir / inp.image_root)
        for st in recipe.steps:
            if isinstance(st, SelectStep):
                st.vocabulary_files = [
                    f if Path(f).is_absolute() else str(base_dir / f) for f in st.vocabulary_files
                ]
    return recipe


def load_recipe(path: str | Path, variables: dict[str, str] | None = None) -> Recipe:
    """Read and validate a YAML recipe file (or a bundled recipe's name); errors name the file and
    the field. A file's literal relative paths are relative to its folder; a bundled recipe's (and
    every `--var` value's) to the working directory, never to the package's recipe folder."""
    bundled = bundled_recipes()
    if str(path) in bundled or Path(path).parent == _BUNDLED:
        file, base = bundled.get(str(path), Path(path)), Path.cwd()
    else:
        file = Path(path)
        base = file.parent
    return parse_recipe(read_yaml(file, RecipeError), str(file), variables, base_dir=base)


_BUNDLED = Path(__file__).parent / "recipes"


def bundled_recipes() -> dict[str, Path]:
    """The example recipes shipped in `vitune/curate/recipes/`, by file stem."""
    return {p.stem: p for p in sorted(_BUNDLED.glob("*.yaml"))}
