"""Check that an export loads identically under another transformers (e.g. 4.57 beside this 5.x).

`check_export(model_dir, python)` runs `export_probe.py` here and, as a subprocess, under the other
environment's Python, then compares what both computed on the same fixed conversations: the
loading report (no missing or unused weights: a randomly initialised part shows up there), the
rendered prompts and input ids (equal), pixel values and logits (within `tolerance`, 1e-5) and a
greedy continuation of 16 tokens (equal). `vitune export --check DIR` is this function.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vitune.train import export_probe

TOLERANCE = 1e-5
# Where scripts/setup.sh puts the second environment (transformers 4.57, CPU torch).
DEFAULT_OTHER_ENV = ".venv-tf4"
PYTHON_ENV_VAR = "VITUNE_CHECK_PYTHON"


@dataclass
class CheckResult:
    model_dir: str
    here: str  # transformers versions
    there: str
    max_logit_diff: float = 0.0
    max_pixel_diff: float = 0.0
    cases: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "identical" if self.ok else "DIFFERENT"
        lines = [
            f"{self.model_dir}: transformers {self.here} vs {self.there}: {verdict} on {self.cases} cases "
            f"(max |logit diff| {self.max_logit_diff:.3g}, max |pixel diff| {self.max_pixel_diff:.3g})"
        ]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def default_python() -> str | None:
    """The other environment's Python: $VITUNE_CHECK_PYTHON, else ./.venv-tf4/bin/python if present."""
    if os.environ.get(PYTHON_ENV_VAR):
        return os.environ[PYTHON_ENV_VAR]
    candidate = Path(DEFAULT_OTHER_ENV) / "bin" / "python"
    return str(candidate) if candidate.exists() else None


class ProbeFailed(RuntimeError):
    """The other environment could not load or run the folder (its last error lines are the message)."""


def run_probe_in(python: str, model_dir: str | os.PathLike, out_dir: Path, timeout_s: float = 600) -> None:
    """Run the probe under `python` (another environment); its failure is raised with its stderr."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("PYTHONPATH", None)  # the other environment must not import this one's packages
    cmd = [python, str(Path(export_probe.__file__).resolve()), str(model_dir), str(out_dir)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except FileNotFoundError:
        raise ValueError(f"{python}: no such Python (the environment to check against)") from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise ProbeFailed(f"loading under {python} failed (exit {proc.returncode}):\n{tail}")


def compare(
    model_dir: str, here: tuple[dict, dict], there: tuple[dict, dict], tolerance: float = TOLERANCE
) -> CheckResult:
    """Compare two probes (summary, tensors) of the same folder."""
    (a, ta), (b, tb) = here, there
    res = CheckResult(str(model_dir), a["transformers"], b["transformers"], cases=len(a["cases"]))
    for side, s in (("here", a), ("there", b)):
        for kind, keys in s["loading"].items():
            if keys:
                res.problems.append(f"{side} ({s['transformers']}): {kind.replace('_', ' ')}: {keys[:4]}")
    for i, (ca, cb) in enumerate(zip(a["cases"], b["cases"], strict=True)):
        if ca["prompt"] != cb["prompt"]:
            res.problems.append(f"case {i}: the chat template renders differently")
        if ca["input_ids"] != cb["input_ids"]:
            res.problems.append(
                f"case {i}: input ids differ ({len(ca['input_ids'])} vs {len(cb['input_ids'])} tokens)"
            )
            continue
        for name in ("pixel_values", "logits"):
            key = f"{name}.{i}"
            if (key in ta) != (key in tb) or (key in ta and ta[key].shape != tb[key].shape):
                res.problems.append(f"case {i}: {name} missing or of another shape on one side")
                continue
            if key in ta:
                diff = (ta[key] - tb[key]).abs().max().item()
                if name == "logits":
                    res.max_logit_diff = max(res.max_logit_diff, diff)
                else:
                    res.max_pixel_diff = max(res.max_pixel_diff, diff)
                if diff > tolerance:
                    res.problems.append(f"case {i}: {name} differ by up to {diff:.3g} (> {tolerance:g})")
        if ca["generated"] != cb["generated"]:
            res.problems.append(
                f"case {i}: greedy continuations differ: {ca['generated']} vs {cb['generated']}"
            )
    return res


def read_probe(d: Path) -> tuple[dict, dict]:
    summary = json.loads((d / "probe.json").read_text(encoding="utf-8"))
    return summary, torch.load(d / "tensors.pt", map_location="cpu", weights_only=True)


def check_export(
    model_dir: str | os.PathLike, python: str, tolerance: float = TOLERANCE, timeout_s: float = 600
) -> CheckResult:
    """Load `model_dir` here and under `python`; compare (see the module doc)."""
    if not Path(model_dir, "config.json").exists():
        raise ValueError(f"{model_dir}: not a model folder (no config.json)")
    here = export_probe.run_probe(str(model_dir))
    with tempfile.TemporaryDirectory(prefix="vitune-check-") as tmp:
        try:
            run_probe_in(python, model_dir, Path(tmp), timeout_s)
        except ProbeFailed as e:
            failed = CheckResult(str(model_dir), here[0]["transformers"], python, cases=len(here[0]["cases"]))
            failed.problems.append(str(e))
            return failed
        there = read_probe(Path(tmp))
    return compare(str(model_dir), here, there, tolerance)
