"""The five Vision-Flan analyses as variants of one recipe, each with the paper's numbers beside it.

    tasks      a fixed instance budget spread over N tasks (subsets drawn by seed), stage 1 each
    schedule   two stages (tasks, then chat) vs the same data mixed in one stage of as many steps
    stage2     stage-2 amounts (none, a few, a tenth, all) -> scores, POPE yes-ratio, answer length
    projector  the tuned model with its pre-instruction projector swapped back; Pearson correlation
               of the projectors; relative weight change of every part
    parts      stage 1 training the projector only / the LLM only / both

An analysis is a function `(Ctx) -> list[Variant]` registered with `@analysis`, plus an optional
`extra(ctx, rows)` that adds its own numbers; `PAPER` holds what Vision-Flan reports for it.
Variants that must share a run (stage 2 amounts all start from one stage-1 model) get that run
through `Ctx.shared`, trained once per work folder.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune.lab.variants import Variant, run_variant
from vitune.lab.workspace import LabConfig, variant_recipe
from vitune.train.recipe import DataSpec, StageSpec
from vitune.utils.hashing import derive_seed

PAPER = {
    "tasks": "100K instances as 10 tasks x 10K: MME 723.9; as 187 tasks x ~500: MME 1314.3",
    "schedule": "two-stage vs mixed (same data): MME 1490.6 vs 1364.0; LLaVA-Bench 78.3 vs 52.7",
    "stage2": "~1K synthesized conversations suffice; more raise the POPE yes-ratio and hallucination",
    "projector": "swapping the pre-instruction projector back keeps > 90%; projector correlation > 0.99",
    "parts": "MMBench: projector only 52.4 / LLM only 69.2 / both 69.8",
}


@dataclass
class Ctx:
    cfg: LabConfig
    pre_model: Path  # the pre-instruction export every variant starts from
    stage1: StageSpec
    stage2: StageSpec
    benches: list[str]
    tasks: list[str] = field(default_factory=list)  # the task names stage 1's data holds

    def shared(self, name: str, stages: list[StageSpec]) -> Path:
        """A run several variants start from (trained once, resumable); its model folder."""
        v = Variant(name, variant_recipe(f"lab-{name}", self.pre_model, stages))
        folder = self.cfg.work / "shared" / name
        from vitune.lab.variants import train_variant

        return train_variant(v, folder)


Analysis = Callable[[Ctx], list[Variant]]
ANALYSES: dict[str, Analysis] = {}
EXTRAS: dict[str, Callable[[Ctx, list[dict[str, Any]]], dict[str, Any]]] = {}


def analysis(name: str) -> Callable[[Analysis], Analysis]:
    def register(fn: Analysis) -> Analysis:
        ANALYSES[name] = fn
        return fn

    return register


def _v(ctx: Ctx, name: str, stages: list[StageSpec], start: Path | None = None, **params: Any) -> Variant:
    return Variant(name, variant_recipe(f"lab-{name}", start or ctx.pre_model, stages), params=params)


@analysis("tasks")
def tasks_scaling(ctx: Ctx) -> list[Variant]:
    """Stage 1 on the same number of instances spread over 2, 4, ... and all tasks."""
    budget = ctx.cfg.profile.task_budget if ctx.cfg.scale != "full" else 100_000
    counts = sorted({n for n in (2, 4, 8, 16) if n < len(ctx.tasks)} | {len(ctx.tasks)})
    out = []
    for n in counts:
        chosen = sorted(random.Random(derive_seed(ctx.cfg.seed, "lab-tasks", n)).sample(ctx.tasks, n))
        base = ctx.stage1.data[0]
        data = [DataSpec(path=base.path, image_root=base.image_root, tasks=[t], limit=max(1, budget // n))
                for t in chosen]  # fmt: skip
        stage = ctx.stage1.model_copy(update={"data": data})
        out.append(_v(ctx, f"tasks{n:02d}", [stage], n_tasks=n, per_task=budget // n, task_list=chosen))
    return out


@analysis("schedule")
def schedule(ctx: Ctx) -> list[Variant]:
    """Two stages vs one stage on both data sets, with the two stages' steps."""
    mixed = ctx.stage1.model_copy(
        update={"name": "mixed", "data": [*ctx.stage1.data, *ctx.stage2.data],
                "max_steps": (ctx.stage1.max_steps or 0) + (ctx.stage2.max_steps or 0) or None}
    )  # fmt: skip
    return [
        _v(ctx, "two_stage", [ctx.stage1, ctx.stage2], schedule="two-stage"),
        _v(ctx, "mixed", [mixed], schedule="mixed"),
    ]


@analysis("stage2")
def stage2_amount(ctx: Ctx) -> list[Variant]:
    """Stage 2 on none, a few, a tenth and all of the synthesized conversations, after one stage 1."""
    s1 = ctx.shared("stage1", [ctx.stage1])
    total = _count(ctx.stage2)
    amounts = sorted({0, min(100, max(1, total // 50)), max(1, total // 10), total})
    out = [Variant("stage2_0000", model=s1, params={"stage2_samples": 0})]
    for k in amounts[1:]:
        data = [d.model_copy(update={"limit": k}) for d in ctx.stage2.data]
        out.append(
            _v(ctx, f"stage2_{k:04d}", [ctx.stage2.model_copy(update={"data": data})], s1, stage2_samples=k)
        )
    return out


def _count(stage: StageSpec) -> int:
    from vitune.data.ledger import Ledger
    from vitune.train.stages import load_stage_data

    return sum(len(load_stage_data(d, Ledger(), stage.seed)) for d in stage.data)


@analysis("projector")
def projector_swap(ctx: Ctx) -> list[Variant]:
    """The two-stage model, and the same with the pre-instruction projector put back."""
    from vitune.lab.projector import swap_projector

    tuned = ctx.shared("two_stage", [ctx.stage1, ctx.stage2])
    swapped = swap_projector(tuned, ctx.pre_model, ctx.cfg.work / "shared" / "projector_swapped" / "model")
    return [Variant("tuned", model=tuned, params={"projector": "tuned"}),
            Variant("swapped", model=swapped, params={"projector": "pre-instruction"})]  # fmt: skip


def projector_extra(ctx: Ctx, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from vitune.lab.projector import load_state, pearson, projector_state, relative_change

    tuned, swapped = rows[0], rows[1]
    pre_state, tuned_state = load_state(ctx.pre_model), load_state(Path(tuned["model_dir"]))
    retained = {b: (swapped["scores"][b] / s if s else None) for b, s in tuned["scores"].items()}
    return {
        "retention": retained,
        "projector_pearson": pearson(projector_state(pre_state), projector_state(tuned_state)),
        "relative_change": relative_change(pre_state, tuned_state),
    }


EXTRAS["projector"] = projector_extra


@analysis("parts")
def trained_parts(ctx: Ctx) -> list[Variant]:
    """Stage 1 training the projector only, the LLM only, or both."""
    modes = {"projector_only": ("full", "frozen"), "llm_only": ("frozen", "full"), "both": ("full", "full")}
    out = []
    for name, (proj, llm) in modes.items():
        train = ctx.stage1.train.model_copy(update={"projector": proj, "llm": llm})
        out.append(_v(ctx, name, [ctx.stage1.model_copy(update={"train": train})], projector=proj, llm=llm))
    return out


def run_analysis(name: str, ctx: Ctx) -> dict[str, Any]:
    """Every variant of `name` (reused when finished), its extra numbers and the paper's claim."""
    variants = ANALYSES[name](ctx)
    s = ctx.cfg.profile
    rows = [
        run_variant(v, ctx.cfg.work / name / v.name, ctx.benches, ctx.cfg.batch_size, s.max_new_tokens)
        for v in variants
    ]
    extra = EXTRAS[name](ctx, rows) if name in EXTRAS else {}
    return {"analysis": name, "scale": ctx.cfg.scale, "paper": PAPER[name], "variants": rows, **extra}
