"""Score LLaVA-1.5-13B's published answer files with vitune's own scorers and compare with the paper.

LLaVA's repository ships its evaluation folder (`playground/data/eval`) with the answer files of
`llava-v1.5-13b` for most benchmarks, the MM-Vet GPT-4 grade files and the LLaVA-Bench GPT-4 review
files. This script scores each with the registered vitune benchmark (`get_benchmark`, the entry
point `vitune eval` uses), converting answers only the way LLaVA's own scripts do, and prints
vitune's score next to the published number (LLaVA's docs/MODEL_ZOO.md; the paper's where it
differs) and, where the repository stores it, the official script's own result. Exit status 1 when
a vitune score differs from the number it is checked against beyond rounding.

    PYTHONPATH=src .venv/bin/python benchmarks/published_parity.py --llava LLaVA/playground/data/eval \\
        --pope-labels POPE/output/coco --sqa-dir ScienceQA/data/scienceqa --mme-gt MME_Benchmark_release_version

Benchmarks whose inputs are not given are skipped with the reason. Ground truth per benchmark:

- POPE: the three `coco_pope_<split>.json` label files. LLaVA's `eval_pope.py` pairs the answers of a
  split with the label file's rows BY POSITION, so the label files must be the version LLaVA's
  question file was built from (RUCAIBox/POPE commit e3e3926, 2,910 random questions; later commits
  changed questions); the pairing is checked row by row (image and question) and refused otherwise.
- ScienceQA: `problems.json` + `pid_splits.json` (`--sqa-dir`); or, with `--sqa-gt-from-llava`, the
  problems rebuilt from LLaVA's own `llava_test_CQM-A.json` (choices and answer letter of every test
  question, made by LLaVA's convert_sqa_to_llava.py from problems.json).
- MME: the release folder, or a folder of eval_tool result files (`<subtask>.txt`, lines
  `image<TAB>question<TAB>answer[<TAB>prediction]`, what convert_answer_to_mme.py writes), whose
  third column is the release's answer.
- MMBench (dev): the upload .xlsx that LLaVA's convert_mmbench_for_submission.py wrote carries the
  dev answers and every circular pass (index + k * 1e6); `--mmbench-tsv` adds the official TSV's
  categories.
- MM-Vet, LLaVA-Bench: the published GPT-4 grades / reviews are replayed as the judge's replies
  (no judge is called); vitune parses and aggregates them. `--mmvet-json` adds the capabilities.
- TextVQA (`--textvqa-json`, TextVQA_0.5.1_val.json), GQA (`--gqa-questions`,
  testdev_balanced_questions.json).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from vitune.eval.benchmarks import BenchItem, Benchmark, get_benchmark
from vitune.eval.judge import Judge, Verdict

MODEL = "llava-v1.5-13b"


@dataclass
class Published:
    """The number a benchmark is checked against, where it comes from, and the paper's if different."""

    value: float
    source: str
    paper: float | None = None


# LLaVA docs/MODEL_ZOO.md (LLaVA-1.5 13B full_ft-1e row, unchanged since 2023-10-13) and the
# LLaVA-1.5 paper (arXiv 2310.03744), which reports LLaVA-Bench 70.7 and MM-Vet 35.4 from
# an earlier GPT-4 grading; the model zoo was updated to the grading whose files are published.
PUBLISHED: dict[str, Published] = {
    "pope": Published(85.9, "model zoo = paper (mean F1 of 3 splits)"),
    "mme": Published(1531.3, "model zoo = paper (perception)"),
    "scienceqa": Published(71.6, "model zoo = paper (IMG-Accuracy)"),
    "mmbench": Published(67.7, "model zoo = paper (dev, circular)"),
    "mm_vet": Published(36.1, "model zoo (paper: 35.4)", paper=35.4),
    "llava_bench": Published(72.5, "model zoo (paper: 70.7)", paper=70.7),
    "textvqa": Published(61.3, "model zoo = paper"),
    "gqa": Published(63.3, "model zoo = paper"),
}


@dataclass
class Row:
    benchmark: str
    protocol: str = ""
    vitune: float | None = None
    published: float | None = None
    decimals: int = 1
    source: str = ""
    official: str = ""  # the official script's own result, where the LLaVA repository stores it
    skipped: str = ""  # the reason, when not scored
    error: str = ""  # the inputs were given but could not be scored (wrong version, bad file)
    notes: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool | None:
        if self.vitune is None or self.published is None:
            return None
        return round(self.vitune, self.decimals) == round(self.published, self.decimals)


# ---- file helpers ---------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _col(ref: str) -> str:
    return re.match(r"[A-Z]+", ref).group(0)  # type: ignore[union-attr]


def read_xlsx(path: Path) -> list[dict[str, str]]:
    """The first sheet of an .xlsx as rows of strings keyed by the header row (stdlib only).

    Cells are read as stored: inline or shared strings as text, numbers as written ("241"); an
    empty cell is "". pandas' NA-string conversion is NOT applied here: vitune's MMBench scorer
    applies it to predictions itself (`as_read_back`)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(path) as z:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ElementTree.fromstring(z.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")) for si in root]
        sheet = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
    rows: list[dict[str, str]] = []
    for r in sheet.iter(f"{{{ns['m']}}}row"):
        cells: dict[str, str] = {}
        for c in r.findall("m:c", ns):
            kind = c.get("t")
            if kind == "inlineStr":
                text = "".join(t.text or "" for t in c.iter(f"{{{ns['m']}}}t"))
            else:
                v = c.find("m:v", ns)
                text = "" if v is None or v.text is None else v.text
                if kind == "s":
                    text = shared[int(text)]
            cells[_col(c.get("r", ""))] = text
        rows.append(cells)
    if not rows:
        return []
    header = rows[0]
    return [{name: cells.get(col, "") for col, name in header.items()} for cells in rows[1:]]


class ReplayJudge(Judge):
    """A judge whose replies are the published ones: `replies[(item_id, run)]` is the reply text.

    Each reply goes through the benchmark's own parser (the task's `parse`), as a live reply would;
    nothing is sent anywhere."""

    def __init__(self, replies: dict[tuple[str, int], str], model: str) -> None:
        super().__init__(backend=None, cache=None)  # type: ignore[arg-type]
        self.replies = replies
        self.model = model

    def identity(self) -> dict[str, Any]:
        return {"endpoint": "published files", "model": self.model}

    def run(self, tasks: Sequence[Any]) -> list[Verdict]:
        out = []
        for task in tasks:
            v = Verdict(task.item_id)
            key = (task.item_id, task.run)
            if key not in self.replies:
                v.error = f"no published reply for item {task.item_id} run {task.run}"
                out.append(v)
                continue
            text = self.replies[key]
            v.replies, v.n_attempts, v.n_cached = [text], 1, 1
            try:
                v.value, v.ok = task.parse(text), True
            except ValueError as e:
                v.error = f"malformed published reply: {e}"
            out.append(v)
        return out


# ---- benchmark by benchmark -----------------------------------------------------------------------
# Each returns (benchmark, items, preds, score options, official result text, notes).


def pope_inputs(llava: Path, labels: Path) -> tuple[list[BenchItem], dict[str, str], list[str]]:
    """LLaVA's eval_pope.py: per category, the answers (in answer-file order) zipped with the label
    file's rows. The pairing is checked (same image and question) before anything is scored."""
    bench = get_benchmark("pope")
    items = bench.load(labels)
    by_split: dict[str, list[BenchItem]] = defaultdict(list)
    for it in items:
        by_split[it.category].append(it)
    questions = {q["question_id"]: q for q in read_jsonl(llava / "pope" / "llava_pope_test.jsonl")}
    answers = read_jsonl(llava / "pope" / "answers" / f"{MODEL}.jsonl")
    preds: dict[str, str] = {}
    notes = []
    for split, split_items in sorted(by_split.items()):
        cur = [a for a in answers if questions[a["question_id"]]["category"] == split]
        if len(cur) != len(split_items):
            raise ValueError(
                f"POPE {split}: {len(cur)} answers but {len(split_items)} labels; eval_pope.py would zip "
                "them by position: give the label files LLaVA's questions were built from (POPE e3e3926)"
            )
        for a, it in zip(cur, split_items, strict=True):
            q = questions[a["question_id"]]
            if q["image"] != it.image or q["text"].split("\n")[0] != it.meta["raw_question"]:
                raise ValueError(
                    f"POPE {split}: answer {a['question_id']} ({q['image']}, {q['text'].splitlines()[0]!r}) "
                    f"is paired with label row {it.meta['question_id']} ({it.image}, "
                    f"{it.meta['raw_question']!r}): not the label files LLaVA used (POPE e3e3926)"
                )
            preds[it.item_id] = a["text"]
        notes.append(f"{split}: {len(cur)}")
    return items, preds, notes


def score_pope(llava: Path, labels: Path) -> Row:
    items, preds, notes = pope_inputs(llava, labels)
    bench = get_benchmark("pope")
    res = bench.score(preds, items)
    per = ", ".join(f"{s} F1 {m['f1']:.2f}" for s, m in res["per_category"].items())
    return _row(bench, res["overall"], notes=[per, "questions per split: " + ", ".join(notes)])


def _mme_release_from_results(results_dir: Path, llava_mme: list[dict[str, Any]], dst: Path) -> None:
    """A release-layout folder (3-column `image<TAB>question<TAB>answer` files, one per image) from
    eval_tool result files, the image names and layout taken from llava_mme.jsonl."""
    layout: dict[tuple[str, str], str] = {}  # (subtask, txt name) -> image path relative to dst
    for row in llava_mme:
        qid = row["question_id"]
        layout[(qid.split("/")[0], qid.split("/")[-1].split(".")[0] + ".txt")] = qid
    for f in sorted(results_dir.glob("*.txt")):
        subtask = f.stem
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split("\t")
            if len(parts) < 3:
                raise ValueError(f"{f}:{n}: expected image<TAB>question<TAB>answer[<TAB>prediction]")
            txt, question, answer = parts[0], parts[1], parts[2]
            image = layout.get((subtask, Path(txt).stem + ".txt"))
            if image is None:
                raise ValueError(f"{f}:{n}: {txt} is not in llava_mme.jsonl")
            image_path = Path(image)
            qa_dir = dst / subtask
            if "images" in image_path.parts:  # the images/ + questions_answers_YN/ layout
                (dst / subtask / "images").mkdir(parents=True, exist_ok=True)
                qa_dir = dst / subtask / "questions_answers_YN"
            qa_dir.mkdir(parents=True, exist_ok=True)
            with open(qa_dir / (Path(txt).stem + ".txt"), "a", encoding="utf-8") as out:
                out.write(f"{image_path.name}\t{question}\t{answer}\n")


def mme_inputs(llava: Path, gt: Path, work: Path) -> tuple[list[BenchItem], dict[str, str], list[str]]:
    """convert_answer_to_mme.py: every answer row is matched to its question by (subtask, image
    file, question); vitune's MME loader does that matching from llava_mme.jsonl (which must sit
    next to `MME_Benchmark_release_version/`, so both are linked into a work folder)."""
    rows = read_jsonl(llava / "MME" / "llava_mme.jsonl")
    release = work / "MME_Benchmark_release_version"
    notes = []
    if any(p.is_dir() for p in gt.iterdir()):
        release.symlink_to(gt.resolve(), target_is_directory=True)
        notes.append("ground truth: MME release folder")
    else:
        _mme_release_from_results(gt, rows, release)
        notes.append("ground truth: 3rd column of eval_tool result files")
    (work / "llava_mme.jsonl").symlink_to((llava / "MME" / "llava_mme.jsonl").resolve())
    items = get_benchmark("mme").load(work / "llava_mme.jsonl")
    answers = read_jsonl(llava / "MME" / "answers" / f"{MODEL}.jsonl")
    if len(answers) != len(rows):
        raise ValueError(f"MME: {len(answers)} answers for {len(rows)} questions")
    preds = {}
    for a, q, it in zip(answers, rows, items, strict=True):
        if a["question_id"] != q["question_id"] or a["prompt"] != q["text"]:
            raise ValueError(f"MME: answer {a['question_id']} {a['prompt']!r} is not question {q['text']!r}")
        preds[it.item_id] = a["text"]
    return items, preds, notes


def score_mme(llava: Path, gt: Path) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        items, preds, notes = mme_inputs(llava, gt, Path(tmp))
    bench = get_benchmark("mme")
    res = bench.score(preds, items)
    notes.append(f"cognition {res['cognition']:.2f}")
    return _row(bench, res["overall"], notes=notes)


_CHOICE = re.compile(r"^([A-E])\. (.*)$", re.DOTALL)


def sqa_problems_from_llava(test_json: Path) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """problems.json-shaped problems (and pid_splits) rebuilt from LLaVA's llava_test_CQM-A.json: the
    human turn ends in the choices ("A. ...", one per line), the gpt turn is the answer letter."""
    problems: dict[str, Any] = {}
    for row in json.loads(test_json.read_text(encoding="utf-8")):
        human, gpt = row["conversations"][0]["value"], row["conversations"][1]["value"]
        lines = human.replace("<image>\n", "").split("\n")
        # The choices: from the last line starting "A. ", lines starting "B. ", "C. ", ... in turn; a
        # line between them continues the choice before it ("A. See you soon,\nJanet").
        starts = [k for k, x in enumerate(lines) if x.startswith("A. ")]
        if not starts:
            raise ValueError(f"llava_test_CQM-A.json {row['id']}: no choices")
        first = starts[-1]
        choices, letters = [], ""
        for x in lines[first:]:
            m = _CHOICE.match(x)
            if m and m.group(1) == "ABCDE"[len(letters)] if len(letters) < 5 else False:
                letters += m.group(1)
                choices.append(m.group(2))
            else:
                choices[-1] += "\n" + x
        k = first
        if gpt not in letters:
            raise ValueError(f"llava_test_CQM-A.json {row['id']}: answer {gpt!r} is not a choice")
        problems[str(row["id"])] = {
            "question": "\n".join(lines[:k]),
            "choices": choices,
            "answer": letters.index(gpt),
            "hint": "",
            "image": Path(row["image"]).name if row.get("image") else None,
            "split": "test",
        }
    return problems, {"test": list(problems)}


def sqa_predictions(llava: Path, pids: Sequence[str]) -> tuple[dict[str, str], str]:
    """The answers file if it answers the split; else the raw answers that eval_science_qa.py stored
    in its result file (`outputs`: question id -> the answer text as it read it)."""
    answers = {
        str(a["question_id"]): a["text"]
        for a in read_jsonl(llava / "scienceqa" / "answers" / f"{MODEL}.jsonl")
    }
    if all(p in answers for p in pids):
        return answers, "answers file"
    result = json.loads(
        (llava / "scienceqa" / "answers" / f"{MODEL}_result.json").read_text(encoding="utf-8")
    )
    return {str(k): v for k, v in result["outputs"].items()}, (
        f"answers file holds {len(answers)} rows: predictions from {MODEL}_result.json 'outputs'"
    )


def sqa_items(bench: Benchmark, llava: Path, sqa_dir: Path | None) -> list[BenchItem]:
    """ScienceQA's items from the official folder, or rebuilt from LLaVA's llava_test_CQM-A.json."""
    if sqa_dir is not None:
        return bench.load(sqa_dir)
    problems, splits = sqa_problems_from_llava(llava / "scienceqa" / "llava_test_CQM-A.json")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "problems.json").write_text(json.dumps(problems), encoding="utf-8")
        (Path(tmp) / "pid_splits.json").write_text(json.dumps(splits), encoding="utf-8")
        return bench.load(tmp)


def score_scienceqa(llava: Path, sqa_dir: Path | None) -> Row:
    bench = get_benchmark("scienceqa")
    items = sqa_items(bench, llava, sqa_dir)
    notes = [] if sqa_dir is not None else ["ground truth rebuilt from llava_test_CQM-A.json"]
    preds, how = sqa_predictions(llava, [it.item_id for it in items])
    notes.append(how)
    res = bench.score(preds, items)
    official = ""
    out = llava / "scienceqa" / "answers" / f"{MODEL}_output.jsonl"
    result = llava / "scienceqa" / "answers" / f"{MODEL}_result.json"
    if out.exists() and result.exists():
        analysis = json.loads(out.read_text(encoding="utf-8"))
        mm_ok = sum(x["is_multimodal"] for x in analysis["correct"])
        mm_n = mm_ok + sum(x["is_multimodal"] for x in analysis["incorrect"])
        acc = json.loads(result.read_text(encoding="utf-8"))["acc"]
        official = f"IMG {mm_ok / mm_n * 100:.2f} ({mm_ok}/{mm_n}), all {acc:.2f}"
    return _row(bench, res["overall"], official=official, notes=notes)


def score_scienceqa_all(llava: Path, sqa_dir: Path | None) -> Row:
    """eval_science_qa.py's Accuracy over every test question, checked against its stored result."""
    bench = get_benchmark("scienceqa", img_only=False)
    items = sqa_items(bench, llava, sqa_dir)
    preds, _ = sqa_predictions(llava, [it.item_id for it in items])
    res = bench.score(preds, items)
    stored = json.loads(
        (llava / "scienceqa" / "answers" / f"{MODEL}_result.json").read_text(encoding="utf-8")
    )
    return Row(
        benchmark="scienceqa (all questions)",
        protocol=f"{bench.active_protocol} v{bench.scorer_version}",
        vitune=res["overall"],
        published=stored["acc"],
        decimals=2,
        source="LLaVA's stored official result (result.json acc)",
        official=f"{stored['acc']:.2f} ({stored['correct']}/{stored['count']})",
    )


def mmbench_inputs(xlsx: Path, tsv: Path | None, work: Path) -> tuple[list[BenchItem], dict[str, str]]:
    """The .xlsx LLaVA uploads (index, question, A-D, prediction, answer, split, one row per circular
    pass) as an MMBench TSV for vitune's loader; categories from the official TSV when given."""
    rows = read_xlsx(xlsx)
    cats: dict[int, tuple[str, str, str]] = {}
    if tsv is not None:
        csv.field_size_limit(sys.maxsize)
        with open(tsv, encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh, delimiter="\t"):
                cats[int(r["index"]) % 1_000_000] = (
                    r.get("category", ""),
                    r.get("l2-category", ""),
                    r.get("hint", ""),
                )
    letters = [c for c in "ABCDEFGHI" if c in rows[0]]
    cols = ["index", "question", "hint", *letters, "answer", "category", "l2-category", "split", "image"]
    path = work / "mmbench_from_xlsx.tsv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, cols, delimiter="\t")
        w.writeheader()
        for r in rows:
            cat, l2, hint = cats.get(int(float(r["index"])) % 1_000_000, ("", "", ""))
            w.writerow(
                {
                    **{c: r.get(c, "") for c in ("question", *letters, "answer", "split")},
                    "index": int(float(r["index"])),
                    "hint": hint,
                    "category": cat,
                    "l2-category": l2,
                    "image": "",
                }
            )
    items = get_benchmark("mmbench").load(path)
    preds = {str(int(float(r["index"]))): r["prediction"] for r in rows}
    return items, preds


def score_mmbench(llava: Path, tsv: Path | None) -> Row:
    xlsx = llava / "mmbench" / "answers_upload" / "mmbench_dev_20230712" / f"{MODEL}.xlsx"
    with tempfile.TemporaryDirectory() as tmp:
        items, preds = mmbench_inputs(xlsx, tsv, Path(tmp))
    bench = get_benchmark("mmbench")
    res = bench.score(preds, items)
    notes = [
        f"{res['n']} questions, {res['n_passes']} passes, {res['n_failed_extraction']} without an "
        "extracted option (no judge: wrong)"
    ]
    return _row(bench, res["overall"], notes=notes)


def _mmvet_items(llava: Path, mmvet_json: Path | None, ids: Sequence[str]) -> list[BenchItem]:
    if mmvet_json is not None:
        return get_benchmark("mm_vet").load(mmvet_json)
    # Without mm-vet.json: the items as the grade file names them; capabilities unknown (the total
    # does not need them, per-capability scores are then not computed).
    return [BenchItem(item_id=i, question="", answers=[""], meta={"capabilities": ["?"]}) for i in ids]


def score_mm_vet(llava: Path, mmvet_json: Path | None, runs: int) -> Row:
    results = llava / "mm-vet" / "results"
    grades = json.loads((results / f"{MODEL}_gpt-4-grade-{runs}runs.json").read_text(encoding="utf-8"))
    preds = json.loads((results / f"{MODEL}.json").read_text(encoding="utf-8"))  # convert_answers.py output
    replies = {(i, r): g["content"][r] for i, g in grades.items() for r in range(runs)}
    items = _mmvet_items(llava, mmvet_json, list(grades))
    bench = get_benchmark("mm_vet", runs=runs)
    res = bench.score(preds, items, judge=ReplayJudge(replies, "gpt-4 (published grades)"))
    # Where vitune and the official read a reply differently, the official's score is in the file.
    differ = [
        (i, r)
        for i, g in grades.items()
        for r in range(runs)
        if res["runs"][r]["item_scores"].get(i) is not None
        and res["runs"][r]["item_scores"][i] != g["score"][r]
    ]
    official = ""
    csv_path = results / f"{MODEL}_gpt-4-cap-score-{runs}runs.csv"
    if csv_path.exists():
        with open(csv_path, encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if r[""] == MODEL:
                    official = f"total {r['total']}, runs {r['runs']}"
    notes = [
        f"judge runs {runs}: totals {res['total_per_run']}",
        f"{res['n_judge_failed']} unparsable grades",
    ]
    if differ:
        notes.append(f"{len(differ)} grades read differently from the file's score, e.g. {differ[:3]}")
    row = _row(bench, res["overall"], official=official, notes=notes)
    row.benchmark = f"mm_vet ({runs} run{'s' if runs > 1 else ''})"
    if runs > 1:  # the model zoo number is the single run; the 3-run mean is checked against the csv
        row.published, row.source = (
            (float(official.split(",")[0].split()[1]) if official else None),
            ("LLaVA's stored official result (csv)"),
        )
    return row


def score_llava_bench(llava: Path, bench_dir: Path | None) -> Row:
    folder = llava / "llava-bench-in-the-wild"
    review_files = sorted((folder / "reviews").glob(f"{MODEL}-eval*.jsonl"))
    if not review_files:
        raise FileNotFoundError(f"{folder / 'reviews'}: no {MODEL}-eval*.jsonl")
    reviews = [read_jsonl(f) for f in review_files]
    replies = {(str(r["question_id"]), run): r["content"] for run, rs in enumerate(reviews) for r in rs}
    answers = {str(a["question_id"]): a["text"] for a in read_jsonl(folder / "answers" / f"{MODEL}.jsonl")}
    bench = get_benchmark("llava_bench", runs=len(reviews))
    if bench_dir is not None:
        items = bench.load(bench_dir)
    else:  # the questions as the reviews name them (reference answers are inside the replayed reviews)
        items = [
            BenchItem(
                item_id=str(r["question_id"]),
                question="",
                answers=[""],
                category=r["category"].removeprefix("llava_bench_"),
            )
            for r in reviews[0]
        ]
    res = bench.score(answers, items, judge=ReplayJudge(replies, "gpt-4 (published reviews)"))
    # summarize_gpt_review.py reads the stored 'tuple' of each review: the official per-run result.
    official_runs = []
    for rs in reviews:
        pairs = [r["tuple"] for r in rs]
        ref = round(sum(p[0] for p in pairs) / len(pairs), 3)
        mod = round(sum(p[1] for p in pairs) / len(pairs), 3)
        official_runs.append(round(mod / ref * 100, 1))
    notes = [f"per run {res['overall_per_run']}", f"{res['n_malformed']} malformed score lines"]
    official = f"summarize_gpt_review.py per run {official_runs}"
    return _row(bench, res["overall"], official=official, notes=notes)


def score_textvqa(llava: Path, annotations: Path) -> Row:
    """eval_textvqa.py: an answer row (question_id = image id) is matched to the annotation with the
    same image and lowercased question; vitune keys items by TextVQA question id."""
    bench = get_benchmark("textvqa")
    items = bench.load(annotations)
    slots: dict[tuple[str, str], list[BenchItem]] = defaultdict(list)
    for it in items:
        slots[(str(it.meta["image_id"]), it.meta["raw_question"].lower())].append(it)
    preds = {}
    for a in read_jsonl(llava / "textvqa" / "answers" / f"{MODEL}.jsonl"):
        lines = a["prompt"].split("\n")
        key = (str(a["question_id"]), lines[0].lower())
        free = [it for it in slots.get(key, []) if it.item_id not in preds]
        if not free:
            raise ValueError(f"TextVQA: no annotation for image {key[0]} question {key[1]!r}")
        preds[free[0].item_id] = a["text"]
    items = [it for it in items if it.item_id in preds]
    return _row(bench, bench.score(preds, items)["overall"], notes=[f"{len(preds)} answers"])


def score_gqa(llava: Path, questions: Path) -> Row:
    bench = get_benchmark("gqa")
    items = bench.load(questions)
    preds = {
        str(a["question_id"]): a["text"]
        for a in read_jsonl(llava / "gqa" / "answers" / "llava_gqa_testdev_balanced" / f"{MODEL}.jsonl")
    }
    return _row(bench, bench.score(preds, items)["overall"], notes=[f"{len(preds)} answers"])


def _row(bench: Any, score: float, *, official: str = "", notes: list[str] | None = None) -> Row:
    pub = PUBLISHED[bench.name]
    return Row(
        benchmark=bench.name,
        protocol=f"{bench.active_protocol} v{bench.scorer_version}",
        vitune=score,
        published=pub.value,
        source=pub.source,
        official=official,
        notes=notes or [],
    )


# ---- driver ---------------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[tuple[str, Callable[[], Row] | None, str]]:
    """(benchmark, scoring call or None, reason to skip) for every benchmark, in table order."""
    llava: Path | None = args.llava

    def need(*paths: tuple[str, Any]) -> str:
        if llava is None:
            return "--llava not given"
        missing = [flag for flag, v in paths if v is None]
        return f"{', '.join(missing)} not given" if missing else ""

    def rel(*parts: str) -> str:
        return (
            "" if llava is None or (llava.joinpath(*parts)).exists() else f"{'/'.join(parts)} not in --llava"
        )

    sqa_gt = args.sqa_dir if args.sqa_dir is not None else (True if args.sqa_gt_from_llava else None)
    entries: list[tuple[str, Callable[[], Row], str]] = [
        ("pope", lambda: score_pope(llava, args.pope_labels), need(("--pope-labels", args.pope_labels))
         or rel("pope", "answers", f"{MODEL}.jsonl")),
        ("mme", lambda: score_mme(llava, args.mme_gt), need(("--mme-gt", args.mme_gt))
         or rel("MME", "answers", f"{MODEL}.jsonl")),
        ("scienceqa", lambda: score_scienceqa(llava, args.sqa_dir),
         need(("--sqa-dir (or --sqa-gt-from-llava)", sqa_gt)) or rel("scienceqa", "answers")),
        ("scienceqa (all questions)", lambda: score_scienceqa_all(llava, args.sqa_dir),
         need(("--sqa-dir (or --sqa-gt-from-llava)", sqa_gt))
         or rel("scienceqa", "answers", f"{MODEL}_result.json")),
        ("mmbench", lambda: score_mmbench(llava, args.mmbench_tsv), need()
         or rel("mmbench", "answers_upload", "mmbench_dev_20230712", f"{MODEL}.xlsx")),
        ("mm_vet (1 run)", lambda: score_mm_vet(llava, args.mmvet_json, 1), need()
         or rel("mm-vet", "results", f"{MODEL}_gpt-4-grade-1runs.json")),
        ("mm_vet (3 runs)", lambda: score_mm_vet(llava, args.mmvet_json, 3), need()
         or rel("mm-vet", "results", f"{MODEL}_gpt-4-grade-3runs.json")),
        ("llava_bench", lambda: score_llava_bench(llava, args.llava_bench_dir), need()
         or rel("llava-bench-in-the-wild", "reviews")),
        ("textvqa", lambda: score_textvqa(llava, args.textvqa_json),
         need(("--textvqa-json", args.textvqa_json)) or rel("textvqa", "answers", f"{MODEL}.jsonl")),
        ("gqa", lambda: score_gqa(llava, args.gqa_questions),
         need(("--gqa-questions", args.gqa_questions))
         or rel("gqa", "answers", "llava_gqa_testdev_balanced", f"{MODEL}.jsonl")),
    ]  # fmt: skip
    return [(name, None if why else call, why) for name, call, why in entries]


def run(args: argparse.Namespace) -> list[Row]:
    rows = []
    for name, call, why in plan(args):
        if call is None:
            rows.append(Row(benchmark=name, skipped=why))
            continue
        try:
            rows.append(call())
        except (ValueError, KeyError, OSError) as e:
            rows.append(Row(benchmark=name, error=f"{type(e).__name__}: {e}"))
    return rows


def _fmt(x: float | None, d: int = 2) -> str:
    return "—" if x is None else f"{x:.{d}f}"


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| benchmark | protocol | vitune | published | source | official script (stored) | match |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.skipped or r.error:
            why = f"skipped: {r.skipped}" if r.skipped else "ERROR (below)"
            lines.append(f"| {r.benchmark} | — | — | — | {why} | — | — |")
            continue
        ok = {True: "yes", False: "**NO**", None: "—"}[r.matches]
        published = _fmt(r.published, r.decimals)
        lines.append(
            f"| {r.benchmark} | {r.protocol} | {_fmt(r.vitune)} | {published} | {r.source} | "
            f"{r.official or '—'} | {ok} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--llava", type=Path, help="LLaVA's playground/data/eval folder (or an extracted copy)")
    p.add_argument("--pope-labels", type=Path, help="folder of coco_pope_{random,popular,adversarial}.json")
    p.add_argument("--mme-gt", type=Path, help="MME release folder, or a folder of eval_tool result files")
    p.add_argument("--sqa-dir", type=Path, help="ScienceQA folder with problems.json and pid_splits.json")
    p.add_argument(
        "--sqa-gt-from-llava",
        action="store_true",
        help="rebuild ScienceQA's test problems from llava_test_CQM-A.json",
    )
    p.add_argument("--mmbench-tsv", type=Path, help="official MMBench dev TSV (categories only)")
    p.add_argument("--mmvet-json", type=Path, help="official mm-vet.json (capabilities only)")
    p.add_argument("--llava-bench-dir", type=Path, help="official llava-bench-in-the-wild folder (optional)")
    p.add_argument("--textvqa-json", type=Path, help="TextVQA_0.5.1_val.json")
    p.add_argument("--gqa-questions", type=Path, help="GQA testdev_balanced_questions.json")
    p.add_argument("-v", "--verbose", action="store_true", help="print each benchmark's notes")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = run(args)
    print(table(rows))
    for r in rows:
        if r.skipped:
            print(f"skipped {r.benchmark}: {r.skipped}")
        elif r.error:
            print(f"ERROR {r.benchmark}: {r.error}")
        elif args.verbose and r.notes:
            print(f"{r.benchmark}: " + "; ".join(r.notes))
    bad = [r.benchmark for r in rows if r.matches is False or r.error]
    if bad:
        print(f"DIFFERS beyond rounding or could not be scored: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
