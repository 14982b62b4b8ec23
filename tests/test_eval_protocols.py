"""Scoring protocols (issue #20) and honest results (issue #13 item 5), through the runner and the CLI.

- VQAv2 `paper` scores LLaVA-style answers as LLaVA's submission pipeline does (EvalAI answer
  processor on every prediction, then vqaEval), `official` as raw vqaEval.py; hand-computed.
- results.json / results.md / the CLI name the protocol and scorer version; changing the protocol
  rescores the cached answers without generating anything.
- empty and unparsable answers are counted and warned about; missing or empty benchmark files and
  missing images are one clear error (CLI: exit 2, no traceback) before anything is generated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vitune.cli import app
from vitune.data.records import QA
from vitune.eval.benchmarks import get_benchmark
from vitune.eval.benchmarks.base import BenchmarkDataError, resolve_protocol
from vitune.eval.health import answer_warnings, protocol_mismatches
from vitune.eval.runner import (
    BenchSpec,
    compare_rows,
    load_results,
    model_fingerprint,
    result_rows,
    run_benchmarks,
)
from vitune.eval.vqav2 import evalai_answer, score_vqa

cli = CliRunner()

# LLaVA-style answers (capitalized, trailing period, article) against unanimous and split answers.
UNANIMOUS_YES = ["yes"] * 10
UNANIMOUS_2 = ["2"] * 10
SPLIT_RED_CAR = ["red car"] * 3 + ["car"] * 7
UNANIMOUS_RED_CAR = ["red car"] * 10
CASES = [  # (question id, prediction, answers, official accuracy, paper accuracy), by hand:
    ("1", "Yes", UNANIMOUS_YES, 0.0, 1.0),  # unanimous: exact, case-sensitive match
    ("2", "Two.", UNANIMOUS_2, 0.0, 1.0),  # paper: "two." -> "2"
    ("3", "A red car", SPLIT_RED_CAR, 0.9, 0.9),  # split: normalized either way; 3 matches -> 0.9
    ("4", "A red car", UNANIMOUS_RED_CAR, 0.0, 1.0),  # paper drops the article
    ("5", "Two.", ["2"] * 9 + ["two"], 1.0, 1.0),  # split: vqaEval normalizes both sides
]


def _qas():
    return [QA(q, "q?", answers, "other", "what") for q, _, answers, _, _ in CASES]


def test_llava_style_answers_paper_vs_official():
    preds = {q: p for q, p, _, _, _ in CASES}
    assert evalai_answer("Two.") == "2" and evalai_answer("A red car") == "red car"
    official = score_vqa(preds, _qas(), protocol="official")
    paper = score_vqa(preds, _qas(), protocol="paper")
    assert official.per_question == {q: pytest.approx(o) for q, _, _, o, _ in CASES}
    assert paper.per_question == {q: pytest.approx(p) for q, _, _, _, p in CASES}
    assert official.overall == round(100 * 1.9 / 5, 2) == 38.0
    assert paper.overall == round(100 * 4.9 / 5, 2) == 98.0
    with pytest.raises(ValueError, match="protocol"):
        score_vqa(preds, _qas(), protocol="lmms")


def test_protocols_are_declared_where_registered():
    assert get_benchmark("vqav2").protocols == ("paper", "official")
    assert get_benchmark("vqav2").active_protocol == "paper"
    assert get_benchmark("vqav2", protocol="official").active_protocol == "official"
    # One protocol where the published numbers come from the official script: both names map to it.
    pope = type(get_benchmark("pope"))
    assert pope.protocols == ("official",) and resolve_protocol(pope, "paper") == "official"
    with pytest.raises(ValueError, match="unknown scoring protocol"):
        get_benchmark("pope", protocol="strict")


# ---- a tiny VQAv2 folder with real images, answered by a stub ---------------------------------


def _vqav2(root: Path, images: bool = True) -> Path:
    d = root / "vqav2"
    d.mkdir(parents=True)
    qs = [{"image_id": 7, "question": f"Q{q}?", "question_id": int(q)} for q, *_ in CASES]
    anns = [
        {"question_id": int(q), "image_id": 7, "question_type": "what", "answer_type": "other",
         "answers": [{"answer": a, "answer_id": i} for i, a in enumerate(answers)]}
        for q, _, answers, _, _ in CASES
    ]  # fmt: skip
    (d / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(
        json.dumps({"data_subtype": "val2014", "questions": qs})
    )
    (d / "v2_mscoco_val2014_annotations.json").write_text(json.dumps({"annotations": anns}))
    if images:
        Image.new("RGB", (8, 8), (200, 10, 10)).save(d / "COCO_val2014_000000000007.jpg")
    return d


class Answers:
    """Answers by the question text's number (Q<n>?), recording how many items it was asked."""

    def __init__(self, by_qid: dict[str, str]) -> None:
        self.by_qid = by_qid
        self.asked = 0

    def __call__(self, items):
        self.asked += len(items)
        return [self.by_qid[it.text.split("?")[0].rsplit("Q", 1)[1]] for it in items]


def _never(items):
    raise AssertionError("the model must not be asked: every answer is cached")


def test_changing_the_protocol_rescores_cached_answers_without_a_model(tmp_path):
    spec = [BenchSpec("vqav2", _vqav2(tmp_path))]
    out = tmp_path / "run"
    answers = Answers({q: p for q, p, _, _, _ in CASES})
    r = run_benchmarks(spec, out, answer_fn=answers, model_id="m", show_progress=False)
    v = r["benchmarks"]["vqav2"]
    assert answers.asked == 5
    assert (v["protocol"], v["scorer_version"], v["overall"]) == ("paper", 2, 98.0)

    r2 = run_benchmarks(spec, out, answer_fn=_never, model_id="m", show_progress=False, protocol="official")
    v2 = load_results(out)["benchmarks"]["vqav2"]
    assert r2["benchmarks"]["vqav2"] == v2
    assert (v2["protocol"], v2["overall"], v2["n_generated"], v2["n_cached"]) == ("official", 38.0, 0, 5)
    md = (out / "results.md").read_text(encoding="utf-8")
    assert "| vqav2 | overall | vqa_accuracy | official v2 | 5 | 38.00 | 0 | 0 (0.0%) | 0 (0.0%) |" in md
    assert result_rows(r2)[0][3] == "official v2"
    row = compare_rows(r, r2)[0]
    assert row[2] == "vqa_accuracy (paper v2 vs official v2)" and row[3:5] == ("98.00", "38.00")
    assert protocol_mismatches(r, r2) == [
        "vqav2: A is scored paper v2, B official v2; the delta mixes protocols"
    ]
    assert protocol_mismatches(r2, r2) == []


def test_cli_protocol_option_rescores_from_the_cache(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        '{"model_type": "llava"}'
    )  # a LLaVA folder: answers come from the cache
    bench = _vqav2(tmp_path)
    out = tmp_path / "run"
    # Fill the response cache under the CLI's model identity and generation settings.
    run_benchmarks(
        [BenchSpec("vqav2", bench)],
        out,
        answer_fn=Answers({q: p for q, p, _, _, _ in CASES}),
        model_id=model_fingerprint(model),
        max_new_tokens=32,
        show_progress=False,
    )
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "results.json").write_bytes((out / "results.json").read_bytes())
    base = ["eval", "--model", str(model), "--bench", f"vqav2={bench}", "--out", str(out)]
    res = cli.invoke(app, [*base, "--protocol", "official"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "official v2" in res.output and "38.00" in res.output
    assert load_results(out)["benchmarks"]["vqav2"]["protocol"] == "official"
    # Comparing the two runs never mixes protocols silently.
    res = cli.invoke(app, ["eval", "compare", str(tmp_path / "paper"), str(out)], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "vqav2: A is scored paper v2, B official v2" in res.output
    res = cli.invoke(app, ["eval", "list"], env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "paper, official (v2)" in res.output
    res = cli.invoke(app, [*base, "--protocol", "lenient"])
    assert res.exit_code == 2 and "--protocol" in res.output


# ---- honest results ----------------------------------------------------------------------------


def _pope(root: Path, n: int = 40, with_images: bool = True) -> Path:
    d = root / "pope"
    d.mkdir(parents=True)
    rows = [{"question_id": i, "image": f"im{i % 4}.jpg", "text": f"Is there a cat {i}?",
             "label": "yes" if i % 2 else "no"} for i in range(n)]  # fmt: skip
    (d / "coco_pope_random.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if with_images:
        for i in range(4):
            Image.new("RGB", (8, 8)).save(d / f"im{i}.jpg")
    return d


def test_empty_and_unparsable_answers_are_counted_and_warned(tmp_path):
    spec = [BenchSpec("pope", _pope(tmp_path))]

    def answer(items):  # 24 empty answers, 4 it cannot read, the rest right
        out = []
        for it in items:
            i = int(it.text.split("cat ")[1].split("?")[0])
            out.append("" if i < 24 else "Maybe." if i < 28 else ("Yes" if i % 2 else "No"))
        return out

    r = run_benchmarks(spec, tmp_path / "o", answer_fn=answer, model_id="m", show_progress=False)
    p = r["benchmarks"]["pope"]
    assert (p["n_empty"], p["n_unparsable"]) == (24, 4)
    assert (p["empty_share"], p["unparsable_share"]) == (60.0, 10.0)
    [warning] = answer_warnings(r)
    assert warning.startswith("pope: 70.0% of the answers are empty (24) or unparsable (4)")
    md = (tmp_path / "o" / "results.md").read_text(encoding="utf-8")
    assert "| 24 (60.0%) | 4 (10.0%) |" in md and "**Warning**: pope: 70.0%" in md
    # Under the 5% line: no warning.
    quiet = run_benchmarks(
        spec, tmp_path / "q", answer_fn=lambda its: ["Yes"] * len(its), model_id="m2", show_progress=False
    )
    assert quiet["benchmarks"]["pope"]["n_empty"] == 0 and answer_warnings(quiet) == []


def test_missing_and_empty_benchmark_folders_are_clear_errors(tmp_path):
    with pytest.raises(BenchmarkDataError, match="does not exist"):
        run_benchmarks([BenchSpec("pope", tmp_path / "nope")], tmp_path / "o", answer_fn=_never, model_id="m")
    (tmp_path / "mme").mkdir()
    with pytest.raises(BenchmarkDataError, match="holds no benchmark item"):
        run_benchmarks([BenchSpec("mme", tmp_path / "mme")], tmp_path / "o", answer_fn=_never, model_id="m")
    (tmp_path / "empty_pope").mkdir()
    with pytest.raises(BenchmarkDataError, match="cannot read"):
        run_benchmarks(
            [BenchSpec("pope", tmp_path / "empty_pope")], tmp_path / "o", answer_fn=_never, model_id="m"
        )


def test_missing_images_are_listed_before_any_generation(tmp_path):
    good = _vqav2(tmp_path / "a")
    bad = _pope(tmp_path / "b", n=12, with_images=False)
    Image.new("RGB", (8, 8)).save(bad / "im0.jpg")
    specs = [BenchSpec("vqav2", good), BenchSpec("pope", bad)]
    with pytest.raises(BenchmarkDataError) as e:
        run_benchmarks(specs, tmp_path / "o", answer_fn=_never, model_id="m", show_progress=False)
    msg = str(e.value)
    # One error for all 9 items whose image is missing (im1..im3), the first benchmark untouched.
    assert msg.startswith("pope: 9 item(s) have no usable image under") and "random/1: " in msg
    assert "im1.jpg is missing" in msg and not (tmp_path / "o" / "vqav2").exists()


def test_cli_data_errors_exit_2_without_traceback(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llava"}')
    (tmp_path / "mme").mkdir()
    for bench, needle in (
        (f"pope={tmp_path / 'nope'}", "no such file or folder"),  # the CLI checks --bench paths first
        (f"mme={tmp_path / 'mme'}", "no benchmark item"),
    ):
        res = cli.invoke(app, ["eval", "--model", str(model), "--bench", bench, "--out", str(tmp_path / "o")])
        assert res.exit_code == 2, res.output
        assert needle in res.output and "Traceback" not in res.output


def test_embedded_images_go_through_the_one_image_check(tmp_path):
    import io

    from vitune.data.images import ImageError
    from vitune.eval.benchmarks.base import BenchItem
    from vitune.eval.health import missing_files

    buf = io.BytesIO()
    Image.new("RGB", (1, 200)).save(buf, format="PNG")
    strip = BenchItem("7", "q", buf.getvalue())
    with pytest.raises(ImageError, match=r"item 7 \(embedded image\): image aspect ratio 200:1"):
        strip.image_source()
    with pytest.raises(ImageError, match=r"item 8 .*unreadable image"):
        BenchItem("8", "q", b"not an image").image_source()
    assert missing_files(tmp_path, [BenchItem("9", "q", b""), strip]) == ["9: empty embedded image"]
