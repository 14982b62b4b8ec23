"""Run one analysis of the lab end to end and write `WORK/<analysis>/results.{json,md,png}`.

`run_lab(name, cfg)` prepares the shared data (`workspace.prepare`), trains the pre-instruction run
once, runs every variant (`analyses.run_analysis`) and writes the results: the JSON every number comes
from, a Markdown table with the paper's claim beside it, and a bar chart of each benchmark per variant
(matplotlib Agg, fixed metadata: the same results give the same bytes). `plan_lab` prints the
variants and their budgets without training anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vitune.lab.analyses import ANALYSES, Ctx, run_analysis
from vitune.lab.variants import Variant, train_variant
from vitune.lab.workspace import LabConfig, prepare, recipe_parts
from vitune.utils.atomic import write_json, write_text


def _context(cfg: LabConfig, say, *, train_pre: bool) -> Ctx:
    prepared = prepare(cfg, say) if train_pre else {"benches": list(cfg.benches)}
    pre, stage1, stage2 = recipe_parts(cfg)
    pre_dir = cfg.work / "pre"
    pre_model = train_variant(Variant("pre", pre), pre_dir) if train_pre else pre_dir / "train" / "model"
    tasks = _stage_tasks(stage1) if train_pre else []
    return Ctx(cfg, pre_model, stage1, stage2, prepared["benches"], tasks)


def _stage_tasks(stage) -> list[str]:
    """The task names in stage 1's data (read from the instance sets' manifests)."""
    names: set[str] = set()
    for d in stage.data:
        if d.tasks:
            names.update(d.tasks)
            continue
        manifest = Path(d.path) / "manifest.json"
        if manifest.is_file():
            names.update(json.loads(manifest.read_text(encoding="utf-8")).get("per_task", {}))
    return sorted(names)


def run_lab(name: str, cfg: LabConfig, say=print) -> dict[str, Any]:
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; known: {', '.join(ANALYSES)}")
    ctx = _context(cfg, say, train_pre=True)
    result = run_analysis(name, ctx)
    out = cfg.work / name
    write_json(out / "results.json", result, indent=2)
    write_text(out / "results.md", results_markdown(result))
    plot_results(result, out / "results.png")
    say(f"lab {name}: {len(result['variants'])} variants -> {out / 'results.md'}")
    return result


def plan_lab(name: str, cfg: LabConfig) -> list[dict[str, Any]]:
    """Each variant's stages, steps and data, without training (stage-2 amounts are counted)."""
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; known: {', '.join(ANALYSES)}")
    pre, stage1, stage2 = recipe_parts(cfg)
    pre_plan = {"variant": "pre", "stages": [{"stage": st.name, "steps": st.max_steps} for st in pre.stages]}
    if name in ("stage2", "projector"):  # variants that start from a shared run need that run first
        return [pre_plan, {"variant": f"{name} (shared runs first)", "stage1": stage1.max_steps,
                           "stage2": stage2.max_steps}]  # fmt: skip
    ctx = Ctx(cfg, cfg.work / "pre" / "train" / "model", stage1, stage2, [], _stage_tasks(stage1) or ["?"])
    return [pre_plan, *(v.describe() for v in ANALYSES[name](ctx))]


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def results_markdown(result: dict[str, Any]) -> str:
    rows = result["variants"]
    benches = list(rows[0]["scores"]) if rows else []
    head = ["variant", *benches, "POPE yes %", "answer words"]
    lines = [f"# lab: {result['analysis']} ({result['scale']} scale)", "", f"Paper: {result['paper']}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
    for r in rows:
        cells = [r["variant"], *(_fmt(r["scores"][b]) for b in benches),
                 _fmt(r.get("pope_yes_ratio", "")), _fmt(r["mean_answer_words"])]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    for key in ("retention", "relative_change"):
        if key in result:
            lines += ["", f"**{key}**: " + ", ".join(f"{k} {_fmt(v)}" for k, v in result[key].items())]
    if "projector_pearson" in result:
        lines += [
            "",
            f"**projector Pearson correlation** (pre-instruction vs tuned): {result['projector_pearson']:.4f}",
        ]
    lines += ["", "A tiny world need not show the paper's effects; the numbers are what this run measured."]
    return "\n".join(lines) + "\n"


def plot_results(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["variants"]
    benches = list(rows[0]["scores"]) if rows else []
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(rows)), 3))
    width = 0.8 / max(1, len(benches))
    for k, b in enumerate(benches):
        ax.bar([i + k * width for i in range(len(rows))], [r["scores"][b] for r in rows], width, label=b)
    ax.set_xticks(
        [i + width * (len(benches) - 1) / 2 for i in range(len(rows))], [r["variant"] for r in rows]
    )
    ax.set_title(f"lab {result['analysis']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None, "Creation Time": None})
    plt.close(fig)
