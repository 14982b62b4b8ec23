"""A persistent response cache (sqlite3 in WAL mode) keyed by everything that changes the reply.

The key is a SHA-256 of the canonical JSON of the backend identity (endpoint, model, seed, extra
body), the full message list and the sampling parameters. A reply is committed here the moment it
arrives and before anything else happens to it, so a run killed at any point (kill -9 included)
loses no finished reply and the next run sends no finished request again. WAL with
``synchronous=NORMAL`` is durable against a killed process (not against power loss; pass
``durable=True`` for ``FULL``: `synth(durable_cache=True)`, ``vitune synth --durable-cache``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def request_key(identity: dict[str, Any], messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    blob = json.dumps(
        {"identity": identity, "messages": messages, "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class CachedReply:
    key: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    finish_reason: str
    created: float


_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    model TEXT NOT NULL DEFAULT '',
    finish_reason TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    request TEXT NOT NULL DEFAULT ''
)
"""


class ResponseCache:
    def __init__(
        self, path: str | os.PathLike, *, durable: bool = False, store_requests: bool = True
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection used from the event-loop thread only; check_same_thread off for tools that
        # open the cache in one thread and read it in another.
        self.conn = sqlite3.connect(
            str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self.conn.execute(_SCHEMA)
        self.store_requests = store_requests
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedReply | None:
        row = self.conn.execute(
            "SELECT key, text, prompt_tokens, completion_tokens, model, finish_reason, created FROM replies WHERE key=?",
            (key,),
        ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return CachedReply(*row)

    def keys(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT key FROM replies")}

    def put(
        self,
        key: str,
        text: str,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        model: str = "",
        finish_reason: str = "",
        request: dict[str, Any] | None = None,
    ) -> None:
        """Commit one reply (autocommit mode: the row is durable when this returns)."""
        req = (
            json.dumps(request, ensure_ascii=False, sort_keys=True)
            if (request and self.store_requests)
            else ""
        )
        self.conn.execute(
            "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, text, prompt_tokens, completion_tokens, model, finish_reason, time.time(), req),
        )

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
