"""Opening (or resuming) a run and driving the runner with a live progress display."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from selfinstruct.config import RunSettings, resolve_settings
from selfinstruct.errors import BudgetExceeded, UserError
from selfinstruct.lm import eventloop
from selfinstruct.lm.cache import SQLiteResponseCache
from selfinstruct.lm.client import Budget, LMClient, format_usd
from selfinstruct.lm.factory import build_client
from selfinstruct.paths import (
    check_output_dir,
    created_dirs,
    database_error,
    lock_folder,
    storage_error,
)
from selfinstruct.pipeline.runner import STAGES, PipelineRunner, PipelineState
from selfinstruct.pipeline.summary import RunSummary, stored_budget, summarize, write_summary
from selfinstruct.quality.rating import make_judge
from selfinstruct.records import Task
from selfinstruct.seeds import load_seed_tasks
from selfinstruct.store import DB_NAME, RunStore, WalCheckpointer


@dataclass
class OpenRun:
    settings: RunSettings
    store: RunStore
    seeds: list[Task]
    resumed: bool
    # For a run this command created: the directories it made (outermost first); None for an older run.
    created: list[Path] | None = None

    def close(self) -> None:
        self.store.close()  # releases the run's lock too

    def discard_if_unused(self) -> bool:
        """Remove a run this command created when it holds no work yet (no LM reply, no instruction):
        a rejected command leaves no run behind. Returns whether it was removed."""
        if self.created is None or self.store.has_work():
            return False
        if self.store.lock is not None:
            self.store.lock.release(remove=True)  # unlinked while still held: no one else can hold it
        self.store.close()
        _remove_db(self.store.path)
        for directory in reversed(self.created):
            with suppress(OSError):
                directory.rmdir()  # only when empty: never removes files put there by others
        return True


def open_run(
    run_dir: Path,
    config_path: Path | None,
    overrides: dict[str, Any],
    *,
    create: bool = True,
    option: str = "--out",
    flag_names: Mapping[str, str] | None = None,
) -> OpenRun:
    """Create a run, or resume one: the saved settings are the base, YAML and flags override them.

    A new run's settings and seeds are checked before anything is written, so a rejected command
    creates nothing; `option` names the run directory's flag in messages."""
    if not (run_dir / DB_NAME).exists() and create:
        return _create_run(run_dir, config_path, overrides, option, flag_names)
    lock = lock_folder(run_dir, "run") if (run_dir / DB_NAME).exists() else None
    try:
        store = RunStore.open(run_dir, create=create)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    store.lock = lock  # one process writes a run at a time; released when the store closes
    try:
        saved = store.get_meta("settings")
        settings = resolve_settings(
            config_path, overrides, base=saved if isinstance(saved, dict) else None, flag_names=flag_names
        )
        if store.has_seeds():
            if saved and isinstance(saved, dict) and saved.get("seeds") != settings.seeds:
                raise UserError(
                    f"--seeds: {run_dir} was started with seeds {saved.get('seeds')!r}; "
                    "use a new --out directory for other seeds"
                )
            seeds = store.seed_tasks()
        else:
            seeds = load_seed_tasks(settings.seeds)
            store.save_seeds(seeds)
        store.set_meta("settings", settings.model_dump(mode="json"))
    except sqlite3.Error as exc:
        store.close()
        raise (database_error(exc, store.path) or exc) from None
    except BaseException:
        store.close()
        raise
    return OpenRun(settings, store, seeds, resumed=saved is not None)


def _create_run(
    run_dir: Path,
    config_path: Path | None,
    overrides: dict[str, Any],
    option: str,
    flag_names: Mapping[str, str] | None,
) -> OpenRun:
    check_output_dir(run_dir, option)
    settings = resolve_settings(config_path, overrides, flag_names=flag_names)
    seeds = load_seed_tasks(settings.seeds)
    db = run_dir / DB_NAME
    with created_dirs(run_dir) as created:
        lock = lock_folder(run_dir, "run")
        if db.exists():  # another process created this run meanwhile, and has finished: resume it
            lock.release()
            return open_run(run_dir, config_path, overrides, option=option, flag_names=flag_names)
        try:
            store = RunStore(db)
        except BaseException:
            _remove_db(db)
            lock.release(remove=True)
            raise
        store.lock = lock
        try:
            store.save_seeds(seeds)
            store.set_meta("settings", settings.model_dump(mode="json"))
        except BaseException as exc:
            lock.release(remove=True)
            store.close()
            _remove_db(db)
            if isinstance(exc, sqlite3.Error):
                raise (database_error(exc, db) or exc) from None
            raise
    return OpenRun(settings, store, seeds, resumed=False, created=created)


def _remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with suppress(OSError):
            db.with_name(db.name + suffix).unlink(missing_ok=True)


class _TwoLineProgress(Progress):
    """The bar on one line and the run's figures on the next, so neither is cut at 80 columns."""

    stats: str = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.stats:
            yield Text(self.stats, overflow="ellipsis", no_wrap=True)


class RunProgress:
    """A live progress display: kept/target with a bar and the elapsed time, then requests in flight,
    requests/s, tokens, the money spent so far (with prices) and the instructions given instances."""

    WIDTH = 80  # the figures' line is cut beyond this: the least telling figure goes first

    def __init__(self, console: Console, enabled: bool) -> None:
        self.progress = _TwoLineProgress(
            TextColumn("[bold]instructions"),
            BarColumn(bar_width=None),
            TextColumn("{task.completed:.0f}/{task.total:.0f} kept"),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            transient=False,
            expand=True,
        )
        self.task_id = self.progress.add_task("instructions", total=1)

    def update(self, state: PipelineState, client: Any, started: float) -> None:
        if self.progress.disable:
            return
        total = client.usage.total
        requests = total.requests
        tokens = total.prompt_tokens + total.completion_tokens
        rate = requests / max(time.monotonic() - started, 1e-9)
        budget: Budget | None = getattr(client, "budget", None)
        spent = budget.spent_cost if budget is not None else None
        parts = [
            f"{client.in_flight} in flight",
            f"{rate:.1f} req/s",
            f"{tokens:,} tokens",
            *([f"{format_usd(spent)} spent"] if spent is not None else []),
            f"{state.instructions_finished} given instances",
            *([f"{state.rated} rated"] if state.rated else []),
        ]
        for least in ("req/s", "in flight"):  # the money is worth more than these at 80 columns
            if len("  " + " · ".join(parts)) <= self.WIDTH:
                break
            parts = [p for p in parts if not p.endswith(least)]
        self.progress.stats = "  " + " · ".join(parts)
        self.progress.update(self.task_id, completed=min(state.kept, state.target), total=state.target)


async def _drive(
    run: OpenRun, stages: Sequence[str], console: Console, show_progress: bool
) -> tuple[list[dict[str, object]], list[dict[str, object]], BudgetExceeded | None]:
    """Run the stages; returns (usage per stage, stats per endpoint, the budget's stop if it stopped)."""
    cache = SQLiteResponseCache(run.store.path)
    client = build_client(run.settings.lm, cache)
    judge, judge_client = make_judge(run.settings, cache, client)
    client.budget = stored_budget(run.settings, run.store)
    if judge_client is not None:
        judge_client.budget = client.budget
    display = RunProgress(console, show_progress)
    started = time.monotonic()
    runner = PipelineRunner(
        run.settings,
        run.store,
        client,
        run.seeds,
        stages=stages,
        on_update=lambda state: display.update(state, client, started),
        judge=judge,
    )

    async def refresh() -> None:
        while True:
            display.update(runner.state, client, started)
            await asyncio.sleep(0.5)

    stop: BudgetExceeded | None = None
    with display.progress, WalCheckpointer(run.store.path, [run.store.conn, cache.connection]):
        ticker = asyncio.create_task(refresh())
        try:
            await runner.run()
        except BudgetExceeded as exc:
            stop = exc  # a clean stop: everything answered is stored, the summary is written
        finally:
            ticker.cancel()
            display.update(runner.state, client, started)
            usage = client.usage.as_rows()
            endpoints = _endpoint_rows(client)
            if judge_client is not None:
                endpoints += _endpoint_rows(judge_client, " (judge)")
                if judge_client.lm is not client.lm:
                    await judge_client.aclose()
            await client.aclose()
            cache.close()
    if runner.state.stopped_reason:
        console.print(f"[yellow]Stopped early: {runner.state.stopped_reason}.")
    return usage, endpoints, stop


def _endpoint_rows(client: LMClient, suffix: str = "") -> list[dict[str, object]]:
    return [
        {
            "endpoint": e.endpoint + suffix,
            "requests": e.requests,
            "errors": e.errors,
            "mean_latency_s": round(e.mean_latency, 4),
        }
        for e in client.endpoint_stats()
    ]


def execute(
    run: OpenRun,
    *,
    stages: Sequence[str] = STAGES,
    console: Console | None = None,
    show_progress: bool = True,
) -> RunSummary:
    """Run the requested stages to completion, then write summary.json and summary.md in the run dir.

    A run stopped by its budget writes the summary too, then raises `BudgetExceeded` carrying it."""
    console = console or Console(stderr=True)
    started = time.monotonic()
    try:
        usage, endpoints, stop = eventloop.run(_drive(run, stages, console, show_progress))
        summary = summarize(run.store)
    except sqlite3.Error as exc:
        # A full disk or a directory made read-only mid-run: every step committed so far stays, so
        # the same command resumes once the disk has room again.
        raise (database_error(exc, run.store.path) or exc) from None
    except OSError as exc:
        if exc.filename is None:
            raise
        raise storage_error(exc) from None
    summary.usage = usage
    summary.endpoints = endpoints
    summary.wall_seconds = round(time.monotonic() - started, 2)
    if stop is not None:
        summary.stopped = str(stop)
    write_summary(run.store.path.parent, summary)
    if stop is not None:
        stop.summary = summary
        raise stop
    return summary
