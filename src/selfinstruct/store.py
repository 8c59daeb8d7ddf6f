"""The run store: one SQLite database (WAL) per run directory, the source of truth of a run.

Every pipeline step that changes state commits in one transaction together with the fact that the step is
done, so a run killed at any moment resumes without losing or repeating work. LM requests and replies live
in the `lm_cache` table of the same file (owned by `selfinstruct.lm.cache`); the review page's ratings in
tables of its own (owned by `selfinstruct.web.db`).

This module owns the run tables' schema: every query on them is a named method here (`RunReader` reads,
on any connection; `RunStore` also writes), and rows come back as the dataclasses of `selfinstruct.records`.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.paths import FolderLock, database_error, storage_error
from selfinstruct.records import (
    Answers,
    CandidateRecord,
    CandidateSummary,
    GenRequestRow,
    Instance,
    InstanceOfInstruction,
    InstanceRecord,
    KeptInfo,
    KeptInstruction,
    RatingItem,
    RunCounts,
    SimilarInstruction,
    StoredCandidate,
    StoredInstruction,
    Task,
)

DB_NAME = "run.sqlite"
SCHEMA_VERSION = 1

# The fixed random sample of kept instructions (one kept instance each) rated on the Table 2 questions: by
# people on the review page and by `selfinstruct rate --sample`, so that both rate the same items.
SAMPLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_sample (
    sample_key     TEXT NOT NULL,
    position       INTEGER NOT NULL,
    instruction_id INTEGER NOT NULL,
    instance_id    INTEGER NOT NULL,
    PRIMARY KEY (sample_key, position)
);
"""

SCHEMA = (
    """
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
-- The paper's Table 2 questions answered on kept instances by a judge (an LLM, or the model-free checks):
-- one row per instance and judge. Answers: 1 yes, 0 no, NULL unrated (no clear answer).
CREATE TABLE IF NOT EXISTS quality_ratings (
    instance_id INTEGER NOT NULL REFERENCES instances(id),
    judge       TEXT NOT NULL,              -- the judge's identity (backend:model:mode, or 'checks')
    valid_task  INTEGER,
    input_ok    INTEGER,
    output_ok   INTEGER,
    reasons     TEXT NOT NULL DEFAULT '{}', -- JSON {question: the judge's short reason}
    reply       TEXT NOT NULL DEFAULT '',   -- the judge's raw reply (untrusted text)
    created_at  REAL NOT NULL,
    PRIMARY KEY (instance_id, judge)
);
"""
    + SAMPLE_SCHEMA
)


__all__ = [
    "DB_NAME",
    "CandidateFilter",
    "CandidateRecord",
    "InstanceRecord",
    "KeptInfo",
    "KeptInstruction",
    "RunReader",
    "RunStore",
    "WalCheckpointer",
]


@dataclass(frozen=True)
class CandidateFilter:
    """Which candidates the review page lists: text contained in the instruction, kept or dropped (or one
    verdict), classification yes/no/unknown, and instructions with an instance of a given verdict."""

    q: str = ""
    status: str = "all"  # all | kept | dropped
    verdict: str = ""  # a specific verdict, e.g. 'novelty'
    clf: str = ""  # '' | yes | no | unknown
    instance_verdict: str = ""  # instructions with at least one instance of this verdict


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _opt_bool(value: object) -> bool | None:
    return None if value is None else bool(value)


def sample_key(size: int, seed: int) -> str:
    """How a rating sample is named in `review_sample` (the review page's `--sample` and `--seed`)."""
    return f"seed={seed};size={size}"


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


class RunReader:
    """Every read of the run tables, on one connection, returned as `records` dataclasses (`sqlite3.Row`
    stays inside). `RunStore` is one; the review page makes one per request on its own short-lived
    connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row
        self.conn = conn

    # -- meta and seeds --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> object | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def has_seeds(self) -> bool:
        return self.conn.execute("SELECT 1 FROM seed_tasks LIMIT 1").fetchone() is not None

    def seed_tasks(self) -> list[Task]:
        rows = self.conn.execute("SELECT * FROM seed_tasks ORDER BY id").fetchall()
        return [
            Task(
                instruction=r["instruction"],
                instances=tuple(Instance(i["input"], i["output"]) for i in json.loads(r["instances"])),
                is_classification=_opt_bool(r["is_classification"]),
                id=r["seed_id"],
                name=r["name"],
            )
            for r in rows
        ]

    # -- stage 1 ---------------------------------------------------------------------------------------
    def pending_gen_requests(self) -> list[GenRequestRow]:
        rows = self.conn.execute("SELECT * FROM gen_requests WHERE status = 'pending' ORDER BY id").fetchall()
        return [
            GenRequestRow(r["id"], json.loads(r["prompt_instructions"]), r["prompt"], r["status"])
            for r in rows
        ]

    def next_gen_request_id(self) -> int:
        row = self.conn.execute("SELECT COALESCE(MAX(id), -1) + 1 AS n FROM gen_requests").fetchone()
        return int(row["n"])

    def kept_instructions(self) -> list[KeptInstruction]:
        """Kept instructions in acceptance order."""
        return [self._kept(r) for r in self.conn.execute("SELECT * FROM instructions ORDER BY id")]

    def unfinished_instructions(self) -> list[KeptInstruction]:
        """Kept instructions stage 2 or stage 3 has not finished (what a resumed run picks up)."""
        rows = self.conn.execute(
            "SELECT * FROM instructions WHERE is_classification IS NULL OR instances_status = 'pending'"
            " ORDER BY id"
        )
        return [self._kept(r) for r in rows]

    def count_unfinished(self, *, classify: bool, instances: bool) -> int:
        """Kept instructions not yet classified (`classify`) or not yet given instances (`instances`)."""
        conditions = [
            condition
            for asked, condition in (
                (classify, "is_classification IS NULL"),
                (instances, "instances_status = 'pending'"),
            )
            if asked
        ]
        if not conditions:
            return 0
        sql = "SELECT COUNT(*) FROM instructions WHERE " + " OR ".join(conditions)
        return int(self.conn.execute(sql).fetchone()[0])

    @staticmethod
    def _kept(r: sqlite3.Row) -> KeptInstruction:
        return KeptInstruction(
            id=r["id"],
            instruction=r["instruction"],
            most_similar=tuple(SimilarInstruction(s, sc) for s, sc in json.loads(r["most_similar"])),
            avg_similarity=r["avg_similarity"],
            max_similarity=r["max_similarity"],
            is_classification=_opt_bool(r["is_classification"]),
            instances_status=r["instances_status"],
        )

    def stored_instructions(self) -> list[StoredInstruction]:
        """Kept instructions with the stage-1 request and the raw replies behind them, in acceptance
        order (the paper's files)."""
        rows = self.conn.execute(
            "SELECT i.*, c.request_id FROM instructions i JOIN candidates c ON c.id = i.candidate_id"
            " ORDER BY i.id"
        )
        return [
            StoredInstruction(
                **vars(self._kept(r)),
                request_id=r["request_id"],
                clf_reply=r["clf_reply"],
                instances_reply=r["instances_reply"],
                instances_finish=r["instances_finish"],
            )
            for r in rows
        ]

    def count_kept(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM instructions").fetchone()[0])

    # -- stage 3 ---------------------------------------------------------------------------------------
    def instances_pending(self, instruction_id: int) -> bool:
        """Whether stage 3 has yet to answer for this instruction."""
        row = self.conn.execute(
            "SELECT 1 FROM instructions WHERE id = ? AND instances_status = 'pending'", (instruction_id,)
        ).fetchone()
        return row is not None

    def kept_instances(self, instruction_id: int) -> list[Instance]:
        rows = self.conn.execute(
            "SELECT input, output FROM instances WHERE instruction_id=? AND verdict='kept' ORDER BY position",
            (instruction_id,),
        ).fetchall()
        return [Instance(r["input"], r["output"]) for r in rows]

    def kept_instances_by_instruction(self, only: Collection[int] | None = None) -> dict[int, list[Instance]]:
        """Every kept instance (or those whose id is in `only`), by instruction id, in the order stage 3
        parsed them."""
        by_id: dict[int, list[Instance]] = {}
        for r in self.conn.execute(
            "SELECT id, instruction_id, input, output FROM instances WHERE verdict='kept'"
            " ORDER BY instruction_id, position"
        ):
            if only is None or r["id"] in only:
                by_id.setdefault(r["instruction_id"], []).append(Instance(r["input"], r["output"]))
        return by_id

    def generated_tasks(
        self, *, with_instances_only: bool = True, only: Collection[int] | None = None
    ) -> list[Task]:
        """Kept instructions with their kept instances (or those whose id is in `only`: what a quality gate
        let through), in acceptance order."""
        by_id = self.kept_instances_by_instruction(only)
        tasks = []
        for k in self.kept_instructions():
            instances = tuple(by_id.get(k.id, ()))
            if with_instances_only and not instances:
                continue
            tasks.append(Task(k.instruction, instances, k.is_classification, id=f"gen_{k.id}"))
        return tasks

    # -- data quality ----------------------------------------------------------------------------------
    def rating_items(self, instance_ids: Sequence[int] | None = None) -> list[RatingItem]:
        """Kept instances with their instruction, in order (all, or those of `instance_ids`)."""
        sql = (
            "SELECT x.id, x.instruction_id, i.instruction, x.input, x.output FROM instances x"
            " JOIN instructions i ON i.id = x.instruction_id WHERE x.verdict = 'kept'"
        )
        rows = self.conn.execute(sql + " ORDER BY x.instruction_id, x.position").fetchall()
        items = [RatingItem(r[0], r[1], r[2], r[3], r[4]) for r in rows]
        if instance_ids is None:
            return items
        wanted = set(instance_ids)
        return [item for item in items if item.instance_id in wanted]

    def quality_judges(self) -> list[tuple[str, int]]:
        """(judge, instances it rated), the judge that rated most first (ties: the latest first)."""
        rows = self.conn.execute(
            "SELECT judge, COUNT(*) AS n, MAX(created_at) AS last FROM quality_ratings GROUP BY judge"
            " ORDER BY n DESC, last DESC"
        )
        return [(r["judge"], int(r["n"])) for r in rows]

    def quality_answers(self, judge: str) -> dict[int, Answers]:
        """A judge's answers by instance id."""
        rows = self.conn.execute(
            "SELECT instance_id, valid_task, input_ok, output_ok FROM quality_ratings WHERE judge = ?",
            (judge,),
        )
        return {int(r[0]): Answers(_opt_bool(r[1]), _opt_bool(r[2]), _opt_bool(r[3])) for r in rows}

    def rated_instance_ids(self, judge: str) -> set[int]:
        rows = self.conn.execute("SELECT instance_id FROM quality_ratings WHERE judge = ?", (judge,))
        return {int(r[0]) for r in rows}

    def human_answers(self) -> dict[str, dict[int, Answers]]:
        """The review page's Table 2 ratings by rater, then instance id (its `review_ratings` table, owned
        by `selfinstruct.web.db`; none before the page was first opened)."""
        try:
            rows = self.conn.execute(
                "SELECT rater, item_key, valid_task, input_ok, output_ok FROM review_ratings"
                " WHERE kind = 'data'"
            ).fetchall()
        except sqlite3.OperationalError:  # the review page never opened this run
            return {}
        by_rater: dict[str, dict[int, Answers]] = {}
        for r in rows:
            key = str(r["item_key"])
            if key.startswith("instance:") and key[9:].isdigit():
                answers = Answers(_opt_bool(r[2]), _opt_bool(r[3]), _opt_bool(r[4]))
                by_rater.setdefault(r["rater"], {})[int(key[9:])] = answers
        return by_rater

    def rating_sample(self, size: int, seed: int) -> list[tuple[int, int]]:
        """The stored rating sample of `size` items for `seed` as (instruction id, instance id), or [] when
        none is stored yet (`RunStore.draw_rating_sample` draws one)."""
        try:
            rows = self.conn.execute(
                "SELECT instruction_id, instance_id FROM review_sample WHERE sample_key = ?"
                " ORDER BY position",
                (sample_key(size, seed),),
            ).fetchall()
        except sqlite3.OperationalError:  # a run from before the sample lived here, never reviewed
            return []
        return [(int(r[0]), int(r[1])) for r in rows]

    # -- summaries -------------------------------------------------------------------------------------
    def verdict_counts(self, table: str) -> dict[str, int]:
        """{verdict: count} of the candidates (`table="candidates"`) or the instances, by verdict name."""
        if table not in {"candidates", "instances"}:
            raise ValueError(table)
        rows = self.conn.execute(
            f"SELECT verdict, COUNT(*) AS n FROM {table} GROUP BY verdict ORDER BY verdict"
        )
        return {r["verdict"]: int(r["n"]) for r in rows}

    def counts(self) -> RunCounts:
        def one(sql: str) -> int:
            return int(self.conn.execute(sql).fetchone()[0])

        return RunCounts(
            gen_requests_done=one("SELECT COUNT(*) FROM gen_requests WHERE status = 'done'"),
            gen_requests_truncated=one("SELECT COUNT(*) FROM gen_requests WHERE finish_reason = 'length'"),
            kept=self.count_kept(),
            classified=one("SELECT COUNT(*) FROM instructions WHERE is_classification IS NOT NULL"),
            classification=one("SELECT COUNT(*) FROM instructions WHERE is_classification = 1"),
            instructions_with_instances=one(
                "SELECT COUNT(DISTINCT instruction_id) FROM instances WHERE verdict = 'kept'"
            ),
            candidate_verdicts=self.verdict_counts("candidates"),
            instance_verdicts=self.verdict_counts("instances"),
        )

    def has_work(self) -> bool:
        """Whether the run holds anything an LM produced (a cached reply, a kept instruction): such a
        run is never discarded."""
        if self.conn.execute("SELECT 1 FROM instructions LIMIT 1").fetchone() is not None:
            return True
        try:
            return self.conn.execute("SELECT 1 FROM lm_cache LIMIT 1").fetchone() is not None
        except sqlite3.OperationalError:  # no lm_cache table: nothing was ever sent
            return False

    # -- the review page -------------------------------------------------------------------------------
    @staticmethod
    def _candidate_where(query: CandidateFilter) -> tuple[str, list[object]]:
        where: list[str] = []
        params: list[object] = []
        if query.q:
            where.append("c.instruction LIKE ? ESCAPE '\\'")
            params.append(f"%{_like_escape(query.q)}%")
        if query.verdict:
            where.append("c.verdict = ?")
            params.append(query.verdict)
        elif query.status == "kept":
            where.append("c.verdict = 'kept'")
        elif query.status == "dropped":
            where.append("c.verdict != 'kept'")
        if query.clf == "yes":
            where.append("i.is_classification = 1")
        elif query.clf == "no":
            where.append("i.is_classification = 0")
        elif query.clf == "unknown":
            where.append("i.id IS NOT NULL AND i.is_classification IS NULL")
        if query.instance_verdict:
            where.append("EXISTS (SELECT 1 FROM instances x WHERE x.instruction_id = i.id AND x.verdict = ?)")
            params.append(query.instance_verdict)
        return (" WHERE " + " AND ".join(where)) if where else "", params

    _CANDIDATES = " FROM candidates c LEFT JOIN instructions i ON i.candidate_id = c.id"

    def count_candidates(self, query: CandidateFilter) -> int:
        where, params = self._candidate_where(query)
        # The join only matters to the count when filtering on classification; without it, it is cheaper.
        source = self._CANDIDATES if query.clf or query.instance_verdict else " FROM candidates c"
        return int(self.conn.execute("SELECT COUNT(*)" + source + where, params).fetchone()[0])

    def candidate_rows(self, query: CandidateFilter, *, limit: int, offset: int) -> list[CandidateSummary]:
        """Candidates (kept and dropped) with their kept-instruction data, in order."""
        where, params = self._candidate_where(query)
        rows = self.conn.execute(
            "SELECT c.id AS cid, c.request_id, c.instruction, c.verdict, c.detail,"
            " COALESCE(c.max_similarity, i.max_similarity) AS max_similarity,"
            " i.id AS iid, i.is_classification,"
            " (SELECT COUNT(*) FROM instances x WHERE x.instruction_id = i.id AND x.verdict = 'kept')"
            " AS n_kept,"
            " (SELECT COUNT(*) FROM instances x WHERE x.instruction_id = i.id) AS n_parsed"
            + self._CANDIDATES
            + where
            + " ORDER BY c.id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [
            CandidateSummary(
                cid=r["cid"],
                request_id=r["request_id"],
                instruction=r["instruction"],
                verdict=r["verdict"],
                detail=r["detail"],
                max_similarity=r["max_similarity"],
                iid=r["iid"],
                is_classification=_opt_bool(r["is_classification"]),
                n_kept=r["n_kept"],
                n_parsed=r["n_parsed"],
            )
            for r in rows
        ]

    def candidate_row(self, candidate_id: int) -> StoredCandidate | None:
        r = self.conn.execute("SELECT * FROM candidates WHERE id = ?", (candidate_id,)).fetchone()
        if r is None:
            return None
        return StoredCandidate(
            id=r["id"],
            request_id=r["request_id"],
            position=r["position"],
            raw=r["raw"],
            instruction=r["instruction"],
            verdict=r["verdict"],
            detail=r["detail"],
            max_similarity=r["max_similarity"],
        )

    def instruction_row_of_candidate(self, candidate_id: int) -> KeptInstruction | None:
        """The kept instruction a candidate became, if it was kept."""
        r = self.conn.execute("SELECT * FROM instructions WHERE candidate_id = ?", (candidate_id,)).fetchone()
        return None if r is None else self._kept(r)

    def instance_rows(self, instruction_id: int) -> list[InstanceRecord]:
        """Every instance parsed for an instruction (kept and dropped), in order."""
        rows = self.conn.execute(
            "SELECT position, input, output, verdict, detail FROM instances WHERE instruction_id = ?"
            " ORDER BY position",
            (instruction_id,),
        )
        return [InstanceRecord(*r) for r in rows]

    def instructions_with_kept_instances(self) -> list[int]:
        """Ids of the kept instructions with at least one kept instance, in order."""
        rows = self.conn.execute(
            "SELECT i.id FROM instructions i WHERE EXISTS"
            " (SELECT 1 FROM instances x WHERE x.instruction_id = i.id AND x.verdict = 'kept') ORDER BY i.id"
        )
        return [int(r[0]) for r in rows]

    def kept_instance_ids(self, instruction_id: int) -> list[int]:
        rows = self.conn.execute(
            "SELECT id FROM instances WHERE instruction_id = ? AND verdict = 'kept' ORDER BY position",
            (instruction_id,),
        )
        return [int(r[0]) for r in rows]

    def instruction_with_instance(
        self, instruction_id: int, instance_id: int
    ) -> InstanceOfInstruction | None:
        """One instance of an instruction, with the instruction; None if it is not one of its instances."""
        r = self.conn.execute(
            "SELECT i.candidate_id, i.instruction, i.is_classification, x.input, x.output"
            " FROM instructions i JOIN instances x ON x.instruction_id = i.id WHERE i.id = ? AND x.id = ?",
            (instruction_id, instance_id),
        ).fetchone()
        if r is None:
            return None
        return InstanceOfInstruction(
            instruction_id=instruction_id,
            instance_id=instance_id,
            candidate_id=r["candidate_id"],
            instruction=r["instruction"],
            is_classification=_opt_bool(r["is_classification"]),
            input=r["input"],
            output=r["output"],
        )


class RunStore(RunReader):
    """Typed access to a run's database: the reads of `RunReader` and every write. One instance per
    process; not shared across threads."""

    lock: FolderLock | None = None  # set by the command that writes the run (pipeline/session.py)

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, path.parent) from None
        conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        super().__init__(conn)
        try:
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
        if self.lock is not None:  # the writer's lock on the run folder goes with its connection
            self.lock.release()

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

    # -- meta and seeds --------------------------------------------------------------------------------
    def set_meta(self, key: str, value: object) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

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

    # -- stage 1 ---------------------------------------------------------------------------------------
    def add_gen_request(self, request_id: int, prompt_instructions: list[str], prompt: str) -> None:
        self.conn.execute(
            "INSERT INTO gen_requests(id, prompt_instructions, prompt, created_at) VALUES(?, ?, ?, ?)",
            (request_id, json.dumps(prompt_instructions), prompt, time.time()),
        )

    def finish_gen_request(
        self,
        request_id: int,
        reply: str,
        finish_reason: str,
        candidates: list[CandidateRecord],
        kept: dict[int, KeptInfo],
    ) -> list[int]:
        """Record a reply, its candidates and the kept ones atomically. `kept` maps a candidate position to
        what the novelty filter said of it. Returns the new instruction ids in order."""
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
                info = kept.get(c.position)
                if info is not None:
                    cur2 = conn.execute(
                        "INSERT INTO instructions(candidate_id, instruction, most_similar, avg_similarity,"
                        " max_similarity, created_at) VALUES(?, ?, ?, ?, ?, ?)",
                        (
                            cur.lastrowid,
                            c.instruction,
                            json.dumps([[s.instruction, s.score] for s in info.most_similar]),
                            info.avg_similarity,
                            info.max_similarity,
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

    # -- stage 2 ---------------------------------------------------------------------------------------
    def set_classification(self, instruction_id: int, is_classification: bool, reply: str) -> None:
        self.conn.execute(
            "UPDATE instructions SET is_classification=?, clf_reply=? WHERE id=?",
            (int(is_classification), reply, instruction_id),
        )

    # -- data quality ----------------------------------------------------------------------------------
    def save_quality_rating(
        self, instance_id: int, judge: str, answers: Answers, reasons: dict[str, str], reply: str
    ) -> None:
        """Store (or replace) one judge's answers on one instance."""
        self.conn.execute(
            "INSERT INTO quality_ratings(instance_id, judge, valid_task, input_ok, output_ok, reasons, reply,"
            " created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(instance_id, judge) DO UPDATE SET"
            " valid_task = excluded.valid_task, input_ok = excluded.input_ok, output_ok = excluded.output_ok,"
            " reasons = excluded.reasons, reply = excluded.reply, created_at = excluded.created_at",
            (
                instance_id,
                judge,
                *(
                    None if v is None else int(v)
                    for v in (answers.valid_task, answers.input_ok, answers.output_ok)
                ),
                json.dumps(reasons, ensure_ascii=False),
                reply,
                time.time(),
            ),
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


def draw_rating_sample(run: RunReader, size: int, seed: int) -> list[tuple[int, int]]:
    """The rating sample: `size` kept instructions drawn at random with one kept instance each, as
    (instruction id, instance id). Drawn once and stored (in one transaction, on any connection), so every
    rater, judge and restart sees the same items; stored only when full (while fewer are eligible it is
    drawn again each time)."""
    stored = run.rating_sample(size, seed)
    if stored:
        return stored
    eligible = run.instructions_with_kept_instances()
    rng = random.Random(seed)
    chosen = rng.sample(eligible, min(size, len(eligible)))
    pairs = [(iid, rng.choice(run.kept_instance_ids(iid))) for iid in chosen]
    if pairs and len(pairs) == size:
        conn = run.conn
        in_transaction = conn.in_transaction
        if not in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(SAMPLE_SCHEMA)
            conn.executemany(
                "INSERT OR IGNORE INTO review_sample VALUES (?, ?, ?, ?)",
                [(sample_key(size, seed), pos, iid, xid) for pos, (iid, xid) in enumerate(pairs)],
            )
        except BaseException:
            if not in_transaction:
                conn.execute("ROLLBACK")
            raise
        if not in_transaction:
            conn.execute("COMMIT")
    return pairs
