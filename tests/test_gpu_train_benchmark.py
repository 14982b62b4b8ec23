"""benchmarks/gpu_train.py at its tiny CPU shape, so the GPU check never goes stale."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_train.py"


def load_benchmark():
    if "gpu_train" in sys.modules:
        return sys.modules["gpu_train"]
    spec = importlib.util.spec_from_file_location("gpu_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_train"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_tiny_gpu_benchmark_runs_every_setting_on_cpu(tmp_path, capsys):
    bench = load_benchmark()
    results = bench.main(["--tiny", "--json", str(tmp_path / "r.json")])
    assert [(r["llm"], r["checkpointing"]) for r in results] == [
        (name, ckpt) for name in bench.TINY_LLMS for ckpt in (False, True)
    ]
    for r in results:
        assert "error" not in r and r["steps"] == 2 and r["tokens_per_s"] > 0
        assert math.isfinite(r["first_loss"]) and r["mfu"] == pytest.approx(
            r["tflops"] / bench.H200_BF16_TFLOPS
        )
    # Same seeded weights and batches: checkpointing changes memory and time, not the loss.
    for off, on in zip(results[::2], results[1::2], strict=True):
        assert on["first_loss"] == pytest.approx(off["first_loss"], abs=1e-4)
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(results))
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["llm", "ckpt", "tokens/s"] and len(out.splitlines()) == 5


def test_real_shapes_are_llava_15_7b_and_qwen2_1_5b():
    """The GPU run's models, on the meta device: CLIP-L/336 + Llama-7B is LLaVA-1.5-7B's 7.06B."""
    from vitune.train.meta import meta_model

    bench = load_benchmark()
    counts = {
        name: sum(p.numel() for p in meta_model(bench.build_config(bench.CLIP_L_336, cfg)).parameters())
        for name, cfg in (("qwen2", bench.QWEN2_1_5B), ("llama", bench.LLAMA_7B))
    }
    assert counts["llama"] == pytest.approx(7.06e9, rel=0.01)
    # Qwen2-1.5B (1.54B, tied embeddings) + CLIP-L (0.30B) + projector (1024x1536 + 1536x1536).
    assert counts["qwen2"] == pytest.approx(1.54e9 + 0.3035e9 + 4.0e6, rel=0.01)
