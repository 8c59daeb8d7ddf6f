"""The run store's transactions (all-or-nothing, also when one is opened inside another) and its WAL
checkpointer."""

from __future__ import annotations

import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from selfinstruct.store import RunStore, WalCheckpointer


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
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpointer.checkpoints >= 2
        # The thread has copied every committed page into the database file itself: a copy of that
        # file alone, without the WAL beside it, holds all the rows.
        copy = tmp_path / "copy.sqlite"
        shutil.copyfile(store.path, copy)
        with closing(sqlite3.connect(copy)) as other:
            assert other.execute("SELECT COUNT(*) FROM gen_requests").fetchone()[0] == 200
    assert autocheckpoint() == 1000  # restored on exit
    assert _requests(store) == list(range(200))
    store.close()
