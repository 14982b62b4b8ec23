"""benchmarks/published_parity.py on tiny hand-written files in LLaVA's formats, so it never goes stale.

Every expected number is worked out by hand in the comments; no downloaded data.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "published_parity.py"
M = "llava-v1.5-13b"
SHORT = "\nAnswer the question using a single word or phrase."


def load_script():
    if "published_parity" in sys.modules:
        return sys.modules["published_parity"]
    spec = importlib.util.spec_from_file_location("published_parity", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["published_parity"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def write_xlsx(path: Path, rows: list[list[object]]) -> None:
    """A minimal .xlsx: inline strings, numbers as numbers, "shared:" cells through sharedStrings."""
    shared: list[str] = []
    xml_rows = []
    for i, row in enumerate(rows, 1):
        cells = []
        for j, v in enumerate(row):
            ref = f"{'ABCDEFGHIJ'[j]}{i}"
            if isinstance(v, int | float):
                cells.append(f'<c r="{ref}" t="n"><v>{v}</v></c>')
            elif v == "":
                cells.append(f'<c r="{ref}" t="inlineStr" />')
            elif str(v).startswith("shared:"):
                shared.append(str(v)[7:])
                cells.append(f'<c r="{ref}" t="s"><v>{len(shared) - 1}</v></c>')
            else:
                cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(v))}</t></is></c>')
        xml_rows.append(f'<row r="{i}">{"".join(cells)}</row>')
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            "xl/worksheets/sheet1.xml",
            f"<worksheet {ns}><sheetData>{''.join(xml_rows)}</sheetData></worksheet>",
        )
        sis = "".join(f"<si><t>{escape(s)}</t></si>" for s in shared)
        z.writestr("xl/sharedStrings.xml", f"<sst {ns}>{sis}</sst>")


def make_pope(root: Path, labels: Path) -> None:
    # LLaVA numbers the questions across splits; the label files restart at 1 in each split.
    gold = ["yes", "no", "yes", "no"]
    answers = {
        "adversarial": ["Yes", "No", "Yes", "No"],  # all right: F1 100
        "popular": ["Yes", "No", "No", "No"],  # TP 1, FN 1, TN 2: P 1, R 0.5, F1 66.67
        "random": ["Yes", "No", "Yes", "Yes, there is."],  # TP 2, FP 1, TN 1: P 2/3, R 1, F1 80
    }
    questions, answer_rows, qid = [], [], 0
    for split in ("adversarial", "popular", "random"):
        write_jsonl(
            labels / f"coco_pope_{split}.json",
            [
                {"question_id": k + 1, "image": f"COCO_{k}.jpg", "text": f"Is there a thing {k}?", "label": g}
                for k, g in enumerate(gold)
            ],
        )
        for k, text in enumerate(answers[split]):
            qid += 1
            q = {"question_id": qid, "image": f"COCO_{k}.jpg", "text": f"Is there a thing {k}?" + SHORT}
            questions.append({**q, "category": split})
            answer_rows.append({"question_id": qid, "prompt": q["text"], "text": text, "model_id": M})
    write_jsonl(root / "pope" / "llava_pope_test.jsonl", questions)
    write_jsonl(root / "pope" / "answers" / f"{M}.jsonl", answer_rows)


def make_mme(root: Path, gt: Path) -> None:
    yn = " Please answer yes or no."
    # (question_id, question, gt, answer). existence: image 1 both right, image 2 one right: acc 3/4,
    # acc+ 1/2 -> 125. artwork: one of two right: acc 1/2, acc+ 0 -> 50. Perception 175.
    rows = [
        ("existence/000000001.jpg", "Is there a cat in this image?", "Yes", "Yes"),
        ("existence/000000001.jpg", "Is there a dog in this image?", "No", "No"),
        ("existence/000000002.jpg", "Is there a bus in this image?", "Yes", "No"),
        ("existence/000000002.jpg", "Is there a car in this image?", "No", "no"),
        ("artwork/images/10002.jpg", "Is this artwork religious?", "Yes", "Yes"),
        # the release's double-space variant, which convert_answer_to_mme.py falls back to
        ("artwork/images/10002.jpg", "Is this artwork historical? ", "No", "Yes"),
    ]
    write_jsonl(
        root / "MME" / "llava_mme.jsonl",
        [
            {"question_id": q, "image": q, "text": t.strip() + SHORT, "category": q.split("/")[0]}
            for q, t, _, _ in rows
        ],
    )
    write_jsonl(
        root / "MME" / "answers" / f"{M}.jsonl",
        [{"question_id": q, "prompt": t.strip() + SHORT, "text": a, "model_id": M} for q, t, _, a in rows],
    )
    for subtask in ("existence", "artwork"):
        lines = [
            f"{Path(q).stem}.txt\t{t}{yn}\t{g}\tWhatever\n" for q, t, g, _ in rows if q.startswith(subtask)
        ]
        (gt / f"{subtask}.txt").parent.mkdir(parents=True, exist_ok=True)
        (gt / f"{subtask}.txt").write_text("".join(lines), encoding="utf-8")


def make_scienceqa(root: Path) -> None:
    sqa = root / "scienceqa"
    conv = [
        ("1", True, "Which is a fruit?\nA. apple\nB. chair", "A"),
        (
            "2",
            True,
            "Context: A letter.\nWhich closing is correct?\nA. See you soon,\nJan\nB. See You Soon,\nJan",
            "B",
        ),
        ("3", False, "Which is a color?\nA. red\nB. run\nC. rock", "A"),
    ]
    write_json(
        sqa / "llava_test_CQM-A.json",
        [
            {
                "id": pid,
                **({"image": f"{pid}/image.png"} if img else {}),
                "conversations": [
                    {"from": "human", "value": ("<image>\n" if img else "") + text},
                    {"from": "gpt", "value": gold},
                ],
            }
            for pid, img, text, gold in conv
        ],
    )
    # The published answers file holds one row only; eval_science_qa.py's result file has them all.
    write_jsonl(sqa / "answers" / f"{M}.jsonl", [{"question_id": "1", "prompt": "x", "text": "A"}])
    outputs = {"1": "A", "2": "The answer is A.", "3": "C. rock"}  # A right; A vs gold B; C vs gold A
    write_json(
        sqa / "answers" / f"{M}_result.json",
        {"acc": 1 / 3 * 100, "correct": 1, "count": 3, "results": {}, "outputs": outputs},
    )
    write_json(
        sqa / "answers" / f"{M}_output.jsonl",
        {
            "correct": [{"question_id": "1", "is_multimodal": True}],
            "incorrect": [
                {"question_id": "2", "is_multimodal": True},
                {"question_id": "3", "is_multimodal": False},
            ],
        },
    )


def make_mmbench(root: Path) -> None:
    head = ["index", "question", "A", "B", "C", "D", "prediction", "answer", "split"]
    rows = [
        head,
        # question 1: both passes right; question 2: the rotated pass is wrong -> circular 1/2 = 50
        [1, "Which is red?", "shared:apple", "sky", "", "", "A", "A", "dev"],
        [1000001, "Which is red?", "sky", "apple", "", "", "B", "B", "dev"],
        [2, "Which is a cat?", "cat", "dog", "cow", "", "A", "A", "dev"],
        [1000002, "Which is a cat?", "dog", "cow", "cat", "", "C", "C", "dev"],
        [2000002, "Which is a cat?", "cow", "cat", "dog", "", "A", "B", "dev"],
    ]
    write_xlsx(root / "mmbench" / "answers_upload" / "mmbench_dev_20230712" / f"{M}.xlsx", rows)


def make_mm_vet(root: Path) -> None:
    res = root / "mm-vet" / "results"
    write_json(res / f"{M}.json", {"v1_0": "a", "v1_1": "b", "v1_2": "c"})
    # one run: (1.0 + 0.5 + 0.0) / 3 = 50.0
    one = {"v1_0": [1.0], "v1_1": [0.5], "v1_2": [0.0]}
    # three runs: run totals 50.0, 40.0, 30.0 -> mean 40.0
    three = {"v1_0": [1.0, 1.0, 0.4], "v1_1": [0.5, 0.2, 0.5], "v1_2": [0.0, 0.0, 0.0]}
    for n, grades in ((1, one), (3, three)):
        write_json(
            res / f"{M}_gpt-4-grade-{n}runs.json",
            {
                k: {"model": ["gpt-4"] * n, "content": [str(s) for s in v], "score": v}
                for k, v in grades.items()
            },
        )
    (res / f"{M}_gpt-4-cap-score-1runs.csv").write_text(
        f",rec,total,std,runs\n{M},50.0,50.0,0.0,[50.0]\n", encoding="utf-8"
    )
    (res / f"{M}_gpt-4-cap-score-3runs.csv").write_text(
        f',rec,total,std,runs\n{M},40.0,40.0,8.2,"[50.0, 40.0, 30.0]"\n', encoding="utf-8"
    )


def make_llava_bench(root: Path) -> None:
    lb = root / "llava-bench-in-the-wild"
    write_jsonl(
        lb / "answers" / f"{M}.jsonl", [{"question_id": 0, "text": "x"}, {"question_id": 1, "text": "y"}]
    )
    # run 1: reference 8, 6 (mean 7), model 10, 6 (mean 8): 114.3; run 2: 100.0; run 3: 5/10: 50.0
    runs = [[(8, 10), (6, 6)], [(8, 8), (6, 6)], [(10, 5), (10, 5)]]
    for r, pairs in enumerate(runs, 1):
        write_jsonl(
            lb / "reviews" / f"{M}-eval{r}.jsonl",
            [
                {
                    "id": k,
                    "question_id": k,
                    "category": f"llava_bench_{('conv', 'detail')[k]}",
                    "content": f"{a} {b}\nBecause.",
                    "tuple": [float(a), float(b)],
                }
                for k, (a, b) in enumerate(pairs)
            ],
        )


def make_textvqa_gqa(root: Path, data: Path) -> tuple[Path, Path]:
    tv = data / "TextVQA_0.5.1_val.json"
    write_json(
        tv,
        {
            "data": [
                {
                    "question_id": 10,
                    "image_id": "img1",
                    "question": "What is written?",
                    "answers": ["stop"] * 10,
                },
                {
                    "question_id": 11,
                    "image_id": "img2",
                    "question": "What brand?",
                    "answers": ["nike"] * 3 + ["adidas"] * 7,
                    "ocr_tokens": ["NIKE"],
                },
            ]
        },
    )
    # "Stop" -> 1.0; "nike" has 3 matches: (3 * 2/3 + 7 * 1) / 10 = 0.9 -> mean 95.0
    write_jsonl(
        root / "textvqa" / "answers" / f"{M}.jsonl",
        [
            {"question_id": "img1", "prompt": "What is written?" + SHORT, "text": "Stop"},
            {
                "question_id": "img2",
                "prompt": "What brand?\nReference OCR token: NIKE" + SHORT,
                "text": "nike",
            },
        ],
    )
    gqa = data / "testdev_balanced_questions.json"
    write_json(
        gqa,
        {
            "q1": {"question": "Is it red?", "answer": "yes", "imageId": "i1", "isBalanced": True},
            "q2": {"question": "What color?", "answer": "red", "imageId": "i1", "isBalanced": True},
        },
    )
    # convert_gqa_for_eval.py: "Yes." -> "yes" (right), "Blue" -> "blue" (wrong): 50.0
    write_jsonl(
        root / "gqa" / "answers" / "llava_gqa_testdev_balanced" / f"{M}.jsonl",
        [{"question_id": "q1", "text": "Yes."}, {"question_id": "q2", "text": "Blue"}],
    )
    return tv, gqa


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "eval"
    make_pope(root, tmp_path / "pope")
    make_mme(root, tmp_path / "mme_gt")
    make_scienceqa(root)
    make_mmbench(root)
    make_mm_vet(root)
    make_llava_bench(root)
    tv, gqa = make_textvqa_gqa(root, tmp_path / "data")
    args = [
        "--llava", str(root), "--pope-labels", str(tmp_path / "pope"), "--mme-gt", str(tmp_path / "mme_gt"),
        "--sqa-gt-from-llava", "--textvqa-json", str(tv), "--gqa-questions", str(gqa),
    ]  # fmt: skip
    return tmp_path, args


EXPECTED = {
    "pope": (80 + 200 / 3 + 100) / 3,
    "mme": 175.0,
    "scienceqa": 50.0,  # IMG: pid 1 right, pid 2 ("The answer is A.", gold B) wrong
    "scienceqa (all questions)": 100 / 3,  # pid 3 "C. rock" -> C, gold A: wrong
    "mmbench": 50.0,
    "mm_vet (1 run)": 50.0,
    "mm_vet (3 runs)": 40.0,
    "llava_bench": 88.1,  # mean of 114.3, 100.0, 50.0 = 88.1
    "textvqa": 95.0,
    "gqa": 50.0,
}


def test_every_benchmark_scores_the_hand_worked_numbers(tree):
    pp = load_script()
    _, args = tree
    rows = {r.benchmark: r for r in pp.run(pp.parse_args(args))}
    assert not [r.error for r in rows.values() if r.error]
    assert {k: pytest.approx(r.vitune) for k, r in rows.items()} == EXPECTED
    assert rows["scienceqa"].official == "IMG 50.00 (1/2), all 33.33"
    assert rows["mm_vet (3 runs)"].official == "total 40.0, runs [50.0, 40.0, 30.0]"
    assert rows["mm_vet (3 runs)"].published == 40.0  # checked against the stored csv
    assert rows["llava_bench"].official == "summarize_gpt_review.py per run [114.3, 100.0, 50.0]"
    assert rows["scienceqa (all questions)"].matches is True  # against the stored result.json acc


def test_exit_status_follows_the_published_numbers(tree, monkeypatch, capsys):
    pp = load_script()
    _, args = tree
    ours = {k: pp.Published(round(v, 1), "test") for k, v in EXPECTED.items() if k in pp.PUBLISHED}
    ours["mm_vet"] = pp.Published(50.0, "test")
    monkeypatch.setattr(pp, "PUBLISHED", ours)
    assert pp.main(args) == 0
    assert "| pope | official v1 | 82.22 | 82.2 |" in capsys.readouterr().out
    monkeypatch.setitem(ours, "mme", pp.Published(175.1, "test"))  # differs beyond rounding
    assert pp.main(args) == 1
    assert "DIFFERS beyond rounding or could not be scored: mme" in capsys.readouterr().out


def test_missing_inputs_are_skipped_with_the_reason(tree, capsys):
    pp = load_script()
    tmp, _ = tree
    rows = {r.benchmark: r for r in pp.run(pp.parse_args(["--llava", str(tmp / "eval")]))}
    assert rows["pope"].skipped == "--pope-labels not given"
    assert rows["mme"].skipped == "--mme-gt not given"
    assert rows["scienceqa"].skipped == "--sqa-dir (or --sqa-gt-from-llava) not given"
    assert rows["textvqa"].skipped == "--textvqa-json not given"
    assert rows["mmbench"].vitune == pytest.approx(50.0)  # needs nothing but the LLaVA folder
    assert all(r.skipped == "--llava not given" for r in pp.run(pp.parse_args([])))


def test_pope_labels_of_another_version_are_refused(tree):
    """eval_pope.py pairs answers and labels by position: a label file whose rows differ is an error."""
    pp = load_script()
    tmp, args = tree
    f = tmp / "pope" / "coco_pope_random.json"
    rows = [json.loads(x) for x in f.read_text().splitlines()]
    rows[1]["text"] = "Is there a typo fixed?"
    write_jsonl(f, rows)
    row = next(r for r in pp.run(pp.parse_args(args)) if r.benchmark == "pope")
    assert "not the label files LLaVA used" in row.error
    assert pp.main(args) == 1


def test_replayed_grade_that_does_not_parse_is_counted_not_scored(tree):
    pp = load_script()
    tmp, _ = tree
    res = tmp / "eval" / "mm-vet" / "results" / f"{M}_gpt-4-grade-1runs.json"
    grades = json.loads(res.read_text())
    grades["v1_2"]["content"] = ["N/A"]
    res.write_text(json.dumps(grades))
    row = pp.score_mm_vet(tmp / "eval", None, 1)
    assert row.vitune == pytest.approx(75.0)  # (1.0 + 0.5) / 2: the unparsable item is left out
    assert "1 unparsable grades" in row.notes


def test_read_xlsx_reads_inline_shared_and_numeric_cells(tmp_path):
    pp = load_script()
    write_xlsx(tmp_path / "a.xlsx", [["index", "A", "B"], [7, "shared:x & y", ""], [1000007, "None", "z"]])
    assert pp.read_xlsx(tmp_path / "a.xlsx") == [
        {"index": "7", "A": "x & y", "B": ""},
        {"index": "1000007", "A": "None", "B": "z"},
    ]


def test_scienceqa_choices_may_span_lines(tmp_path):
    pp = load_script()
    make_scienceqa(tmp_path)
    problems, splits = pp.sqa_problems_from_llava(tmp_path / "scienceqa" / "llava_test_CQM-A.json")
    assert splits == {"test": ["1", "2", "3"]}
    assert problems["2"]["choices"] == ["See you soon,\nJan", "See You Soon,\nJan"]
    assert problems["2"]["answer"] == 1 and problems["2"]["image"] == "image.png"
    assert problems["3"]["image"] is None and problems["3"]["choices"] == ["red", "run", "rock"]
