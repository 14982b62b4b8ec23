"""`synth()`: records x generators -> requests -> (cache | backend) -> parse -> filter -> export.

Resumable by construction: every request has a content key; a reply is written to the sqlite
cache the moment it arrives, before parsing or anything else, and a run first looks every key up
in the cache. A run killed at any point (kill -9 included) therefore re-sends only the requests
that were in flight, and a finished reply is never lost. Outputs (LLaVA JSON, raw JSON, ledger,
summary) are rebuilt from the cache at the end of each run and written atomically.

A reply that cannot be parsed is re-asked (`reask_request`: another seed, a warmer temperature and
so another cache key) up to `max_reasks` times; a resumed run follows each re-ask chain through
the cache. Requests run on one asyncio loop with `backend.concurrency` workers pulling from a
queue, so a million requests never become a million coroutines. Failures (retries exhausted,
permanent HTTP errors, replies still unparsable after the re-asks, filtered pairs) go to the ledger
with a reason; none stops the run, and the summary's counts reconcile.
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
from vitune.synth.parse import Parsed, ParseError, QAPair, parse_reply
from vitune.synth.prompts import SVIT_TYPES, GeneratorSpec, build_messages, get_generator, pick_instruction
from vitune.utils.atomic import clean_orphans, staged_dir, write_json
from vitune.utils.hashing import derive_seed

STAGE = "synth"
DEFAULT_CONTEXT = ContextConfig()
DEFAULT_FILTERS = FilterConfig()
DEFAULT_REASKS = 2  # re-asks of an unparsable reply before it is recorded as failed
REASK_TEMPERATURE_STEP = 0.15


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


def reask_request(first: SynthRequest, k: int, identity: dict[str, Any]) -> SynthRequest:
    """The k-th re-ask (k >= 1) of `first` after unparsable replies: the same messages with another
    seed and a warmer temperature, so another reply, under another cache key (a bad reply in the
    cache is never served again in its place, and a finished re-ask is never sent twice)."""
    params = dict(first.params)
    t = float(params.get("temperature", 0.7))
    params["temperature"] = round(min(t + REASK_TEMPERATURE_STEP * k, max(t, 1.0)), 3)
    params["seed"] = derive_seed(first.seed, "synth.reask", first.key, k) % 2**31
    key = request_key(identity, first.messages, params)
    return SynthRequest(
        key, first.generator, first.record, first.messages, params, params["seed"], reask=k, base=first.key
    )


def _parse(text: str, spec: GeneratorSpec) -> Parsed | ParseError:
    try:
        return parse_reply(text, spec.format, n_items=spec.n_items, n_groups=spec.n_groups)
    except ParseError as e:
        return e


async def _drive(
    pending: list[SynthRequest],
    backend: Backend,
    on_result: Callable[[SynthRequest, ChatResult | None, str], SynthRequest | None],
) -> None:
    """`backend.concurrency` workers; a worker sends the follow-up (re-ask) `on_result` returns."""
    queue: asyncio.Queue[SynthRequest] = asyncio.Queue()
    for r in pending:
        queue.put_nowait(r)

    async def worker() -> None:
        while True:
            try:
                req: SynthRequest | None = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            while req is not None:
                try:
                    res = await backend.complete(req)
                except BackendError as e:
                    req = on_result(req, None, str(e))
                except Exception as e:  # a backend bug must not lose the other replies
                    req = on_result(req, None, f"{type(e).__name__}: {e}")
                else:
                    req = on_result(req, res, "")

    n = max(1, min(backend.concurrency, len(pending)))
    try:
        await asyncio.gather(*(worker() for _ in range(n)))
    finally:
        await backend.aclose()


def _add_tokens(sums: dict[str, list[int]], model: str, prompt: int, completion: int) -> None:
    t = sums.setdefault(model, [0, 0])
    t[0] += prompt
    t[1] += completion


def _cost(prices: Prices, tokens: dict[str, list[int]]) -> float:
    """USD for token sums per model (summed before pricing: no per-reply rounding drift)."""
    return round(sum(prices.cost(m, p, c) for m, (p, c) in tokens.items()), 6)


@dataclass(slots=True)
class _Final:
    """Where a first ask ended: the reply used (its attempt key) and its parse, or the parse error."""

    key: str
    parsed: Parsed | ParseError
    attempts: int


def synth(
    records: Iterable[ImageRecord],
    generators: Sequence[str | GeneratorSpec] = SVIT_TYPES,
    backend: Backend | None = None,
    out_dir: str | os.PathLike = "synth_out",
    *,
    cache_path: str | os.PathLike | None = None,
    durable_cache: bool = False,
    context: ContextConfig = DEFAULT_CONTEXT,
    filters: FilterConfig = DEFAULT_FILTERS,
    seed: int = 0,
    max_reasks: int = DEFAULT_REASKS,
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
    ``summary.json`` and the response cache ``cache.sqlite`` (unless `cache_path` says otherwise;
    `durable_cache` adds an fsync per reply, for power loss: kill -9 loses nothing either way).
    An unparsable reply is re-asked up to `max_reasks` times (`reask_request`), then recorded.
    """
    t_start = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_orphans(out_dir)  # a killed run's temporary files
    backend = backend or TemplateBackend()
    prices = prices if isinstance(prices, Prices) else Prices(dict(prices or {}))
    ledger = ledger if ledger is not None else Ledger()
    recs = list(records)[:limit] if limit is not None else list(records)
    specs = [get_generator(g) for g in generators]
    reqs = _requests(recs, specs, backend, context, seed)
    ident = backend.identity()

    cache = (
        ResponseCache(cache_path or out_dir / "cache.sqlite", durable=durable_cache)
        if backend.cacheable
        else None
    )
    replies: dict[str, tuple[str, str, int, int]] = {}  # attempt key -> (text, model, prompt, completion)
    final: dict[str, _Final] = {}  # first-ask key -> the reply it ended with
    failed: dict[str, str] = {}  # first-ask key -> why no reply could be had
    unique: dict[str, SynthRequest] = {}
    for r in reqs:
        unique.setdefault(r.key, r)  # identical prompts are sent once

    def settle(req: SynthRequest, text: str) -> SynthRequest | None:
        """Parse a reply; the re-ask to send next, or None when `req`'s first ask is finished."""
        parsed = _parse(text, req.generator)
        if isinstance(parsed, ParseError) and req.reask < max_reasks:
            return reask_request(unique[req.base_key], req.reask + 1, ident)
        final[req.base_key] = _Final(req.key, parsed, req.reask + 1)
        return None

    def resolve(req: SynthRequest | None) -> SynthRequest | None:
        """Follow a request's re-ask chain through the cache; the first attempt still to send."""
        while req is not None and cache is not None:
            c = cache.get(req.key)
            if c is None:
                return req
            replies[req.key] = (c.text, c.model, c.prompt_tokens, c.completion_tokens)
            req = settle(req, c.text)
        return req

    acct: Counter = Counter()
    sent_tokens: dict[str, list[int]] = {}  # model -> [prompt, completion] tokens of this run's replies

    def on_result(req: SynthRequest, res: ChatResult | None, err: str) -> SynthRequest | None:
        nxt = None
        if res is None:
            failed[req.base_key] = err if not req.reask else f"re-ask {req.reask}: {err}"
        else:
            if cache is not None:  # first of all: the reply is durable before we touch it
                cache.put(
                    req.key,
                    res.text,
                    prompt_tokens=res.prompt_tokens,
                    completion_tokens=res.completion_tokens,
                    model=res.model,
                    finish_reason=res.finish_reason,
                    request={"generator": req.generator.name, "image_id": req.record.image_id,
                             "reask": req.reask},
                )  # fmt: skip
            replies[req.key] = (res.text, res.model, res.prompt_tokens, res.completion_tokens)
            acct["sent"] += 1
            acct["reasks"] += req.reask > 0
            acct["attempts"] += res.attempts
            acct["prompt_tokens"] += res.prompt_tokens
            acct["completion_tokens"] += res.completion_tokens
            _add_tokens(sent_tokens, res.model, res.prompt_tokens, res.completion_tokens)
            nxt = resolve(settle(req, res.text))
        if progress is not None:
            elapsed = time.monotonic() - t_loop
            finished = len(final) + len(failed) - n_cached
            rate = finished / elapsed if elapsed > 0 else 0.0
            left = len(unique) - len(final) - len(failed)
            progress(
                ProgressInfo(
                    done=len(final) + len(failed),
                    total=len(unique),
                    cached=n_cached,
                    sent=acct["sent"],
                    failed=len(failed),
                    elapsed_s=elapsed,
                    rate=rate,
                    eta_s=left / rate if rate > 0 else None,
                )
            )
        return nxt

    try:
        pending = [p for p in (resolve(r) for r in unique.values()) if p is not None]
        n_cached = len(final)
        n_cached_replies = len(replies)
        t_loop = time.monotonic()  # request rate and ETA count from here (cache lookups excluded)
        if pending:
            asyncio.run(_drive(pending, backend, on_result))
        t_requests = time.monotonic() - t_loop
    finally:
        if cache is not None:
            cache.close()

    items, stats = _postprocess(reqs, replies, final, failed, filters, ledger, seed)
    n_unparsable = sum(isinstance(f.parsed, ParseError) for f in final.values())
    all_tokens: dict[str, list[int]] = {}  # model -> tokens of every reply used
    for _, model, pt, ct in replies.values():
        _add_tokens(all_tokens, model, pt, ct)
    summary: dict[str, Any] = {
        "backend": dict(ident),
        "generators": [s.name for s in specs],
        "records": len(recs),
        # Per distinct prompt: unique = ok + failed (failed = failed_transport + failed_unparsable).
        "requests": {
            "total": len(reqs),
            "unique": len(unique),
            "cached": n_cached,
            "cached_replies": n_cached_replies,
            "sent_ok": acct["sent"],
            "reasks": acct["reasks"],
            "attempts": acct["attempts"],
            "ok": len(final) - n_unparsable,
            "failed": len(failed) + n_unparsable,
            "failed_transport": len(failed),
            "failed_unparsable": n_unparsable,
            "seconds": round(t_requests, 3),
            "per_second": round(acct["sent"] / t_requests, 3) if t_requests > 0 and acct["sent"] else 0.0,
        },
        "tokens_this_run": {"prompt": acct["prompt_tokens"], "completion": acct["completion_tokens"]},
        "cost_usd_this_run": _cost(prices, sent_tokens),
        "tokens_all_replies": {
            "prompt": sum(v[2] for v in replies.values()),
            "completion": sum(v[3] for v in replies.values()),
        },
        "cost_usd_all_replies": _cost(prices, all_tokens),
        **stats,
    }
    if hasattr(backend, "stats"):
        summary["backend_stats"] = backend.stats
    # Outputs are staged and swapped in together: a failed re-synth keeps the previous ones intact.
    with staged_dir(out_dir) as stage:
        if export:
            summary["export"] = export_items(items, stage, seed=seed, pad_boxes=pad_boxes)
        ledger.write(stage / "ledger.jsonl")
        summary["ledger"] = ledger.summary()
        summary["seconds"] = round(time.monotonic() - t_start, 3)
        write_json(stage / "summary.json", summary, indent=2)
    summary["items"] = items  # in memory only: the kept items, for callers that go on
    return summary


def _postprocess(
    reqs: list[SynthRequest],
    replies: dict[str, tuple[str, str, int, int]],
    final: dict[str, _Final],
    failed: dict[str, str],
    fcfg: FilterConfig,
    ledger: Ledger,
    seed: int,
) -> tuple[list[SynthItem], dict[str, Any]]:
    """Filter every request's parsed reply into items; each loss goes to the ledger with a reason.

    Items (one per request, i.e. per record and generator): in = kept + rejected, where rejected is
    ``request failed`` (stage synth.request), ``unparsable reply`` (synth.parse) or ``no pair kept``
    (synth.item). Pairs of parsed replies: in = kept + dropped (synth.filter, one entry per pair).
    """
    filt = ReplyFilter(fcfg)
    items: list[SynthItem] = []
    per: dict[str, Counter] = {}
    answers: dict[str, list[str]] = {}
    rejected: Counter = Counter()
    dropped: Counter = Counter()
    for req in reqs:
        spec, rec = req.generator, req.record
        c = per.setdefault(spec.name, Counter())
        c["requests"] += 1
        loc = f"image_id={rec.image_id} generator={spec.name}"
        fin = final.get(req.key)
        if fin is None:
            c["request_failed"] += 1
            rejected["request failed"] += 1
            reason = failed.get(req.key, "no reply (not sent)")
            ledger.reject(f"{STAGE}.request", "", loc, "request failed", error=reason, key=req.key)
            continue
        parsed = fin.parsed
        if isinstance(parsed, ParseError):
            c["parse_failed"] += 1
            rejected["unparsable reply"] += 1
            ledger.reject(
                f"{STAGE}.parse", "", loc, "unparsable reply", error=str(parsed), attempts=fin.attempts,
                key=req.key, last_key=fin.key, reply=replies[fin.key][0][:500],
            )  # fmt: skip
            continue
        c["replies"] += 1
        c["reasked"] += fin.attempts > 1
        item = SynthItem(
            spec.name, spec.format, rec.image_id, rec.file_name, rec.width, rec.height, key=fin.key
        )
        referring = spec.format == "referring"
        groups = [[QAPair("", parsed.description)]] if spec.format == "description" else parsed.groups
        for gi, group in enumerate(groups):
            kept = []
            for pi, p in enumerate(group):
                c["pairs"] += 1
                v = filt.check(rec, p.answer, p.question, referring=referring)
                if not v.keep:
                    c[f"dropped_{v.reason}"] += 1
                    dropped[v.reason] += 1
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
            if kept and spec.format == "description":
                item.description = parsed.description
                item.instruction = pick_instruction(spec.instructions, seed, spec.name, rec.image_id)
            elif kept:
                item.groups.append(kept)
                item.topics.append(parsed.topics[gi] if gi < len(parsed.topics) else "")
        if not item.groups and not item.description:
            c["items_empty"] += 1
            rejected["no pair kept"] += 1
            ledger.reject(f"{STAGE}.item", "", loc, "no pair kept", key=fin.key)
            continue
        c["pairs_kept"] += sum(len(g) for g in item.groups) if item.groups else 1
        c["items_kept"] += 1
        items.append(item)
    kept_stats = {g: summarize_kept(a) for g, a in answers.items()}
    all_answers = [a for lst in answers.values() for a in lst]
    n_pairs = sum(c["pairs"] for c in per.values())
    return items, {
        "item_counts": {
            "in": len(reqs),
            "kept": len(items),
            "rejected": sum(rejected.values()),
            "rejected_by_reason": dict(sorted(rejected.items())),
        },
        "pair_counts": {
            "in": n_pairs,
            "kept": n_pairs - sum(dropped.values()),
            "dropped": sum(dropped.values()),
            "dropped_by_reason": dict(sorted(dropped.items())),
        },
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
