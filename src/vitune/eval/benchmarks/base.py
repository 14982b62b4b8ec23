"""The benchmark registry: `BenchItem`, the `Benchmark` base class, `@register_benchmark`, `get_benchmark`.

A benchmark is one module in this package holding one `Benchmark` subclass decorated with
`@register_benchmark` (a dataset with two tasks, A-OKVQA's MC and DA, registers both in its module). It reads the OFFICIAL files from a local path (`load`), phrases every item as
LLaVA-1.5 asks it (`BenchItem.question` is the full user text, suffix included), and scores
predictions exactly as the official script does (`score`). Nothing here downloads anything.

Predictions are `{item_id: generated text}`. Scorers never score a missing prediction silently:
`missing="error"` (default) refuses, `"wrong"` counts it as a wrong answer, `"skip"` leaves it out;
every result reports `n_missing`.

Scoring protocols (docs/EVALUATION.md): a benchmark declares in `protocols` the ways it can be
scored, the default first. `paper` is the pipeline behind the published numbers (VQAv2: LLaVA's
submission script runs the EvalAI answer processor on every prediction before the server's
`vqaEval.py`), `official` the raw official script. A benchmark whose published numbers come from
its official script has the one protocol `official`. `get_benchmark(name, protocol=...)` picks one;
`scorer_version` is bumped whenever a scorer's numbers change, and both go into every result.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

# LLaVA-1.5's two answer-format suffixes (REFERENCE §4), appended after a newline.
SHORT_ANSWER = "Answer the question using a single word or phrase."
LETTER_ANSWER = "Answer with the option's letter from the given choices directly."

Missing = Literal["error", "wrong", "skip"]
PROTOCOLS = ("paper", "official")


class BenchmarkDataError(ValueError):
    """A benchmark's files are missing, empty or unreadable: the CLI reports it and exits 2."""


@dataclass(slots=True)
class BenchItem:
    """One benchmark question, ready to be asked and scored.

    `image` is a path relative to the benchmark's image root, raw encoded bytes (MMBench's base64
    TSV, MMMU parquet), or None for text-only items. `question` is the text as prompted (LLaVA
    format, answer-format suffix included); the raw question is in `meta["raw_question"]`.
    `options` maps option letters to option texts, in order.
    """

    item_id: str
    question: str
    image: str | bytes | None = None
    answers: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    category: str = ""
    subcategory: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def image_source(self, image_root: str | os.PathLike | None = None):
        """A path under `image_root` (checked not to escape it) or a PIL image decoded from bytes."""
        if self.image is None:
            return None
        if isinstance(self.image, bytes):
            from vitune.data.images import open_image  # the one image check, header first

            return open_image(self.image, source=f"item {self.item_id} (embedded image)")
        from vitune.data.paths import resolve_image

        return resolve_image(image_root if image_root is not None else ".", self.image)


def image_problems(items: Sequence[BenchItem], image_root: Path) -> dict[int, str]:
    """{index: reason} of items whose image breaks the one path rule or fails the one image check
    (missing, empty, corrupt, a bomb). Those items are not asked (scored as unanswered, so wrong)
    and are listed with their reason in `<bench>/rejected.jsonl`: one bad image never stops a run."""
    from vitune.data.images import check_image
    from vitune.data.paths import UnsafePathError, resolve_image

    out: dict[int, str] = {}
    seen: dict[str, str | None] = {}  # path -> reason: VQAv2 asks ~5 questions per image, decode once
    for k, it in enumerate(items):
        if it.image is None:
            continue
        if isinstance(it.image, bytes):
            reason = check_image(it.image)
        elif it.image in seen:
            reason = seen[it.image]
        else:
            try:
                reason = check_image(resolve_image(image_root, it.image))
            except UnsafePathError as e:
                reason = str(e)
            seen[it.image] = reason
        if reason:
            out[k] = reason
    return out


def to_gen_item(item: BenchItem, image_root: str | os.PathLike | None = None):
    """The `generate.GenItem` asking `item` (imported lazily: scoring needs no torch)."""
    from vitune.eval.generate import GenItem

    return GenItem(item.question, item.image_source(image_root))


class Benchmark(ABC):
    """Subclass, set `name`, implement `load` and `score`, decorate with `@register_benchmark`."""

    name: ClassVar[str] = ""
    metric: ClassVar[str] = "accuracy"
    # Appended (after a newline) to each question; the exact prompt is always `BenchItem.question`.
    prompt_suffix: ClassVar[str] = ""
    # True for benchmarks scored by an LLM judge: runners then pass `judge=` to `score`.
    needs_judge: ClassVar[bool] = False
    # How `vitune eval` scores an item left without an answer: "wrong" for a question (it counts as
    # a miss), "skip" where no answer can be wrong (CHAIR's captions: it is left out, and counted).
    missing_in_runs: ClassVar[Missing] = "wrong"
    # False for error rates (CHAIR): comparisons then read a drop of `overall` as a gain.
    higher_is_better: ClassVar[bool] = True
    # The scoring protocols this benchmark distinguishes, default first (module docstring).
    protocols: ClassVar[tuple[str, ...]] = ("official",)
    # Bumped whenever this scorer's numbers change; recorded next to the protocol in results.
    scorer_version: ClassVar[int] = 1
    # The protocol in use (set by `get_benchmark`; the default protocol otherwise).
    protocol: str = ""

    @property
    def active_protocol(self) -> str:
        return self.protocol or self.protocols[0]

    @abstractmethod
    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        """Read the official files at `path` (a file or folder, see each module) into items."""

    @abstractmethod
    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        """Official scores: always `overall` (percent) plus per-category results, `n`, `n_missing`."""

    def result(
        self, *, overall: float, per_category: Mapping[str, Any], n: int, n_missing: int, **extra: Any
    ) -> dict[str, Any]:
        """The result dict every scorer returns: the benchmark, its metric (`extra` may override it,
        e.g. MMBench's circular variant), the overall score, per-category scores, counts, extras."""
        return {
            "benchmark": self.name,
            "metric": extra.pop("metric", self.metric),
            "overall": overall,
            "per_category": per_category,
            "n": n,
            "n_missing": n_missing,
            **extra,
        }

    def unparsable(self, prediction: str, item: BenchItem) -> bool:
        """True when the official rule cannot read a (non-empty) prediction and scores it by a
        fallback (FAILED, "other", a default answer). Counted per benchmark in every results table."""
        return False

    def prompt(self, question: str) -> str:
        return f"{question}\n{self.prompt_suffix}" if self.prompt_suffix else question

    def group_key(self, item: BenchItem) -> str:
        """Items scored together (MMBench's circular passes, MME's image pair) share a key.

        Runners that evaluate a subset (`--limit`) take whole groups, so a partial group can never
        be scored as if it were complete.
        """
        return item.item_id


_REGISTRY: dict[str, type[Benchmark]] = {}


def register_benchmark(cls: type[Benchmark]) -> type[Benchmark]:
    """Class decorator adding a `Benchmark` subclass to the registry under `cls.name`."""
    if not (isinstance(cls, type) and issubclass(cls, Benchmark)):
        raise TypeError(f"{cls!r} is not a Benchmark subclass")
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    other = _REGISTRY.get(cls.name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise ValueError(f"benchmark {cls.name!r} is already registered by {other.__module__}")
    _REGISTRY[cls.name] = cls
    return cls


def resolve_protocol(cls: type[Benchmark], protocol: str | None) -> str:
    """The protocol `cls` scores with when `protocol` is asked for (None: its default).

    A benchmark with one protocol uses it whatever is asked: its published numbers come from the
    official script, so `paper` and `official` are the same there.
    """
    if protocol is None:
        return cls.protocols[0]
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown scoring protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return protocol if protocol in cls.protocols else cls.protocols[0]


def get_benchmark(name: str, protocol: str | None = None, **options: Any) -> Benchmark:
    """An instance of the registered benchmark `name` scoring under `protocol` (None: its default);
    `options` go to its constructor."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(benchmark_names())}") from None
    bench = cls(**options)
    bench.protocol = resolve_protocol(cls, protocol)
    return bench


def benchmark_names() -> list[str]:
    return sorted(_REGISTRY)


# ---- helpers shared by the benchmark modules -------------------------------------------------


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: bad JSON line ({e})") from e
    return rows


def pct(num: float, den: float) -> float:
    """Percentage, 0.0 for an empty denominator (official scripts would divide by zero)."""
    return 100.0 * num / den if den else 0.0


def ratio_pct(num: float, den: float) -> float:
    """`num / den * 100`: the order GQA's eval.py, LLaVA's eval_science_qa.py and CHAIR compute in
    (it can differ from `pct` in the last digit), 0.0 for an empty denominator."""
    return num / den * 100 if den else 0.0


def is_empty(prediction: str | None) -> bool:
    """An empty answer: nothing, or only whitespace."""
    return prediction is None or not prediction.strip()


def group_pct(groups: Mapping[str, list[bool]]) -> dict[str, float]:
    """Accuracy (percent) per group, groups in sorted order."""
    return {k: pct(sum(v), len(v)) for k, v in sorted(groups.items())}


def scorable(items: Iterable[BenchItem], what: str) -> list[BenchItem]:
    """`items` as a list, or a ValueError when any has no ground truth (a test split is scored by
    the benchmark's server, never locally). `what` names it: "VQAv2 items without answers"."""
    items = list(items)
    if any(not it.answers for it in items):
        raise ValueError(f"{what} (test split?) cannot be scored locally")
    return items


def pair_predictions(
    preds: Mapping[str, str], items: Iterable[BenchItem], missing: Missing
) -> tuple[list[tuple[BenchItem, str | None]], int]:
    """(item, prediction or None) for every scored item, and how many had no prediction.

    None is returned only with `missing="wrong"`; the scorer must then count the item as wrong.
    """
    if missing not in ("error", "wrong", "skip"):
        raise ValueError(f"missing must be 'error', 'wrong' or 'skip', not {missing!r}")
    out: list[tuple[BenchItem, str | None]] = []
    absent: list[str] = []
    for it in items:
        p = preds.get(it.item_id)
        if p is None:
            absent.append(it.item_id)
            if missing != "wrong":
                continue
        out.append((it, None if p is None else str(p)))
    if absent and missing == "error":
        raise ValueError(f"{len(absent)} item(s) have no prediction, e.g. {absent[:5]}")
    return out, len(absent)


def find_one(folder: Path, patterns: Iterable[str]) -> Path:
    """The single file in `folder` matching the first pattern that matches anything."""
    for pat in patterns:
        hits = sorted(folder.glob(pat))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ValueError(f"{folder}: several files match {pat!r}: {[h.name for h in hits]}")
    raise FileNotFoundError(f"{folder}: no file matching {list(patterns)}")
