"""FSDP2 on 2 CPU processes (gloo) against one process at the same global batch: same losses, an
export that plain transformers reloads with the same weights, and exact resume after a kill.

Launched like the DDP test: the shipped `configs/accelerate/fsdp-cpu-2proc.yaml` and the CLI, as the
README tells users to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from recipe_helpers import tiny_recipe
from vitune.data.instance import Instance
from vitune.data.llava import write_llava_json
from vitune.data.store import read_instances
from vitune.train.loop import _check_same_modules
from vitune.train.recipe import parse_recipe
from vitune.train.sampler import modality_random_batches
from vitune.train.stages import run_recipe

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "fsdp-cpu-2proc.yaml"


def _losses(stage_dir: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (stage_dir / "metrics.jsonl").read_text().splitlines()]


def _launch(port: int, *args: str) -> subprocess.CompletedProcess:
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert launcher, "accelerate's launcher is installed with the package"
    cmd = [launcher, "launch", "--config_file", str(CONFIG), "--main_process_port", str(port), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    # Plain transformers, as any downstream user would load the export.
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, local_files_only=True)
    return model.state_dict()


def _assert_same_weights(one: Path, two: Path) -> None:
    a, b = _weights(one), _weights(two)
    assert a.keys() == b.keys()
    assert all(b[k].dtype == torch.float32 for k in b)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, worst


def test_fsdp_two_processes_match_one(tiny_world, tmp_path):
    world, data = tiny_world
    # A frozen vision tower next to trained parts (frozen and trained weights share FSDP groups),
    # and 2 accumulation steps per process (gradient sync skipped on the first): global batch 8.
    train = {"vision": "frozen", "projector": "full", "llm": "full"}
    spec = tiny_recipe(world, data, max_steps=3, global_batch=8, train=train)
    spec["stages"] = [spec["stages"][-1]]
    (tmp_path / "recipe.json").write_text(json.dumps(spec))
    one = run_recipe(parse_recipe(spec), tmp_path / "one")
    assert one["stages"]["stage1"]["steps"] == 3
    proc = _launch(
        29532, "-m", "vitune.cli", "train", str(tmp_path / "recipe.json"), "--out", str(tmp_path / "two")
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # One summary table for the job, printed by the first process only.
    assert (proc.stdout + proc.stderr).count("first loss") == 1
    s_one = json.loads((tmp_path / "one" / "stages" / "stage1" / "summary.json").read_text())
    s_two = json.loads((tmp_path / "two" / "stages" / "stage1" / "summary.json").read_text())
    # FSDP for real: accelerate alone would have fallen back to DDP on CPU processes.
    assert (s_one["processes"], s_two["processes"]) == (1, 2)
    assert (s_one["distributed"], s_two["distributed"]) == ("NO", "FSDP")
    assert s_one["global_batch"] == s_two["global_batch"] == 8
    assert _losses(tmp_path / "two" / "stages" / "stage1") == pytest.approx(
        _losses(tmp_path / "one" / "stages" / "stage1"), rel=1e-4
    )
    _assert_same_weights(tmp_path / "one" / "stages" / "stage1" / "model", tmp_path / "two" / "model")


def test_fsdp_resume_after_kill_matches_one_process(tiny_world, tmp_path):
    world, data = tiny_world
    spec = tiny_recipe(world, data, max_steps=6, save_every=2)  # every part trains
    spec["stages"] = [spec["stages"][-1]]
    (tmp_path / "recipe.json").write_text(json.dumps(spec))
    run_recipe(parse_recipe(spec), tmp_path / "one")
    ref = _losses(tmp_path / "one" / "stages" / "stage1")
    assert len(ref) == 6

    # The main process kills itself after logging step 5; the launcher then stops the other one.
    script = tmp_path / "killed.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os, signal, sys
            from vitune.train.recipe import parse_recipe
            from vitune.train.stages import run_recipe

            def progress(stage, rec):
                if rec["step"] == 5:
                    os.kill(os.getpid(), signal.SIGKILL)

            spec = json.loads(open(sys.argv[1]).read())
            run_recipe(parse_recipe(spec), sys.argv[2], progress=progress)
            """
        )
    )
    out = tmp_path / "two"
    proc = _launch(29533, str(script), str(tmp_path / "recipe.json"), str(out))
    assert proc.returncode != 0
    stage = out / "stages" / "stage1"
    assert (stage / "checkpoint.pt").exists() and not (stage / "done.json").exists()
    assert len(_losses(stage)) == 5

    proc = _launch(29533, "-m", "vitune.cli", "train", str(tmp_path / "recipe.json"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((stage / "summary.json").read_text())
    assert (summary["resumed_from"], summary["steps"], summary["distributed"]) == (4, 6, "FSDP")
    assert _losses(stage) == pytest.approx(ref, rel=1e-4)
    _assert_same_weights(tmp_path / "one" / "stages" / "stage1" / "model", stage / "model")


def test_fsdp_refuses_images_on_some_processes_only():
    # Micro-batch 1 has images on one process of two: under FSDP the processes would run different
    # collectives (gloo aborts with a size mismatch, NCCL hangs), so the step is refused on all.
    _check_same_modules([2, 0], world=2)  # all or none: fine
    with pytest.raises(RuntimeError, match="micro-batch 1"):
        _check_same_modules([2, 1], world=2)


def _text_only_json(data: Path, path: Path, n: int) -> Path:
    """ShareGPT-like text-only samples (LLaVA-1.5's mixture has ~40K): conversations without image."""
    items = read_instances(data / "instances")[:n]
    write_llava_json([Instance(f"text:{i.id}", None, "text_chat", i.turns) for i in items], path)
    return path


def _micro_step_modalities(flags: list[bool], batches: list[list[int]], steps: int, world: int, accum: int):
    """'I' / 'T' per micro-step of the first `steps` steps, as the loop deals the plan to processes."""
    out = []
    for s in range(steps):
        step = ""
        for a in range(accum):
            block = batches[(s * accum + a) * world : (s * accum + a + 1) * world]
            kinds = {flags[i] for b in block for i in b}
            assert len(kinds) == 1, (s, a)
            step += "I" if kinds.pop() else "T"
        out.append(step)
    return out


def test_fsdp_trains_text_only_mixture_like_one_process(tiny_world, tmp_path):
    world, data = tiny_world
    # 29 text-only samples next to 87 image ones; every part trains (the vision tower too, so its
    # gradients must also survive steps whose last micro-step is text-only). 2 processes x 2
    # accumulation steps. The FSDP run aligns its plan on modality by itself; the 1-process run asks
    # for the same plan, so both train on the same global batches.
    spec = tiny_recipe(world, data, max_steps=4, global_batch=8, seed=2, modality_aligned_processes=2)
    spec["stages"] = [spec["stages"][-1]]
    spec["stages"][0]["data"].append({"path": str(_text_only_json(data, tmp_path / "chat.json", 29))})
    (tmp_path / "recipe.json").write_text(json.dumps(spec))
    run_recipe(parse_recipe(spec), tmp_path / "one")
    del spec["stages"][0]["modality_aligned_processes"]  # FSDP aligns by itself
    (tmp_path / "recipe.json").write_text(json.dumps(spec))
    proc = _launch(
        29534, "-m", "vitune.cli", "train", str(tmp_path / "recipe.json"), "--out", str(tmp_path / "two")
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    s_one = json.loads((tmp_path / "one" / "stages" / "stage1" / "summary.json").read_text())
    s_two = json.loads((tmp_path / "two" / "stages" / "stage1" / "summary.json").read_text())
    assert (s_one["distributed"], s_two["distributed"]) == ("NO", "FSDP")
    # 87 image samples: 21 whole micro-steps of 2 x 2 and one of batches of 2 and 1; 29 text-only:
    # 7 whole micro-steps, and 1 sample that cannot give both processes a batch is dropped.
    assert s_one["modality_aligned"] == s_two["modality_aligned"] == {"processes": 2, "dropped_per_epoch": 1}
    assert [(d["image"], d["text_only"]) for d in s_two["data"]] == [(87, 0), (0, 29)]
    # The steps run really mix modalities: one all text-only, one image then text-only.
    flags = [True] * 87 + [False] * 29
    assert _micro_step_modalities(flags, modality_random_batches(flags, 2, 2, 2, 0), 4, 2, 2) == [
        "TT",
        "II",
        "IT",
        "II",
    ]
    assert _losses(tmp_path / "two" / "stages" / "stage1") == pytest.approx(
        _losses(tmp_path / "one" / "stages" / "stage1"), rel=1e-4
    )
    _assert_same_weights(tmp_path / "one" / "stages" / "stage1" / "model", tmp_path / "two" / "model")
