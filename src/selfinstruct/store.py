"""The run store: one SQLite database (WAL) per run directory, the source of truth of a run.

Every pipeline step that changes state commits in one transaction together with the fact that the step is
done, so a run killed at any moment resumes without losing or repeating work. LM requests and replies live
in the `lm_cache` table of the same file (owned by `selfinstruct.lm.cache`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.paths import database_error, storage_error
from selfinstruct.records import Instance, SimilarInstruction, Task

DB_NAME = "run.sqlite"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- The seed pool the run started from, in file order.
CREATE TABLE IF NOT EXISTS seed_tasks (
    id                INTEGER PRIMARY KEY,
    seed_id           TEXT NOT NULL,
    name              TEXT NOT NULL,
    instruction       TEXT NOT NULL,
    instances         TEXT NOT NULL,            -- JSON list of {input, output}
    is_classification INTEGER
);
-- Stage 1 requests, numbered in dispatch order. The prompt is stored before it is sent.
CREATE TABLE IF NOT EXISTS gen_requests (
    id                  INTEGER PRIMARY KEY,
    prompt_instructions TEXT NOT NULL,          -- JSON list of the instructions shown to the LM
    prompt              TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'pending',   -- pending | done
    finish_reason       TEXT,
    reply               TEXT,
    created_at          REAL NOT NULL,
    done_at             REAL
);
-- Every candidate instruction parsed from a stage 1 reply, with its verdict.
CREATE TABLE IF NOT EXISTS candidates (
    id             INTEGER PRIMARY KEY,
    request_id     INTEGER NOT NULL REFERENCES gen_requests(id),
    position       INTEGER NOT NULL,
    raw            TEXT NOT NULL,
    instruction    TEXT NOT NULL,               -- after normalisation
    verdict        TEXT NOT NULL,               -- 'kept' or the name of the filter that dropped it
    detail         TEXT,
    max_similarity REAL,
    UNIQUE (request_id, position)
);
CREATE INDEX IF NOT EXISTS candidates_verdict ON candidates(verdict);
-- Kept instructions (the generated part of the task pool), in acceptance order.
CREATE TABLE IF NOT EXISTS instructions (
    id                INTEGER PRIMARY KEY,
    candidate_id      INTEGER NOT NULL UNIQUE REFERENCES candidates(id),
    instruction       TEXT NOT NULL,
    most_similar      TEXT NOT NULL,            -- JSON list of [instruction, score], best first
    avg_similarity    REAL,
    max_similarity    REAL NOT NULL,
    is_classification INTEGER,                  -- NULL until stage 2 answered
    clf_reply         TEXT,
    instances_status  TEXT NOT NULL DEFAULT 'pending',  -- pending | done
    instances_reply   TEXT,
    instances_finish  TEXT,
    created_at        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS instructions_clf ON instructions(is_classification);
-- Stage 3: every parsed instance with its verdict ('kept' or the filter that dropped it).
CREATE TABLE IF NOT EXISTS instances (
    id             INTEGER PRIMARY KEY,
    instruction_id INTEGER NOT NULL REFERENCES instructions(id),
    position       INTEGER NOT NULL,
    input          TEXT NOT NULL,
    output         TEXT NOT NULL,
    verdict        TEXT NOT NULL,
    detail         TEXT,
    UNIQUE (instruction_id, position)
);
CREATE INDEX IF NOT EXISTS instances_instruction ON instances(instruction_id);
CREATE INDEX IF NOT EXISTS instances_verdict ON instances(verdict);
"""


@dataclass(frozen=True)
class GenRequestRow:
    id: int
    prompt_instructions: list[str]
    prompt: str
    status: str


@dataclass(frozen=True)
class KeptInstruction:
    id: int
    instruction: str
    most_similar: tuple[SimilarInstruction, ...]
    avg_similarity: float | None
    max_similarity: float
    is_classification: bool | None
    instances_status: str


@dataclass(frozen=True)
class CandidateRecord:
    position: int
    raw: str
    instruction: str
    verdict: str
    detail: str | None = None
    max_similarity: float | None = None


@dataclass(frozen=True)
class InstanceRecord:
    position: int
    input: str
    output: str
    verdict: str
    detail: str | None = None


class WalCheckpointer:
    """Moves WAL checkpoints off the connections that commit, into a thread of its own.

    With `synchronous=NORMAL` a commit only appends to the WAL; the fsyncs happen when a commit crosses
    `wal_autocheckpoint` pages and checkpoints, inside that commit. On a VM disk that stalled the
    pipeline's event loop for 15-20 ms about three times a second. While this is entered, the given
    connections do not checkpoint and a thread with its own connection checkpoints every `interval`
    seconds (sqlite3 releases the GIL meanwhile). Durability is unchanged: a committed transaction is
    in the WAL either way, and SQLite replays the WAL after a crash.
    """

    def __init__(
        self, path: Path, connections: Sequence[sqlite3.Connection], *, interval: float = 0.2
    ) -> None:
        self.path = Path(path)
        self.connections = list(connections)
        self.interval = interval
        self.checkpoints = 0
        self._saved: list[int] = []  # each connection's own wal_autocheckpoint, restored on exit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="wal-checkpointer", daemon=True)

    def __enter__(self) -> WalCheckpointer:
        for conn in self.connections:
            self._saved.append(int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]))
            conn.execute("PRAGMA wal_autocheckpoint=0")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for conn, pages in zip(self.connections, self._saved, strict=True):
            with suppress(sqlite3.ProgrammingError):  # already closed: nothing left to restore
                conn.execute(f"PRAGMA wal_autocheckpoint={pages}")

    def _work(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self.interval):
                # PASSIVE never waits for readers or writers; what it cannot copy now waits for the next.
                with suppress(sqlite3.OperationalError):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
        finally:
            conn.close()


class RunStore:
    """Typed access to a run's database. One instance per process; not shared across threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, path.parent) from None
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        try:
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(SCHEMA)
            if self.get_meta("schema_version") is None:
                self.set_meta("schema_version", SCHEMA_VERSION)
        except sqlite3.Error as exc:
            self.conn.close()
            # A read-only directory, a full disk, a file that is not a database: one line, not a traceback.
            raise (database_error(exc, path) or exc) from None

    # -- opening ---------------------------------------------------------------------------------------
    @classmethod
    def open(cls, run_dir: Path | str, *, create: bool = False) -> RunStore:
        """Open `RUN_DIR/run.sqlite`; without `create`, a missing run is a user error."""
        run_dir = Path(run_dir)
        db = run_dir / DB_NAME
        if not create and not db.exists():
            raise UserError(f"{run_dir}: not a selfinstruct run directory (no {DB_NAME})")
        return cls(db)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing: a crash inside leaves the database as before. Inside another transaction it
        is simply part of it (the outer one commits or rolls back)."""
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta ------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> object | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def set_meta(self, key: str, value: object) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    # -- seeds -----------------------------------------------------------------------------------------
    def has_seeds(self) -> bool:
        return self.conn.execute("SELECT 1 FROM seed_tasks LIMIT 1").fetchone() is not None

    def save_seeds(self, tasks: list[Task]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO seed_tasks(seed_id, name, instruction, instances, is_classification)"
                " VALUES(?, ?, ?, ?, ?)",
                [
                    (
                        t.id,
                        t.name,
                        t.instruction,
                        json.dumps([{"input": i.input, "output": i.output} for i in t.instances]),
                        None if t.is_classification is None else int(t.is_classification),
                    )
                    for t in tasks
                ],
            )

    def seed_tasks(self) -> list[Task]:
        rows = self.conn.execute("SELECT * FROM seed_tasks ORDER BY id").fetchall()
        return [
            Task(
                instruction=r["instruction"],
                instances=tuple(Instance(i["input"], i["output"]) for i in json.loads(r["instances"])),
                is_classification=None if r["is_classification"] is None else bool(r["is_classification"]),
                id=r["seed_id"],
                name=r["name"],
            )
            for r in rows
        ]

    # -- stage 1 ---------------------------------------------------------------------------------------
    def add_gen_request(self, request_id: int, prompt_instructions: list[str], prompt: str) -> None:
        self.conn.execute(
            "INSERT INTO gen_requests(id, prompt_instructions, prompt, created_at) VALUES(?, ?, ?, ?)",
            (request_id, json.dumps(prompt_instructions), prompt, time.time()),
        )

    def pending_gen_requests(self) -> list[GenRequestRow]:
        rows = self.conn.execute("SELECT * FROM gen_requests WHERE status = 'pending' ORDER BY id").fetchall()
        return [
            GenRequestRow(r["id"], json.loads(r["prompt_instructions"]), r["prompt"], r["status"])
            for r in rows
        ]

    def next_gen_request_id(self) -> int:
        row = self.conn.execute("SELECT COALESCE(MAX(id), -1) + 1 AS n FROM gen_requests").fetchone()
        return int(row["n"])

    def finish_gen_request(
        self,
        request_id: int,
        reply: str,
        finish_reason: str,
        candidates: list[CandidateRecord],
        kept: dict[int, tuple[tuple[SimilarInstruction, ...], float | None, float]],
    ) -> list[int]:
        """Record a reply, its candidates and the kept ones atomically. `kept` maps a candidate position to
        (most similar, mean similarity, max similarity). Returns the new instruction ids in order."""
        now = time.time()
        new_ids: list[int] = []
        with self.transaction() as conn:
            conn.execute(
                "UPDATE gen_requests SET status='done', reply=?, finish_reason=?, done_at=? WHERE id=?",
                (reply, finish_reason, now, request_id),
            )
            for c in candidates:
                cur = conn.execute(
                    "INSERT INTO candidates(request_id, position, raw, instruction, verdict, detail,"
                    " max_similarity) VALUES(?, ?, ?, ?, ?, ?, ?)",
                    (request_id, c.position, c.raw, c.instruction, c.verdict, c.detail, c.max_similarity),
                )
                if c.position in kept:
                    similar, mean, best = kept[c.position]
                    cur2 = conn.execute(
                        "INSERT INTO instructions(candidate_id, instruction, most_similar, avg_similarity,"
                        " max_similarity, created_at) VALUES(?, ?, ?, ?, ?, ?)",
                        (
                            cur.lastrowid,
                            c.instruction,
                            json.dumps([[s.instruction, s.score] for s in similar]),
                            mean,
                            best,
                            now,
                        ),
                    )
                    new_ids.append(int(cur2.lastrowid or 0))
        return new_ids

    def import_instructions(self, items: list[tuple[str, bool | None]], source: str) -> int:
        """Put instructions from an earlier stage's file into the pool as kept (stage 1 done elsewhere).
        Returns how many were new; running it twice imports nothing twice."""
        known = {r[0] for r in self.conn.execute("SELECT instruction FROM instructions")}
        fresh = [(text, clf) for text, clf in dict(items).items() if text not in known]
        if not fresh:
            return 0
        request_id = self.next_gen_request_id()
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO gen_requests(id, prompt_instructions, prompt, status, finish_reason, reply,"
                " created_at, done_at) VALUES(?, '[]', '', 'done', 'imported', ?, ?, ?)",
                (request_id, f"imported from {source}", now, now),
            )
            for position, (text, clf) in enumerate(fresh):
                cur = conn.execute(
                    "INSERT INTO candidates(request_id, position, raw, instruction, verdict, detail)"
                    " VALUES(?, ?, ?, ?, 'kept', 'imported')",
                    (request_id, position, text, text),
                )
                conn.execute(
                    "INSERT INTO instructions(candidate_id, instruction, most_similar, max_similarity,"
                    " is_classification, created_at) VALUES(?, ?, '[]', 0.0, ?, ?)",
                    (cur.lastrowid, text, None if clf is None else int(clf), now),
                )
        return len(fresh)

    def kept_instructions(self, *, where: str = "", params: tuple[object, ...] = ()) -> list[KeptInstruction]:
        sql = "SELECT * FROM instructions" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        return [self._kept(r) for r in self.conn.execute(sql, params).fetchall()]

    @staticmethod
    def _kept(r: sqlite3.Row) -> KeptInstruction:
        return KeptInstruction(
            id=r["id"],
            instruction=r["instruction"],
            most_similar=tuple(SimilarInstruction(s, sc) for s, sc in json.loads(r["most_similar"])),
            avg_similarity=r["avg_similarity"],
            max_similarity=r["max_similarity"],
            is_classification=None if r["is_classification"] is None else bool(r["is_classification"]),
            instances_status=r["instances_status"],
        )

    def count_kept(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM instructions").fetchone()[0])

    # -- stage 2 ---------------------------------------------------------------------------------------
    def set_classification(self, instruction_id: int, is_classification: bool, reply: str) -> None:
        self.conn.execute(
            "UPDATE instructions SET is_classification=?, clf_reply=? WHERE id=?",
            (int(is_classification), reply, instruction_id),
        )

    # -- stage 3 ---------------------------------------------------------------------------------------
    def finish_instances(
        self, instruction_id: int, reply: str, finish_reason: str, instances: list[InstanceRecord]
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE instructions SET instances_status='done', instances_reply=?, instances_finish=?"
                " WHERE id=?",
                (reply, finish_reason, instruction_id),
            )
            conn.executemany(
                "INSERT INTO instances(instruction_id, position, input, output, verdict, detail)"
                " VALUES(?, ?, ?, ?, ?, ?)",
                [(instruction_id, i.position, i.input, i.output, i.verdict, i.detail) for i in instances],
            )

    def kept_instances(self, instruction_id: int) -> list[Instance]:
        rows = self.conn.execute(
            "SELECT input, output FROM instances WHERE instruction_id=? AND verdict='kept' ORDER BY position",
            (instruction_id,),
        ).fetchall()
        return [Instance(r["input"], r["output"]) for r in rows]

    def generated_tasks(self, *, with_instances_only: bool = True) -> list[Task]:
        """Kept instructions with their kept instances, in acceptance order."""
        by_id: dict[int, list[Instance]] = {}
        for r in self.conn.execute(
            "SELECT instruction_id, input, output FROM instances WHERE verdict='kept'"
            " ORDER BY instruction_id, position"
        ):
            by_id.setdefault(r["instruction_id"], []).append(Instance(r["input"], r["output"]))
        tasks = []
        for k in self.kept_instructions():
            instances = tuple(by_id.get(k.id, ()))
            if with_instances_only and not instances:
                continue
            tasks.append(Task(k.instruction, instances, k.is_classification, id=f"gen_{k.id}"))
        return tasks

    # -- summaries -------------------------------------------------------------------------------------
    def verdict_counts(self, table: str) -> dict[str, int]:
        if table not in {"candidates", "instances"}:
            raise ValueError(table)
        rows = self.conn.execute(f"SELECT verdict, COUNT(*) AS n FROM {table} GROUP BY verdict")
        return {r["verdict"]: int(r["n"]) for r in rows}

    def has_work(self) -> bool:
        """Whether the run holds anything an LM produced (a cached reply, a kept instruction): such a
        run is never discarded."""
        if self.conn.execute("SELECT 1 FROM instructions LIMIT 1").fetchone() is not None:
            return True
        try:
            return self.conn.execute("SELECT 1 FROM lm_cache LIMIT 1").fetchone() is not None
        except sqlite3.OperationalError:  # no lm_cache table: nothing was ever sent
            return False

    def count(self, sql: str, params: tuple[object, ...] = ()) -> int:
        return int(self.conn.execute(sql, params).fetchone()[0])
