"""Kill -9 a real `selfinstruct generate` process mid-run, rerun it, and check nothing is lost or doubled."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.conftest import count_rows, generate_command

from selfinstruct.prompts import INPUT_FIRST_HEADER
from selfinstruct.testing.fake_server import FakeOpenAIServer, FaultPlan
from selfinstruct.testing.responder import self_instruct_responder


def test_sigkill_then_resume_loses_and_doubles_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    db = run_dir / "run.sqlite"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with FakeOpenAIServer(self_instruct_responder, latency=0.05) as server:
        proc = subprocess.Popen(
            generate_command(run_dir, server.base_url, num=40, export=False),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists() and count_rows(db, "SELECT COUNT(*) FROM instances") >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_done = count_rows(db, "SELECT COUNT(*) FROM gen_requests WHERE status='done'")
        kept_before = count_rows(db, "SELECT COUNT(*) FROM instructions")
        assert 0 < kept_before < 40
        conn = sqlite3.connect(db)
        answered = {row[0] for row in conn.execute("SELECT prompt FROM lm_cache")}
        conn.close()
        n_bodies = len(server.bodies)

        result = subprocess.run(
            generate_command(run_dir, server.base_url, num=40, export=False),
            env=env,
            capture_output=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert b"Resuming" in result.stderr
        resent = [b.get("prompt") for b in server.bodies[n_bodies:]]
        assert resent, "the resumed run must have had work left"
        # Nothing answered before the kill was asked again: it came from the response cache.
        assert not answered.intersection(resent)

    conn = sqlite3.connect(db)
    # Nothing doubled: one row per (request, position), one instruction per candidate, no repeated text.
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM (SELECT instruction FROM instructions GROUP BY instruction"
            " HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        == 0
    )
    assert conn.execute("SELECT COUNT(*) FROM gen_requests WHERE status='done'").fetchone()[0] >= killed_done
    assert conn.execute("SELECT COUNT(*) FROM instructions").fetchone()[0] >= 40
    # Every kept instruction finished stages 2 and 3 exactly once.
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM instructions WHERE is_classification IS NULL OR instances_status != 'done'"
        ).fetchone()[0]
        == 0
    )
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM (SELECT instruction_id, position FROM instances"
            " GROUP BY instruction_id, position HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        == 0
    )
    # Every done request's candidates were recorded (parsing and recording commit together).
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM gen_requests g WHERE status='done' AND reply != '' AND NOT EXISTS"
            " (SELECT 1 FROM candidates c WHERE c.request_id = g.id)"
        ).fetchone()[0]
        == 0
    )


def test_a_request_failing_for_good_exits_1_with_one_line_and_the_rerun_completes(tmp_path: Path) -> None:
    """The CLI side of a stage-3 request that cannot be answered: exit 1, one line, no asyncio noise
    about unretrieved task exceptions, nothing written as if finished; the rerun (server mended) ends
    with every kept instruction done, and its table shows the retries per stage."""
    run_dir = tmp_path / "run"
    db = run_dir / "run.sqlite"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}  # the table's rows unwrapped
    command = [
        *generate_command(run_dir, "URL", num=40, export=False),
        "--reply-retries",
        "1",
        "--max-retries",
        "1",
    ]
    plan = FaultPlan(sticky_garbage=1.0, sticky_match=INPUT_FIRST_HEADER)
    with FakeOpenAIServer(self_instruct_responder, faults=plan) as broken:
        url = broken.base_url
        failed = subprocess.run(
            [url if arg == "URL" else arg for arg in command], env=env, capture_output=True, timeout=300
        )
    stderr = failed.stderr.decode()
    assert failed.returncode == 1, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "instances request failed after 2 attempts" in stderr and "Rerun the same command" in stderr
    assert "Traceback" not in stderr and "never retrieved" not in stderr
    assert not (run_dir / "summary.json").exists()
    assert count_rows(db, "SELECT COUNT(*) FROM instructions WHERE instances_status != 'done'") > 0
    with FakeOpenAIServer(self_instruct_responder, faults=FaultPlan(seed=2, server_error=0.2)) as mended:
        done = subprocess.run(
            [mended.base_url if arg == "URL" else arg for arg in command] + ["--max-retries", "8"],
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    unfinished = (
        "SELECT COUNT(*) FROM instructions WHERE is_classification IS NULL OR instances_status != 'done'"
    )
    assert count_rows(db, unfinished) == 0 and count_rows(db, "SELECT COUNT(*) FROM instructions") >= 40
    summary = json.loads((run_dir / "summary.json").read_text())
    retries = {row["stage"]: row["retries"] for row in summary["usage"]}
    assert retries["total"] > 0
    # The LM usage table's total row: stage, requests, cached, retries, failed, tokens.
    row = re.search(r"│\s*total\s*│\s*[\d,]+\s*│\s*[\d,]+\s*│\s*([\d,]+)\s*│\s*0\s*│", done.stderr.decode())
    assert row and int(row.group(1).replace(",", "")) == retries["total"], done.stderr.decode()
