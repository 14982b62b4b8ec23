"""Training progress when stderr is not a terminal: one plain line per metrics record."""

from __future__ import annotations

from vitune.utils.progress import log_line, make_progress, stage_bars


def test_plain_lines_when_stderr_is_not_a_terminal(capsys):
    rec = {
        "step": 20,
        "total_steps": 100,
        "loss": 2.5,
        "lr": 1e-3,
        "tokens_per_s": 12345.6,
        "elapsed_s": 40.0,
    }
    with make_progress() as prog:  # pytest captures stderr: not a terminal
        on_step = stage_bars(prog)
        on_step("stage1", {**rec, "step": 10, "elapsed_s": 20.0})
        on_step("stage1", rec)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("train ")]
    assert lines == [
        "train stage1: step 10/100  loss 2.5000  lr 0.001  12,346 tok/s  eta 3m00s",
        "train stage1: step 20/100  loss 2.5000  lr 0.001  12,346 tok/s  eta 2m40s",
    ]


def test_no_lines_from_a_disabled_progress(capsys):
    with make_progress(disable=True) as prog:  # the other processes of an accelerate launch
        stage_bars(prog)("stage1", {"step": 1, "total_steps": 2, "loss": 1.0})
    assert "train stage1" not in capsys.readouterr().err


def test_eta_in_hours_for_long_runs():
    line = log_line("s", {"step": 1, "total_steps": 1001, "loss": 1.0, "elapsed_s": 36.0})
    assert line.endswith("eta 10h00m")
