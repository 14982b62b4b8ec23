"""The whole quickstart at a small size: world -> build -> train -> eval, then resume and reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

from vitune.data.images import CLIP_MEAN
from vitune.data.templates import generation_prompt
from vitune.pipeline.quickstart import QuickstartConfig, run_quickstart


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("qs")
    cfg = QuickstartConfig(
        work=work,
        images=80,
        eval_questions=30,
        workers=1,
        synth_images=20,
        bench_images=6,
        multiround_images=4,
        stage_overrides={"max_steps": 20, "time_budget_s": None, "per_device_batch": 8, "global_batch": 8},
    )
    return cfg, run_quickstart(cfg)


def test_every_stage_runs_and_loss_falls(run):
    cfg, out = run
    stages = out["train"]["stages"]
    # The tiny two-stage recipe: dense vision pretraining, perception, stage 1 (tasks), stage 2 (chat).
    assert list(stages) == ["vision", "perception", "stage1", "stage2"]
    assert all(s["steps"] == 20 for s in stages.values())
    for name in ("vision", "perception"):
        assert stages[name]["last_loss"] < 0.8 * stages[name]["first_loss"], name
    for name in ("stage1", "stage2"):
        assert stages[name]["last_loss"] < stages[name]["first_loss"], name
    assert stages["stage1"]["last_loss"] < 0.7 * stages["perception"]["first_loss"]
    metrics = cfg.work / "train" / "stages" / "stage1" / "metrics.jsonl"
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps[0] == 1 and steps[-1] == 20
    # Stage 1 sees every task; perception only its four.
    build = out["build"]
    assert build["instances"] == sum(build["per_task"].values()) > 0
    assert set(build["per_task"]) == set(cfg.tasks)
    s1 = json.loads((cfg.work / "train" / "stages" / "stage1" / "summary.json").read_text())
    pc = json.loads((cfg.work / "train" / "stages" / "perception" / "summary.json").read_text())
    assert s1["data"][0]["kept"] + s1["data"][0]["rejected"] == build["instances"]
    assert pc["data"][0]["seen"] == sum(
        build["per_task"][t] for t in ("color_inventory", "object_inventory", "object_color", "object_shape")
    )
    assert out["synth"]["instances"] > 0


def test_eval_table_has_model_and_baseline(run):
    cfg, out = run
    ev = out["eval"]
    assert ev["n_questions"] == 30
    assert 0 <= ev["model"]["overall"] <= 100 and 0 <= ev["baseline"]["overall"] <= 100
    assert {"yes/no", "number", "other"} & set(ev["model"]["per_answer_type"])
    # Asked through the one runner and the registered vqav2 benchmark, model and baseline alike.
    preds = json.loads((cfg.work / "eval" / "model" / "vqav2" / "predictions.json").read_text())
    base = json.loads((cfg.work / "eval" / "baseline" / "vqav2" / "predictions.json").read_text())
    assert len(preds) == len(base) == 30 and ev["protocol"] == "paper"
    # The verdict compares the same two numbers and names every stage's step count.
    v = out["verdict"]
    assert (v["model"], v["baseline"]) == (ev["model"]["overall"], ev["baseline"]["overall"])
    assert v["steps"] == {"vision": 20, "perception": 20, "stage1": 20, "stage2": 20}
    assert "vision 20, perception 20, stage1 20, stage2 20" in v["text"]


def test_checkpoint_reloads_with_plain_transformers_and_answers(run):
    from vitune.eval.benchmarks import get_benchmark
    from vitune.sources.merge import load_world

    cfg, out = run
    model_dir = out["train"]["model_dir"]
    model = LlavaForConditionalGeneration.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    # Re-answer an evaluated question with plain transformers: same answer as the eval run gave.
    qid, answer = next(
        iter(json.loads((cfg.work / "eval" / "model" / "vqav2" / "predictions.json").read_text()).items())
    )
    first = {"question_id": qid, "prediction": answer}
    rec, qa = next(
        (r, q)
        for r in load_world(cfg.work / "world", "val")
        for q in r.qas
        if str(q.question_id) == first["question_id"]
    )
    prompt = generation_prompt("vicuna_v1", [("user", get_benchmark("vqav2").prompt(qa.question))], True)
    image = Image.open(cfg.work / "world" / "images" / rec.file_name).convert("RGB")
    inputs = processor(text=prompt, images=image, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    new_tokens = ids[0, inputs["input_ids"].shape[1] :]
    assert len(new_tokens) >= 1
    assert processor.tokenizer.decode(new_tokens, skip_special_tokens=True).strip() == first["prediction"]
    # The chat template saved with the processor renders the same prompt.
    chat = processor.apply_chat_template(
        [
            {
                "role": "user",
                "content": [
                    {"type": "image"},
                    {"type": "text", "text": get_benchmark("vqav2").prompt(qa.question)},
                ],
            }
        ],
        add_generation_prompt=True,
    )
    assert chat == prompt


def test_rerun_resumes_without_redoing_steps(run, capsys):
    cfg, out = run
    mtime = (cfg.work / "train" / "model" / "model.safetensors").stat().st_mtime_ns
    again = run_quickstart(cfg)
    assert again["train"] == out["train"] and again["eval"]["model"] == out["eval"]["model"]
    assert (cfg.work / "train" / "model" / "model.safetensors").stat().st_mtime_ns == mtime
    printed = capsys.readouterr()
    assert "world: reusing" in printed.out + printed.err and "train: reusing" in printed.out + printed.err


def test_from_scratch_tower_normalizes_with_dataset_statistics(run):
    _, out = run
    processor = AutoProcessor.from_pretrained(out["train"]["model_dir"])
    mean = processor.image_processor.image_mean
    # The world's light backgrounds put the data mean far above CLIP's.
    assert all(m > c + 0.2 for m, c in zip(mean, CLIP_MEAN, strict=True))


def test_world_benchmark_table(run):
    cfg, out = run
    bench = out["bench"]["benchmarks"]
    assert {"vqav2", "pope", "mme", "mmbench", "seed_bench", "imagefolder"} <= set(bench)
    for name, res in bench.items():
        assert res["n_unanswered"] == 0 and res["n_items"] == res["n_generated"] + res["n_cached"] > 0, name
    assert (cfg.work / "bench" / "results" / "results.md").exists()


def test_report_page(run):
    cfg, out = run
    md = Path(out["report"]).read_text()
    for name, st in out["train"]["stages"].items():
        assert f"| {name} | done |" in md and f"| {st['first_loss']:.3f} | {st['last_loss']:.3f} |" in md
    vqa = out["bench"]["benchmarks"]["vqav2"]["overall"]
    assert "| vqav2 | overall | vqa_accuracy |" in md and f"{vqa:.2f}" in md
    assert (cfg.work / "report" / "training_curves.png").stat().st_size > 10_000
    html = (cfg.work / "report" / "report.html").read_text()
    assert f'data-score="world benchmarks/vqav2/overall">{vqa:.2f}<' in html
    # The build's dataset card: HF metadata pointing at the shards, and the gallery beside it.
    card = (cfg.work / "data" / "README.md").read_text()
    assert "path: instances/data/*.parquet" in card and f"{out['build']['instances']:,} instances" in card
    assert (cfg.work / "data" / "gallery.html").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("recipe", "stages"),
    [("tiny-single-stage-mixed", ["vision", "mixed"]), ("tiny-llava-1.5", ["vision", "align", "finetune"])],
)
def test_other_tiny_recipes_run_on_the_same_world(run, recipe, stages):
    from dataclasses import replace

    from vitune.pipeline.quickstart import quickstart_recipe
    from vitune.train.stages import run_recipe

    cfg, _ = run
    alt = replace(cfg, recipe=recipe, stage_overrides={**cfg.stage_overrides, "max_steps": 3})
    out = run_recipe(quickstart_recipe(alt), cfg.work / "alt" / recipe)
    assert list(out["stages"]) == stages
    assert all(s["steps"] == 3 for s in out["stages"].values())
    model = LlavaForConditionalGeneration.from_pretrained(cfg.work / "alt" / recipe / "model")
    assert model.config.image_seq_length == 64
    if recipe == "tiny-single-stage-mixed":  # tasks and chat in one stage
        summary = json.loads((cfg.work / "alt" / recipe / "stages" / "mixed" / "summary.json").read_text())
        assert [d["path"].split("/")[-1] for d in summary["data"]] == ["instances", "synth_llava.json"]


def test_multiround_side_by_side(run):
    cfg, out = run
    mr = out["multiround"]
    assert mr["settings"]["n_dialogs"] == 4 and mr["settings"]["n_turns"] >= 4
    s = mr["scores"]["vqav2"]
    assert (
        s["n"] == mr["settings"]["n_turns"]
        and 0 <= s["overall_single"] <= 100
        and 0 <= s["overall_multi"] <= 100
    )
    assert [t["turn"] for t in mr["per_turn"]][:2] == [1, 2]
    saved = json.loads((cfg.work / "multiround" / "multiround_results.json").read_text())
    assert len(saved["dialogs"]) == 4
