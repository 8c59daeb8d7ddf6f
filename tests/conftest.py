"""Shared fixtures: a run against the fake OpenAI server speaking the Self-Instruct responder."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder

REPO = Path(__file__).resolve().parents[1]
# Fixtures live in the repository (tests/data, with licence notes): a lone clone runs the tests.
TEST_DATA = REPO / "tests" / "data"
PAPER_SEEDS = TEST_DATA / "paper_seed_tasks.jsonl"
SELFINSTRUCT = [sys.executable, "-m", "selfinstruct"]


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(self_instruct_responder) as server:
        yield server


def openai_overrides(base_url: str, **extra: object) -> dict[str, object]:
    """Flags of a small run against a fake server (dotted setting keys)."""
    overrides: dict[str, object] = {
        "lm.backend": "openai",
        "lm.model": "fake-model",
        "lm.base_url": [base_url],
        "lm.concurrency": 4,
        "num_instructions": 12,
        "filters.novelty_mean": True,
    }
    overrides.update(extra)
    return overrides


def generate_command(
    run_dir: Path, base_url: str, *, num: int, concurrency: int = 4, export: bool = True
) -> list[str]:
    """`selfinstruct generate` against a fake server, as a subprocess runs it (no progress bar)."""
    command = [
        *SELFINSTRUCT,
        *("generate", "--out", str(run_dir), "--backend", "openai", "--base-url", base_url),
        *("--model", "fake-model", "--num-instructions", str(num), "--concurrency", str(concurrency)),
        "--no-progress",
    ]
    return command if export else [*command, "--no-export"]


def count_rows(db: Path, sql: str) -> int:
    """A count from a run database another process may be writing; 0 while it does not exist yet."""
    try:
        conn = sqlite3.connect(db)
    except sqlite3.Error:
        return 0
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small finished run (10 instructions, exported) made against the fake server."""
    import subprocess

    run_dir = tmp_path_factory.mktemp("fake_run") / "run"
    with FakeOpenAIServer(self_instruct_responder) as server:
        done = subprocess.run(
            generate_command(run_dir, server.base_url, num=10), capture_output=True, text=True
        )
    assert done.returncode == 0, done.stderr
    return run_dir
