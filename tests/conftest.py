"""Shared fixtures: a run against the fake OpenAI server speaking the Self-Instruct responder."""

from __future__ import annotations

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
