"""A budget that stops cleanly (`--max-cost`, `--max-total-tokens`), what was spent across resumes, and the
money shown during and after a run. Runs go through the real CLI against the fake OpenAI server."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from tests.conftest import SELFINSTRUCT

from selfinstruct.errors import BudgetExceeded, UserError
from selfinstruct.lm.client import Budget, Ledger, Prices, StageUsage, UsageStats
from selfinstruct.pipeline.runner import PipelineState
from selfinstruct.pipeline.session import RunProgress
from selfinstruct.pipeline.summary import cost_summary, cost_table
from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder

STOP = re.compile(
    r"^budget of (?P<limit>\S+)(?: tokens)? reached after (?P<n>\d+) instructions; "
    r"rerun with a higher --(?P<flag>max-cost|max-total-tokens) to continue$"
)


def _lm_flags(base_url: str, concurrency: int = 2) -> list[str]:
    return [
        *("--backend", "openai", "--base-url", base_url, "--model", "fake-model"),
        *("--concurrency", str(concurrency), "--no-progress"),
    ]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SELFINSTRUCT, *args], capture_output=True, text=True, timeout=300)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    return done.stderr.strip().splitlines()[-1]


def _query(run: Path, sql: str) -> int:
    conn = sqlite3.connect(run / "run.sqlite")
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def _ledger(run: Path) -> Ledger:
    conn = sqlite3.connect(run / "run.sqlite")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'spent'").fetchone()
    finally:
        conn.close()
    return Ledger.from_dict(json.loads(row[0]) if row else None)


def _asked(server: FakeOpenAIServer) -> list[str]:
    """Every request the server received, by its prompt (or chat messages)."""
    return [str(b.get("prompt") or json.dumps(b.get("messages"))) for b in server.bodies]


def _stopped(done: subprocess.CompletedProcess[str], limit: str) -> int:
    """The budget's one line is the last; returns the instructions it reports."""
    assert done.returncode == 1, done.stderr
    match = STOP.match(_last_line(done))
    assert match is not None, _last_line(done)
    assert match["limit"] == (f"{int(limit):,}" if limit.isdigit() else limit)
    return int(match["n"])


def test_a_budget_stops_each_stage_and_a_higher_one_resumes_asking_nothing_twice(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with FakeOpenAIServer(self_instruct_responder) as server:
        lm = _lm_flags(server.base_url)
        # Stage 1: a reply's bound is its prompt (~160 tokens by characters / 4) + 150 max_tokens.
        limit = ["--num-instructions", "30", "--gen-max-tokens", "150"]
        done = _run("instructions", "--out", str(run), *lm, *limit, "--max-total-tokens", "700")
        made = _stopped(done, "700")
        assert 0 < made < 30 and made == _query(run, "SELECT COUNT(*) FROM instructions")
        spent = _ledger(run)
        assert list(spent.stages) == ["instructions"] and spent.total.tokens <= 700
        # Requests in flight at the stop finished and were stored: every answered one is in the cache.
        assert spent.total.requests == _query(run, "SELECT COUNT(*) FROM lm_cache")
        summary = json.loads((run / "summary.json").read_text())
        assert summary["stopped"] == _last_line(done)
        assert f"budget: {spent.total.tokens} of 700 tokens" in done.stderr  # the end-of-run table

        done = _run("instructions", "--out", str(run), *lm, "--max-total-tokens", "100000")
        assert done.returncode == 0, done.stderr
        kept = _query(run, "SELECT COUNT(*) FROM instructions")
        assert kept >= 30

        # Stage 2 alone: room for a few classification requests past what was spent.
        budget = str(_ledger(run).total.tokens + 2000)
        assert _stopped(_run("classify", str(run), *lm, "--max-total-tokens", budget), budget) == kept
        classified = _query(run, "SELECT COUNT(*) FROM instructions WHERE is_classification IS NOT NULL")
        assert 0 < classified < kept
        assert _ledger(run).total.tokens <= int(budget)
        assert _run("classify", str(run), *lm, "--max-total-tokens", "1000000").returncode == 0

        # Stage 3 alone.
        budget = str(_ledger(run).total.tokens + 2000)
        assert _stopped(_run("instances", str(run), *lm, "--max-total-tokens", budget), budget) == kept
        given = _query(run, "SELECT COUNT(*) FROM instructions WHERE instances_status = 'done'")
        assert 0 < given < kept
        assert set(_ledger(run).stages) == {"instructions", "classify", "instances"}
        assert _run("instances", str(run), *lm, "--max-total-tokens", "1000000").returncode == 0

        # The judge: every stage is done, so only its requests are new.
        judge = ["--judge", "fake-model"]
        budget = str(_ledger(run).total.tokens + 1500)
        done = _run("generate", "--out", str(run), *lm, *judge, "--max-total-tokens", budget, "--no-export")
        assert _stopped(done, budget) == kept
        rated = _query(run, "SELECT COUNT(*) FROM quality_ratings")
        instances = _query(run, "SELECT COUNT(*) FROM instances WHERE verdict = 'kept'")
        assert 0 < rated < instances
        assert _ledger(run).stages["judge"].requests >= rated
        assert "(judge)" in " ".join(_ledger(run).endpoints)

        done = _run(
            "generate", "--out", str(run), *lm, *judge, "--max-total-tokens", "1000000", "--no-export"
        )
        assert done.returncode == 0, done.stderr
        assert _query(run, "SELECT COUNT(*) FROM quality_ratings") == instances

        asked = _asked(server)
        assert len(asked) == len(set(asked)), "a resumed run asked a request twice"
        # The ledger counts every answered request once over all six sessions.
        assert _ledger(run).total.requests == _query(run, "SELECT COUNT(*) FROM lm_cache")


def test_a_cost_budget_names_dollars_and_the_money_adds_up_over_sessions(tmp_path: Path) -> None:
    run = tmp_path / "run"
    prices = ["--price-input", "1", "--price-output", "2"]
    with FakeOpenAIServer(self_instruct_responder) as server:
        # Concurrency 1: no request is ever in flight when the target is reached, so every request the
        # server answered reached the run.
        lm = _lm_flags(server.base_url, concurrency=1)
        common = ["generate", "--out", str(run), *lm, "--num-instructions", "12", "--no-export"]
        done = _run(*common, *prices, "--max-cost", "0.005", "--gen-max-tokens", "200")
        made = _stopped(done, "$0.0050")
        assert 0 < made < 12
        assert "Spent so far (all sessions)" in done.stderr
        ledger = _ledger(run)
        assert Prices(1, 2).cost(ledger.total.prompt_tokens, ledger.total.completion_tokens) <= 0.005

        done = _run(*common, "--max-cost", "1")  # prices come from the run's saved settings
        assert done.returncode == 0, done.stderr
        ledger = _ledger(run)
        assert ledger.total.requests == server.requests_served
        cost = json.loads((run / "summary.json").read_text())["cost"]
        assert cost["prices"] == {"input": 1.0, "output": 2.0} and cost["max_cost"] == 1.0
        for row in cost["stages"]:
            spent = ledger.stages[row["name"]]
            assert (row["prompt_tokens"], row["completion_tokens"]) == (
                spent.prompt_tokens,
                spent.completion_tokens,
            )
            assert row["usd"] == pytest.approx((spent.prompt_tokens + 2 * spent.completion_tokens) / 1e6)
        assert cost["total"]["usd"] == pytest.approx(sum(row["usd"] for row in cost["stages"]))
        assert [row["name"] for row in cost["endpoints"]] == [server.base_url]
        assert "| total |" in (run / "summary.md").read_text()


def test_lowering_the_budget_below_what_was_spent_stops_at_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with FakeOpenAIServer(self_instruct_responder) as server:
        lm = _lm_flags(server.base_url)
        done = _run("generate", "--out", str(run), *lm, "--num-instructions", "4", "--no-export")
        assert done.returncode == 0, done.stderr
        assert _ledger(run).total.tokens > 2000
        received = server.requests_received
        kept = _query(run, "SELECT COUNT(*) FROM instructions")
        done = _run(
            "generate", "--out", str(run), *lm, "--num-instructions", "40", "--max-total-tokens", "2000"
        )
        assert _stopped(done, "2,000") == kept
        assert server.requests_received == received  # nothing sent


def test_a_budget_below_one_request_is_refused_at_once(tmp_path: Path) -> None:
    with FakeOpenAIServer(self_instruct_responder) as server:
        lm = _lm_flags(server.base_url)
        for flags, message in (
            (["--max-total-tokens", "500"], "--max-total-tokens 500: less than one stage-1 request ("),
            (
                ["--price-input", "1", "--price-output", "2", "--max-cost", "0.001"],
                "--max-cost $0.0010: less than one stage-1 request ($0.0022: ",
            ),
            (["--max-cost", "1"], "setting cost: max_cost needs price_input and price_output"),
        ):
            run = tmp_path / "new" / "run"
            done = _run("generate", "--out", str(run), *lm, *flags)
            assert done.returncode == 2, done.stderr
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert done.stderr.startswith(f"error: {message}"), done.stderr
            assert not (tmp_path / "new").exists()  # a refused run leaves nothing behind
        assert server.requests_received == 0


# -- the budget itself ------------------------------------------------------------------------------------
def test_admission_waits_for_room_in_order_and_stops_for_good_when_nothing_can_make_room() -> None:
    async def scenario() -> None:
        budget = Budget(max_total_tokens=100)
        first = await budget.admit(10, 40)
        second = await budget.admit(10, 40)
        third = asyncio.create_task(budget.admit(10, 40))  # 50 + 50 held: no room
        await asyncio.sleep(0)
        assert not third.done()
        budget.record("s", "e", 10, 5)
        budget.release(first)  # 15 spent + 50 held + 50 > 100: still waiting
        await asyncio.sleep(0)
        assert not third.done()
        budget.record("s", "e", 10, 5)
        budget.release(second)  # 30 + 50 <= 100
        held = await asyncio.wait_for(third, 1)
        small = asyncio.create_task(budget.admit(1, 1))
        await asyncio.sleep(0)
        assert small.done()  # fits beside the one in flight
        budget.release(small.result())
        big = asyncio.create_task(budget.admit(10, 50))  # 30 + 50 + 60 > 100: waits
        behind = asyncio.create_task(budget.admit(1, 1))  # would fit, but asked later: waits its turn
        await asyncio.sleep(0)
        assert not big.done() and not behind.done()
        budget.record("s", "e", 10, 20)
        budget.release(held)  # 60 spent + 60 > 100 and nothing in flight: spent for good
        with pytest.raises(BudgetExceeded, match="budget of 100 tokens reached;"):
            await big
        with pytest.raises(BudgetExceeded):
            await behind  # the stop is final, even for a request that would fit
        assert budget.stopped == "tokens"
        assert budget.ledger.total == budget.ledger.stages["s"]
        assert budget.ledger.total.tokens == 60

    asyncio.run(scenario())


def test_a_budget_smaller_than_one_request_is_a_users_mistake() -> None:
    budget = Budget(prices=Prices(1.0, 2.0), max_cost=0.001)
    with pytest.raises(UserError) as error:
        budget.check_alone(100, 1000, "stage-1")
    assert str(error.value) == (
        "--max-cost $0.0010: less than one stage-1 request ($0.0021: 100 prompt tokens + 1,000 max_tokens); "
        "raise it"
    )
    budget.check_alone(100, 400, "stage-1")  # $0.0009 fits


def test_a_stored_ledger_round_trips_and_garbage_counts_as_nothing() -> None:
    ledger = Ledger()
    ledger.record("classify", "http://h/v1", 100, 2)
    ledger.record("judge", "http://h/v1 (judge)", 50, 10)
    again = Ledger.from_dict(json.loads(json.dumps(ledger.as_dict())))
    assert again == ledger and again.total.tokens == 162 and again.total.requests == 2
    assert Ledger.from_dict("nonsense") == Ledger()
    assert Ledger.from_dict({"stages": {"x": "y"}}) == Ledger()


# -- what the user sees ---------------------------------------------------------------------------------
def test_the_money_columns_price_each_stage_and_endpoint_and_fit_80_columns() -> None:
    ledger = Ledger()
    for _ in range(3):
        ledger.record("instructions", "http://gpu-host-01.example.org:8000/v1", 150_000, 60_000)
    ledger.record("judge", "https://api.openai.com/v1 (judge)", 1_000_000, 500_000)
    settings = {"cost": {"price_input": 0.15, "price_output": 0.6, "max_cost": 5}}
    cost = cost_summary(settings, ledger.as_dict())
    rows = {row.name: row for row in [*cost.stages, *cost.endpoints, cost.total]}
    assert rows["instructions"].usd == pytest.approx((450_000 * 0.15 + 180_000 * 0.6) / 1e6)
    assert rows["judge"].usd == pytest.approx(0.15 + 0.3)
    assert rows["total"].usd == pytest.approx(rows["instructions"].usd + rows["judge"].usd)
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    console.print(cost_table(cost))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "requests" in line)
    assert "USD" in header and "prompt" in header and "completion" in header
    assert any("judge" in line and "$0.45" in line for line in lines)
    assert any("instructions" in line and "$0.18" in line for line in lines)
    assert any("budget: $0.63 of $5.00 (13%)" in line for line in lines)


def test_the_progress_line_shows_the_money_spent_within_80_columns() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None, legacy_windows=False)
    display = RunProgress(console, enabled=True)
    usage = UsageStats()
    usage.stages["instructions"] = StageUsage(
        requests=1_234, prompt_tokens=9_876_543, completion_tokens=12_345
    )
    ledger = Ledger()
    ledger.record("instructions", "e", 9_876_543, 12_345)
    budget = Budget(ledger, prices=Prices(2.5, 10.0))
    client = SimpleNamespace(usage=usage, in_flight=64, budget=budget)
    state = PipelineState(target=52_000, kept=12_345, instructions_finished=12_000, rated=11_000)
    display.update(state, client, time.monotonic() - 60)
    console.print(*display.progress.get_renderables())
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert max(len(line) for line in lines) <= 80
    assert "$24.81 spent" in lines[1] and "12000 given instances" in lines[1] and "11000 rated" in lines[1]
