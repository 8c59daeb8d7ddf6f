"""Response cache: a reply already received for the same backend, model, prompt and decoding is never
requested again (this is what makes an interrupted run resumable without repeating requests)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

from selfinstruct.lm.base import Completion, Request

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lm_cache (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    stage TEXT NOT NULL,
    prompt TEXT NOT NULL,
    decoding TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at REAL NOT NULL
)
"""


@runtime_checkable
class ResponseCache(Protocol):
    def get(self, key: str) -> Completion | None: ...

    def put(self, key: str, request: Request, identity: str, completion: Completion) -> None: ...


class MemoryResponseCache:
    """A dict-backed cache (tests, one-off runs)."""

    def __init__(self) -> None:
        self._data: dict[str, Completion] = {}

    def get(self, key: str) -> Completion | None:
        return self._data.get(key)

    def put(self, key: str, request: Request, identity: str, completion: Completion) -> None:
        self._data[key] = completion

    def __len__(self) -> int:
        return len(self._data)


class SQLiteResponseCache:
    """The cache in table `lm_cache` of a SQLite file (WAL), which the run store shares.

    One connection guarded by a lock: calls come from one asyncio loop (and occasionally a thread), each
    is a single indexed statement, so they are short enough to run inline.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30.0)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
            self._conn.commit()

    @property
    def connection(self) -> sqlite3.Connection:
        """For settings that concern the file as a whole (the run's WAL checkpointer)."""
        return self._conn

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM lm_cache WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        text, finish_reason, prompt_tokens, completion_tokens = row
        return Completion(
            text=text,
            finish_reason=finish_reason if finish_reason in ("stop", "length") else "stop",
            prompt_tokens=int(prompt_tokens),
            completion_tokens=int(completion_tokens),
            cached=True,
        )

    def put(self, key: str, request: Request, identity: str, completion: Completion) -> None:
        row = (
            key,
            identity,
            request.stage,
            request.prompt,
            json.dumps(request.decoding.as_dict(), sort_keys=True),
            completion.text,
            completion.finish_reason,
            completion.prompt_tokens,
            completion.completion_tokens,
            time.time(),
        )
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO lm_cache VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM lm_cache").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
