"""benchmarks/gpu_vllm_load.py without a GPU: its requests, the transformers answers and the
comparison run on a tiny export here; only the vLLM half needs a GPU (not run in the test suite)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_vllm_load.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_vllm_load", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks its module up there
    spec.loader.exec_module(mod)
    return mod


def test_transformers_half_and_comparison_on_a_tiny_export(tmp_path):
    bench = load_script()
    model_dir = bench.tiny_export(tmp_path / "tiny")
    requests = bench.build_requests(model_dir, 4)
    assert [r.image_seed for r in requests] == [0, 1, 2, 3]
    assert all("<image>" in r.prompt and r.prompt.endswith("ASSISTANT:") for r in requests)
    answers = bench.transformers_answers(model_dir, requests, 6, "float32", "cpu")
    assert len(answers) == 4 and all(0 < len(a) <= 6 for a in answers)
    stops = bench.stop_ids(model_dir)
    assert stops  # the export's generation config names its end-of-sequence id
    same = bench.compare_answers(answers, [list(a) for a in answers], stops)
    assert same["equal"] == 4 and same["differ"] == []
    changed = [list(a) for a in answers]
    changed[2] = [changed[2][0] + 1, *changed[2][1:]]
    diff = bench.compare_answers(answers, changed, stops)
    assert diff["equal"] == 3 and diff["differ"][0]["request"] == 2
    assert diff["differ"][0]["first_difference_at"] == 0
    # vLLM drops the final end-of-sequence id that transformers keeps: not a difference.
    eos = next(iter(stops))
    assert bench.compare_answers([[5, 6, eos]], [[5, 6]], stops)["equal"] == 1


def test_cli_skip_vllm_writes_the_transformers_answers(tmp_path):
    bench = load_script()
    out = tmp_path / "answers.json"
    rc = bench.main(["--tiny", "--skip-vllm", "--prompts", "3", "--max-tokens", "4", "--out", str(out)])
    report = json.loads(out.read_text())
    assert rc == 0 and len(report["transformers"]) == 3 and "vllm" not in report
