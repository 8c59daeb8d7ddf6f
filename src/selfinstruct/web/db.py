"""The review page's own tables (ratings, the rating sample) in the run's file, and its reads of the run
tables, which go through the store's `RunReader` (the store owns their schema).

One short-lived connection per request: SQLite connections are cheap and must not cross threads, and WAL mode
lets the page read while a pipeline run writes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.evaluate.judge import RUBRIC
from selfinstruct.records import CandidateSummary, InstanceRecord, KeptInstruction, StoredCandidate
from selfinstruct.store import SAMPLE_SCHEMA, CandidateFilter, RunReader, draw_rating_sample

REVIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_ratings (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('data', 'response')),
    item_key    TEXT NOT NULL,     -- 'instance:<id>' for data; '<eval source>:<item id>' for responses
    rater       TEXT NOT NULL,
    valid_task  INTEGER,           -- Table 2 questions (data): 1 yes, 0 no
    input_ok    INTEGER,
    output_ok   INTEGER,
    grade       TEXT CHECK (grade IS NULL OR grade IN ('A', 'B', 'C', 'D')),  -- judge.RATINGS
    context     TEXT NOT NULL DEFAULT '{}',   -- JSON snapshot of what was rated, for exports
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    UNIQUE (kind, item_key, rater)
);
CREATE INDEX IF NOT EXISTS review_ratings_rater ON review_ratings(kind, rater);
"""

# Response grades: the paper's A-D scale, as the LLM judge is given it.
GRADES: tuple[tuple[str, str], ...] = tuple(RUBRIC.items())
PAGE_SIZE = 50


@contextmanager
def connect(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db, timeout=30.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def init_review_tables(db: Path) -> None:
    with connect(db) as conn:
        conn.executescript(REVIEW_SCHEMA + SAMPLE_SCHEMA)


# -- browsing -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BrowseQuery(CandidateFilter):
    """The candidates' filter and the page of them shown."""

    page: int = 1


@dataclass(frozen=True)
class BrowsePage:
    rows: list[CandidateSummary]
    total: int
    page: int
    pages: int


def browse(conn: sqlite3.Connection, query: BrowseQuery, page_size: int = PAGE_SIZE) -> BrowsePage:
    """Candidates (kept and dropped) with their kept-instruction data, newest rules applied as filters."""
    run = RunReader(conn)
    total = run.count_candidates(query)
    pages = max(1, -(-total // page_size))
    page = min(max(1, query.page), pages)
    rows = run.candidate_rows(query, limit=page_size, offset=(page - 1) * page_size)
    return BrowsePage(rows=rows, total=total, page=page, pages=pages)


def verdicts(conn: sqlite3.Connection, table: str = "candidates") -> list[tuple[str, int]]:
    """(verdict, count), the most frequent first (ties by name)."""
    counts = RunReader(conn).verdict_counts(table)
    return sorted(counts.items(), key=lambda item: item[1], reverse=True)


@dataclass(frozen=True)
class Detail:
    candidate: StoredCandidate
    instruction: KeptInstruction | None
    most_similar: list[tuple[str, float]]
    instances: list[InstanceRecord]


def detail(conn: sqlite3.Connection, candidate_id: int) -> Detail | None:
    run = RunReader(conn)
    cand = run.candidate_row(candidate_id)
    if cand is None:
        return None
    inst = run.instruction_row_of_candidate(candidate_id)
    if inst is None:
        return Detail(cand, None, [], [])
    similar = [(s.instruction, s.score) for s in inst.most_similar]
    return Detail(cand, inst, similar, run.instance_rows(inst.id))


# -- the data-quality sample --------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleItem:
    position: int
    instruction_id: int
    instance_id: int
    candidate_id: int
    instruction: str
    input: str
    output: str
    is_classification: bool | None

    @property
    def key(self) -> str:
        return f"instance:{self.instance_id}"


def sample_pairs(conn: sqlite3.Connection, size: int, seed: int) -> list[tuple[int, int]]:
    """The rating sample, drawn once and stored by the store (`selfinstruct rate --sample` rates the same)."""
    return draw_rating_sample(RunReader(conn), size, seed)


def sample_items(conn: sqlite3.Connection, size: int, seed: int) -> list[SampleItem]:
    run = RunReader(conn)
    items = []
    for position, (iid, xid) in enumerate(sample_pairs(conn, size, seed)):
        r = run.instruction_with_instance(iid, xid)
        if r is None:
            continue
        items.append(
            SampleItem(
                position=position,
                instruction_id=iid,
                instance_id=xid,
                candidate_id=r.candidate_id,
                instruction=r.instruction,
                input=r.input,
                output=r.output,
                is_classification=r.is_classification,
            )
        )
    return items


# -- ratings ------------------------------------------------------------------------------------------
def save_rating(
    conn: sqlite3.Connection,
    *,
    kind: str,
    item_key: str,
    rater: str,
    answers: dict[str, int] | None = None,
    grade: str | None = None,
    context: dict[str, object] | None = None,
) -> None:
    """Insert or replace one rater's rating of one item (a rater may change their mind)."""
    now = time.time()
    answers = answers or {}
    conn.execute(
        "INSERT INTO review_ratings(kind, item_key, rater, valid_task, input_ok, output_ok, grade, context,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(kind, item_key, rater) DO UPDATE SET valid_task = excluded.valid_task,"
        " input_ok = excluded.input_ok, output_ok = excluded.output_ok, grade = excluded.grade,"
        " context = excluded.context, updated_at = excluded.updated_at",
        (
            kind,
            item_key,
            rater,
            answers.get("valid_task"),
            answers.get("input_ok"),
            answers.get("output_ok"),
            grade,
            json.dumps(context or {}, ensure_ascii=False),
            now,
            now,
        ),
    )


def ratings_by_key(conn: sqlite3.Connection, kind: str, rater: str) -> dict[str, sqlite3.Row]:
    rows = conn.execute("SELECT * FROM review_ratings WHERE kind = ? AND rater = ?", (kind, rater))
    return {r["item_key"]: r for r in rows}


def all_ratings(conn: sqlite3.Connection, kind: str | None = None) -> list[sqlite3.Row]:
    if kind is None:
        return conn.execute("SELECT * FROM review_ratings ORDER BY kind, item_key, rater").fetchall()
    return conn.execute(
        "SELECT * FROM review_ratings WHERE kind = ? ORDER BY item_key, rater", (kind,)
    ).fetchall()
