"""A lab's work folder: the data every variant shares, the scale profiles and the recipes' parts.

    WORK/
      world/ data/ synth/     the embedded world, its task instances and synthesized chat (quickstart steps)
      bench/                  official-format world benchmarks of held-out images (or the --bench ones)
      pre/                    the pre-instruction run: stages before `stage1` (dense vision, projector
                              alignment on captions); its export is where every variant starts
      <analysis>/<variant>/   train/ (a recipe run) and eval/ (a cached benchmark run) per variant

Without `--base`, the recipe is built here: `vision` (dense patch supervision of the tiny tower),
`align` (projector only, captions, `plain` template: LLaVA's pretraining), then Vision-Flan's two
stages, `stage1` (projector + LLM on every task) and `stage2` (projector + LLM on synthesized chat,
lower lr). With `--base RECIPE`, the stages before the one named `stage1` are the pre-instruction
run, and `stage1` / `stage2` are the base recipe's own stages (their data are what the analyses vary).
A scale sets every budget as step counts (never wall-clock, so a variant is the same on any machine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune.train.recipe import DataSpec, ModelSpec, Recipe, RecordsSpec, StageSpec
from vitune.world.layout import WorldLayout

LAB_TASKS = [
    "object_color",
    "object_shape",
    "object_counting",
    "object_existence",
    "color_inventory",
    "object_inventory",
    "vqa_short_answer",
    "coco_caption_coarse",
]


@dataclass(frozen=True)
class Scale:
    """Budgets of one scale: world size, steps per stage, batch, what is evaluated."""

    images: int
    preset: str
    vision_steps: int
    align_steps: int
    stage1_steps: int
    stage2_steps: int
    batch: int
    task_budget: int  # instances of the `tasks` analysis, whatever the number of tasks
    synth_images: int
    bench_images: int
    benchmarks: tuple[str, ...] = ("vqav2", "pope")
    max_new_tokens: int = 12


SCALES = {
    # About 3 minutes per analysis on 2 CPU cores: the tests run every analysis at this scale.
    "micro": Scale(48, "micro", 12, 6, 10, 6, 8, 160, 12, 6, ("vqav2", "pope"), 8),
    # About 15 minutes per analysis on 2 CPU cores: the README's figures.
    "small": Scale(800, "tiny128", 400, 60, 300, 40, 16, 2400, 120, 40, ("vqav2", "pope", "mme")),
}


@dataclass
class LabConfig:
    work: Path
    scale: str = "micro"  # micro | small | full (the base recipe's own budgets)
    base: str | None = None  # a training recipe (name or file); None: the lab's own on a world
    benches: list[str] = field(default_factory=list)  # NAME=PATH; none: the world's benchmarks
    variables: dict[str, str] = field(default_factory=dict)  # --var for a base recipe
    seed: int = 0
    batch_size: int = 8  # generation batch of the evaluations

    @property
    def profile(self) -> Scale:
        return SCALES["small" if self.scale == "full" else self.scale]


def _stage(name: str, data: list[DataSpec], s: Scale, steps: int, **kw: Any) -> StageSpec:
    # Tiny images on the CPU: decode on the training thread, every image cached (as the tiny recipes).
    kw = {"max_length": 256, "log_every": 1, "seed": 0, "num_workers": 0, "pixel_cache_mb": 256, **kw}
    return StageSpec(
        name=name, data=data, max_steps=steps, global_batch=s.batch, per_device_batch=s.batch, **kw
    )


def own_parts(cfg: LabConfig) -> tuple[Recipe, StageSpec, StageSpec]:
    """(pre-instruction recipe, stage1, stage2) of the lab's own recipe on its world."""
    s, w = cfg.profile, cfg.work
    images = str(WorldLayout(w / "world").image_root)
    tasks = DataSpec(path=str(w / "data" / "instances"), image_root=images)
    captions = DataSpec(path=str(w / "data" / "instances"), image_root=images, tasks=["coco_caption_coarse"])
    chat = DataSpec(path=str(w / "synth" / "synth_llava.json"), image_root=images)
    vision = StageSpec(name="vision", kind="dense_vision", records=RecordsSpec(world=w / "world", world_formats="core"),
                       train={"vision": "full", "projector": "frozen", "llm": "frozen"}, lr=2e-3,
                       max_steps=s.vision_steps, global_batch=s.batch, per_device_batch=s.batch,
                       num_workers=0, pixel_cache_mb=256)  # fmt: skip
    align = _stage("align", [captions], s, s.align_steps, template="plain", lr=1e-3,
                   train={"vision": "frozen", "projector": "full", "llm": "frozen"})  # fmt: skip
    model = ModelSpec(preset=s.preset, pixel_norm="dataset", vocab_size=400 if s.preset == "micro" else 2000)
    pre = Recipe(name="lab-pre", model=model, stages=[vision, align])
    stage1 = _stage("stage1", [tasks], s, s.stage1_steps, lr=1e-3, warmup_ratio=0.05, min_lr_ratio=0.1)
    stage2 = _stage("stage2", [chat], s, s.stage2_steps, lr=5e-5, warmup_ratio=0.05, min_lr_ratio=0.1,
                    max_length=384)  # fmt: skip
    return pre, stage1, stage2


def base_parts(cfg: LabConfig) -> tuple[Recipe, StageSpec, StageSpec]:
    """(pre-instruction recipe, stage1, stage2) of a user's base recipe."""
    from vitune.train.recipe import RecipeError, load_recipe

    recipe = load_recipe(str(cfg.base), cfg.variables)
    names = [st.name for st in recipe.stages]
    if "stage1" not in names or "stage2" not in names:
        raise RecipeError(f"lab --base {cfg.base}: needs stages named 'stage1' and 'stage2' (has {names})")
    k = names.index("stage1")
    if k == 0:
        raise RecipeError(f"lab --base {cfg.base}: needs a pre-instruction stage before 'stage1'")
    pre = recipe.model_copy(update={"stages": recipe.stages[:k]})
    return pre, recipe.stage("stage1"), recipe.stage("stage2")


def recipe_parts(cfg: LabConfig) -> tuple[Recipe, StageSpec, StageSpec]:
    return own_parts(cfg) if cfg.base is None else base_parts(cfg)


def variant_recipe(name: str, start: Path, stages: list[StageSpec]) -> Recipe:
    """A variant: `stages` trained from the model in `start` (the pre-instruction or a shared run)."""
    return Recipe(name=name, model=ModelSpec(checkpoint=str(start)), stages=stages)


def prepare(cfg: LabConfig, say) -> dict[str, Any]:
    """World, task instances, synthesized chat and benchmarks (each step resumable), for the
    lab's own recipe; a `--base` run only needs its benchmarks."""
    from vitune.pipeline.quickstart import QuickstartConfig, step_build, step_synth, step_world

    s = cfg.profile
    out: dict[str, Any] = {}
    if cfg.base is None:
        qc = QuickstartConfig(work=cfg.work, images=s.images, seed=cfg.seed, tasks=list(LAB_TASKS), cap=10_000,
                              synth_images=s.synth_images, workers=2)  # fmt: skip
        out["world"] = step_world(qc, say)
        out["build"] = step_build(qc, say)
        out["synth"] = step_synth(qc, say)
    out["benches"] = bench_specs(cfg)
    return out


def bench_specs(cfg: LabConfig) -> list[str]:
    """`NAME=PATH` of the benchmarks every variant is evaluated on."""
    if cfg.benches:
        return list(cfg.benches)
    if cfg.base is not None:
        raise ValueError(
            "lab --base needs --bench NAME=PATH (the world's benchmarks come with its own recipe)"
        )
    from vitune.eval.world_bench import write_world_benchmarks

    s = cfg.profile
    paths = write_world_benchmarks(cfg.work / "world", cfg.work / "bench", "test", cfg.seed,
                                   max_images=s.bench_images, pope_pairs=2, benchmarks=s.benchmarks)  # fmt: skip
    return [f"{name}={path}" for name, path in paths.items()]
