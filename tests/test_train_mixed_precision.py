"""bf16 mixed precision per stage on CPU (accelerate's autocast): it trains, and the export keeps
the fp32 master weights.

bf16 is the precision of the matmuls only: AdamW updates fp32 weights, and each stage exports them
in fp32 (config.json says so), so the next stage and evaluation start from full precision; a
consumer casts at load time (`load_pretrained(dtype=torch.bfloat16)`, vLLM's `--dtype`).
"""

from __future__ import annotations

import json
import math

import safetensors.torch as st
import torch

from recipe_helpers import tiny_recipe
from vitune.train.export import load_pretrained
from vitune.train.recipe import parse_recipe
from vitune.train.stages import run_recipe


def test_bf16_stage_trains_and_exports_fp32(tiny_world, tmp_path):
    world, data = tiny_world
    spec = tiny_recipe(world, data, max_steps=6, mixed_precision="bf16")
    # align ("auto": no mixed precision on CPU), then stage1 in bf16 in the same process: each stage
    # gets its own precision.
    spec["stages"] = spec["stages"][1:]
    run_recipe(parse_recipe(spec), tmp_path / "run")
    stages = tmp_path / "run" / "stages"
    align = json.loads((stages / "align" / "summary.json").read_text())
    stage1 = json.loads((stages / "stage1" / "summary.json").read_text())
    assert (align["mixed_precision"], stage1["mixed_precision"]) == ("no", "bf16")

    losses = [json.loads(x)["loss"] for x in (stages / "stage1" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] - 0.1

    model_dir = stages / "stage1" / "model"
    tensors = st.load_file(model_dir / "model.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.float32}
    assert json.loads((model_dir / "config.json").read_text())["dtype"] == "float32"
    model, _ = load_pretrained(model_dir, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
