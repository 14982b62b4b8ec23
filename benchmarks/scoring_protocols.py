"""How much the scoring protocol moves VQAv2 (and GQA) on LLaVA-style answers: `paper` vs `official`.

LLaVA-1.5's answer files hold short answers with a capital first letter ("Yes", "Two", "Red"),
sometimes a trailing period. `vqaEval.py` on those raw answers (the `official` protocol) matches
exactly and case-sensitively whenever the ten human answers agree, so "Yes" scores 0 against ten
"yes"; the EvalAI answer processor that LLaVA's submission script runs first (`paper`) lowercases.

The ground truth is the embedded world's held-out VQAv2 and GQA files (official formats). The
"model" answers a question right with probability `--p-right` (the most common human answer)
and otherwise gives another question's answer (seeded), then its text is styled as named in the
table. The same answers are scored under both protocols; the ratio column is paper / official.

    PYTHONPATH=src .venv/bin/python benchmarks/scoring_protocols.py [--images 600] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from vitune.data.records import QA
from vitune.eval.benchmarks.gqa import gqa_normalize
from vitune.eval.vqav2 import score_vqa
from vitune.world import generate_world
from vitune.world.layout import WorldLayout

NUMBER_WORDS = {
    str(i): w
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    )
}

STYLES: dict[str, Callable[[str], str]] = {
    "lowercase (as the annotators)": lambda a: a,
    'capitalized ("Yes", "Red", "2")': lambda a: a[:1].upper() + a[1:],
    'capitalized + period ("Yes.")': lambda a: a[:1].upper() + a[1:] + ".",
    'number words ("Two", "Yes")': lambda a: (
        (NUMBER_WORDS.get(a, a))[:1].upper() + NUMBER_WORDS.get(a, a)[1:]
    ),
}


def vqa_truth(layout: WorldLayout, split: str) -> list[QA]:
    root = layout.root / "vqav2"
    qs = json.loads((root / f"v2_OpenEnded_mscoco_{split}_questions.json").read_text())["questions"]
    anns = {
        a["question_id"]: a
        for a in json.loads((root / f"v2_mscoco_{split}_annotations.json").read_text())["annotations"]
    }
    return [
        QA(str(q["question_id"]), q["question"], [a["answer"] for a in anns[q["question_id"]]["answers"]],
           anns[q["question_id"]]["answer_type"], anns[q["question_id"]]["question_type"])
        for q in qs
    ]  # fmt: skip


def base_answers(golds: list[str], p_right: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [g if rng.random() < p_right else rng.choice(golds) for g in golds]


def vqa_rows(qas: list[QA], p_right: float, seed: int) -> list[tuple[str, float, float]]:
    golds = [Counter(qa.answers).most_common(1)[0][0] for qa in qas]
    raw = base_answers(golds, p_right, seed)
    rows = []
    for style, fn in STYLES.items():
        preds = {qa.question_id: fn(a) for qa, a in zip(qas, raw, strict=True)}
        official = score_vqa(preds, qas, protocol="official").overall
        paper = score_vqa(preds, qas, protocol="paper").overall
        rows.append((style, official, paper))
    return rows


def gqa_truth(layout: WorldLayout, split: str) -> list[str]:
    doc = json.loads((layout.root / "gqa" / "questions" / f"{split}_balanced_questions.json").read_text())
    return [q["answer"] for q in doc.values()]


def gqa_rows(golds: list[str], p_right: float, seed: int) -> list[tuple[str, float, float]]:
    raw = base_answers(golds, p_right, seed)
    rows = []
    for style, fn in STYLES.items():
        preds = [fn(a) for a in raw]
        # Raw eval.py: exact match; LLaVA's pipeline: convert_gqa_for_eval's rstrip('.').lower() first.
        raw_acc = sum(p == g for p, g in zip(preds, golds, strict=True)) / len(golds) * 100
        llava = sum(gqa_normalize(p) == g for p, g in zip(preds, golds, strict=True)) / len(golds) * 100
        rows.append((style, raw_acc, llava))
    return rows


def table(title: str, header: tuple[str, str], rows: list[tuple[str, float, float]], n: int) -> str:
    out = [
        f"{title} ({n} questions)",
        f"| answers | {header[0]} | {header[1]} | difference | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for style, a, b in rows:
        ratio = f"{b / a:.2f}x" if a else "—"
        out.append(f"| {style} | {a:.2f} | {b:.2f} | {b - a:+.2f} | {ratio} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--p-right", type=float, default=0.6)
    ap.add_argument(
        "--world", type=Path, default=None, help="An existing world folder (else a temporary one)."
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.world or Path(tmp) / "world"
        if args.world is None:
            generate_world(root, args.images, seed=args.seed, workers=1, split_fractions=(0.0, 0.5, 0.5))
        layout = WorldLayout(root)
        qas = [qa for split in ("val", "test") for qa in vqa_truth(layout, split)]
        print(table("VQAv2", ("official (vqaEval.py)", "paper (EvalAI processor first)"),
                    vqa_rows(qas, args.p_right, args.seed), len(qas)))  # fmt: skip
        unanimous = sum(len(set(qa.answers)) == 1 for qa in qas) / len(qas) * 100
        print(f"(the ten answers agree on {unanimous:.1f}% of these questions)")
        print()
        golds = [g for split in ("val", "test") for g in gqa_truth(layout, split)]
        print(table("GQA", ("raw eval.py", "LLaVA (rstrip('.').lower() first)"),
                    gqa_rows(golds, args.p_right, args.seed), len(golds)))  # fmt: skip


if __name__ == "__main__":
    main()
