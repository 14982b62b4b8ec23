"""Single-round vs multi-round evaluation (the COCO-IFT finding, REFERENCE §3).

Models tuned on short-answer VQA data tend to stay terse for the rest of a dialog once a short-answer
turn has come up, which closed-form single-question benchmarks never see. Here the questions a set
of benchmarks asks about one image are chained into one dialog, open-ended turns around the
short-answer turns (`chain_by_image`), and each question is answered twice:

- single-round: alone, exactly as the plain benchmark runner asks it (`Generator` + `to_gen_item`:
  the same prompt, so the same greedy answer);
- multi-round: as turn k of the dialog, the prompt holding every earlier question with the model's
  OWN earlier answers, rendered in the model's conversation template (`vicuna_v1`:
  ``SYSTEM USER: <image>\\nQ1 ASSISTANT: A1</s>USER: Q2 ASSISTANT:``, the `data/templates.py`
  rendering that is also the exported chat template), the image attached to the first turn only.

Each benchmark then scores both prediction sets with its own official scorer (judged benchmarks
need `judge=`; without one they are reported as skipped, never silently dropped), side by side,
and answer lengths in words are compared per turn index, per benchmark and for open-ended turns
that follow a short-answer turn: mean words and the fraction of answers of at most `terse_words`
words. Generation is greedy and batched across dialogs turn by turn, so it does not depend on the
batch size (see `generate.py`).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from vitune.data.templates import generation_prompt
from vitune.eval.benchmarks.base import BenchItem, Benchmark, get_benchmark, to_gen_item
from vitune.eval.generate import Generator
from vitune.eval.judge import Judge
from vitune.utils.atomic import write_json

Turn = tuple[str, BenchItem]  # (benchmark name, item)
RESULTS_FILE = "multiround_results.json"
TABLE_COLUMNS = ("row", "n", "single", "multi", "delta")
ImageRoot = str | os.PathLike | Mapping[str, str | os.PathLike] | None


class DialogGenerator(Generator):
    """A `Generator` that also answers ready-made (multi-turn) prompts, batched and order-preserving."""

    def dialog_prompt(self, history: Sequence[tuple[str, str]], question: str, has_image: bool) -> str:
        """The prompt for the next answer after `history` ((question, answer) pairs) and `question`."""
        turns: list[tuple[str, str]] = []
        for q, a in history:
            turns += [("user", q), ("assistant", a)]
        turns.append(("user", question))
        return generation_prompt(self.template, turns, has_image, self.tokenizer.eos_token or "</s>")

    def check_lengths(self, prompts: Sequence[str], has_image: Sequence[bool]) -> None:
        """Refuse prompts that cannot fit with `max_new_tokens` (the model would silently degrade)."""
        limit = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        if limit is None:
            return
        n_img = int(getattr(self.model.config, "image_seq_length", 0) or 0)
        ids = self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        for p, toks, img in zip(prompts, ids, has_image, strict=True):
            n = len(toks) + (n_img - 1 if img else 0) + self.max_new_tokens
            if n > limit:
                raise ValueError(
                    f"a dialog prompt needs {n} positions (with {self.max_new_tokens} new tokens) but the "
                    f"model has {limit}; use shorter dialogs (max_turns) or fewer new tokens: {p[-120:]!r}"
                )

    def generate_prompts(self, prompts: Sequence[str], images: Sequence[Any]) -> list[str]:
        """Answer rendered prompts (`images[i]` None for text-only); results in input order."""
        if not prompts:
            return []
        has_image = [im is not None for im in images]
        self.check_lengths(prompts, has_image)
        return self.answer(prompts, images)


def _root(image_root: ImageRoot, bench: str) -> str | os.PathLike | None:
    if isinstance(image_root, Mapping):
        return image_root.get(bench)
    return image_root


def _image_key(item: BenchItem, root: str | os.PathLike | None) -> str:
    if item.image is None:
        return ""
    if isinstance(item.image, bytes):
        return "sha256:" + hashlib.sha256(item.image).hexdigest()
    return str(item.image_source(root)) if root is not None else item.image


def is_short_answer(bench: Benchmark) -> bool:
    """Short-answer benchmarks ask with an answer-format suffix (a word or phrase, an option letter)."""
    return bool(bench.prompt_suffix)


def chain_by_image(
    items_by_benchmark: Mapping[str, Sequence[BenchItem]],
    *,
    image_root: ImageRoot = None,
    short: Collection[str] | None = None,
    max_turns: int | None = None,
) -> dict[str, list[Turn]]:
    """Dialogs keyed by image: the first half of its open-ended questions, then its short-answer
    questions, then the other open-ended ones (input order kept within each group).

    Images are matched by their resolved path when `image_root` (one root, or one per benchmark) is
    given, else by the item's relative path. `short` names the short-answer benchmarks (default:
    those with an answer-format `prompt_suffix`). `max_turns` cuts each dialog.
    """
    if short is None:
        short = {name for name in items_by_benchmark if is_short_answer(get_benchmark(name))}
    groups: dict[str, tuple[list[Turn], list[Turn]]] = {}
    for name, items in items_by_benchmark.items():
        for it in items:
            key = _image_key(it, _root(image_root, name))
            opens, shorts = groups.setdefault(key, ([], []))
            (shorts if name in short else opens).append((name, it))
    dialogs = {}
    for key, (opens, shorts) in groups.items():
        half = (len(opens) + 1) // 2
        dialogs[key] = (opens[:half] + shorts + opens[half:])[:max_turns]
    return dialogs


def length_stats(answers: Sequence[str], terse_words: int = 3) -> dict[str, float]:
    """`n`, `mean_words` and `terse_frac` (answers of at most `terse_words` words) of `answers`."""
    words = [len(a.split()) for a in answers]
    n = len(words)
    return {
        "n": n,
        "mean_words": sum(words) / n if n else 0.0,
        "terse_frac": sum(w <= terse_words for w in words) / n if n else 0.0,
    }


def _dialog_image(turns: Sequence[Turn], image_root: ImageRoot) -> Any:
    first_bench, first = turns[0]
    image = first.image_source(_root(image_root, first_bench))
    key = _image_key(first, _root(image_root, first_bench))
    for name, it in turns[1:]:
        other = _image_key(it, _root(image_root, name))
        if other != key:
            raise ValueError(f"dialog mixes images: {first.item_id} ({key!r}) and {it.item_id} ({other!r})")
    return image


def _as_generator(model: Any, **kw: Any) -> DialogGenerator:
    if isinstance(model, DialogGenerator):
        return model
    if isinstance(model, Generator):  # its own template, batch size and token budget apply
        return DialogGenerator(
            model.model,
            model.processor,
            template=model.template,
            max_new_tokens=model.max_new_tokens,
            batch_size=model.batch_size,
        )
    if isinstance(model, tuple):
        m, processor = model
        return DialogGenerator(m, processor, **kw)
    device = kw.pop("device")
    return DialogGenerator.from_dir(model, device=device, **kw)  # type: ignore[return-value]


def answer_dialogs(
    gen: DialogGenerator,
    dialogs: Mapping[str, Sequence[Turn]],
    image_root: ImageRoot = None,
    *,
    keep_prompts: bool = False,
) -> list[dict[str, Any]]:
    """Every turn answered single-round and multi-round; one record per dialog, turns in order."""
    keys = [k for k in dialogs if dialogs[k]]
    images = {k: _dialog_image(dialogs[k], image_root) for k in keys}
    flat = [(k, name, it) for k in keys for name, it in dialogs[k]]
    gen.check_lengths(
        [gen.prompt(it.question, it.image is not None) for _, _, it in flat],
        [it.image is not None for _, _, it in flat],
    )
    # Exactly the plain runner's request: `to_gen_item` through `Generator.generate`.
    single = gen.generate([to_gen_item(it, _root(image_root, name)) for _, name, it in flat])
    records = {k: {"key": k, "image": _describe_image(images[k]), "turns": []} for k in keys}
    for (k, name, it), ans in zip(flat, single, strict=True):
        records[k]["turns"].append(
            {"benchmark": name, "item_id": it.item_id, "question": it.question, "single": ans}
        )
    history: dict[str, list[tuple[str, str]]] = {k: [] for k in records}
    for t in range(max((len(d) for d in dialogs.values()), default=0)):
        active = [k for k in records if len(dialogs[k]) > t]
        prompts = [
            gen.dialog_prompt(history[k], dialogs[k][t][1].question, images[k] is not None) for k in active
        ]
        if t == 0:
            # Turn 1 has no history: its prompt IS the single-round prompt, and greedy decoding is
            # deterministic and batch-invariant, so the single-round answer is reused.
            answers = [records[k]["turns"][0]["single"] for k in active]
        else:
            answers = gen.generate_prompts(prompts, [images[k] for k in active])
        for k, prompt, ans in zip(active, prompts, answers, strict=True):
            turn = records[k]["turns"][t]
            turn["multi"] = ans
            if keep_prompts:
                turn["prompt"] = prompt
            history[k].append((dialogs[k][t][1].question, ans))
    return list(records.values())


def _describe_image(image: Any) -> str | None:
    if image is None:
        return None
    return "<decoded image>" if isinstance(image, Image.Image) else str(image)


def summarize(
    records: Sequence[Mapping[str, Any]],
    dialogs: Mapping[str, Sequence[Turn]],
    *,
    benchmarks: Mapping[str, Benchmark] | None = None,
    judge: Judge | None = None,
    terse_words: int = 3,
) -> dict[str, Any]:
    """Scores (each benchmark's official scorer, single vs multi) and answer-length statistics."""
    benches = dict(benchmarks or {})
    items: dict[str, list[BenchItem]] = defaultdict(list)
    preds: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: {"single": {}, "multi": {}})
    for rec in records:
        for (name, it), turn in zip(dialogs[rec["key"]], rec["turns"], strict=True):
            if it.item_id in preds[name]["single"]:
                raise ValueError(f"{name} item {it.item_id} is in more than one dialog turn")
            items[name].append(it)
            preds[name]["single"][it.item_id] = turn["single"]
            preds[name]["multi"][it.item_id] = turn["multi"]
    for name in items:
        benches.setdefault(name, get_benchmark(name))

    scores: dict[str, Any] = {}
    for name in sorted(items):
        bench = benches[name]
        row: dict[str, Any] = {
            "metric": bench.metric,
            # How it was scored (docs/EVALUATION.md): never compared silently with another protocol.
            "protocol": getattr(bench, "active_protocol", ""),
            "scorer_version": getattr(bench, "scorer_version", None),
            "n": len(items[name]),
        }
        if getattr(bench, "needs_judge", False) and judge is None:
            row["skipped"] = "scored by an LLM judge: pass judge=make_judge(...)"
        else:
            kw = {"judge": judge} if getattr(bench, "needs_judge", False) else {}
            for mode in ("single", "multi"):
                row[mode] = bench.score(preds[name][mode], items[name], **kw)
            row["overall_single"] = row["single"]["overall"]
            row["overall_multi"] = row["multi"]["overall"]
            row["delta"] = row["overall_multi"] - row["overall_single"]
        scores[name] = row

    by_turn: dict[int, dict[str, list[str]]] = defaultdict(lambda: {"single": [], "multi": []})
    by_bench: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"single": [], "multi": []})
    after_short: dict[str, list[str]] = {"single": [], "multi": []}
    for rec in records:
        seen_short = False
        for t, turn in enumerate(rec["turns"], 1):
            short = is_short_answer(benches[turn["benchmark"]])
            for mode in ("single", "multi"):
                by_turn[t][mode].append(turn[mode])
                by_bench[turn["benchmark"]][mode].append(turn[mode])
                if seen_short and not short:
                    after_short[mode].append(turn[mode])
            seen_short = seen_short or short

    def both(group: Mapping[str, list[str]]) -> dict[str, Any]:
        return {m: length_stats(group[m], terse_words) for m in ("single", "multi")}

    return {
        "scores": scores,
        "per_turn": [{"turn": t, **both(by_turn[t])} for t in sorted(by_turn)],
        "per_benchmark_length": {b: both(by_bench[b]) for b in sorted(by_bench)},
        "open_after_short": both(after_short),
        "terse_words": terse_words,
    }


def run_multiround(
    model_dir_or_model: Any,
    items_by_image: Mapping[str, Sequence[Turn]],
    *,
    image_root: ImageRoot = None,
    benchmarks: Mapping[str, Benchmark] | None = None,
    judge: Judge | None = None,
    template: str = "vicuna_v1",
    max_new_tokens: int = 64,
    batch_size: int = 8,
    device: str = "cpu",
    terse_words: int = 3,
    keep_prompts: bool = False,
    out_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Answer every dialog single- and multi-round, score both, compare answer lengths; return it all.

    `model_dir_or_model`: an exported model folder, a `Generator` (its settings are used), or a
    `(model, processor)` pair. `items_by_image`: dialog key -> `(benchmark name, BenchItem)` turns
    in order (see `chain_by_image`); every turn of a dialog must show the same image. `image_root`:
    one folder, or one per benchmark name, that the items' image paths are relative to.
    `benchmarks`: instances to score with (default `get_benchmark(name)`). `keep_prompts`: record
    the exact multi-round prompt of every turn. With `out_dir`, the result is also written to
    `out_dir/multiround_results.json` (atomically).
    """
    gen = _as_generator(
        model_dir_or_model,
        template=template,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        device=device,
    )
    dialogs = {k: list(v) for k, v in items_by_image.items() if v}
    records = answer_dialogs(gen, dialogs, image_root, keep_prompts=keep_prompts)
    result = {
        "settings": {
            "template": gen.template,
            "max_new_tokens": gen.max_new_tokens,
            "decoding": "greedy",
            "n_dialogs": len(records),
            "n_turns": sum(len(r["turns"]) for r in records),
        },
        **summarize(records, dialogs, benchmarks=benchmarks, judge=judge, terse_words=terse_words),
        "dialogs": records,
    }
    if out_dir is not None:
        write_json(Path(out_dir) / RESULTS_FILE, result, indent=2)
    return result


def multiround_table_rows(result: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Rows `row | n | single | multi | delta` (strings, for `rich.table.Table.add_row`): each
    benchmark's official score, then mean words and % terse answers per turn index, per benchmark
    and for open-ended turns after a short-answer turn."""
    rows: list[tuple[str, ...]] = []
    for name, s in result["scores"].items():
        if "skipped" in s:
            rows.append((f"{name} ({s['metric']})", str(s["n"]), "skipped", "skipped", s["skipped"]))
            continue
        a, b = s["overall_single"], s["overall_multi"]
        rows.append((f"{name} ({s['metric']})", str(s["n"]), f"{a:.2f}", f"{b:.2f}", f"{b - a:+.2f}"))

    def length_rows(label: str, st: Mapping[str, Any]) -> None:
        if not st["single"]["n"]:
            return
        n = str(st["single"]["n"])
        ws, wm = st["single"]["mean_words"], st["multi"]["mean_words"]
        ts, tm = 100 * st["single"]["terse_frac"], 100 * st["multi"]["terse_frac"]
        rows.append((f"{label}: mean words", n, f"{ws:.1f}", f"{wm:.1f}", f"{wm - ws:+.1f}"))
        rows.append(
            (f"{label}: % <= {result['terse_words']} words", n, f"{ts:.1f}", f"{tm:.1f}", f"{tm - ts:+.1f}")
        )

    for t in result["per_turn"]:
        length_rows(f"turn {t['turn']}", t)
    for name, st in result["per_benchmark_length"].items():
        length_rows(name, st)
    length_rows("open after short", result["open_after_short"])
    return rows


def run_multiround_benchmarks(
    model_dir_or_model: Any,
    specs: Sequence[Any],
    out_dir: str | os.PathLike | None = None,
    *,
    max_images: int | None = None,
    max_turns: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Load each `eval.runner.BenchSpec` with its registered loader, chain the questions of every
    image into one dialog (`chain_by_image`), and `run_multiround` them; `max_images` keeps the
    dialogs of the first N images (sorted by image key, so the choice is stable)."""
    items = {s.name: get_benchmark(s.name, **s.options).load(s.path) for s in specs}
    roots = {s.name: s.images for s in specs}
    dialogs = chain_by_image(items, image_root=roots, max_turns=max_turns)
    keys = sorted(dialogs)[:max_images] if max_images is not None else sorted(dialogs)
    return run_multiround(
        model_dir_or_model, {k: dialogs[k] for k in keys}, image_root=roots, out_dir=out_dir, **options
    )
