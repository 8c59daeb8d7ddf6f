"""The run store's transactions (all-or-nothing, also when one is opened inside another), its WAL
checkpointer, and the named queries every other module reads the run tables with."""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

import selfinstruct
from selfinstruct.records import (
    CandidateRecord,
    CandidateSummary,
    Instance,
    InstanceOfInstruction,
    InstanceRecord,
    KeptInfo,
    KeptInstruction,
    RunCounts,
    SimilarInstruction,
    StoredCandidate,
)
from selfinstruct.store import DB_NAME, CandidateFilter, RunReader, RunStore, WalCheckpointer


def _requests(store: RunStore) -> list[int]:
    return [r[0] for r in store.conn.execute("SELECT id FROM gen_requests ORDER BY id")]


def test_nested_transaction_commits_and_rolls_back_with_the_outer_one(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "run", create=True)
    with store.transaction():
        store.add_gen_request(0, ["a"], "prompt 0")
        with store.transaction():  # e.g. finish_gen_request inside the runner's per-reply commit
            store.add_gen_request(1, ["b"], "prompt 1")
        assert store.conn.in_transaction  # the inner block did not commit
    assert _requests(store) == [0, 1]

    with pytest.raises(RuntimeError), store.transaction():
        store.add_gen_request(2, ["c"], "prompt 2")
        with store.transaction():
            store.add_gen_request(3, ["d"], "prompt 3")
        raise RuntimeError("crash before the outer commit")
    assert _requests(store) == [0, 1]  # neither the outer nor the inner write survived
    assert not store.conn.in_transaction
    store.close()


def test_wal_checkpointer_takes_checkpoints_off_the_committing_connection(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "run", create=True)

    def autocheckpoint() -> int:
        return int(store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

    with WalCheckpointer(store.path, [store.conn], interval=0.01) as checkpointer:
        assert autocheckpoint() == 0
        for n in range(200):  # well past 1,000 WAL pages if nobody checkpointed
            store.add_gen_request(n, ["x" * 100], "prompt " + "y" * 20_000)
        # The thread copies every committed page into the database file itself: a copy of that file
        # alone, without the WAL beside it, comes to hold all the rows. Under load a passive checkpoint may
        # be cut short or a copy may catch one mid-write, so poll (this connection never checkpoints).
        copy = tmp_path / "copy.sqlite"
        deadline, rows = time.monotonic() + 20, -1
        while rows != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            shutil.copyfile(store.path, copy)
            with closing(sqlite3.connect(copy)) as other:
                try:
                    rows = other.execute("SELECT COUNT(*) FROM gen_requests").fetchone()[0]
                except sqlite3.DatabaseError:
                    rows = -1  # copied halfway through a checkpoint's write
        assert rows == 200
        assert checkpointer.checkpoints >= 1
    assert autocheckpoint() == 1000  # restored on exit
    assert _requests(store) == list(range(200))
    store.close()


# -- the named queries the pipeline, the summary, the export and the report use ---------------------------
POOL = "Write a haiku about autumn leaves."


def _similar(score: float) -> KeptInfo:
    return KeptInfo(
        (SimilarInstruction(POOL, score), SimilarInstruction("Name a colour.", score / 2)), 0.1, score
    )


def _small_run(run_dir: Path) -> tuple[RunStore, list[int]]:
    """Request 0 (a full reply): kept, too_short, kept. Request 1 (cut by max_tokens): kept, truncated.
    Request 2 is still pending."""
    store = RunStore.open(run_dir, create=True)
    store.add_gen_request(0, [POOL], "prompt 0")
    ids = store.finish_gen_request(
        0,
        "reply 0",
        "stop",
        [
            CandidateRecord(0, " Sort a list.", "Sort a list.", "kept", None, 0.3),
            CandidateRecord(1, "Hi", "Hi", "too_short", "1 words"),
            CandidateRecord(2, "Translate to French.", "Translate to French.", "kept", None, 0.2),
        ],
        {0: _similar(0.3), 2: _similar(0.2)},
    )
    store.add_gen_request(1, [POOL], "prompt 1")
    ids += store.finish_gen_request(
        1,
        "reply 1",
        "length",
        [
            CandidateRecord(0, "Is this spam?", "Is this spam?", "kept", None, 0.4),
            CandidateRecord(1, "Write a", "Write a", "truncated", "reply hit max_tokens"),
        ],
        {0: _similar(0.4)},
    )
    store.add_gen_request(2, [POOL], "prompt 2")
    return store, ids


def test_stage_progress_queries_follow_stages_2_and_3(tmp_path: Path) -> None:
    store, (sort, translate, spam) = _small_run(tmp_path / "run")
    assert [r.id for r in store.pending_gen_requests()] == [2] and store.next_gen_request_id() == 3
    assert [k.id for k in store.unfinished_instructions()] == [sort, translate, spam]
    assert store.count_unfinished(classify=True, instances=False) == 3
    assert store.count_unfinished(classify=False, instances=False) == 0
    assert all(store.instances_pending(i) for i in (sort, translate, spam))

    store.set_classification(sort, False, " No")
    store.set_classification(spam, True, " Yes")
    store.finish_instances(
        sort,
        "raw sort",
        "stop",
        [InstanceRecord(0, "3 1 2", "1 2 3", "kept"), InstanceRecord(1, "", "", "empty_output")],
    )
    assert [k.id for k in store.unfinished_instructions()] == [translate, spam]
    assert store.count_unfinished(classify=True, instances=False) == 1  # translate
    assert store.count_unfinished(classify=False, instances=True) == 2  # translate, spam
    assert store.count_unfinished(classify=True, instances=True) == 2
    assert not store.instances_pending(sort) and store.instances_pending(spam)

    counts = store.counts()
    assert counts == RunCounts(
        gen_requests_done=2,
        gen_requests_truncated=1,
        kept=3,
        classified=2,
        classification=1,
        instructions_with_instances=1,
        candidate_verdicts={"kept": 3, "too_short": 1, "truncated": 1},
        instance_verdicts={"empty_output": 1, "kept": 1},
    )
    store.close()


def test_kept_and_stored_instructions_read_back_what_was_written(tmp_path: Path) -> None:
    store, (sort, translate, spam) = _small_run(tmp_path / "run")
    store.set_classification(spam, True, " Yes")
    store.finish_instances(spam, "raw spam", "length", [InstanceRecord(0, "Win now", "spam", "kept")])
    kept = store.kept_instructions()
    assert [k.instruction for k in kept] == ["Sort a list.", "Translate to French.", "Is this spam?"]
    assert kept[2].most_similar == _similar(0.4).most_similar
    assert (kept[2].avg_similarity, kept[2].max_similarity) == (0.1, 0.4)
    assert [(k.is_classification, k.instances_status) for k in kept] == [
        (None, "pending"),
        (None, "pending"),
        (True, "done"),
    ]
    stored = store.stored_instructions()
    assert [s.id for s in stored] == [sort, translate, spam]
    assert [s.request_id for s in stored] == [0, 0, 1]
    assert (stored[2].clf_reply, stored[2].instances_reply, stored[2].instances_finish) == (
        " Yes",
        "raw spam",
        "length",
    )
    assert stored[0].clf_reply is None and stored[0].instances_reply is None
    assert store.kept_instances_by_instruction() == {spam: [Instance("Win now", "spam")]}
    assert [t.instruction for t in store.generated_tasks()] == ["Is this spam?"]
    assert len(store.generated_tasks(with_instances_only=False)) == 3
    store.close()


def test_review_reads_filter_candidates_on_any_connection(tmp_path: Path) -> None:
    store, (sort, _, spam) = _small_run(tmp_path / "run")
    store.set_classification(spam, True, " Yes")
    store.finish_instances(
        spam, "r", "stop", [InstanceRecord(0, "a", "b", "kept"), InstanceRecord(1, "", "", "empty_output")]
    )
    store.close()
    with closing(sqlite3.connect(tmp_path / "run" / DB_NAME)) as conn:  # as the review page opens one
        run = RunReader(conn)

        def texts(**query: str) -> list[str]:
            return [r.instruction for r in run.candidate_rows(CandidateFilter(**query), limit=10, offset=0)]

        assert texts() == ["Sort a list.", "Hi", "Translate to French.", "Is this spam?", "Write a"]
        assert texts(status="dropped") == ["Hi", "Write a"]
        assert texts(verdict="truncated") == ["Write a"]
        assert texts(q="a list") == ["Sort a list."]
        assert texts(q="%") == []  # LIKE wildcards are matched literally
        assert texts(clf="yes") == ["Is this spam?"]
        assert texts(clf="unknown") == ["Sort a list.", "Translate to French."]
        assert texts(instance_verdict="empty_output") == ["Is this spam?"]
        assert run.count_candidates(CandidateFilter(status="kept")) == 3
        assert run.count_candidates(CandidateFilter(clf="unknown")) == 2
        [row] = run.candidate_rows(CandidateFilter(clf="yes"), limit=10, offset=0)
        assert isinstance(row, CandidateSummary)  # records, not sqlite3.Row: typed, and no SQL names leak
        assert (row.iid, row.is_classification, row.n_kept, row.n_parsed) == (spam, True, 1, 2)
        assert [r.instruction for r in run.candidate_rows(CandidateFilter(), limit=2, offset=2)] == [
            "Translate to French.",
            "Is this spam?",
        ]
        assert run.instructions_with_kept_instances() == [spam]
        [instance_id] = run.kept_instance_ids(spam)
        pair = run.instruction_with_instance(spam, instance_id)
        assert isinstance(pair, InstanceOfInstruction)
        assert (pair.instruction_id, pair.instance_id) == (spam, instance_id)
        assert (pair.instruction, pair.is_classification, pair.input, pair.output) == (
            "Is this spam?",
            True,
            "a",
            "b",
        )
        assert run.instruction_with_instance(sort, instance_id) is None  # not an instance of that one
        candidate = run.candidate_row(pair.candidate_id)
        assert isinstance(candidate, StoredCandidate) and candidate.verdict == "kept"
        assert (candidate.id, candidate.instruction) == (pair.candidate_id, "Is this spam?")
        assert run.candidate_row(10**6) is None
        instruction = run.instruction_row_of_candidate(pair.candidate_id)
        assert isinstance(instruction, KeptInstruction) and instruction.id == spam
        assert instruction.is_classification is True
        assert run.instance_rows(spam) == [
            InstanceRecord(0, "a", "b", "kept"),
            InstanceRecord(1, "", "", "empty_output"),
        ]
        assert run.instance_rows(sort) == []


RUN_TABLE_SQL = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN)\s+(?:meta|seed_tasks|gen_requests|candidates|instructions|instances)\b"
)


def test_no_module_but_the_store_writes_sql_against_the_run_tables() -> None:
    package = Path(selfinstruct.__file__).parent
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "store.py"
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1)
        if RUN_TABLE_SQL.search(line)
    ]
    assert offenders == []
    assert RUN_TABLE_SQL.search((package / "store.py").read_text("utf-8"))  # the pattern finds SQL at all
