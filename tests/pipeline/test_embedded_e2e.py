"""The whole pipeline on the embedded model, for real: offline, small target, bounded requests."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
from tests.conftest import SELFINSTRUCT

from selfinstruct.store import RunStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed"
    ),
]


def test_generate_on_the_embedded_model(tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [
        *SELFINSTRUCT,
        "generate",
        "--out",
        str(run),
        "--num-instructions",
        "2",
        "--max-requests",
        "6",
        "--gen-max-tokens",
        "160",
        "--inst-max-tokens",
        "120",
        "--inst-max-tokens-classification",
        "100",
        "--concurrency",
        "2",
        "--no-progress",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "summary.json").read_text())
    store = RunStore.open(run)
    try:
        assert summary["gen_requests"] == store.counts().gen_requests_done > 0
        # A real model wrote real text, and every candidate got a verdict.
        replies = [r[0] for r in store.conn.execute("SELECT reply FROM gen_requests WHERE status='done'")]
        assert any(reply.strip() for reply in replies)
        assert summary["candidates"] == sum(summary["candidate_verdicts"].values()) > 0
        usage = {row["stage"]: row for row in summary["usage"]}
        assert usage["instructions"]["completion_tokens"] > 0
        # Every kept instruction went through stages 2 and 3.
        assert store.count_unfinished(classify=True, instances=True) == 0
        assert store.get_meta("settings")["lm"]["backend"] == "embedded"
    finally:
        store.close()
    assert (run / "export" / "machine_generated_instructions.jsonl").exists()
    # Rerunning the finished run is answered from the cache: it is fast and changes nothing.
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "summary.json").read_text())["candidates"] == summary["candidates"]
