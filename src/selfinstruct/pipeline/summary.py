"""The end-of-run table: where the candidates went, per filter, and what the LM cost."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table

from selfinstruct.config import CostSettings, RunSettings
from selfinstruct.filters import CANDIDATE_VERDICTS, INSTANCE_VERDICTS, KEPT
from selfinstruct.lm.client import Budget, Ledger, Prices, Spent, format_usd
from selfinstruct.paths import atomic_write
from selfinstruct.quality.report import QualitySummary, quality_summary, table2_markdown, table2_rich
from selfinstruct.store import RunReader, RunStore

# The run's meta key holding what its LM requests spent (a `Ledger`), over all its sessions.
SPENT_KEY = "spent"


def prices_of(cost: CostSettings) -> Prices | None:
    if cost.price_input is None or cost.price_output is None:
        return None
    return Prices(cost.price_input, cost.price_output)


def run_budget(settings: RunSettings, stored: object) -> Budget:
    """The run's budget: its limits and prices, and what earlier sessions spent (`stored`, the run's meta)."""
    c = settings.cost
    return Budget(
        Ledger.from_dict(stored),
        prices=prices_of(c),
        max_cost=c.max_cost,
        max_total_tokens=c.max_total_tokens,
    )


def stored_budget(settings: RunSettings, store: RunStore) -> Budget:
    """The run's budget with what its earlier sessions spent, storing what this one spends after every reply
    (so a resumed run, or one killed and rerun, counts it): one budget for all of a command's clients."""
    budget = run_budget(settings, store.get_meta(SPENT_KEY))
    budget.on_spend = lambda ledger: store.set_meta(SPENT_KEY, ledger.as_dict())
    return budget


@dataclass
class CostRow:
    """A stage's or an endpoint's spending so far; `usd` is None without prices."""

    name: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    usd: float | None


@dataclass
class CostSummary:
    """What the run's LM requests spent over all its sessions (cache hits cost nothing), at its prices."""

    prices: dict[str, float] | None = None
    max_cost: float | None = None
    max_total_tokens: int | None = None
    stages: list[CostRow] = field(default_factory=list)
    endpoints: list[CostRow] = field(default_factory=list)
    total: CostRow = field(default_factory=lambda: CostRow("total", 0, 0, 0, None))

    def __bool__(self) -> bool:
        return bool(self.stages)

    @property
    def shown(self) -> bool:
        """Shown at the end of a run with prices or a budget, once anything was spent."""
        return bool(self) and (self.prices is not None or bool(self.budget_line))

    @property
    def budget_line(self) -> str:
        """The limits and how much of them is spent, or "" without limits."""
        parts = []
        if self.max_cost is not None and self.total.usd is not None:
            share = 100 * self.total.usd / self.max_cost
            parts.append(f"{format_usd(self.total.usd)} of {format_usd(self.max_cost)} ({share:.0f}%)")
        if self.max_total_tokens is not None:
            used = self.total.prompt_tokens + self.total.completion_tokens
            share = 100 * used / self.max_total_tokens
            parts.append(f"{used:,} of {self.max_total_tokens:,} tokens ({share:.0f}%)")
        return "budget: " + ", ".join(parts) if parts else ""


def cost_summary(settings: Mapping[str, object] | None, stored: object) -> CostSummary:
    """The run's spending from its stored ledger, priced at its settings' prices."""
    try:
        cost = CostSettings.model_validate((settings or {}).get("cost") or {})
    except ValueError:
        cost = CostSettings()
    prices = prices_of(cost)
    ledger = Ledger.from_dict(stored)

    def row(name: str, spent: Spent) -> CostRow:
        # Rounded to a billionth of a dollar: summary.json shows no float noise.
        usd = round(prices.cost(spent.prompt_tokens, spent.completion_tokens), 9) if prices else None
        return CostRow(name, spent.requests, spent.prompt_tokens, spent.completion_tokens, usd)

    return CostSummary(
        prices={"input": prices.input, "output": prices.output} if prices else None,
        max_cost=cost.max_cost,
        max_total_tokens=cost.max_total_tokens,
        stages=[row(name, spent) for name, spent in sorted(ledger.stages.items())],
        endpoints=[row(name, spent) for name, spent in sorted(ledger.endpoints.items())],
        total=row("total", ledger.total),
    )


@dataclass
class RunSummary:
    gen_requests: int
    gen_requests_truncated: int
    candidates: int
    kept: int
    candidate_verdicts: dict[str, int]
    classified: int
    classification: int
    instructions_with_instances: int
    instances: int
    instances_kept: int
    instance_verdicts: dict[str, int]
    usage: list[dict[str, object]] = field(default_factory=list)
    endpoints: list[dict[str, object]] = field(default_factory=list)
    wall_seconds: float | None = None
    quality: QualitySummary = field(default_factory=QualitySummary)
    cost: CostSummary = field(default_factory=CostSummary)
    stopped: str = ""  # the budget's line when the run stopped at its budget

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["quality"] = self.quality.as_dict()
        return data

    def acceptance_rows(self) -> list[tuple[str, int, str]]:
        """(stage/filter, count, share of candidates) in the filters' order."""
        total = max(self.candidates, 1)
        order = list(CANDIDATE_VERDICTS)
        rows = [("candidates", self.candidates, "100.0%")]
        for name in order + sorted(set(self.candidate_verdicts) - set(order) - {KEPT}):
            n = self.candidate_verdicts.get(name, 0)
            rows.append((f"dropped: {name}", n, f"{100 * n / total:.1f}%"))
        rows.append(("kept", self.kept, f"{100 * self.kept / total:.1f}%"))
        return rows

    def instance_drops(self) -> list[tuple[str, int]]:
        """(verdict, count) of the dropped instances, in the order stage 3 applies its filters."""
        present = [v for v in INSTANCE_VERDICTS if v in self.instance_verdicts]
        others = sorted(set(self.instance_verdicts) - set(INSTANCE_VERDICTS) - {KEPT})
        return [(v, self.instance_verdicts[v]) for v in (*present, *others)]


def _int(row: dict[str, object], key: str) -> int:
    value = row.get(key, 0)
    return int(value) if isinstance(value, int | float | str) else 0


USAGE_COLUMNS = ("stage", "requests", "cached", "retries", "failed", "tokens")


def usage_cells(row: dict[str, object]) -> tuple[str, ...]:
    """One stage's LM usage, a cell per `USAGE_COLUMNS`: requests sent or answered from the cache, cache
    hits, retries, requests that failed for good, tokens (prompt + completion)."""
    tokens = _int(row, "prompt_tokens") + _int(row, "completion_tokens")
    return (
        str(row.get("stage")),
        f"{_int(row, 'requests'):,}",
        f"{_int(row, 'cache_hits'):,}",
        f"{_int(row, 'retries'):,}",
        f"{_int(row, 'errors'):,}",
        f"{tokens:,}",
    )


def summary_tables(summary: RunSummary) -> list[Table]:
    """The end-of-run tables, each readable at 80 columns: labels short enough not to wrap, LM usage in
    columns of its own."""
    funnel = Table(title="Stage 1: where the candidates went")
    funnel.add_column("step")
    funnel.add_column("count", justify="right")
    funnel.add_column("share", justify="right")
    for name, n, share in summary.acceptance_rows():
        funnel.add_row(name, str(n), share)
    stages = Table(title="Stages 2-3")
    stages.add_column("what")
    stages.add_column("count", justify="right")
    stages.add_row("stage-1 requests", str(summary.gen_requests))
    stages.add_row("stage-1 replies cut by max_tokens", str(summary.gen_requests_truncated))
    share = f" ({100 * summary.classification / summary.classified:.0f}%)" if summary.classified else ""
    stages.add_row(
        "classification tasks / classified", f"{summary.classification}/{summary.classified}{share}"
    )
    stages.add_row("instances kept / parsed", f"{summary.instances_kept}/{summary.instances}")
    for verdict, n in summary.instance_drops():
        stages.add_row(f"instances dropped: {verdict}", str(n))
    stages.add_row("wall time (s)", f"{summary.wall_seconds}")
    tables = [funnel, stages]
    if summary.usage:
        usage = Table(title="LM usage")
        for column in USAGE_COLUMNS:
            usage.add_column(column, justify="left" if column == "stage" else "right")
        for row in summary.usage:
            usage.add_row(*usage_cells(row))
        tables.append(usage)
    if summary.endpoints:
        endpoints = Table(title="LM endpoints")
        for column in ("endpoint", "requests", "errors", "mean latency (s)"):
            endpoints.add_column(column, justify="left" if column == "endpoint" else "right")
        for row in summary.endpoints:
            endpoints.add_row(
                str(row["endpoint"]), str(row["requests"]), str(row["errors"]), f"{row['mean_latency_s']:.3f}"
            )
        tables.append(endpoints)
    if summary.cost.shown:
        tables.append(cost_table(summary.cost))
    if summary.quality:
        tables += table2_rich(summary.quality)
    return tables


COST_COLUMNS = ("stage / endpoint", "requests", "prompt", "completion", "USD")


def cost_cells(row: CostRow) -> tuple[str, ...]:
    usd = format_usd(row.usd) if row.usd is not None else "-"
    return (row.name, f"{row.requests:,}", f"{row.prompt_tokens:,}", f"{row.completion_tokens:,}", usd)


def cost_table(cost: CostSummary) -> Table:
    """Money spent so far (every session of the run), per stage, then per endpoint."""
    prices = ""
    if cost.prices is not None:
        prices = f"${cost.prices['input']:g} in, ${cost.prices['output']:g} out per 1M tokens"
    caption = " · ".join(filter(None, [prices, cost.budget_line]))
    table = Table(title="Spent so far (all sessions)", caption=caption)
    for column in COST_COLUMNS:
        table.add_column(column, justify="left" if column == COST_COLUMNS[0] else "right")
    for row in cost.stages:
        table.add_row(*cost_cells(row))
    table.add_row(*cost_cells(cost.total), end_section=True)
    for row in cost.endpoints:
        table.add_row(*cost_cells(row))
    return table


def summarize(store: RunReader) -> RunSummary:
    counts = store.counts()
    saved = store.get_meta("settings")
    return RunSummary(
        gen_requests=counts.gen_requests_done,
        gen_requests_truncated=counts.gen_requests_truncated,
        candidates=sum(counts.candidate_verdicts.values()),
        kept=counts.kept,
        candidate_verdicts=counts.candidate_verdicts,
        classified=counts.classified,
        classification=counts.classification,
        instructions_with_instances=counts.instructions_with_instances,
        instances=sum(counts.instance_verdicts.values()),
        instances_kept=counts.instance_verdicts.get(KEPT, 0),
        instance_verdicts=counts.instance_verdicts,
        quality=quality_summary(store),
        cost=cost_summary(saved if isinstance(saved, dict) else None, store.get_meta(SPENT_KEY)),
    )


def summary_markdown(summary: RunSummary) -> str:
    lines = ["| step | count | share of candidates |", "|---|---:|---:|"]
    lines += [f"| {name} | {n} | {share} |" for name, n, share in summary.acceptance_rows()]
    lines += [
        "",
        "| | count |",
        "|---|---:|",
        f"| stage-1 requests | {summary.gen_requests} |",
        f"| stage-1 replies cut by max_tokens | {summary.gen_requests_truncated} |",
        f"| kept instructions classified | {summary.classified} |",
        f"| classification tasks | {summary.classification} |",
        f"| instructions with kept instances | {summary.instructions_with_instances} |",
        f"| instances parsed | {summary.instances} |",
        f"| instances kept | {summary.instances_kept} |",
    ]
    lines += [f"| instances dropped: {k} | {v} |" for k, v in summary.instance_drops()]
    for rows in (summary.usage, summary.endpoints):
        if rows:
            keys = list(rows[0])
            lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    if summary.cost.shown:
        lines += ["", "## Spent so far (all sessions)", ""]
        lines += ["| " + " | ".join(COST_COLUMNS) + " |", "|---|---:|---:|---:|---:|"]
        cost_rows = [*summary.cost.stages, summary.cost.total, *summary.cost.endpoints]
        lines += ["| " + " | ".join(cost_cells(row)) + " |" for row in cost_rows]
        if (prices := summary.cost.prices) is not None:
            lines += ["", f"Prices: ${prices['input']:g} in, ${prices['output']:g} out per million tokens."]
        if summary.cost.budget_line:
            lines.append(summary.cost.budget_line.capitalize() + ".")
    if summary.stopped:
        lines += ["", f"Stopped: {summary.stopped}."]
    if summary.quality:
        lines += [
            "",
            "## Data quality: the paper's Table 2 questions",
            "",
            table2_markdown(summary.quality).rstrip(),
        ]
    return "\n".join(lines) + "\n"


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    """summary.json and summary.md in the run directory, each replaced whole."""
    with atomic_write(run_dir / "summary.json") as handle:
        handle.write(json.dumps(summary.as_dict(), indent=2))
    with atomic_write(run_dir / "summary.md") as handle:
        handle.write(summary_markdown(summary))


def refresh_summary(run_dir: Path, store: RunReader) -> RunSummary:
    """Rewrite the summary from the store after work outside a pipeline run (ratings), keeping the LM usage
    and wall time the last pipeline run recorded."""
    summary = summarize(store)
    try:
        previous = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    if isinstance(previous, dict):
        summary.usage = previous.get("usage") or []
        summary.endpoints = previous.get("endpoints") or []
        summary.wall_seconds = previous.get("wall_seconds")
    write_summary(run_dir, summary)
    return summary
