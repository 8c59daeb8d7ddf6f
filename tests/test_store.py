"""The run store's transactions: all-or-nothing, also when one is opened inside another."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfinstruct.store import RunStore


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
