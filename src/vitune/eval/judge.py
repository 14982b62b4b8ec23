"""An LLM judge over any OpenAI-compatible endpoint, for benchmarks scored by a model (LLaVA-Bench, MM-Vet).

    judge = make_judge("http://127.0.0.1:8000/v1", "gpt-4-0613")   # key read from $OPENAI_API_KEY
    result = get_benchmark("mm_vet").score(preds, items, judge=judge)

A benchmark describes each item's grading as a `JudgeTask`: the request of every attempt (messages
and sampling parameters, so a benchmark can re-phrase or heat up a retry the way its official script
does) and a `parse` function that raises `ValueError` on a malformed reply. The judge sends attempt
0, parses, and goes on to the next attempt only when the reply was malformed. Transport problems
(429, 5xx, timeouts, dropped connections) are retried inside `synth.backends.OpenAIBackend`; they
never use up a parse attempt.

Failure semantics: an item whose every attempt was malformed, or whose request failed for good, gets
a `Verdict` with `ok == False` and the reason. Benchmarks EXCLUDE such items from every mean and
report `n_judge_failed`, `judge_failed_ids` and the reasons (`judge_report`); a failed item is
never scored 0 or -1 behind the user's back (both official scripts do that).

Every reply, malformed or not, is committed to a sqlite `ResponseCache` (`synth/cache.py`) the
moment it arrives, keyed by the endpoint/model identity, the messages, the sampling parameters and
the attempt number. A re-run (or a run killed half-way) replays those replies and pays only for what
is missing; the attempt number is in the key because a retry may resend identical messages and must
not be answered by the cached malformed reply.

Repeated runs: MM-Vet's official grader judges every item `num_run` times (5 in the paper) and
reports the mean and the standard deviation of the scores across runs. Each run resends the same
request; a task's `run` index goes into the cache key only (never to the server), so every run has
its own cached replies and a resumed run replays exactly the runs it already paid for. Run 0's key
is the key of a single-run task, so a single run's cache stays valid for the first of several.
`mean_std` is the across-run statistic (numpy's population std, as the official script).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitune.synth.backends import Backend, BackendError, OpenAIBackend, SynthRequest
from vitune.synth.cache import ResponseCache, request_key

log = logging.getLogger(__name__)

CACHE_ENV = "VITUNE_JUDGE_CACHE"


def default_cache_path() -> Path:
    """`$VITUNE_JUDGE_CACHE`, else `$XDG_CACHE_HOME/vitune/judge.sqlite` (`~/.cache/...`)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vitune" / "judge.sqlite"


@dataclass(frozen=True, slots=True)
class JudgeAttempt:
    """One request: chat messages and sampling parameters (temperature, max_tokens, ...)."""

    messages: list[dict[str, str]]
    params: dict[str, Any]


@dataclass(slots=True)
class JudgeTask:
    """The grading of one item: the request of each successive attempt and the reply parser."""

    item_id: str
    attempts: Sequence[JudgeAttempt]
    parse: Callable[[str], Any]  # raises ValueError on a malformed reply
    run: int = 0  # which repeated grading of the item this is (cache key only; see the module doc)


@dataclass(slots=True)
class Verdict:
    """The outcome of one `JudgeTask`; `value` is the parsed reply when `ok`."""

    item_id: str
    value: Any = None
    ok: bool = False
    error: str = ""
    replies: list[str] = field(default_factory=list)  # raw text of every attempt, in order
    n_attempts: int = 0
    n_cached: int = 0


class Judge:
    """Runs `JudgeTask`s concurrently through a `Backend`, with a reply cache; see the module doc."""

    def __init__(
        self,
        backend: Backend,
        *,
        cache: ResponseCache | None = None,
        max_attempts: int | None = None,
    ) -> None:
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.backend = backend
        self.cache = cache
        # Caps the benchmark's own attempt list (None: as many as the benchmark's official policy).
        self.max_attempts = max_attempts
        self.stats = {"sent": 0, "cached": 0, "malformed": 0, "request_failed": 0, "items_failed": 0}

    def identity(self) -> dict[str, Any]:
        return self.backend.identity()

    async def _reply(self, key: str, att: JudgeAttempt, v: Verdict) -> str:
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                v.n_cached += 1
                self.stats["cached"] += 1
                return hit.text
        # OpenAIBackend reads only key, messages and params of a SynthRequest; the synthesis
        # fields (generator spec, image record) do not apply to judging.
        req = SynthRequest(key, None, None, att.messages, att.params)  # type: ignore[arg-type]
        res = await self.backend.complete(req)
        self.stats["sent"] += 1
        if self.cache is not None:
            # Committed before parsing: a malformed reply is paid for too and must not be re-bought.
            self.cache.put(
                key,
                res.text,
                prompt_tokens=res.prompt_tokens,
                completion_tokens=res.completion_tokens,
                model=res.model,
                finish_reason=res.finish_reason,
                request={"messages": att.messages, "params": att.params},
            )
        return res.text

    async def _run_one(self, task: JudgeTask) -> Verdict:
        v = Verdict(task.item_id)
        attempts = list(task.attempts)[: self.max_attempts]
        ident = self.identity()
        for k, att in enumerate(attempts):
            key_params = {**att.params, "attempt": k}
            if task.run:
                # Left out for run 0, so caches written before repeated runs existed stay valid.
                key_params["run"] = task.run
            key = request_key(ident, att.messages, key_params)
            try:
                text = await self._reply(key, att, v)
            except BackendError as e:
                self.stats["request_failed"] += 1
                v.error = f"request failed: {e}"
                break
            v.n_attempts += 1
            v.replies.append(text)
            try:
                v.value = task.parse(text)
            except ValueError as e:
                self.stats["malformed"] += 1
                v.error = f"malformed reply after {v.n_attempts} attempt(s): {e}"
                continue
            v.ok, v.error = True, ""
            break
        if not attempts:
            v.error = "no attempts allowed"
        if not v.ok:
            self.stats["items_failed"] += 1
        return v

    async def arun(self, tasks: Sequence[JudgeTask]) -> list[Verdict]:
        """Judge every task (at most `backend.concurrency` in flight); verdicts in input order."""
        out: list[Verdict | None] = [None] * len(tasks)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(tasks)):
            queue.put_nowait(i)

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    out[i] = await self._run_one(tasks[i])
                except Exception as e:  # a bug in one item's parser must not lose the others
                    self.stats["items_failed"] += 1
                    out[i] = Verdict(tasks[i].item_id, error=f"{type(e).__name__}: {e}")

        try:
            n = max(1, min(self.backend.concurrency, len(tasks)))
            await asyncio.gather(*(worker() for _ in range(n)))
        finally:
            # The HTTP clients belong to this event loop; the next run() makes fresh ones.
            await self.backend.aclose()
        return [v for v in out if v is not None]

    def run(self, tasks: Sequence[JudgeTask]) -> list[Verdict]:
        """Synchronous `arun`; inside a running event loop (a notebook) it runs on a private thread."""
        if not tasks:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(tasks))
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            return ex.submit(asyncio.run, self.arun(tasks)).result()

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_judge(
    base_url: str,
    model: str,
    api_key_env: str = "OPENAI_API_KEY",
    *,
    cache: str | os.PathLike | ResponseCache | bool | None = True,
    max_attempts: int | None = None,
    **opts: Any,
) -> Judge:
    """A `Judge` talking to `{base_url}/chat/completions` as `model`, the API key read from `api_key_env`.

    `cache`: True (default) for `default_cache_path()`, a sqlite file (or a folder to hold
    `judge.sqlite`) or a `ResponseCache` to use that one, False/None for none. `max_attempts` caps the parse attempts per item (default: each benchmark's
    official retry policy). Every other option goes to `OpenAIBackend` (`concurrency`, `timeout`,
    `max_retries` for transport errors, `backoff_base`, `seed`, `extra_body`, `headers`, `api_key`).
    """
    backend = OpenAIBackend(base_url, model, api_key_env=api_key_env, **opts)
    if not (opts.get("api_key") or os.environ.get(api_key_env)):
        # Fine for a local vLLM; a hosted API will answer 401 and every item will fail, visibly.
        log.warning("judge: no API key in $%s; requests go without Authorization", api_key_env)
    if cache is True:
        store: ResponseCache | None = ResponseCache(default_cache_path())
    elif cache is False or cache is None:
        store = None
    elif isinstance(cache, ResponseCache):
        store = cache
    else:
        path = Path(cache)
        store = ResponseCache(path / "judge.sqlite" if path.is_dir() else path)
    return Judge(backend, cache=store, max_attempts=max_attempts)


def failure_report(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """The failed items of one set of verdicts: `n_judge_failed`, `judge_failed_ids` (input order)
    and the reason per id, in `judge_failures`."""
    failed = [v for v in verdicts if not v.ok]
    return {
        "n_judge_failed": len(failed),
        "judge_failed_ids": [v.item_id for v in failed],
        "judge_failures": {v.item_id: v.error for v in failed},
    }


def judge_report(judge: Judge, verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """What a judged score reports about its judging: who judged, how many replies were sent or
    replayed from the cache, how many re-asks malformed replies needed, and every failed item
    (`failure_report`). Logs a warning when any failed."""
    failed = [v for v in verdicts if not v.ok]
    if failed:
        log.warning(
            "judge failed on %d item(s) (excluded from the scores), e.g. %s: %s",
            len(failed),
            failed[0].item_id,
            failed[0].error,
        )
    ident = judge.identity()
    replies = sum(v.n_attempts for v in verdicts)
    cached = sum(v.n_cached for v in verdicts)
    return {
        "judge": {
            "endpoint": ident.get("endpoint", ""),
            "model": ident.get("model", ""),
            "replies": replies,
            "replies_sent": replies - cached,
            "replies_cached": cached,
            "retries_malformed": sum(max(0, v.n_attempts - 1) for v in verdicts),
        },
        **failure_report(verdicts),
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation of per-run scores, unrounded. The std is numpy's default
    `ndarray.std()` (population, ddof=0), the one MM-Vet's official evaluator reports."""
    if not values:
        raise ValueError("mean_std of no values")
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def require_judge(judge: Judge | None, benchmark: str) -> Judge:
    if judge is None:
        raise ValueError(
            f"{benchmark} is scored by an LLM judge: pass judge=make_judge(base_url, model) to score()"
        )
    return judge
