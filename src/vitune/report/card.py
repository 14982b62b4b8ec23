"""Dataset cards: a Hugging Face dataset-card `README.md` and an HTML sample gallery for the output
folder of `vitune build`, `synth` or `curate` (or any instance set).

The README's YAML header has `task_categories`, `size_categories` and `configs` whose `data_files`
point at the folder's own data (the Parquet shards of an instance set, or SVIT's LLaVA JSON for a
synthesis), so `datasets.load_dataset(DIR)` and the Hub read the folder as it is. The body counts
instances by task, category and source, histograms instruction and answer lengths, and lists the
ledger's reasons with counts. `gallery.html` shows, per task, a few samples drawn with a seeded
reservoir (the same folder and seed give the same page): the image thumbnail (boxes drawn where the
text holds normalized boxes), instruction, answer and multiple-choice options.

Instances are streamed (a shard at a time); memory holds counters and `k` samples per task.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune.data.instance import Instance
from vitune.report.assets import data_uri, normalized_boxes, thumbnail
from vitune.report.collect import read_json
from vitune.report.plots import histogram
from vitune.utils.atomic import write_text
from vitune.utils.hashing import derive_seed

CARD_FILE = "README.md"
GALLERY_FILE = "gallery.html"
# Word-count bins of the length histograms: [lo, hi) with the last one open.
LENGTH_EDGES = (0, 5, 10, 20, 50, 100, 200)
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


@dataclass
class Source:
    """What a card describes: where the instances are and how the folder was made."""

    kind: str  # build, synth, curate, instances
    data_files: str  # relative to the folder, for `configs:` (a glob or one file)
    instances: Any  # () -> Iterator[Instance]
    ledger: Path | None
    image_roots: dict[str, str]  # "" -> the one root, or input name -> root (curate)
    info: dict[str, Any] = field(default_factory=dict)  # manifest / summary
    pad_square: bool = False  # boxes in the padded-square frame (SVIT's export)


def detect(folder: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Source:
    """The kind of output in `folder`: build / curate (an `instances/` set), synth, or an instance set."""
    from vitune.data.llava import read_llava_json
    from vitune.data.store import iter_instances

    d = Path(folder)
    root = {"": str(image_root)} if image_root is not None else {}
    if (d / "instances" / "manifest.json").exists():
        manifest = read_json(d / "instances" / "manifest.json")
        data = d / "instances"
        if (d / "curation.json").exists():
            cur = read_json(d / "curation.json")
            roots = root or {k: str(v) for k, v in (cur.get("image_roots") or {}).items()}
            return Source("curate", "instances/data/*.parquet", lambda: iter_instances(data),
                          _exists(d / "removed.jsonl"), roots, {**manifest, "curation": cur})  # fmt: skip
        exp = manifest.get("exports", {})
        if not root and exp.get("image_root"):
            root = {"": str(exp["image_root"])}
        return Source("build", "instances/data/*.parquet", lambda: iter_instances(data),
                      _exists(d / "rejected.jsonl"), root, manifest)  # fmt: skip
    if (d / "synth_llava.json").exists():
        summary = read_json(d / "summary.json") if (d / "summary.json").exists() else {}
        if not root and summary.get("image_root"):
            root = {"": str(summary["image_root"])}
        return Source("synth", "synth_llava.json", lambda: iter(read_llava_json(d / "synth_llava.json")),
                      _exists(d / "ledger.jsonl"), root, summary, pad_square=True)  # fmt: skip
    if (d / "manifest.json").exists():
        return Source(
            "instances",
            "data/*.parquet",
            lambda: iter_instances(d),
            None,
            root,
            read_json(d / "manifest.json"),
        )
    raise FileNotFoundError(
        f"{d}: not a build, synth or curate output (no instances/manifest.json, synth_llava.json or manifest.json)"
    )


def _exists(p: Path) -> Path | None:
    return p if p.exists() else None


def length_bin(words: int) -> int:
    return max(i for i, lo in enumerate(LENGTH_EDGES) if words >= lo)


def bin_labels() -> list[str]:
    edges = LENGTH_EDGES
    return [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(edges)] + [f"{edges[-1]}+"]


@dataclass
class Sample:
    inst: Instance
    category: str


@dataclass
class CardStats:
    count: int = 0
    tasks: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    task_category: dict[str, str] = field(default_factory=dict)
    instruction_words: list[int] = field(default_factory=lambda: [0] * len(LENGTH_EDGES))
    answer_words: list[int] = field(default_factory=lambda: [0] * len(LENGTH_EDGES))
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    ledger: Counter = field(default_factory=Counter)  # "stage: reason" -> count


def _task_info(task: str) -> tuple[str, str]:
    """(category, source) of a catalog task, or empty strings for other names."""
    from vitune.tasks.spec import registry

    t = registry().get(task)
    return (t.spec.category, t.spec.source) if t is not None else ("", "")


def collect(src: Source, *, k: int = 4, seed: int = 0) -> CardStats:
    """Counts, length histograms, `k` seeded reservoir samples per task, and the ledger's reasons."""
    st = CardStats()
    seen: Counter = Counter()
    info_cache: dict[str, tuple[str, str]] = {}
    rngs: dict[str, random.Random] = {}
    for inst in src.instances():
        if inst.task not in info_cache:
            info_cache[inst.task] = _task_info(inst.task)
        cat = str(inst.meta.get("category") or info_cache[inst.task][0] or src.kind)
        source = str(inst.meta.get("source") or info_cache[inst.task][1] or src.kind)
        st.count += 1
        st.tasks[inst.task] += 1
        st.categories[cat] += 1
        st.sources[source] += 1
        st.task_category.setdefault(inst.task, cat)
        st.instruction_words[length_bin(len(inst.turns[0].text.split()))] += 1
        answer = sum(len(t.text.split()) for t in inst.turns[1::2])
        st.answer_words[length_bin(answer)] += 1
        # Reservoir sampling (Algorithm R) per task with its own seeded stream: k samples, any size.
        seen[inst.task] += 1
        rng = rngs.setdefault(inst.task, random.Random(derive_seed(seed, "card.samples", inst.task)))
        bucket = st.samples.setdefault(inst.task, [])
        if len(bucket) < k:
            bucket.append(Sample(inst, cat))
        else:
            j = rng.randrange(seen[inst.task])
            if j < k:
                bucket[j] = Sample(inst, cat)
    if src.ledger is not None:
        with open(src.ledger, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{src.ledger}: line {n} is not valid JSON ({e.msg})") from None
                st.ledger[f"{row.get('stage', '')}: {row.get('reason', '')}"] += 1
    return st


def size_category(n: int) -> str:
    return next((label for hi, label in SIZE_CATEGORIES if n < hi), "n>1M")


def hf_task_categories(st: CardStats) -> list[str]:
    cats = {"image-text-to-text", "visual-question-answering"}
    if any("caption" in c for c in st.categories):
        cats.add("image-to-text")
    if any(("ground" in t or "detection" in t) for t in st.tasks):
        cats.add("object-detection")
    return sorted(cats)


def yaml_header(src: Source, st: CardStats) -> str:
    import yaml

    meta = {
        "language": ["en"],
        "task_categories": hf_task_categories(st),
        "size_categories": [size_category(st.count)],
        "tags": ["vitune", "visual-instruction-tuning", src.kind],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": src.data_files}]}],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _table(cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    from vitune.eval.runner import markdown_table

    return markdown_table(cols, [tuple(str(c) for c in r) for r in rows])


def card_markdown(src: Source, st: CardStats) -> str:
    """The README.md text: YAML metadata, then counts, lengths and the ledger's reasons (nothing
    that depends on the folder's name, so the same data gives the same bytes wherever it is)."""
    parts = [
        yaml_header(src, st),
        f"# A vitune {src.kind} output",
        f"{st.count:,} instances in {len(st.tasks)} tasks, written by `vitune {src.kind}`. Data: "
        f"`{src.data_files}` (`datasets.load_dataset(DIR)` reads it, DIR being this folder). Samples with their "
        f"images: [{GALLERY_FILE}]({GALLERY_FILE}).",
        "## Tasks\n\n"
        + _table(
            ("task", "category", "instances"),
            [(t, st.task_category[t], n) for t, n in sorted(st.tasks.items())],
        ),
        "## Categories\n\n" + _table(("category", "instances"), sorted(st.categories.items())),
        "## Sources\n\n" + _table(("source", "instances"), sorted(st.sources.items())),
        "## Lengths (words)\n\n"
        + _table(
            ("words", "instruction", "answer"),
            list(zip(bin_labels(), st.instruction_words, st.answer_words, strict=True)),
        ),
    ]
    if src.ledger is not None:
        rows = sorted(st.ledger.items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(
            f"## Rejected or removed records (`{src.ledger.name}`)\n\n"
            + (_table(("stage: reason", "records"), rows) if rows else "None.\n")
        )
    return "\n\n".join(parts) + "\n"


def gallery_cards(src: Source, st: CardStats) -> list[dict[str, Any]]:
    """Per task (sorted), its sample cards as template data: thumbnail, turns, options, boxes."""
    out = []
    for task in sorted(st.samples):
        cards = []
        for s in st.samples[task]:
            inst = s.inst
            texts = [t.text for t in inst.turns]
            boxes = normalized_boxes(texts)
            root = src.image_roots.get("", src.image_roots.get(str(inst.meta.get("source", ""))))
            thumb = thumbnail(root, inst.image, boxes=boxes, pad_square=src.pad_square)
            options = inst.meta.get("options") if isinstance(inst.meta.get("options"), list) else []
            answer = str(inst.meta.get("answer", ""))
            letters = "abcdefghijklmnopqrstuvwxyz"
            cards.append(
                {
                    "id": inst.id,
                    "image": inst.image or "",
                    "thumb": thumb,
                    "turns": [(t.role, t.text) for t in inst.turns[:6]],
                    "more_turns": max(0, len(inst.turns) - 6),
                    "options": [
                        (letters[i], str(o), letters[i] == answer) for i, o in enumerate(options[:26])
                    ],
                    "boxes": len(boxes),
                }
            )
        out.append(
            {"task": task, "category": st.task_category.get(task, ""), "n": st.tasks[task], "cards": cards}
        )
    return out


def write_dataset_card(
    folder: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    samples: int = 4,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write `README.md` and `gallery.html` into a build / synth / curate output folder."""
    from vitune.report.html import render_page

    d = Path(folder)
    src = detect(d, image_root)
    st = collect(src, k=samples, seed=seed)
    card = d / CARD_FILE
    write_text(card, card_markdown(src, st))
    lengths = histogram(
        "lengths", bin_labels(), {"instruction": st.instruction_words, "answer": st.answer_words}
    )
    html = render_page(
        "card.html.j2",
        title=f"vitune {src.kind} output: dataset card",
        kind=src.kind,
        st=st,
        data_files=src.data_files,
        bins=list(zip(bin_labels(), st.instruction_words, st.answer_words, strict=True)),
        lengths_png=data_uri(lengths, "image/png"),
        ledger_name=src.ledger.name if src.ledger is not None else None,
        ledger=sorted(st.ledger.items(), key=lambda kv: (-kv[1], kv[0])),
        gallery=gallery_cards(src, st),
        has_roots=bool(src.image_roots),
    )
    gallery = d / GALLERY_FILE
    write_text(gallery, html)
    return card, gallery
