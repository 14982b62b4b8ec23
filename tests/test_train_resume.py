"""Exact resume after a real kill -9, and DDP on 2 CPU processes equal to 1 process (same global batch)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import safetensors.torch as st
import torch

from recipe_helpers import tiny_recipe
from vitune.train.recipe import parse_recipe
from vitune.train.stages import run_recipe


def _losses(stage_dir: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (stage_dir / "metrics.jsonl").read_text().splitlines()]


# What a metrics line says about the run, without its wall-clock fields (tokens/s, elapsed).
_RUN_KEYS = ("step", "total_steps", "epoch", "loss", "lr", "grad_norm", "pad_frac")


def _lines(stage_dir: Path) -> list[dict]:
    lines = (stage_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: json.loads(x)[k] for k in _RUN_KEYS} for x in lines]


def test_resume_after_kill_gives_the_same_loss_curve(tiny_world, tmp_path):
    """Killed at step 6 (checkpoint at 4), resumed with 2 DataLoader workers: every metrics line
    equals the uninterrupted 0-worker run's, including the line whose window spans the kill."""
    world, data = tiny_world
    spec = tiny_recipe(world, data, max_steps=8, save_every=2, log_every=3, num_workers=0)
    ref = run_recipe(parse_recipe(spec), tmp_path / "ref")
    ref_lines = _lines(tmp_path / "ref" / "stages" / "stage1")
    assert [r["step"] for r in ref_lines] == [1, 3, 6, 8] and ref["stages"]["stage1"]["steps"] == 8

    out = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import json, os, signal
        from vitune.train.recipe import parse_recipe
        from vitune.train.stages import run_recipe
        spec = json.loads({json.dumps(json.dumps(spec))})
        def progress(stage, rec):
            if stage == "stage1" and rec["step"] == 6:
                os.kill(os.getpid(), signal.SIGKILL)
        run_recipe(parse_recipe(spec), {str(out)!r}, progress=progress)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    stage = out / "stages" / "stage1"
    assert (stage / "checkpoint.pt").exists() and not (stage / "done.json").exists()
    assert len(_losses(stage)) == 3  # steps 1, 3 and 6 were logged before the kill; 5 and 6 are redone

    workers = {**spec, "stages": [*spec["stages"][:-1], {**spec["stages"][-1], "num_workers": 2}]}
    resumed = run_recipe(parse_recipe(workers), out)
    assert resumed["stages"]["stage1"]["steps"] == 8
    summary = json.loads((stage / "summary.json").read_text())
    assert summary["resumed_from"] == 4
    got = _lines(stage)
    assert [r["step"] for r in got] == [1, 3, 6, 8]
    for a, b in zip(got, ref_lines, strict=True):
        assert a == pytest.approx(b, abs=1e-6)
    a = st.load_file(tmp_path / "ref" / "stages" / "stage1" / "model" / "model.safetensors")
    b = st.load_file(stage / "model" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_ddp_two_processes_match_one(tiny_world, tmp_path):
    world, data = tiny_world
    spec = tiny_recipe(world, data, max_steps=3)
    spec["stages"] = [spec["stages"][-1]]  # the instruct stage only: global batch 4 = 2/process x 2
    (tmp_path / "recipe.json").write_text(json.dumps(spec))
    one = run_recipe(parse_recipe(spec), tmp_path / "one")
    assert one["stages"]["stage1"]["steps"] == 3
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert launcher, "accelerate's launcher is installed with the package"
    config = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "cpu-2proc.yaml"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The shipped config and the CLI, exactly as the README tells users to launch a recipe.
    cmd = [
        launcher,
        "launch",
        "--config_file",
        str(config),
        "--main_process_port",
        "29531",
        "-m",
        "vitune.cli",
        "train",
        str(tmp_path / "recipe.json"),
        "--out",
        str(tmp_path / "two"),
        "--num-workers",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # stderr is a pipe, not a terminal: the main process logs plain progress lines, once per step.
    assert [x for x in proc.stderr.splitlines() if x.startswith("train stage1: step ")][-1].startswith(
        "train stage1: step 3/3  loss "
    )
    s_one = json.loads((tmp_path / "one" / "stages" / "stage1" / "summary.json").read_text())
    s_two = json.loads((tmp_path / "two" / "stages" / "stage1" / "summary.json").read_text())
    assert (s_one["processes"], s_two["processes"]) == (1, 2)
    assert s_one["global_batch"] == s_two["global_batch"] == 4
    assert _losses(tmp_path / "two" / "stages" / "stage1") == pytest.approx(
        _losses(tmp_path / "one" / "stages" / "stage1"), rel=1e-4
    )
    a = st.load_file(tmp_path / "one" / "stages" / "stage1" / "model" / "model.safetensors")
    b = st.load_file(tmp_path / "two" / "stages" / "stage1" / "model" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
