"""Training recipes: a model and an ordered list of stages, in one YAML file validated by pydantic.

    name: vision-flan-two-stage
    variables: {data: ./data, images: ./images}
    model:
      vision_tower: openai/clip-vit-large-patch14-336   # or `preset: tiny128` (from scratch),
      llm: lmsys/vicuna-7b-v1.5                        # or `checkpoint: path/to/llava`
      projector: mlp2x_gelu
      feature_layer: -2
      select_strategy: default
    stages:
      - name: stage1
        data: [{path: ${data}/vflan, image_root: ${images}}]   # instance sets or LLaVA JSON files
        template: vicuna_v1
        train: {vision: frozen, projector: full, llm: full}   # full | frozen | lora
        lr: 2.0e-5
        epochs: 1
        global_batch: 128
        per_device_batch: 16          # gradient accumulation = global / (per_device * processes)
        max_length: 2048

A stage of `kind: dense_vision` pretrains a from-scratch vision tower on patch labels taken from
object annotations (train/dense.py), the miniature stand-in for a pretrained CLIP; its `records`
name an embedded world or a sources file instead of instance sets.

Every stage's data, modules and schedule are explicit: nothing is inherited silently from the stage
before except the weights.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vitune.data.paths import check_model_source
from vitune.sources.inputs import SourcesInput
from vitune.utils.config import ConfigError, fill_variables, read_yaml, resolve_path, validate

Mode = Literal["full", "frozen", "lora"]


class RecipeError(ConfigError):
    """A training recipe that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """Where the weights come from: a tiny preset, pretrained parts, or a LLaVA checkpoint."""

    preset: str | None = None
    vision_tower: str | None = None
    llm: str | None = None
    checkpoint: str | None = None
    projector: Literal["mlp2x_gelu", "linear"] = "mlp2x_gelu"
    image_size: int | None = Field(default=None, ge=16)
    feature_layer: int | None = None  # None: the preset's, or -2 (LLaVA) for pretrained parts
    select_strategy: Literal["default", "full"] = "default"
    # "dataset": normalize pixels with the training images' statistics (a from-scratch tower only).
    pixel_norm: Literal["clip", "dataset"] = "clip"
    vocab_size: int = Field(default=2000, ge=300)  # the BPE tokenizer trained for a preset
    seed: int = 0

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        parts = self.vision_tower is not None or self.llm is not None
        chosen = [self.preset is not None, parts, self.checkpoint is not None]
        if sum(chosen) != 1:
            raise ValueError("set exactly one of: preset, (vision_tower + llm), checkpoint")
        if parts and (self.vision_tower is None or self.llm is None):
            raise ValueError("pretrained parts need both vision_tower and llm")
        if self.pixel_norm == "dataset" and self.preset is None:
            raise ValueError("pixel_norm: dataset is only for a from-scratch preset tower")
        return self


class DataSpec(_Strict):
    """An instance set folder (Parquet + manifest) or a LLaVA / Vision-Flan JSON file."""

    path: str
    image_root: str | None = None
    tasks: list[str] | None = None  # keep only these tasks
    limit: int | None = Field(default=None, ge=1)  # a seeded sample of at most this many


class RecordsSpec(SourcesInput):
    """Annotated images for a dense_vision stage, read like `vitune build` reads them
    (`sources/inputs.py`): `world` (+ `world_formats`), `sources` or `source` + `image_root`."""

    split: str | None = "train"


class LoraSpec(_Strict):
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


class Modules(_Strict):
    vision: Mode = "frozen"
    projector: Mode = "full"
    llm: Mode = "full"

    @model_validator(mode="after")
    def _projector(self) -> Modules:
        if self.projector == "lora":
            raise ValueError("the projector trains fully or is frozen (LLaVA never LoRA-adapts it)")
        return self


class StageSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["instruct", "dense_vision"] = "instruct"
    data: list[DataSpec] = Field(default_factory=list)
    records: RecordsSpec | None = None
    template: Literal["vicuna_v1", "plain", "chatml"] = "vicuna_v1"
    train: Modules = Field(default_factory=Modules)
    lora: LoraSpec | None = None
    lr: float = Field(default=2e-5, gt=0)
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    time_budget_s: float | None = Field(default=None, gt=0)
    global_batch: int = Field(default=16, ge=1)
    per_device_batch: int = Field(default=16, ge=1)
    max_length: int = Field(default=2048, ge=16)
    seed: int = 0
    group_by_length: bool = False
    packing: bool = False
    # FSDP runs the vision tower on every process or on none in each micro-step, so with text-only
    # samples in the data the plan keeps each micro-step's micro-batches (one per process) to one
    # modality. None: aligned for the process count under FSDP, unconstrained otherwise (the plan
    # of 1 process and DDP stays as it was); N: aligned for N processes whatever the launch, e.g. to
    # train 1 process on exactly the batches of an N-process FSDP run.
    modality_aligned_processes: int | None = Field(default=None, ge=1)
    gradient_checkpointing: bool = False
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on a GPU that has it
    save_every: int | None = Field(default=None, ge=1)  # optimizer steps between resumable checkpoints
    log_every: int = Field(default=10, ge=1)
    tensorboard: bool = False  # TensorBoard scalars under stages/<name>/tensorboard (needs `tensorboard`)
    # DataLoader worker processes per training process (decode -> pad -> image processor -> collate
    # ahead of the step); None: min(8, cores - 1). Batches and losses do not depend on it.
    num_workers: int | None = Field(default=None, ge=0)
    # A bounded LRU of preprocessed images in MB (per process); 0: none, memory flat in the number of
    # distinct images. The tiny CPU recipes, which revisit a few thousand small images, turn it on.
    pixel_cache_mb: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _data(self) -> StageSpec:
        if self.kind == "instruct" and not self.data:
            raise ValueError(f"stage {self.name!r}: an instruct stage needs data")
        if self.kind == "dense_vision":
            if self.records is None:
                raise ValueError(f"stage {self.name!r}: a dense_vision stage needs records")
            if self.train.vision != "full":
                raise ValueError(f"stage {self.name!r}: a dense_vision stage trains the vision tower fully")
        if self.global_batch % self.per_device_batch:
            raise ValueError(
                f"stage {self.name!r}: global_batch {self.global_batch} is not a multiple of "
                f"per_device_batch {self.per_device_batch}"
            )
        n = self.modality_aligned_processes
        if n is not None and (self.global_batch // self.per_device_batch) % n:
            raise ValueError(
                f"stage {self.name!r}: modality_aligned_processes {n} must divide the "
                f"{self.global_batch // self.per_device_batch} micro-batches of an optimizer step"
            )
        if "lora" in (self.train.vision, self.train.llm) and self.lora is None:
            self.lora = LoraSpec()
        return self

    def loader_workers(self) -> int:
        """`num_workers`, or the default: one per core but one (the training loop's), at most 8."""
        if self.num_workers is not None:
            return self.num_workers
        from vitune.train.prepare import available_cores

        return max(0, min(8, available_cores() - 1))

    def grad_accum(self, processes: int = 1) -> int:
        per_step = self.per_device_batch * processes
        if self.global_batch % per_step:
            raise RecipeError(
                f"stage {self.name!r}: global_batch {self.global_batch} is not divisible by "
                f"per_device_batch {self.per_device_batch} x {processes} processes"
            )
        return self.global_batch // per_step


class Recipe(_Strict):
    name: str
    description: str = ""
    variables: dict[str, str | None] = Field(default_factory=dict)
    model: ModelSpec
    stages: list[StageSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Recipe:
        names = [s.name for s in self.stages]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate stage names: {dup}")
        if self.model.preset is None and any(s.kind == "dense_vision" for s in self.stages):
            raise ValueError("dense_vision stages are for from-scratch preset towers only")
        return self

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise RecipeError(
            f"recipe {self.name!r} has no stage {name!r}; stages: {[s.name for s in self.stages]}"
        )


def parse_recipe(
    data: object,
    source: str = "<recipe>",
    variables: dict[str, str] | None = None,
    base_dir: Path | None = None,
) -> Recipe:
    """Validate a recipe mapping; relative data paths are resolved against `base_dir`."""
    filled = fill_variables(data, source, variables, RecipeError)
    recipe = validate(Recipe, filled, source, "training recipe", RecipeError)
    m = recipe.model
    for attr in ("vision_tower", "llm", "checkpoint"):
        value = getattr(m, attr)
        # Hugging Face ids ("org/name") stay as they are; local paths are made absolute.
        if value is not None and base_dir is not None and (base_dir / value).exists():
            setattr(m, attr, resolve_path(value, base_dir))
        elif value is not None and (reason := check_model_source(value, f"model.{attr}")):
            raise RecipeError(f"{source}: {reason}")  # before any stage starts, not a hub 404 later
    for st in recipe.stages:
        for d in st.data:
            d.path = resolve_path(d.path, base_dir)
            if d.image_root is not None:
                d.image_root = resolve_path(d.image_root, base_dir)
        if st.records is not None:
            for attr in ("world", "sources", "image_root"):
                if (value := getattr(st.records, attr)) is not None:
                    setattr(st.records, attr, Path(resolve_path(str(value), base_dir)))
    return recipe


def load_recipe(
    path: str | Path, variables: dict[str, str] | None = None, sets: Sequence[str] = ()
) -> Recipe:
    """Read and validate a YAML training recipe: a bundled name (relative paths are then relative
    to the working directory) or a file (relative paths are relative to its folder).

    `sets` are `--set PATH=VALUE` overrides applied to the file's mapping before validation, so an
    override is checked exactly as the same value written in the file."""
    bundled = bundled_recipes()
    if str(path) in bundled:
        # A bundled recipe's relative paths (from --var) mean the user's working directory.
        file, base = bundled[str(path)], Path.cwd()
    else:
        file = Path(path)
        base = file.parent
    data = read_yaml(file, RecipeError)
    if not sets:
        return parse_recipe(data, str(file), variables, base_dir=base)
    data = apply_sets(data, sets, str(file))
    try:
        return parse_recipe(data, str(file), variables, base_dir=base)
    except RecipeError as e:
        raise RecipeError(f"{e}\n  (with --set {' --set '.join(sets)})") from None


def apply_sets(data: object, sets: Sequence[str], source: str = "<recipe>") -> dict[str, Any]:
    """A copy of the recipe mapping with each `stages.NAME.FIELD=VALUE` / `model.FIELD=VALUE` set.

    VALUE is read as YAML (`2e-5`, `true`, `null`, `[a, b]`, `{vision: frozen}`); FIELD may go
    deeper (`stages.s1.train.llm=lora`). An unknown stage or field is an error naming it; the values
    are validated afterwards with the whole recipe."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: expected a mapping, got {type(data).__name__}")
    out = copy.deepcopy(data)
    for item in sets:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise RecipeError(f"--set {item!r}: expected stages.NAME.FIELD=VALUE or model.FIELD=VALUE")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise RecipeError(f"--set {path}: value {raw!r} is not valid YAML ({e})") from None
        target, fields, schema = _set_target(out, path.split("."), path)
        _check_fields(schema, fields, path)
        for key in fields[:-1]:
            node = target.get(key)
            if node is None:
                node = target[key] = {}
            if not isinstance(node, dict):
                raise RecipeError(f"--set {path}: {key!r} is not a mapping in {source}")
            target = node
        target[fields[-1]] = value
    return out


def _set_target(data: dict, keys: list[str], path: str) -> tuple[dict, list[str], type[BaseModel]]:
    if keys[0] == "model" and len(keys) >= 2:
        model = data.setdefault("model", {})
        if not isinstance(model, dict):
            raise RecipeError(f"--set {path}: the recipe's model is not a mapping")
        return model, keys[1:], ModelSpec
    if keys[0] == "stages" and len(keys) >= 3:
        stages = [s for s in data.get("stages") or [] if isinstance(s, dict)]
        found = [s for s in stages if s.get("name") == keys[1]]
        if not found:
            names = [s.get("name") for s in stages]
            raise RecipeError(f"--set {path}: no stage {keys[1]!r}; stages: {names}")
        return found[0], keys[2:], StageSpec
    raise RecipeError(f"--set {path}: expected stages.NAME.FIELD or model.FIELD")


def _check_fields(schema: type[BaseModel], fields: list[str], path: str) -> None:
    """Each level of `fields` must be a field of the (nested) pydantic model."""
    for k, name in enumerate(fields):
        if name not in schema.model_fields:
            raise RecipeError(f"--set {path}: unknown field {name!r}; fields: {sorted(schema.model_fields)}")
        if k == len(fields) - 1:
            return
        annotation = schema.model_fields[name].annotation
        inner = [
            a for a in (*get_args(annotation), annotation) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not inner:
            raise RecipeError(f"--set {path}: {name!r} has no sub-fields")
        schema = inner[0]


def adjust_stages(recipe: Recipe, update: dict[str, Any] | None = None, time_scale: float = 1.0) -> Recipe:
    """The recipe with `update` (e.g. `{"max_steps": 20}`) set on every stage and every stage's budget
    scaled by `time_scale`: its step count (what ends a stage, so a run is the same on any machine)
    and any time budget. `--max-steps` / `--time-scale` of `vitune train` and of the quickstart. The
    stages are validated again (a RecipeError names the field)."""
    stages = []
    update = update or {}
    for st in recipe.stages:
        fields = {**st.model_dump(), **update}
        if st.max_steps is not None and "max_steps" not in update and time_scale != 1.0:
            fields["max_steps"] = max(1, round(st.max_steps * time_scale))
        if st.time_budget_s is not None and "time_budget_s" not in update:
            fields["time_budget_s"] = st.time_budget_s * time_scale
        stages.append(validate(StageSpec, fields, f"stage {st.name!r}", "stage override", RecipeError))
    return recipe.model_copy(update={"stages": stages})


def bundled_recipes() -> dict[str, Path]:
    """The recipes shipped in `vitune/train/recipes/`, by file stem."""
    folder = Path(__file__).parent / "recipes"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def missing_inputs(recipe: Recipe, only_stage: str | None = None) -> list[str]:
    """ "path: why" for every data file, image folder or world a (or every) stage reads that does not
    exist: checked before any model is built, so a typo costs nothing."""
    out = []
    for st in recipe.stages:
        if only_stage is not None and st.name != only_stage:
            continue
        for d in st.data:
            if not Path(d.path).exists():
                out.append(f"{d.path}: stage {st.name}: data not found")
            if d.image_root and not Path(d.image_root).is_dir():
                out.append(f"{d.image_root}: stage {st.name}: image folder not found")
        if st.records is not None:
            r = st.records
            if r.world is not None and not r.world.is_dir():
                out.append(f"{r.world}: stage {st.name}: world folder not found")
            if r.sources is not None and not r.sources.is_file():
                out.append(f"{r.sources}: stage {st.name}: sources file not found")
            if r.image_root is not None and not r.image_root.is_dir():
                out.append(f"{r.image_root}: stage {st.name}: image folder not found")
    return out
