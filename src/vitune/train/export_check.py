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
from collections.abc import Sequence
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
    """The other environment could not run the probe at all (its last error lines are the message)."""


def run_probes_in(
    python: str,
    model_dirs: Sequence[str | os.PathLike],
    out_root: Path,
    timeout_s: float = 600,
    resave: bool = False,
) -> list[Path]:
    """Probe `model_dirs` under `python` (another environment) in one interpreter; returns each
    folder's probe directory (`probe.json` + `tensors.pt`, or `error.txt`; `saved/` with `resave`)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("PYTHONPATH", None)  # the other environment must not import this one's packages
    cmd = [python, str(Path(export_probe.__file__).resolve()), str(out_root), *map(str, model_dirs)]
    if resave:
        cmd.append("--resave")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except FileNotFoundError:
        raise ValueError(f"{python}: no such Python (the environment to check against)") from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise ProbeFailed(f"the probe under {python} failed (exit {proc.returncode}):\n{tail}")
    return [out_root / str(i) for i in range(len(model_dirs))]


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
    """A probe directory written by `export_probe.py`; ProbeFailed with its error if it failed."""
    if (d / "error.txt").exists():
        raise ProbeFailed((d / "error.txt").read_text(encoding="utf-8").strip())
    summary = json.loads((d / "probe.json").read_text(encoding="utf-8"))
    return summary, torch.load(d / "tensors.pt", map_location="cpu", weights_only=True)


def check_exports(
    model_dirs: Sequence[str | os.PathLike],
    python: str,
    tolerance: float = TOLERANCE,
    timeout_s: float = 600,
    keep: Path | None = None,
) -> list[CheckResult]:
    """Load each folder here and under `python` (one interpreter start for all); compare (module doc).

    `keep`: a directory to leave the other side's probes in (with its own `save_pretrained` copy of
    each model under `<i>/saved`), for checking the other direction; by default a temporary one.
    """
    for d in model_dirs:
        if not Path(d, "config.json").exists():
            raise ValueError(f"{d}: not a model folder (no config.json)")
    here = [export_probe.run_probe(str(d)) for d in model_dirs]
    with tempfile.TemporaryDirectory(prefix="vitune-check-") as tmp:
        root = keep if keep is not None else Path(tmp)
        outs = run_probes_in(python, model_dirs, root, timeout_s, resave=keep is not None)
        results = []
        for d, h, out in zip(model_dirs, here, outs, strict=True):
            try:
                results.append(compare(str(d), h, read_probe(out), tolerance))
            except ProbeFailed as e:
                failed = CheckResult(str(d), h[0]["transformers"], python, cases=len(h[0]["cases"]))
                failed.problems.append(f"does not load or run under {python}:\n{e}")
                results.append(failed)
    return results


def check_export(
    model_dir: str | os.PathLike, python: str, tolerance: float = TOLERANCE, timeout_s: float = 600
) -> CheckResult:
    """`check_exports` for one folder (what `vitune export --check` runs)."""
    return check_exports([model_dir], python, tolerance, timeout_s)[0]
