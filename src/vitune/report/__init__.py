"""Reports: one Markdown page (plus loss-curve figures) from a run's training, evaluation and
curation outputs, so a run can be read, shared and compared without re-running anything."""

from vitune.report.collect import TrainRun, read_train_run
from vitune.report.render import write_report

__all__ = ["TrainRun", "read_train_run", "write_report"]
