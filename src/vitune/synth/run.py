"""`synth()`: records x generators -> requests -> (cache | backend) -> parse -> filter -> export.

Resumable by construction: every request has a content key; a reply is written to the sqlite
cache the moment it arrives, before parsing or anything else, and a run first looks every key up
in the cache. A run killed at any point (kill -9 included) therefore re-sends only the requests
that were in flight, and a finished reply is never lost. Outputs (LLaVA JSON, raw JSON, ledger,
summary) are rebuilt from the cache at the end of each run and written atomically.

Requests run on one asyncio loop with `backend.concurrency` workers pulling from a queue, so a
million requests never become a million coroutines. Failures (retries exhausted, permanent HTTP
errors, unparsable replies, filtered pairs) go to the ledger with a reason; none stops the run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune.data.ledger import Ledger
from vitune.data.records import ImageRecord
from vitune.synth.backends import Backend, BackendError, ChatResult, SynthRequest, TemplateBackend
from vitune.synth.cache import ResponseCache, request_key
from vitune.synth.context import ContextConfig
from vitune.synth.export import SynthItem, export_items
from vitune.synth.filters import FilterConfig, ReplyFilter, summarize_kept
from vitune.synth.parse import ParseError, parse_reply
from vitune.synth.prompts import SVIT_TYPES, GeneratorSpec, build_messages, get_generator, pick_instruction
from vitune.utils.atomic import write_json

STAGE = "synth"
DEFAULT_CONTEXT = ContextConfig()
DEFAULT_FILTERS = FilterConfig()


@dataclass(slots=True)
class ProgressInfo:
    done: int  # requests finished (cached + sent + failed)
    total: int
    cached: int
    sent: int
    failed: int
    elapsed_s: float
    rate: float  # requests finished per second by the backend in this run
    eta_s: float | None

    def line(self) -> str:
        eta = f"{self.eta_s:.0f}s" if self.eta_s is not None else "?"
        return (
            f"{self.done}/{self.total} (cached {self.cached}, failed {self.failed}) "
            f"{self.rate:.1f} req/s, eta {eta}"
        )


@dataclass
class Prices:
    """USD per one million tokens, per model name ("*" for any model not listed)."""

    table: dict[str, tuple[float, float]] = field(default_factory=dict)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        p = self.table.get(model) or self.table.get("*")
        if p is None:
            return 0.0
        return (prompt_tokens * p[0] + completion_tokens * p[1]) / 1e6


def _requests(
    records: Sequence[ImageRecord],
    specs: list[GeneratorSpec],
    backend: Backend,
    ctx: ContextConfig,
    seed: int,
) -> list[SynthRequest]:
    ident = backend.identity()
    out = []
    for spec in specs:
        params = spec.sampling()
        for rec in records:
            msgs = build_messages(spec, rec, ctx)
            key = request_key(ident, msgs, params)
            out.append(SynthRequest(key, spec, rec, msgs, params, seed))
    return out


async def _drive(
    pending: list[SynthRequest],
    backend: Backend,
    on_result: Callable[[SynthRequest, ChatResult | None, str], None],
) -> None:
    queue: asyncio.Queue[SynthRequest] = asyncio.Queue()
    for r in pending:
        queue.put_nowait(r)

    async def worker() -> None:
        while True:
            try:
                req = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                res = await backend.complete(req)
            except BackendError as e:
                on_result(req, None, str(e))
            except Exception as e:  # a backend bug must not lose the other replies
                on_result(req, None, f"{type(e).__name__}: {e}")
            else:
                on_result(req, res, "")

    n = max(1, min(backend.concurrency, len(pending)))
    try:
        await asyncio.gather(*(worker() for _ in range(n)))
    finally:
        await backend.aclose()


def synth(
    records: Iterable[ImageRecord],
    generators: Sequence[str | GeneratorSpec] = SVIT_TYPES,
    backend: Backend | None = None,
    out_dir: str | os.PathLike = "synth_out",
    *,
    cache_path: str | os.PathLike | None = None,
    context: ContextConfig = DEFAULT_CONTEXT,
    filters: FilterConfig = DEFAULT_FILTERS,
    seed: int = 0,
    prices: Prices | dict[str, tuple[float, float]] | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
    limit: int | None = None,
    export: bool = True,
    pad_boxes: bool = True,
    ledger: Ledger | None = None,
) -> dict[str, Any]:
    """Generate, filter and export synthetic instruction data; returns the run summary.

    `generators`: names in the registry (`prompts.generator_names()`) or specs. `backend`:
    `OpenAIBackend(...)` or `TemplateBackend()` (the default: offline). Outputs under `out_dir`:
    ``synth_llava.json``, ``llava/<type>.json``, ``raw/<type>.json``, ``ledger.jsonl``,
    ``summary.json`` and the response cache ``cache.sqlite`` (unless `cache_path` says otherwise).
    """
    t_start = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    backend = backend or TemplateBackend()
    prices = prices if isinstance(prices, Prices) else Prices(dict(prices or {}))
    ledger = ledger if ledger is not None else Ledger()
    recs = list(records)[:limit] if limit is not None else list(records)
    specs = [get_generator(g) for g in generators]
    reqs = _requests(recs, specs, backend, context, seed)

    use_cache = backend.cacheable
    cache = ResponseCache(cache_path or out_dir / "cache.sqlite") if use_cache else None
    replies: dict[str, tuple[str, str, int, int]] = {}  # key -> (text, model, prompt, completion)
    done_keys = cache.keys() if cache is not None else set()
    unique: dict[str, SynthRequest] = {}
    for r in reqs:
        unique.setdefault(r.key, r)  # identical prompts are sent once
    pending = [r for k, r in unique.items() if k not in done_keys]
    n_cached = len(unique) - len(pending)

    acct = Counter()
    failed: dict[str, str] = {}
    t_loop = time.monotonic()

    def on_result(req: SynthRequest, res: ChatResult | None, err: str) -> None:
        if res is None:
            failed[req.key] = err
        else:
            if cache is not None:  # first of all: the reply is durable before we touch it
                cache.put(
                    req.key,
                    res.text,
                    prompt_tokens=res.prompt_tokens,
                    completion_tokens=res.completion_tokens,
                    model=res.model,
                    finish_reason=res.finish_reason,
                    request={"generator": req.generator.name, "image_id": req.record.image_id},
                )
            replies[req.key] = (res.text, res.model, res.prompt_tokens, res.completion_tokens)
            acct["sent"] += 1
            acct["attempts"] += res.attempts
            acct["prompt_tokens"] += res.prompt_tokens
            acct["completion_tokens"] += res.completion_tokens
            acct["cost_micro"] += round(
                prices.cost(res.model, res.prompt_tokens, res.completion_tokens) * 1e6
            )
        if progress is not None:
            elapsed = time.monotonic() - t_loop
            finished = acct["sent"] + len(failed)
            rate = finished / elapsed if elapsed > 0 else 0.0
            left = len(pending) - finished
            progress(
                ProgressInfo(
                    done=n_cached + finished,
                    total=len(unique),
                    cached=n_cached,
                    sent=acct["sent"],
                    failed=len(failed),
                    elapsed_s=elapsed,
                    rate=rate,
                    eta_s=left / rate if rate > 0 else None,
                )
            )

    try:
        if pending:
            asyncio.run(_drive(pending, backend, on_result))
        t_requests = time.monotonic() - t_loop
        if cache is not None:
            for k in unique:
                if k not in replies and k in done_keys:
                    c = cache.get(k)
                    if c is not None:
                        replies[k] = (c.text, c.model, c.prompt_tokens, c.completion_tokens)
    finally:
        if cache is not None:
            cache.close()

    items, stats = _postprocess(reqs, replies, failed, filters, ledger, seed)
    summary: dict[str, Any] = {
        "backend": {k: v for k, v in backend.identity().items()},
        "generators": [s.name for s in specs],
        "records": len(recs),
        "requests": {
            "total": len(reqs),
            "unique": len(unique),
            "cached": n_cached,
            "sent_ok": acct["sent"],
            "failed": len(failed),
            "attempts": acct["attempts"],
            "seconds": round(t_requests, 3),
            "per_second": round(acct["sent"] / t_requests, 3) if t_requests > 0 and acct["sent"] else 0.0,
        },
        "tokens_this_run": {"prompt": acct["prompt_tokens"], "completion": acct["completion_tokens"]},
        "cost_usd_this_run": round(acct["cost_micro"] / 1e6, 6),
        "tokens_all_replies": {
            "prompt": sum(v[2] for v in replies.values()),
            "completion": sum(v[3] for v in replies.values()),
        },
        "cost_usd_all_replies": round(sum(prices.cost(v[1], v[2], v[3]) for v in replies.values()), 6),
        **stats,
    }
    if hasattr(backend, "stats"):
        summary["backend_stats"] = backend.stats
    if export:
        summary["export"] = export_items(items, out_dir, seed=seed, pad_boxes=pad_boxes)
    ledger.write(out_dir / "ledger.jsonl")
    summary["ledger"] = ledger.summary()
    summary["seconds"] = round(time.monotonic() - t_start, 3)
    write_json(out_dir / "summary.json", summary, indent=2)
    summary["items"] = items  # in memory only: the kept items, for callers that go on
    return summary


def _postprocess(
    reqs: list[SynthRequest],
    replies: dict[str, tuple[str, str, int, int]],
    failed: dict[str, str],
    fcfg: FilterConfig,
    ledger: Ledger,
    seed: int,
) -> tuple[list[SynthItem], dict[str, Any]]:
    filt = ReplyFilter(fcfg)
    items: list[SynthItem] = []
    per: dict[str, Counter] = {}
    answers: dict[str, list[str]] = {}
    for req in reqs:
        spec, rec = req.generator, req.record
        c = per.setdefault(spec.name, Counter())
        loc = f"image_id={rec.image_id} generator={spec.name}"
        if req.key not in replies:
            c["missing"] += 1
            reason = failed.get(req.key, "no reply (not sent)")
            ledger.reject(f"{STAGE}.request", "", loc, "request failed", error=reason, key=req.key)
            continue
        c["replies"] += 1
        text = replies[req.key][0]
        try:
            parsed = parse_reply(text, spec.format, n_items=spec.n_items, n_groups=spec.n_groups)
        except ParseError as e:
            c["parse_failed"] += 1
            ledger.reject(f"{STAGE}.parse", "", loc, str(e), key=req.key, reply=text[:500])
            continue
        item = SynthItem(
            spec.name, spec.format, rec.image_id, rec.file_name, rec.width, rec.height, key=req.key
        )
        referring = spec.format == "referring"
        if spec.format == "description":
            v = filt.check(rec, parsed.description)
            c["pairs"] += 1
            if not v.keep:
                c[f"dropped_{v.reason}"] += 1
                ledger.reject(
                    f"{STAGE}.filter", "", loc, v.reason, why=v.detail, text=parsed.description[:300]
                )
                continue
            item.description = parsed.description
            item.instruction = pick_instruction(spec.instructions, seed, spec.name, rec.image_id)
            if v.flags:
                item.flags["0.0"] = v.flags
            answers.setdefault(spec.name, []).append(parsed.description)
        else:
            for gi, group in enumerate(parsed.groups):
                kept = []
                for pi, p in enumerate(group):
                    c["pairs"] += 1
                    v = filt.check(rec, p.answer, p.question, referring=referring)
                    if not v.keep:
                        c[f"dropped_{v.reason}"] += 1
                        ledger.reject(
                            f"{STAGE}.filter", "", f"{loc} group={gi} pair={pi}", v.reason,
                            why=v.detail, question=p.question[:200], answer=p.answer[:300],
                        )  # fmt: skip
                        continue
                    if v.flags:
                        item.flags[f"{gi}.{len(kept)}"] = v.flags
                        c["flagged"] += 1
                    kept.append(p)
                    answers.setdefault(spec.name, []).append(p.answer)
                if kept:
                    item.groups.append(kept)
                    item.topics.append(parsed.topics[gi] if gi < len(parsed.topics) else "")
            if not item.groups:
                c["items_empty"] += 1
                continue
        c["pairs_kept"] += sum(len(g) for g in item.groups) if item.groups else 1
        c["items_kept"] += 1
        items.append(item)
    kept_stats = {g: summarize_kept(a) for g, a in answers.items()}
    all_answers = [a for lst in answers.values() for a in lst]
    return items, {
        "per_generator": {g: dict(sorted(c.items())) for g, c in per.items()},
        "kept": {"all": summarize_kept(all_answers), **kept_stats},
    }


def progress_printer(every_s: float = 2.0, stream: Any = None) -> Callable[[ProgressInfo], None]:
    """A progress callback printing one line at most every `every_s` seconds (to stderr)."""
    import sys

    last = [0.0]
    out = stream or sys.stderr

    def cb(p: ProgressInfo) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or p.done == p.total:
            last[0] = now
            print(p.line(), file=out, flush=True)

    return cb


__all__ = ["Prices", "ProgressInfo", "progress_printer", "synth"]
