"""`selfinstruct rate` and `generate --judge` against the test server with scripted judge replies, the quality
gate of prepare/export on what the judge said, and a kill -9 in the middle of a rating."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import SELFINSTRUCT, count_rows, generate_command

from selfinstruct.quality.judge import JUDGE_PROMPT_END
from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder

# The judge's reply for an instance, chosen by the last digit of a hash of its output: yes/no mixes, a
# reply that answers nothing, and a malformed one.
SCRIPT = {
    0: " Yes - ok\n2. Yes - ok\n3. Yes - ok",
    1: " Yes - ok\n2. Yes - ok\n3. No - wrong",
    2: " No - not a task\n2. Yes\n3. Yes",
    3: " Yes\n2. No - the input does not fit\n3. Yes",
    4: " I cannot judge this.",
    5: " Yes\n2. Yes\n3. Maybe",
}


def scripted_reply(prompt: str) -> str:
    output = prompt.split("\nOutput: ", 1)[1].split("\n\nQuestions:", 1)[0]
    return SCRIPT[sum(output.encode()) % len(SCRIPT)]


def responder(prompt: str, body: dict[str, Any]) -> str:
    if prompt.endswith(JUDGE_PROMPT_END):
        return scripted_reply(prompt)
    return self_instruct_responder(prompt, body)


def _expected(db: Path) -> dict[int, str]:
    """Instance id -> the scripted reply the judge must have been given for it."""
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT id, output FROM instances WHERE verdict = 'kept'").fetchall()
    conn.close()
    return {int(i): SCRIPT[sum(output.strip().encode() or b"(empty)") % len(SCRIPT)] for i, output in rows}


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SELFINSTRUCT, *args], capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture
def server() -> Any:
    with FakeOpenAIServer(responder) as s:
        yield s


@pytest.fixture
def run_dir(tmp_path: Path, server: FakeOpenAIServer) -> Path:
    run = tmp_path / "run"
    done = subprocess.run(generate_command(run, server.base_url, num=20), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return run


def _rate(run: Path, server: FakeOpenAIServer, *extra: str) -> subprocess.CompletedProcess[str]:
    return _run(
        [
            "rate",
            str(run),
            "--judge",
            "judge-model",
            "--judge-base-url",
            server.base_url,
            "--no-progress",
            *extra,
        ]
    )


def test_rate_stores_each_answer_counts_the_unclear_and_asks_nothing_twice(
    run_dir: Path, server: FakeOpenAIServer
) -> None:
    before = len(server.bodies)
    first = _rate(run_dir, server)
    assert first.returncode == 0, first.stderr
    db = run_dir / "run.sqlite"
    expected = _expected(db)
    judge_bodies = [b for b in server.bodies[before:] if "messages" in b]
    assert len(judge_bodies) == len(expected) > 10  # one chat request per kept instance
    conn = sqlite3.connect(db)
    stored = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT instance_id, valid_task, input_ok, output_ok, reply FROM quality_ratings"
        )
    }
    conn.close()
    assert set(stored) == set(expected)
    meaning = {
        SCRIPT[0]: (1, 1, 1),
        SCRIPT[1]: (1, 1, 0),
        SCRIPT[2]: (0, 1, 1),
        SCRIPT[3]: (1, 0, 1),
        SCRIPT[4]: (None, None, None),
        SCRIPT[5]: (1, 1, None),
    }
    for instance_id, reply in expected.items():
        assert stored[instance_id][:3] == meaning[reply], reply
        assert stored[instance_id][3] == reply
    summary = json.loads((run_dir / "summary.json").read_text())
    [judge] = summary["quality"]["judges"]
    unclear = sum(1 for r in expected.values() if r == SCRIPT[4])
    assert judge["rater"] == "openai:judge-model:chat" and judge["items"] == len(expected)
    assert judge["valid_task"]["unrated"] == unclear
    assert judge["output_ok"]["unrated"] == unclear + sum(1 for r in expected.values() if r == SCRIPT[5])
    assert "Table 2" in first.stderr and "rated" in first.stderr
    # The usage of the pipeline run is kept in the refreshed summary.
    assert any(row["stage"] == "instructions" for row in summary["usage"])

    # A rerun asks nothing: every answer is stored.
    before = len(server.bodies)
    again = _rate(run_dir, server)
    assert again.returncode == 0, again.stderr
    assert len(server.bodies) == before and f"rated 0 now, {len(expected)} before" in again.stderr


def test_the_gate_keeps_what_the_judge_passed_and_counts_what_it_dropped(
    run_dir: Path, server: FakeOpenAIServer
) -> None:
    unrated = _run(["prepare", str(run_dir), "--min-quality", "all"])
    assert unrated.returncode == 2 and "no judge rated this run" in unrated.stderr
    assert _rate(run_dir, server).returncode == 0
    expected = _expected(run_dir / "run.sqlite")
    passes_all = sum(1 for r in expected.values() if r == SCRIPT[0])
    passes_output = sum(1 for r in expected.values() if r in (SCRIPT[0], SCRIPT[3]))
    out = run_dir / "gated"
    done = _run(["export", str(run_dir), "--out", str(out)])  # auto: all, every instance was rated
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("quality gate"))
    assert f"quality gate: all (judge openai:judge-model:chat): kept {passes_all} of {len(expected)}" in line
    counts = {
        reason: int(n) for reason, n in re.findall(r"(no: [a-z ]+|unrated: [a-z ]+|not rated) (\d+)", line)
    }
    assert counts["unrated: valid task"] == sum(1 for r in expected.values() if r == SCRIPT[4])
    assert counts["no: output correct"] == sum(1 for r in expected.values() if r == SCRIPT[1])
    assert counts["unrated: output correct"] == sum(1 for r in expected.values() if r == SCRIPT[5])
    assert sum(counts.values()) == len(expected) - passes_all
    rows = (out / "all_generated_instances.jsonl").read_text().splitlines()
    assert len(rows) == passes_all
    output = _run(
        ["export", str(run_dir), "--out", str(run_dir / "o"), "--min-quality", "output", "-f", "alpaca"]
    )
    assert output.returncode == 0, output.stderr
    assert len(json.loads((run_dir / "o" / "alpaca.json").read_text())) == passes_output
    everything = _run(
        ["export", str(run_dir), "--out", str(run_dir / "n"), "--min-quality", "none", "-f", "alpaca"]
    )
    assert len(json.loads((run_dir / "n" / "alpaca.json").read_text())) == len(expected)
    assert "quality gate: none (asked for)" in everything.stderr
    bad = _run(["prepare", str(run_dir), "--min-quality", "best"])
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--min-quality" in bad.stderr


def test_a_sample_rates_the_review_pages_items_and_does_not_gate_by_default(
    run_dir: Path, server: FakeOpenAIServer
) -> None:
    from selfinstruct.store import RunStore
    from selfinstruct.web.db import connect, sample_pairs

    done = _rate(run_dir, server, "--sample", "5", "--seed", "3")
    assert done.returncode == 0, done.stderr
    with connect(run_dir / "run.sqlite") as conn:
        review_items = {xid for _, xid in sample_pairs(conn, 5, 3)}
    store = RunStore.open(run_dir)
    rated = store.rated_instance_ids("openai:judge-model:chat")
    store.close()
    assert rated == review_items and len(rated) == 5
    prepared = _run(["prepare", str(run_dir)])
    assert "quality gate: none (judge openai:judge-model:chat rated 5 of" in prepared.stderr


def test_generate_with_a_judge_rates_inline_and_resumes_after_kill_9(tmp_path: Path) -> None:
    run = tmp_path / "run"
    db = run / "run.sqlite"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with FakeOpenAIServer(responder, latency=0.03) as server:
        command = [*generate_command(run, server.base_url, num=30, export=False), "--judge", "judge-model"]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if count_rows(db, "SELECT COUNT(*) FROM quality_ratings") >= 8:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        conn = sqlite3.connect(db)
        answered = {row[0] for row in conn.execute("SELECT prompt FROM lm_cache")}
        rated_before = conn.execute("SELECT COUNT(*) FROM quality_ratings").fetchone()[0]
        conn.close()
        n_bodies = len(server.bodies)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        resent = [m["content"] for b in server.bodies[n_bodies:] for m in b.get("messages", [])]
        assert resent  # judge work was left
        assert not answered.intersection(resent)  # nothing answered before the kill was asked again
    expected = _expected(db)
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT instance_id, judge, reply FROM quality_ratings").fetchall()
    conn.close()
    assert rated_before < len(rows) == len(expected)  # every kept instance rated, once
    assert {judge for _, judge, _ in rows} == {"openai:judge-model:chat"}
    assert all(reply == expected[i] for i, _, reply in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert any(row["stage"] == "judge" for row in summary["usage"])


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, fake_run: Path) -> None:
    for args, fragment in (
        (["rate", str(fake_run), "--no-progress"], "--judge: name the judge"),
        (["rate", str(tmp_path / "nowhere"), "--judge", "checks"], "not a selfinstruct run directory"),
        (["rate", str(fake_run), "--judge", "checks", "--sample", "0"], "--sample"),
        (["rate", str(fake_run), "--judge", "openai/"], "--judge"),
        (["rate", str(fake_run), "--judge", "checks", "--judge-api", "telepathy"], "--judge-api"),
    ):
        result = _run(args)
        assert result.returncode == 2, (args, result.stderr)
        assert fragment in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    assert not (tmp_path / "nowhere").exists()


def test_redo_replaces_a_judges_answers_from_the_cache(run_dir: Path, server: FakeOpenAIServer) -> None:
    assert _rate(run_dir, server).returncode == 0
    conn = sqlite3.connect(run_dir / "run.sqlite")
    conn.execute("UPDATE quality_ratings SET valid_task = NULL, reply = 'tampered'")
    conn.commit()
    conn.close()
    before = len(server.bodies)
    again = _rate(run_dir, server, "--redo")
    assert again.returncode == 0, again.stderr
    assert len(server.bodies) == before  # every reply came from the run's cache
    conn = sqlite3.connect(run_dir / "run.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM quality_ratings WHERE reply = 'tampered'").fetchone()[0] == 0
    conn.close()


def test_rate_counts_its_spending_with_the_runs_and_stops_at_the_budget(
    run_dir: Path, server: FakeOpenAIServer
) -> None:
    prices = ["--price-input", "1000", "--price-output", "1000"]  # USD per million tokens: $0.001 a token
    # The budget is the run's: what generating it spent counts too.
    total = json.loads((run_dir / "summary.json").read_text())["cost"]["total"]
    spent = (total["prompt_tokens"] + total["completion_tokens"]) / 1000
    # One judge request: about 250 prompt tokens + 160 max_tokens, $0.41 at these prices.
    too_small = _rate(run_dir, server, *prices, "--max-cost", "0.10")
    assert too_small.returncode == 2 and "less than one judge request" in too_small.stderr, too_small.stderr
    budget = f"{spent + 2:.2f}"
    stopped = _rate(run_dir, server, *prices, "--max-cost", budget)
    assert stopped.returncode == 1, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1].startswith(f"error: budget of ${budget} reached")
    rated_first = count_rows(run_dir / "run.sqlite", "SELECT COUNT(*) FROM quality_ratings")
    expected = _expected(run_dir / "run.sqlite")
    assert 0 < rated_first < len(expected)
    before = len(server.bodies)
    resumed = _rate(run_dir, server, *prices, "--max-cost", "100000")
    assert resumed.returncode == 0, resumed.stderr
    judged = [b for b in server.bodies[before:] if "messages" in b]
    assert len(judged) == len(expected) - rated_first  # nothing asked twice
    assert json.loads((run_dir / "summary.json").read_text())["cost"]["total"]["usd"] > spent + 2
