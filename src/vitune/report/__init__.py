"""Reports and dataset cards: `report.md` and a self-contained `report.html` from runs' training,
evaluation, multi-round, curation and lab outputs (`render.py`, `page.py`), and a Hugging Face
dataset card with an HTML sample gallery for build / synth / curate outputs (`card.py`), so data and
runs can be looked at, shared and compared without re-running anything."""

from vitune.report.collect import TrainRun, read_train_run
from vitune.report.render import write_report

__all__ = ["TrainRun", "read_train_run", "write_report"]
