"""One variant of an analysis: an ordinary resumable training run, then a cached evaluation.

A variant is a recipe (stages from a start model) or, for a comparison point that needs no
training, a model folder. Its folder holds `train/` (`run_recipe`: a finished stage is reused, a
killed one resumes from its checkpoint) and `eval/` (`run_benchmarks`: answers cached per item), so
re-running an analysis redoes only what is missing. `metrics` reads back what every analysis
reports: each benchmark's overall score, POPE's yes-ratio, the mean answer length in words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune.train.recipe import Recipe


@dataclass
class Variant:
    name: str
    recipe: Recipe | None = None  # None: evaluate `model` as it is
    model: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)  # what distinguishes it (for the tables)

    def describe(self) -> dict[str, Any]:
        """Budgets and data, for `--plan`."""
        if self.recipe is None:
            return {"variant": self.name, "model": str(self.model), **self.params}
        stages = [
            {"stage": st.name, "steps": st.max_steps, "batch": st.global_batch,
             "train": st.train.model_dump(), "data": [d.model_dump(exclude_none=True) for d in st.data]}
            for st in self.recipe.stages
        ]  # fmt: skip
        return {"variant": self.name, "start": self.recipe.model.checkpoint, "stages": stages, **self.params}


def train_variant(v: Variant, folder: Path) -> Path:
    """The variant's model folder (trained if needed)."""
    if v.recipe is None:
        assert v.model is not None
        return v.model
    from vitune.train.stages import run_recipe

    out = run_recipe(v.recipe, folder / "train", progress=None)
    return Path(out["model_dir"])


def evaluate(model: Path, benches: list[str], folder: Path, batch_size: int, max_new_tokens: int) -> dict:
    from vitune.eval.runner import parse_bench, run_benchmarks

    specs = [parse_bench(b) for b in benches]
    run_benchmarks(specs, folder, model_dir=model, batch_size=batch_size, max_new_tokens=max_new_tokens,
                   show_progress=False)  # fmt: skip
    return metrics(folder, [s.name for s in specs])


def metrics(folder: Path, names: list[str]) -> dict[str, Any]:
    """Per benchmark `overall`; POPE's mean yes-ratio; the mean answer length (words) over all answers."""
    out: dict[str, Any] = {"scores": {}}
    words: list[int] = []
    for name in names:
        scores = json.loads((folder / name / "scores.json").read_text(encoding="utf-8"))
        out["scores"][name] = scores["overall"]
        if name == "pope":
            ratios = [m["yes_ratio"] for m in scores["per_category"].values()]
            out["pope_yes_ratio"] = sum(ratios) / len(ratios) if ratios else 0.0
        preds = json.loads((folder / name / "predictions.json").read_text(encoding="utf-8"))
        words += [len(str(p).split()) for p in preds.values()]
    out["mean_answer_words"] = sum(words) / len(words) if words else 0.0
    return out


def run_variant(v: Variant, folder: Path, benches: list[str], batch_size: int, max_new_tokens: int) -> dict:
    """Train (or reuse) and evaluate one variant; its summary is also written to `variant.json`."""
    from vitune.utils.atomic import write_json

    model = train_variant(v, folder)
    result = {"variant": v.name, **v.params, "model_dir": str(model)}
    result.update(evaluate(model, benches, folder / "eval", batch_size, max_new_tokens))
    if v.recipe is not None:
        stages = json.loads((folder / "train" / "recipe.json").read_text(encoding="utf-8"))["stages"]
        result["steps"] = {st["name"]: st.get("max_steps") for st in stages}
    write_json(folder / "variant.json", result, indent=2)
    return result
