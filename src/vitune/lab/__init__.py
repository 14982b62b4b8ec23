"""`vitune lab`: Vision-Flan's analyses (task scaling, schedule, stage-2 amount, projector, parts) as
ordinary resumable training and evaluation runs under one folder. See `run.py`."""

from vitune.lab.analyses import ANALYSES, PAPER
from vitune.lab.run import plan_lab, run_lab
from vitune.lab.workspace import SCALES, LabConfig

__all__ = ["ANALYSES", "PAPER", "SCALES", "LabConfig", "plan_lab", "run_lab"]
