"""Rating a finished run (`selfinstruct rate`): choose the items, ask the judge what it has not answered,
store every answer as it arrives, then refresh the run's summary."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.config import resolve_settings
from selfinstruct.errors import UserError
from selfinstruct.lm import eventloop
from selfinstruct.lm.cache import SQLiteResponseCache
from selfinstruct.paths import lock_folder
from selfinstruct.pipeline.summary import RunSummary, refresh_summary, stored_budget
from selfinstruct.quality.rating import LLMJudge, make_judge, rate_items, unrated
from selfinstruct.records import RatingItem
from selfinstruct.store import RunStore, WalCheckpointer, draw_rating_sample


@dataclass(frozen=True)
class RateOutcome:
    judge: str
    items: int
    rated: int
    already: int
    summary: RunSummary


def rate_run(
    run_dir: Path,
    overrides: Mapping[str, Any],
    *,
    sample: int | None = None,
    seed: int = 0,
    redo: bool = False,
    flag_names: Mapping[str, str] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_done: Callable[[], None] | None = None,
) -> RateOutcome:
    """Rate the run's kept instances (or a `sample` of kept instructions, one instance each) with the judge
    the overrides give (else the run's own `quality.judge`). The judge's settings start from the run's.
    `redo` replaces the judge's stored answers. `on_start(items, already rated)` and `on_done()` (one per
    answer) feed a progress display."""
    store = RunStore.open(run_dir)
    store.lock = lock_folder(Path(run_dir), "run")
    try:
        saved = store.get_meta("settings")
        settings = resolve_settings(
            None, dict(overrides), base=saved if isinstance(saved, dict) else None, flag_names=flag_names
        )
        if settings.quality.judge is None:
            raise UserError(
                "--judge: name the judge: checks, embedded or BACKEND/MODEL (e.g. openai/gpt-4o-mini)"
            )
        if isinstance(saved, dict) and any(key.startswith("cost.") for key in overrides):
            # Prices and budgets are the run's: kept for its later commands and its summary (the rest of
            # what is given here, the judge, is this command's only).
            store.set_meta("settings", {**saved, "cost": settings.model_dump(mode="json")["cost"]})
        items = _items(store, sample, seed)
        if not items:
            raise UserError(f"{run_dir}: no kept instances to rate (run selfinstruct generate first)")
        cache = SQLiteResponseCache(store.path)
        try:
            judge, client = make_judge(settings, cache)
            assert judge is not None
            if client is not None:
                # The run's budget and prices cover its judge too: what `rate` spends is counted with the
                # run's spending and stops at --max-cost / --max-total-tokens.
                client.budget = stored_budget(settings, store)
            # --redo: every item again, its stored answers replaced (replies of the same prompt come from the
            # run's cache, read by today's parser).
            todo = list(items) if redo else unrated(store, judge.name, items)
            if on_start is not None:
                on_start(len(items), len(items) - len(todo))

            async def work() -> int:
                if client is not None and client.budget is not None and todo and isinstance(judge, LLMJudge):
                    # A budget too small for even one judge request is refused at once (exit 2).
                    first = judge.request(todo[0])
                    tokens = await client.prompt_tokens(first.prompt)
                    client.budget.check_alone(tokens, first.decoding.max_tokens, "judge")
                try:
                    return await rate_items(
                        judge, todo, store, on_done=(lambda item, verdict: on_done()) if on_done else None
                    )
                finally:
                    if client is not None:
                        await client.aclose()

            with WalCheckpointer(store.path, [store.conn, cache.connection]):
                rated = eventloop.run(work())
        finally:
            cache.close()
        summary = refresh_summary(Path(run_dir), store)
        return RateOutcome(judge.name, len(items), rated, len(items) - len(todo), summary)
    finally:
        store.close()


def _items(store: RunStore, sample: int | None, seed: int) -> list[RatingItem]:
    if sample is None:
        return store.rating_items()
    pairs = draw_rating_sample(store, sample, seed)
    by_id = {item.instance_id: item for item in store.rating_items([xid for _, xid in pairs])}
    return [by_id[xid] for _, xid in pairs if xid in by_id]
