"""The whole quickstart at a small size: world -> build -> train -> eval, then resume and reload."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

from vitune.data.images import CLIP_MEAN
from vitune.pipeline.quickstart import QuickstartConfig, run_quickstart
from vitune.train.templates import generation_prompt


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("qs")
    cfg = QuickstartConfig(work=work, images=80, eval_questions=30, workers=1)
    cfg.train.max_steps = 40
    cfg.train.batch_size = 8
    cfg.train.num_threads = 2
    return cfg, run_quickstart(cfg)


def test_loss_falls_and_counts_reconcile(run):
    cfg, out = run
    t = out["train"]
    assert t["steps"] == 40
    assert t["last_loss"] < 0.7 * t["first_loss"]
    # The recipe warms up on perception tasks for half the steps, then trains on everything.
    warm = [json.loads(line) for line in (cfg.work / "train" / "warmup" / "metrics.jsonl").read_text().splitlines()]
    metrics = [json.loads(line) for line in (cfg.work / "train" / "metrics.jsonl").read_text().splitlines()]
    n_warm = int(40 * cfg.train.warmup_fraction)
    assert warm[0]["step"] == 1 and warm[-1]["step"] == n_warm
    assert metrics[0]["step"] == 1 and metrics[-1]["step"] == 40 - n_warm
    build = out["build"]
    assert build["instances"] == sum(build["per_task"].values()) > 0
    assert set(build["per_task"]) == set(cfg.tasks)


def test_eval_table_has_model_and_baseline(run):
    cfg, out = run
    ev = out["eval"]
    assert ev["n_questions"] == 30
    assert 0 <= ev["model"]["overall"] <= 100 and 0 <= ev["baseline"]["overall"] <= 100
    assert {"yes/no", "number", "other"} & set(ev["model"]["per_answer_type"])
    preds = (cfg.work / "eval" / "vqa_predictions.jsonl").read_text().splitlines()
    assert len(preds) == 30


def test_checkpoint_reloads_with_plain_transformers_and_answers(run):
    from vitune.eval.vqa_eval import vqa_prompt
    from vitune.sources.merge import load_world

    cfg, out = run
    model_dir = out["train"]["model_dir"]
    model = LlavaForConditionalGeneration.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    # Re-answer an evaluated question with plain transformers: same answer as the eval run gave.
    first = json.loads((cfg.work / "eval" / "vqa_predictions.jsonl").read_text().splitlines()[0])
    rec, qa = next(
        (r, q) for r in load_world(cfg.work / "world", "val") for q in r.qas if str(q.question_id) == first["question_id"]
    )
    prompt = generation_prompt("vicuna_v1", [("user", vqa_prompt(qa.question))], True)
    image = Image.open(cfg.work / "world" / "images" / rec.file_name).convert("RGB")
    inputs = processor(text=prompt, images=image, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    new_tokens = ids[0, inputs["input_ids"].shape[1] :]
    assert len(new_tokens) >= 1
    assert processor.tokenizer.decode(new_tokens, skip_special_tokens=True).strip() == first["prediction"]
    # The chat template saved with the processor renders the same prompt.
    chat = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": vqa_prompt(qa.question)}]}],
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
